// The run report as people read it: the data the templates see, and the
// templates rendered (templates/report/). Layout and wording live in the
// templates; this file decides what is known and what is empty.
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <kainjow/mustache.hpp>

#include "report/report.h"
#include "util/diag.h"
#include "util/text.h"

namespace kiln::report {

namespace {

namespace fs = std::filesystem;
namespace mus = kainjow::mustache;

// A Markdown table cell: a pipe would end the cell, a newline the row.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

// The manifest URL of a pushed tag ("HOST/REPO:TAG"): what a person can open
// (the registry's API answers it) and what `skopeo inspect` and crane take.
std::string tag_url(const std::string& ref, bool insecure) {
  const auto slash = ref.find('/');
  const auto colon = ref.rfind(':');
  if (slash == std::string::npos || colon == std::string::npos || colon < slash) return "";
  return fmt::format("{}://{}/v2/{}/manifests/{}", insecure ? "http" : "https", ref.substr(0, slash),
                     ref.substr(slash + 1, colon - slash - 1), ref.substr(colon + 1));
}

std::string relative_link(const std::string& path, const std::string& link_dir) {
  if (path.empty()) return "";
  std::error_code ec;
  fs::path rel = fs::relative(fs::absolute(path), fs::absolute(link_dir), ec);
  return ec || rel.empty() ? path : rel.string();
}

// "static=passed", "gpu@h200=failed" -> its status, for the page's colours.
std::string check_status(const std::string& check) {
  const auto eq = check.rfind('=');
  return eq == std::string::npos ? "" : check.substr(eq + 1);
}

const std::vector<std::pair<std::string, std::string>> kLegend = {
    {"native", "the image carries SASS for the GPU's architecture"},
    {"ptx-jit", "only PTX: the driver compiles it on first use (slow start, needs a new enough driver)"},
    {"partial", "the core libraries serve the GPU, some others do not (the audit names them)"},
    {"unsupported", "no code the GPU can run: \"no kernel image is available\""},
    {"no device code", "nothing in the image limits or proves GPU support"},
    {"passed / failed / no-gpu / error", "a check's result; no-gpu (no usable GPU) never counts as a pass"},
};

nlohmann::json row_view(const Row& row, const RunReport& r, const std::string& link_dir,
                        const std::function<std::string(const std::string&)>& text) {
  nlohmann::json v;
  v["id"] = text(row.id);
  v["image"] = text(row.image_id.substr(0, 19));
  v["build"] = text(row.build.empty() ? "-" : row.build);
  v["log"] = row.log_path.empty() ? nlohmann::json(false) : nlohmann::json(text(relative_link(row.log_path, link_dir)));
  v["verified"] = row.verified;
  v["tagged"] = row.tagged;
  nlohmann::json versions = nlohmann::json::array();
  for (const auto& [name, value] : row.versions) versions.push_back({{"name", text(name)}, {"value", text(value)}});
  v["versions"] = versions;
  v["min_driver"] = text(row.min_driver.empty() ? "-" : row.min_driver);
  v["size"] = row.size > 0 ? nlohmann::json(text(build::human_size(row.size))) : nlohmann::json(false);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : row.largest_layers) layers.push_back({{"text", text(l)}});
  v["largest_layers"] = layers;
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : row.checks) checks.push_back({{"text", text(c)}, {"status", check_status(c)}});
  v["checks"] = checks;
  v["has_checks"] = !row.checks.empty();
  nlohmann::json measured = nlohmann::json::array();
  for (const auto& m : row.measured) measured.push_back({{"text", text(m)}});
  v["measured"] = measured;
  nlohmann::json used = nlohmann::json::array();
  for (const auto& g : row.gpu_used) used.push_back({{"text", text(g)}});
  v["gpu_used"] = used;
  v["has_gpu_used"] = !row.gpu_used.empty();
  // Where and on what each gpu verdict was obtained.
  nlohmann::json places = nlohmann::json::array();
  for (const auto& p : row.places) {
    const auto& w = p.where;
    std::string gpu = w.gpu_count > 0 ? fmt::format("{} x {}{}", w.gpu_count, w.gpu_model.empty() ? "?" : w.gpu_model,
                                                    w.gpu_class.empty() ? "" : " (" + w.gpu_class + ")")
                                      : "no usable GPU";
    places.push_back({{"status", p.status},
                      {"runner", text(p.runner)},
                      {"scheduler", text(w.scheduler.empty() ? "-" : w.scheduler)},
                      {"node", text(w.node.empty() ? "-" : w.node)},
                      {"job", w.job.empty() ? nlohmann::json(false) : nlohmann::json(text(w.job))},
                      {"gpu", text(gpu)},
                      {"driver", text(w.driver.empty() ? "-" : w.driver)},
                      {"date", text(w.date.empty() ? "-" : w.date)},
                      {"cached", p.cached}});
  }
  v["places"] = places;
  v["has_places"] = !places.empty();
  nlohmann::json tags = nlohmann::json::array();
  for (const auto& t : row.tags) tags.push_back({{"ref", text(t)}, {"url", text(tag_url(t, r.registry.insecure))}});
  v["tags"] = tags;
  v["has_tags"] = !row.tags.empty();
  v["why"] = row.why.empty() ? nlohmann::json(false) : nlohmann::json(text(row.why));
  v["record_missing"] = row.record_missing.empty() ? nlohmann::json(false) : nlohmann::json(text(row.record_missing));
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& g : r.gpu_columns) cells.push_back({{"support", row.gpus.count(g) ? row.gpus.at(g) : "-"}});
  v["cells"] = cells;
  return v;
}

