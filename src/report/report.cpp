#include "report/report.h"

#include <chrono>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "util/table.h"
#include "util/text.h"
#include "util/json_out.h"

namespace kiln::report {

namespace {

template <typename T>
const T* find_by_id(const std::vector<T>* items, const std::string& id) {
  if (!items) return nullptr;
  for (const auto& x : *items)
    if (x.id == id) return &x;
  return nullptr;
}

// The cuBLAS bf16 GEMM rate the smoke suite measured (its summary, which
// takes it from the per-device results).
std::string bf16_tflops(const verify::CheckResult& c) {
  const auto& summary = c.detail.contains("summary") ? c.detail["summary"] : nlohmann::json();
  if (summary.is_object() && summary.contains("gemm_bf16_tflops_cublas") && summary["gemm_bf16_tflops_cublas"].is_number())
    return fmt::format("{:.0f}", summary["gemm_bf16_tflops_cublas"].get<double>());
  return "";
}

std::vector<std::pair<std::string, std::string>> plan_versions(const plan::Versions& v) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : {std::pair{"PyTorch", v.pytorch}, {"Python", v.python}, {"CUDA", v.cuda}, {"cuDNN", v.cudnn},
                                    {"NCCL", v.nccl}, {"OS", v.os}})
    if (!value.empty()) out.emplace_back(name, value);
  return out;
}

void fill_verify(Row& row, const verify::ComboVerdict& v) {
  row.image_id = v.image_id;
  row.verified = v.verified;
  if (!v.verified) row.why = v.reason;
  for (const auto& c : v.checks) {
    const char* status = verify::to_string(c.status);
    row.checks.push_back(c.check == "static" ? fmt::format("static={}", status) : fmt::format("{}@{}={}", c.check, c.runner, status));
    if (c.check == "gpu" && c.status == verify::CheckStatus::passed && row.gemm_bf16_tflops.empty())
      row.gemm_bf16_tflops = bf16_tflops(c);
    if (c.check == "gpu" && c.detail.contains("summary") && c.detail["summary"].value("line", "") != "")
      row.measured.push_back(fmt::format("{} on {}: {}", status, c.runner, c.detail["summary"].value("line", "")));
    if (c.check == "gpu" && c.detail.contains("placement"))
      row.places.push_back({c.runner, status, verify::placement_from_json(c.detail["placement"]), c.reused});
    if (c.check == "gpu" && c.detail.contains("summary") && c.detail["summary"].contains("gpus")) {
      std::vector<std::string> gpus;
      for (const auto& g : c.detail["summary"]["gpus"])
        if (g.is_string()) gpus.push_back(g.get<std::string>());
      if (!gpus.empty()) row.gpu_used.push_back(c.runner + ": " + join(gpus, ", "));
    }
  }
}

void fill_promote(Row& row, const promote::ComboPromotion& pr) {
  for (const auto& t : pr.tags)
    if (promote::names_verified_image(t.action)) row.tags.push_back(t.tag);
  row.tagged = pr.tagged;
  if (!pr.tagged && row.why.empty()) row.why = pr.reason;
  if (pr.tagged && !pr.recorded) row.record_missing = pr.record_error.empty() ? pr.reason : pr.record_error;
}

}  // namespace

RunReport assemble(const plan::Plan& p, const build::Report* b, const verify::Report* v, const promote::Report* pr) {
  RunReport r;
  r.matrix = p.matrix_name;
  r.generated_at = utc_now("%Y-%m-%dT%H:%M:%SZ");
  r.catalog_version = p.catalog_version;
  r.catalog_collected = p.catalog_collected;
  r.registry = p.registry;
  for (const auto& c : p.combos)
    if (!c.targets.empty()) {
      for (const auto& t : c.targets) r.gpu_columns.push_back(t.name);
      break;
    }
  for (const auto& c : p.combos) {
    Row row;
    row.id = c.id;
    row.plan_status = plan::to_string(c.status);
    row.rule = c.rule;
    row.versions = plan_versions(c.versions);
    row.min_driver = c.min_driver;
    for (const auto& n : c.end_of_life) row.end_of_life.push_back(n.text);
    for (const auto& t : c.targets) row.gpus[t.name] = kiln::to_string(t.support);
    if (c.status == plan::Status::excluded) {
      row.why = c.reason;
      r.rows.push_back(std::move(row));
      continue;
    }
    const build::StageResult* s = b ? find_by_id(&b->stages, c.id) : nullptr;
    if (b && !s) continue;  // not selected (--only)
    ++r.valid;
    if (s) {
      row.build = build::to_string(s->outcome);
      row.image_id = s->image_id;
      row.log_path = s->log_path;
      row.size = s->size;
      for (const auto& l : s->largest_layers) row.largest_layers.push_back(build::layer_line(l));
      if (s->outcome == build::Outcome::failed || s->outcome == build::Outcome::skipped)
        row.why = fmt::format("build {}: {}{}", row.build, s->error, s->log_path.empty() ? "" : " (log: " + s->log_path + ")");
    }
    if (const auto* vv = find_by_id(v ? &v->combos : nullptr, c.id)) fill_verify(row, *vv);
    if (const auto* pp = find_by_id(pr ? &pr->combos : nullptr, c.id)) fill_promote(row, *pp);
    r.verified += row.verified;
    r.tagged += row.tagged;
    r.rows.push_back(std::move(row));
  }
  return r;
}

