// A self-contained HTML page: inline CSS, no script, no external asset, so
// it can be attached to a CI run or mailed as it is.
#include <fmt/format.h>

#include "report/report.h"
#include "util/text.h"

namespace kiln::report {

namespace {

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

const char* kStyle = R"(body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.yes{background:#d8f5d8}.no{background:#fbe3e3}.native{background:#d8f5d8}
.ptx-jit{background:#fff3c4}.unsupported{background:#eee;color:#888}code{font-size:12px}small{color:#666})";

}  // namespace

std::string html(const RunReport& r) {
  std::string out = fmt::format("<!doctype html><html><head><meta charset=\"utf-8\"><title>kiln run: {0}</title><style>{1}</style></head><body>"
                                "<h1>kiln run: {0}</h1><p>{2} — {3} valid combinations, {4} verified, {5} tagged</p>",
                                esc(r.matrix), kStyle, esc(r.generated_at), r.valid, r.verified, r.tagged);
  out += "<h2>Combinations</h2><table><tr><th>combination</th><th>build</th><th>size (largest layers)</th><th>checks</th><th>verified</th><th>tags / why not</th></tr>";
  for (const auto& row : r.rows) {
    if (row.plan_status == "excluded") continue;
    std::string tags;
    for (const auto& t : row.tags) tags += "<code>" + esc(t) + "</code><br>";
    if (row.tags.empty()) tags = "<small>" + esc(row.why) + "</small>";
    if (!row.record_missing.empty())
      tags += "<small>tagged, but the verification record was NOT attached: " + esc(row.record_missing) + "</small>";
    std::string size = row.size > 0 ? esc(build::human_size(row.size)) : "-";
    for (const auto& l : row.largest_layers) size += "<br><small>" + esc(l) + "</small>";
    out += fmt::format("<tr><td><code>{}</code><br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                       esc(row.id), esc(row.image_id.substr(0, 19)), esc(row.build), size, esc(join(row.checks, ", ")),
                       row.verified ? "yes" : "no", row.verified ? "yes" : "no", tags);
  }
  out += "</table>";
  if (!r.gpu_columns.empty()) {
    out += "<h2>Combination × GPU</h2><table><tr><th>combination</th>";
    for (const auto& g : r.gpu_columns) out += "<th>" + esc(g) + "</th>";
    out += "<th>verified on GPU</th></tr>";
    for (const auto& row : r.rows) {
      if (row.plan_status == "excluded") continue;
      out += "<tr><td><code>" + esc(row.id) + "</code></td>";
      for (const auto& g : r.gpu_columns) {
        std::string s = row.gpus.count(g) ? row.gpus.at(g) : "-";
        out += fmt::format("<td class=\"{0}\">{0}</td>", esc(s));
      }
      std::string gpu_checks;
      for (const auto& c : row.checks)
        if (c.rfind("gpu", 0) == 0) gpu_checks += esc(c) + " ";
      if (!row.gemm_bf16_tflops.empty()) gpu_checks += "<small>BF16 GEMM " + esc(row.gemm_bf16_tflops) + " TFLOP/s</small>";
      out += "<td>" + (gpu_checks.empty() ? std::string("-") : gpu_checks) + "</td></tr>";
    }
    out += "</table>";
  }
  out += "<h2>Excluded by the plan</h2><ul>";
  for (const auto& row : r.rows)
    if (row.plan_status == "excluded") out += "<li><code>" + esc(row.id) + "</code>: " + esc(row.why) + "</li>";
  out += "</ul></body></html>\n";
  return out;
}

}  // namespace kiln::report
