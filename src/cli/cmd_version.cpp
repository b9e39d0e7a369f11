// kiln version: kiln's version and the catalog's it reads (both recorded in
// every image and report, so a bug report names them).
#include <fmt/format.h>

#include "cli/commands.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

int run_version(const Common& common, const std::string& format) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  if (format == "json") {
    nlohmann::json j = {{"schema", "kiln.version/v1"}, {"kiln", KILN_VERSION}, {"catalog_version", cat.version},
                        {"catalog_collected", cat.collected.empty() ? nlohmann::json(nullptr) : nlohmann::json(cat.collected)},
                        {"data_dir", common.data_dir}};
    emit(common, json_text(j, 2) + '\n', true);
    return 0;
  }
  emit(common,
       fmt::format("kiln {}\ncatalog {} ({})\ndata {}\n", KILN_VERSION, cat.version,
                   cat.collected.empty() ? "collection date not recorded" : "facts collected " + cat.collected, common.data_dir),
       false);
  return 0;
}

}  // namespace

void register_version(CLI::App& app, Common& common) {
  auto format = std::make_shared<std::string>("table");
  CLI::App* sub = app.add_subcommand("version", "Print kiln's version and its catalog's");
  sub->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, format] { return run_version(common, *format); });
}

}  // namespace kiln::cli
