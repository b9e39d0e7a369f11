// kiln catalog check: facts derived from the artifacts themselves, next to
// the catalog's. Exit 0 when nothing differs, 1 when something does (after
// --write: something that could not be written), 2 for bad input.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "survey/survey.h"
#include "util/diag.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct CatalogCheckArgs {
  survey::Inputs in;
  bool write = false;
  bool all = false;
  std::string format = "table";
};

std::string fit(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 1) + "~";
}

void print_table(const survey::Report& report, const CatalogCheckArgs& a, const std::vector<std::string>& written) {
  std::vector<const survey::Row*> shown;
  for (const auto& r : report.rows)
    if (r.compared && (r.differs || a.all)) shown.push_back(&r);
  size_t compared = std::count_if(report.rows.begin(), report.rows.end(), [](const survey::Row& r) { return r.compared; });
  size_t differing = std::count_if(report.rows.begin(), report.rows.end(), [](const survey::Row& r) { return r.differs; });
  if (!shown.empty()) {
    size_t wf = 4, wc = 7, wa = 8;
    for (const auto* r : shown) {
      wf = std::max(wf, std::min<size_t>(r->fact.size(), 48));
      wc = std::max(wc, std::min<size_t>(r->catalog.size(), 36));
      wa = std::max(wa, std::min<size_t>(r->artifact.size(), 36));
    }
    std::cout << fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", "FACT", wf, "CATALOG", wc, "ARTIFACT", wa, "SOURCE");
    for (const auto* r : shown) {
      std::cout << fmt::format("{:<{}}{} {:<{}}  {:<{}}  {}\n", fit(r->fact, wf), wf, r->differs ? " ≠" : "  ",
                               fit(r->catalog, wc), wc, fit(r->artifact, wa), wa, r->source);
      const std::string pad(wf + 2, ' ');
      if (!r->detail.empty()) std::cout << pad << r->detail << '\n';
      if ((r->catalog.size() > wc || r->artifact.size() > wa) && r->differs) {
        // Whole values on their own lines, unless they are so long that
        // the detail says it better (NVIDIA_REQUIRE_CUDA: 60 alternatives).
        if (r->catalog.size() + r->artifact.size() < 400 || r->detail.empty())
          std::cout << pad << "catalog:  " << r->catalog << '\n' << pad << "artifact: " << r->artifact << '\n';
        else
          std::cout << pad << "(the whole values: --format json)\n";
      }
      if (a.write && !r->written.empty()) std::cout << pad << (r->updated ? "written: " : "") << r->written << '\n';
    }
  }
  std::vector<const survey::Row*> facts;
  for (const auto& r : report.rows)
    if (!r.compared) facts.push_back(&r);
  if (!facts.empty()) {
    std::cout << "\nalso read (not in the catalog, or not stated by the artifact):\n";
    for (const auto* r : facts) {
      std::cout << fmt::format("  {}: {}{}  [{}]\n", r->fact, r->artifact,
                               r->catalog.empty() ? "" : " (catalog: " + r->catalog + ")", r->source);
      if (!r->detail.empty()) std::cout << "    " << r->detail << '\n';
    }
  }
  for (const auto& n : report.notes) std::cout << "note: " << n << '\n';
  std::cout << fmt::format("\n{} fact(s) compared, {} differ", compared, differing);
  if (a.write) std::cout << fmt::format(", {} left after --write", report.differences());
  std::cout << '\n';
  for (const auto& f : written) std::cout << "wrote " << f << '\n';
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
  if (a.format == "json") std::cout << json_text(to_json(report, cat, a, written), 2) << '\n';
  else print_table(report, a, written);
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
  set_action(cat, [&common, args, sub] {
    if (!sub->parsed()) return 2;
    return run_catalog_check(common, *args);
  });
}

}  // namespace kiln::cli
