#include "report/report.h"

#include <chrono>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

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

void fill_verify(Row& row, const verify::ComboVerdict& v) {
  row.image_id = v.image_id;
  row.verified = v.verified;
  if (!v.verified) row.why = v.reason;
  for (const auto& c : v.checks) {
    row.checks.push_back(c.check == "static" ? "static=" + c.status : fmt::format("{}@{}={}", c.check, c.runner, c.status));
    if (c.check == "gpu" && c.status == "passed" && row.gemm_bf16_tflops.empty()) row.gemm_bf16_tflops = bf16_tflops(c);
    if (c.check == "gpu" && c.detail.contains("summary") && c.detail["summary"].value("line", "") != "")
      row.measured.push_back(fmt::format("{} on {}: {}", c.status, c.runner, c.detail["summary"].value("line", "")));
  }
}

void fill_promote(Row& row, const promote::ComboPromotion& pr) {
  for (const auto& t : pr.tags)
    if (t.action == "pushed" || t.action == "retagged" || t.action == "unchanged") row.tags.push_back(t.tag);
  if (!pr.tagged && row.why.empty()) row.why = pr.reason;
  if (pr.tagged && !pr.recorded) row.record_missing = pr.record_error.empty() ? pr.reason : pr.record_error;
}

}  // namespace

RunReport assemble(const plan::Plan& p, const build::Report* b, const verify::Report* v, const promote::Report* pr) {
  RunReport r{p.matrix_name, utc_now("%Y-%m-%dT%H:%M:%SZ"), {}, {}, 0, 0, 0};
  for (const auto& c : p.combos)
    if (!c.targets.empty()) {
      for (const auto& t : c.targets) r.gpu_columns.push_back(t.name);
      break;
    }
  for (const auto& c : p.combos) {
    Row row;
    row.id = c.id;
    row.plan_status = plan::to_string(c.status);
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
      row.size = s->size;
      for (const auto& l : s->largest_layers) row.largest_layers.push_back(build::layer_line(l));
      if (s->outcome == build::Outcome::failed || s->outcome == build::Outcome::skipped)
        row.why = fmt::format("build {}: {}{}", row.build, s->error, s->log_path.empty() ? "" : " (log: " + s->log_path + ")");
    }
    if (const auto* vv = find_by_id(v ? &v->combos : nullptr, c.id)) fill_verify(row, *vv);
    if (const auto* pp = find_by_id(pr ? &pr->combos : nullptr, c.id)) fill_promote(row, *pp);
    r.verified += row.verified;
    r.tagged += !row.tags.empty();
    r.rows.push_back(std::move(row));
  }
  return r;
}

std::string table(const RunReport& r) {
  std::string out = fmt::format("\n{:<34} {:<8} {:<8} {:<19} {:<9} {}\n", "COMBINATION", "PLAN", "BUILD", "IMAGE", "VERIFIED", "TAGS / WHY NOT");
  for (const auto& row : r.rows) {
    if (row.plan_status == "excluded") continue;
    std::string tags = row.tags.empty() ? "-" : join(row.tags, " ");
    out += fmt::format("{:<34} {:<8} {:<8} {:<19} {:<9} {}\n", row.id, row.plan_status, row.build.empty() ? "-" : row.build,
                       row.image_id.empty() ? "-" : row.image_id.substr(0, 19), row.verified ? "yes" : "no", tags);
    if (row.size > 0) out += fmt::format("    size {}; largest layers: {}\n", build::human_size(row.size), join(row.largest_layers, "; "));
    if (row.tags.empty() && !row.why.empty()) out += fmt::format("    not tagged: {}\n", row.why);
    for (const auto& m : row.measured) out += fmt::format("    gpu {}\n", m);
    if (!row.record_missing.empty())
      out += fmt::format("    tagged, but the verification record was NOT attached: {}\n", row.record_missing);
  }
  out += fmt::format("\n{} valid combinations: {} verified, {} tagged ({} excluded by the plan)\n", r.valid, r.verified,
                     r.tagged, r.rows.size() - r.valid);
  return out;
}

std::string markdown(const RunReport& r) {
  std::string out = fmt::format("# kiln run: {}\n\n{} — {} valid, {} verified, {} tagged\n\n", r.matrix, r.generated_at, r.valid,
                                r.verified, r.tagged);
  out += "| combination | build | size | checks | verified | tags | why not |\n| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& row : r.rows) {
    if (row.plan_status == "excluded") continue;
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", row.id, row.build.empty() ? "-" : row.build,
                       row.size > 0 ? build::human_size(row.size) + "<br>" + join(row.largest_layers, "<br>") : "-",
                       join(row.checks, ", ") + (row.measured.empty() ? "" : "<br>" + join(row.measured, "<br>")),
                       row.verified ? "yes" : "no", row.tags.empty() ? "-" : join(row.tags, "<br>"), row.tags.empty() ? row.why : (row.record_missing.empty() ? "" : "tagged, but the verification record was NOT attached: " + row.record_missing));
  }
  if (!r.gpu_columns.empty()) {
    out += "\n## GPUs the images serve\n\n| combination |";
    for (const auto& g : r.gpu_columns) out += " " + g + " |";
    out += "\n| --- |";
    for (size_t i = 0; i < r.gpu_columns.size(); ++i) out += " --- |";
    out += "\n";
    for (const auto& row : r.rows) {
      if (row.plan_status == "excluded") continue;
      out += "| " + row.id + " |";
      for (const auto& g : r.gpu_columns) out += " " + (row.gpus.count(g) ? row.gpus.at(g) : "-") + " |";
      out += "\n";
    }
  }
  out += "\n## Excluded by the plan\n\n";
  for (const auto& row : r.rows)
    if (row.plan_status == "excluded") out += fmt::format("- {}: {}\n", row.id, row.why);
  return out;
}

nlohmann::json to_json(const RunReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows)
    rows.push_back({{"id", row.id}, {"plan", row.plan_status}, {"build", row.build}, {"image_id", row.image_id},
                    {"checks", row.checks}, {"verified", row.verified}, {"tags", row.tags}, {"why", row.why}, {"record_missing", row.record_missing},
                    {"gpus", row.gpus}, {"gemm_bf16_tflops", row.gemm_bf16_tflops}, {"measured", row.measured},
                    {"size", row.size}, {"largest_layers", row.largest_layers}});
  return {{"schema", "kiln.run/v1"}, {"matrix", r.matrix}, {"generated_at", r.generated_at},
          {"summary", {{"valid", r.valid}, {"verified", r.verified}, {"tagged", r.tagged}}}, {"combos", rows}};
}

std::vector<std::string> write(const RunReport& r, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::string base = dir + "/" + r.matrix;
  write_file_atomic(base + ".md", markdown(r));
  write_file_atomic(base + ".json", json_text(to_json(r), 2) + "\n");
  write_file_atomic(base + ".html", html(r));
  return {base + ".md", base + ".json", base + ".html"};
}

}  // namespace kiln::report