std::string table(const RunReport& r) {
  Table t({"COMBINATION", "PLAN", "BUILD", "IMAGE", "VERIFIED", "TAGS"});
  for (const auto& row : r.rows) {
    if (row.plan_status == "excluded") continue;
    t.add_row({row.id, row.plan_status, row.build.empty() ? "-" : row.build, row.image_id.empty() ? "-" : row.image_id.substr(0, 19),
               row.verified ? "yes" : "no", row.tags.empty() ? "-" : join(row.tags, " ")});
    if (row.size > 0) t.add_note(fmt::format("size {}; largest layers: {}", build::human_size(row.size), join(row.largest_layers, "; ")));
    if (!row.tagged && !row.why.empty()) t.add_note("not tagged: " + row.why);
    for (const auto& m : row.measured) t.add_note("gpu " + m);
    if (!row.record_missing.empty()) t.add_note("tagged, but the verification record was NOT attached: " + row.record_missing);
  }
  return "\n" + t.str() + fmt::format("\n{} valid combinations: {} verified, {} tagged ({} excluded by the plan)\n", r.valid,
                                      r.verified, r.tagged, r.rows.size() - r.valid);
}

namespace {

nlohmann::json places_json(const Row& row) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : row.places) {
    nlohmann::json j = verify::placement_json(p.where);
    j["runner"] = p.runner;
    j["status"] = p.status;
    j["cached"] = p.cached;
    out.push_back(j);
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const RunReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows)
    rows.push_back({{"id", row.id}, {"plan", row.plan_status}, {"build", row.build}, {"image_id", row.image_id},
                    {"checks", row.checks}, {"verified", row.verified}, {"tags", row.tags}, {"tagged", row.tagged}, {"reason", reason_json(row.why)},
                    {"record_missing", row.record_missing}, {"gpus", row.gpus}, {"gemm_bf16_tflops", row.gemm_bf16_tflops},
                    {"measured", row.measured}, {"rule", row.rule},
                    {"versions", nlohmann::json(std::map<std::string, std::string>(row.versions.begin(), row.versions.end()))},
                    {"min_driver", row.min_driver}, {"log", row.log_path}, {"gpu_used", row.gpu_used},
                    {"size", row.size}, {"largest_layers", row.largest_layers}, {"verdicts", places_json(row)},
                    {"end_of_life", row.end_of_life}});
  return {{"schema", "kiln.run/v2"}, {"matrix", r.matrix}, {"generated_at", r.generated_at}, {"kiln_version", r.kiln_version},
          {"catalog", {{"version", r.catalog_version}, {"collected", r.catalog_collected}}},
          {"summary", {{"valid", r.valid}, {"verified", r.verified}, {"tagged", r.tagged}}}, {"combos", rows}};
}

std::vector<std::string> write(const RunReport& r, const std::string& dir, const std::string& templates_dir) {
  std::filesystem::create_directories(dir);
  std::string base = dir + "/" + r.matrix;
  write_file_atomic(base + ".md", markdown(r, templates_dir, dir));
  write_file_atomic(base + ".json", json_text(to_json(r), 2) + "\n");
  write_file_atomic(base + ".html", html(r, templates_dir, dir));
  return {base + ".md", base + ".json", base + ".html"};
}

}  // namespace kiln::report
