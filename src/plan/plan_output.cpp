// The plan as JSON (a stable schema, docs/plan-json.md) and as a table.
#include <fmt/format.h>

#include "plan/plan.h"
#include "util/text.h"

namespace kiln::plan {

namespace {

using nlohmann::json;

json target_json(const TargetSupport& t) {
  json j{{"cc", t.cc.str()}, {"support", kiln::to_string(t.support)}};
  if (!t.via.empty()) j["via"] = t.via;
  if (!t.min_driver.empty()) j["min_driver"] = t.min_driver;
  if (!t.reason.empty()) j["reason"] = t.reason;
  return j;
}

json versions_json(const Versions& v) {
  json j = json::object();
  auto put = [&](const char* k, const std::string& s) { j[k] = s.empty() ? json(nullptr) : json(s); };
  put("pytorch", v.pytorch);
  put("cuda", v.cuda);
  put("cudnn", v.cudnn);
  put("nccl", v.nccl);
  put("python", v.python);
  put("os", v.os);
  put("flavor", v.flavor);
  return j;
}

std::string support_cell(const TargetSupport& t) {
  switch (t.support) {
    case Support::native: return "native";
    case Support::ptx_jit: return "ptx";
    default: return "-";
  }
}

}  // namespace

json to_json(const Combo& c) {
  json j{{"id", c.id},
         {"status", to_string(c.status)},
         {"axes", c.axes},
         {"reason", c.reason.empty() ? json(nullptr) : json(c.reason)},
         {"rule", c.rule.empty() ? json(nullptr) : json(c.rule)},
         {"versions", versions_json(c.versions)},
         {"arch_list", c.arch.empty() ? json(nullptr) : json(c.arch.str())},
         {"targets", json::object()},
         {"min_driver", c.min_driver.empty() ? json(nullptr) : json(c.min_driver)},
         {"require_cuda", c.require_cuda.empty() ? json(nullptr) : json(c.require_cuda)},
         {"platform", c.platform},
         {"tags", c.tags},
         {"base", c.base.empty() ? json(nullptr) : json(c.base)},
         {"policy", {{"verify", c.policy.verify}, {"gpu_classes", c.policy.gpu_classes}}},
         {"inferred", c.inferred},
         {"sources", c.sources}};
  for (const auto& t : c.targets) j["targets"][t.name] = target_json(t);
  if (c.usable) {
    json q{{"usable", *c.usable}, {"why_not", c.why_not}, {"conditions", c.conditions},
            {"forward_compat", c.forward_compat}, {"gpus", json::object()}};
    for (const auto& t : c.query_gpus) q["gpus"][t.name] = target_json(t);
    j["query"] = q;
  }
  return j;
}

json to_json(const Plan& p) {
  json combos = json::array();
  for (const auto& c : p.combos) combos.push_back(to_json(c));
  json j{{"schema", "kiln.plan/v1"},
         {"matrix", {{"name", p.matrix_name}, {"path", p.matrix_path}}},
         {"catalog_version", p.catalog_version},
         {"catalog_collected", p.catalog_collected.empty() ? json(nullptr) : json(p.catalog_collected)},
         {"warnings", p.warnings},
         {"summary", {{"combinations", p.combos.size()}, {"valid", p.count(Status::valid)}, {"excluded", p.count(Status::excluded)}}},
         {"policy", {{"verify", p.policy.verify}, {"gpu_classes", p.policy.gpu_classes}, {"targets", p.policy.targets}}},
         {"combos", combos}};
  if (!p.query.driver.empty() || !p.query.gpus.empty()) {
    size_t usable = 0;
    for (const auto& c : p.combos) usable += c.usable.value_or(false);
    j["query"] = {{"driver", p.query.driver.empty() ? json(nullptr) : json(p.query.driver)}, {"gpus", p.query.gpus}, {"usable", usable}};
  }
  return j;
}

std::string to_table(const Plan& p) {
  bool query = !p.query.driver.empty() || !p.query.gpus.empty();
  size_t width = 10;
  for (const auto& c : p.combos) width = std::max(width, c.id.size());
  std::string fresh = p.catalog_collected.empty() ? "collection date not recorded" : "facts collected " + p.catalog_collected;
  std::string out = fmt::format("{}: {} combinations, {} valid, {} excluded (catalog {}, {})\n", p.matrix_name,
                                p.combos.size(), p.count(Status::valid), p.count(Status::excluded), p.catalog_version, fresh);
  for (const auto& w : p.warnings) out += "warning: " + w + "\n";
  out += '\n';
  std::vector<std::string> target_names;
  for (const auto& c : p.combos)
    if (!c.targets.empty()) {
      for (const auto& t : c.targets) target_names.push_back(t.name);
      break;
    }
  out += fmt::format("{:<{}}  {:<8}  {:<8}  {:<9}  {:<7}  {:<10}", "COMBINATION", width, "STATUS", "CUDA", "CUDNN", "NCCL", "MIN-DRIVER");
  for (const auto& n : target_names) out += fmt::format("  {:<6}", n.substr(0, 6));
  if (query) out += "  USABLE";
  out += '\n';
  for (const auto& c : p.combos) {
    out += fmt::format("{:<{}}  {:<8}  {:<8}  {:<9}  {:<7}  {:<10}", c.id, width, to_string(c.status), c.versions.cuda,
                       c.versions.cudnn.empty() ? "-" : c.versions.cudnn, c.versions.nccl.empty() ? "-" : c.versions.nccl,
                       c.min_driver.empty() ? "-" : c.min_driver);
    for (size_t i = 0; i < target_names.size(); ++i)
      out += fmt::format("  {:<6}", i < c.targets.size() ? support_cell(c.targets[i]) : "");
    if (query && target_names.empty() && c.usable) out += "";
    if (c.usable) out += *c.usable ? "  yes" : "  no";
    out += '\n';
    if (c.status == Status::excluded) out += fmt::format("    excluded: {}\n", c.reason);
    for (const auto& why : c.why_not)
      if (c.status == Status::valid) out += fmt::format("    not usable: {}\n", why);
    for (const auto& only : c.conditions)
      if (c.usable && *c.usable) out += fmt::format("    only if: {}\n", only);
  }
  std::vector<std::string> inferred;
  for (const auto& c : p.combos)
    for (const auto& i : c.inferred)
      if (std::find(inferred.begin(), inferred.end(), i) == inferred.end()) inferred.push_back(i);
  if (!inferred.empty()) {
    out += "\nunconfirmed catalog facts used (confidence = \"inferred\"):\n";
    for (const auto& i : inferred) out += "  ! " + i + "\n";
  }
  return out;
}

}  // namespace kiln::plan
