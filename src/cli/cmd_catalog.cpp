// kiln catalog check: facts derived from the artifacts themselves, next to
// the catalog's. Exit 0 when nothing differs, 1 when something does (after
// --write: something that could not be written), 2 for bad input.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "survey/survey.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/table.h"

namespace kiln::cli {

namespace {

struct CatalogCheckArgs {
  survey::Inputs in;
  bool write = false;
  bool all = false;
  std::string format = "table";
};

// A cell of at most `width` characters: a longer value that differs is
// printed whole under its row (NVIDIA_REQUIRE_CUDA has 60 alternatives).
std::string fit(const std::string& s, size_t width) {
  if (display_width(s) <= width) return s;
  std::string cut;
  size_t chars = 0;
  for (unsigned char ch : s) {
    if ((ch & 0xc0) != 0x80 && ++chars == width) break;  // a whole UTF-8 character, never half of one
    cut += static_cast<char>(ch);
  }
  return cut + "~";
}

std::string table_text(const survey::Report& report, const CatalogCheckArgs& a, const std::vector<std::string>& written,
                       bool colour) {
  constexpr size_t kFact = 48, kValue = 36;
  Table t({"FACT", "", "CATALOG", "ARTIFACT", "SOURCE"});
  bool any_differs = false, any_cut = false;
  for (const auto& r : report.rows) {
    if (!r.compared || !(r.differs || a.all)) continue;
    any_differs |= r.differs;
    any_cut |= display_width(r.fact) > kFact || display_width(r.catalog) > kValue || display_width(r.artifact) > kValue;
    t.add_row({fit(r.fact, kFact), r.differs ? paint("≠", Colour::red, colour) : "", fit(r.catalog, kValue),
               fit(r.artifact, kValue), r.source});
    if (!r.detail.empty()) t.add_note(r.detail);
    if (r.differs && (display_width(r.catalog) > kValue || display_width(r.artifact) > kValue)) {
      // Whole values on their own lines, unless they are so long that the
      // detail says it better.
      if (r.catalog.size() + r.artifact.size() < 400 || r.detail.empty()) {
        t.add_note("catalog:  " + r.catalog);
        t.add_note("artifact: " + r.artifact);
      } else {
        t.add_note("(the whole values: --format json)");
      }
    }
    if (a.write && !r.written.empty()) t.add_note((r.updated ? "written: " : "") + r.written);
  }
  std::string out = t.empty() ? "" : t.str();
  if (any_differs) out += "\n≠: the artifact differs from the catalog\n";
  if (any_cut) out += (any_differs ? "" : "\n") + std::string("~: a value cut (whole under its row, or in --format json)\n");
  bool first = true;
  for (const auto& r : report.rows) {
    if (r.compared) continue;
    if (first) out += "\nalso read (not in the catalog, or not stated by the artifact):\n";
    first = false;
    out += fmt::format("  {}: {}{}  [{}]\n", r.fact, r.artifact, r.catalog.empty() ? "" : " (catalog: " + r.catalog + ")", r.source);
    if (!r.detail.empty()) out += "    " + r.detail + '\n';
  }
  for (const auto& n : report.notes) out += "note: " + n + '\n';
  size_t compared = std::count_if(report.rows.begin(), report.rows.end(), [](const survey::Row& r) { return r.compared; });
  size_t differing = std::count_if(report.rows.begin(), report.rows.end(), [](const survey::Row& r) { return r.differs; });
  out += fmt::format("\n{} fact(s) compared, {} differ", compared, differing);
  if (a.write) out += fmt::format(", {} left after --write", report.differences());
  out += '\n';
  for (const auto& f : written) out += "wrote " + f + '\n';
  return out;
}

nlohmann::json to_json(const survey::Report& report, const catalog::Catalog& cat, const CatalogCheckArgs& a,
                       const std::vector<std::string>& written) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : report.rows) {
    nlohmann::json j = {{"fact", r.fact},         {"catalog", r.catalog},   {"artifact", r.artifact},
                        {"source", r.source},     {"compared", r.compared}, {"differs", r.differs}};
    if (!r.detail.empty()) j["detail"] = r.detail;
    if (a.write) {
      j["updated"] = r.updated;
      if (!r.written.empty()) j["written"] = r.written;
    }
    rows.push_back(std::move(j));
  }
  size_t differing = std::count_if(report.rows.begin(), report.rows.end(), [](const survey::Row& r) { return r.differs; });
  return {{"schema", "kiln.catalog-check/v1"},
          {"catalog_version", cat.version},
          {"recipes", cat.root},
          {"rows", rows},
          {"notes", report.notes},
          {"differences", differing},
          {"remaining", report.differences()},
          {"written", written},
          {"ok", report.differences() == 0}};
}

int run_catalog_check(const Common& common, const CatalogCheckArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  survey::Report report = survey::check(cat, a.in);
  std::vector<std::string> written;
  if (a.write) written = survey::write(cat, report);
  const bool json = a.format == "json";
  emit(common, json ? json_text(to_json(report, cat, a, written), 2) + '\n' : table_text(report, a, written, colour(common)), json);
  return report.differences() == 0 ? 0 : 1;
}

}  // namespace

void register_catalog(CLI::App& app, Common& common) {
  auto args = std::make_shared<CatalogCheckArgs>();
  CLI::App* cat = app.add_subcommand("catalog", "Check the compatibility catalog against the artifacts themselves");
  cat->require_subcommand(1);
  CLI::App* sub = cat->add_subcommand(
      "check", "Derive facts from wheels, installs, index pages, NVIDIA's files; diff them with the catalog");
  sub->add_option("--wheel", args->in.wheels, "A torch wheel file (repeatable)");
  sub->add_option("--site-packages", args->in.site_packages, "An installed torch: site-packages or a venv (repeatable)");
  sub->add_option("--index", args->in.indexes, "A PyTorch CUDA index page, PEP 691 JSON or HTML: file or URL (repeatable)");
  sub->add_option("--redistrib", args->in.redistribs, "NVIDIA's redistrib_X.Y.Z.json: file or URL (repeatable)");
  sub->add_option("--dockerfile", args->in.dockerfiles, "An nvidia/cuda base Dockerfile: file or URL (repeatable)");
  sub->add_flag("--online", args->in.online, "Also list PyPI releases of torch newer than the catalog's newest");
  sub->add_option("--pypi-url", args->in.pypi_url, "PyPI's JSON for torch (URL or file) for --online")
      ->default_str(args->in.pypi_url);
  sub->add_flag("--write", args->write, "Update the catalog's TOML with the artifacts' values, recording their source");
  sub->add_flag("--all", args->all, "Show the facts that agree too");
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(cat, [&common, args, sub] {
    if (!sub->parsed()) return 2;
    return run_catalog_check(common, *args);
  });
}

}  // namespace kiln::cli