// JSON -> Mustache data: objects, lists, strings and booleans (numbers are
// written as text; the view has none that a section should test).
mus::data to_data(const nlohmann::json& j) {
  if (j.is_object()) {
    mus::data d{mus::data::type::object};
    for (const auto& [k, x] : j.items()) d.set(k, to_data(x));
    return d;
  }
  if (j.is_array()) {
    mus::data d{mus::data::type::list};
    for (const auto& x : j) d.push_back(to_data(x));
    return d;
  }
  if (j.is_boolean()) return mus::data(j.get<bool>());
  if (j.is_string()) return mus::data(j.get<std::string>());
  if (j.is_null()) return mus::data(false);
  return mus::data(j.dump());
}

std::string render(const std::string& file, const nlohmann::json& view, bool html_escape) {
  const std::string text = read_file(file);
  mus::mustache tmpl{text};
  if (!tmpl.is_valid()) throw InputError({file}, "report template: " + tmpl.error_message());
  if (!html_escape) tmpl.set_custom_escape([](const std::string& s) { return s; });
  std::string out = tmpl.render(to_data(view));
  if (!tmpl.is_valid()) throw InputError({file}, "report template: " + tmpl.error_message());
  return out;
}

}  // namespace

nlohmann::json view(const RunReport& r, Flavor flavor, const std::string& link_dir) {
  // HTML is escaped by the template engine; Markdown cells here.
  const std::function<std::string(const std::string&)> text =
      flavor == Flavor::markdown ? md_cell : [](const std::string& s) { return s; };
  nlohmann::json v;
  v["matrix"] = text(r.matrix);
  v["generated_at"] = r.generated_at;
  v["kiln_version"] = text(r.kiln_version.empty() ? "?" : r.kiln_version);
  v["catalog_version"] = text(r.catalog_version.empty() ? "?" : r.catalog_version);
  v["catalog_collected"] = r.catalog_collected.empty() ? nlohmann::json(false) : nlohmann::json(text(r.catalog_collected));
  v["registry"] = r.registry.url.empty() ? nlohmann::json(false)
                                         : nlohmann::json(text(r.registry.url + "/" + r.registry.repository));
  const size_t excluded = r.rows.size() - r.valid;
  v["valid"] = std::to_string(r.valid);
  v["verified"] = std::to_string(r.verified);
  v["tagged"] = std::to_string(r.tagged);
  v["excluded"] = std::to_string(excluded);

  nlohmann::json rows = nlohmann::json::array(), not_tagged = nlohmann::json::array();
  std::map<std::string, nlohmann::json> groups;  // (rule, reason) -> ids, in rule order
  for (const auto& row : r.rows) {
    if (row.plan_status == "excluded") {
      auto& g = groups[row.rule + "\n" + row.why];  // one rule has several reasons (which CUDA, which OS)
      if (g.is_null()) g = {{"rule", text(row.rule.empty() ? "-" : row.rule)}, {"reason", text(row.why)}, {"ids", nlohmann::json::array()}};
      g["ids"].push_back({{"id", text(row.id)}});
      continue;
    }
    nlohmann::json rv = row_view(row, r, link_dir, text);
    if (!row.tagged) not_tagged.push_back({{"id", rv["id"]}, {"why", text(row.why.empty() ? "not promoted" : row.why)}, {"log", rv["log"]}});
    rows.push_back(std::move(rv));
  }
  nlohmann::json excluded_groups = nlohmann::json::array();
  for (auto& [rule, g] : groups) {
    g["count"] = std::to_string(g["ids"].size());
    excluded_groups.push_back(std::move(g));
  }
  v["rows"] = rows;
  v["has_rows"] = !rows.empty();
  v["not_tagged"] = not_tagged;
  v["has_not_tagged"] = !not_tagged.empty();
  // End of life: every valid combination's notes, past or near (plan::EolNote).
  nlohmann::json eol = nlohmann::json::array();
  for (const auto& row : r.rows)
    for (const auto& n : row.end_of_life) eol.push_back({{"id", text(row.id)}, {"text", text(n)}});
  v["end_of_life"] = eol;
  v["has_end_of_life"] = !eol.empty();
  v["excluded_groups"] = excluded_groups;
  v["has_excluded"] = !excluded_groups.empty();
  nlohmann::json columns = nlohmann::json::array();
  for (const auto& g : r.gpu_columns) columns.push_back({{"name", text(g)}});
  v["gpu_columns"] = columns;
  v["has_gpu_grid"] = !r.gpu_columns.empty() && !rows.empty();
  nlohmann::json legend = nlohmann::json::array();
  for (const auto& [term, meaning] : kLegend) legend.push_back({{"term", text(term)}, {"meaning", text(meaning)}});
  v["legend"] = legend;
  return v;
}

std::string markdown(const RunReport& r, const std::string& templates_dir, const std::string& link_dir) {
  return render(templates_dir + "/report/run.md.mustache", view(r, Flavor::markdown, link_dir), false);
}

std::string html(const RunReport& r, const std::string& templates_dir, const std::string& link_dir) {
  return render(templates_dir + "/report/run.html.mustache", view(r, Flavor::html, link_dir), true);
}

}  // namespace kiln::report
