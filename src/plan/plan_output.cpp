// The plan as JSON (a stable schema, docs/plan-json.md) and as a table.
#include <algorithm>

#include <fmt/format.h>

#include "plan/plan.h"
#include "util/select.h"
#include "util/table.h"
#include "util/json_out.h"
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
         {"reason", reason_json(c.reason)},
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
  if (!c.end_of_life.empty()) {  // only when there is something to say (docs/plan-json.md)
    j["end_of_life"] = json::array();
    for (const auto& n : c.end_of_life)
      j["end_of_life"].push_back({{"kind", n.kind}, {"name", n.name}, {"date", n.date}, {"status", n.status},
                                  {"days", n.days}, {"inferred", n.inferred}, {"text", n.text}});
  }
  if (!c.lock_entry.empty()) j["locked"] = {{"base", c.base}, {"apt_snapshot", c.apt_snapshot}};
  if (c.usable) {
    json q{{"usable", *c.usable}, {"reason", reason_json(c.why_not)}, {"conditions", c.conditions},
            {"forward_compat", c.forward_compat}, {"gpus", json::object()}};
    for (const auto& t : c.query_gpus) q["gpus"][t.name] = target_json(t);
    j["query"] = q;
  }
  return j;
}

json to_json(const Plan& p) {
  json combos = json::array();
  for (const auto& c : p.combos) combos.push_back(to_json(c));
  json j{{"schema", "kiln.plan/v2"},
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

namespace {

std::vector<std::string> target_names(const Plan& p) {
  for (const auto& c : p.combos)
    if (!c.targets.empty()) {
      std::vector<std::string> names;
      for (const auto& t : c.targets) names.push_back(t.name);
      return names;
    }
  return {};
}

bool shown(const Combo& c, const TableOptions& o) {
  return kiln::selected(c.id, o.only);
}

// One line per exclusion rule (with its count and first examples) instead of
// one per combination: a 352-combination matrix excludes 246 for 3 reasons.
std::string exclusions(const Plan& p, const TableOptions& o) {
  struct Group {
    size_t count = 0;
    std::vector<std::string> examples;
    std::string reason;  // the first combination's, in words
  };
  std::vector<std::pair<std::string, Group>> groups;
  for (const auto& c : p.combos) {
    if (c.status != Status::excluded || !shown(c, o)) continue;
    std::string rule = c.rule.empty() ? "other" : c.rule;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == rule; });
    if (it == groups.end()) it = groups.insert(groups.end(), {rule, Group{0, {}, c.reason}});
    ++it->second.count;
    if (it->second.examples.size() < 2) it->second.examples.push_back(c.id);
  }
  if (groups.empty()) return "";
  size_t total = 0;
  for (const auto& [rule, g] : groups) total += g.count;
  Table t({"EXCLUDED BY RULE", "COUNT", "FOR EXAMPLE"});
  t.align_right(1);
  for (const auto& [rule, g] : groups) {
    t.add_row({rule, std::to_string(g.count), kiln::join(g.examples, ", ") + (g.count > g.examples.size() ? ", ..." : "")});
    t.add_note("e.g. " + g.reason);
  }
  return fmt::format("\n{} excluded by {} rule{} (`kiln explain ID` tells one combination's story):\n", total, groups.size(),
                     groups.size() == 1 ? "" : "s") + t.str();
}

}  // namespace

std::string to_table(const Plan& p, const TableOptions& o) {
  bool query = !p.query.driver.empty() || !p.query.gpus.empty();
  std::string fresh = p.catalog_collected.empty() ? "collection date not recorded" : "facts collected " + p.catalog_collected;
  std::string out = fmt::format("{}: {} combinations, {} valid, {} excluded (catalog {}, {})\n", p.matrix_name,
                                p.combos.size(), p.count(Status::valid), p.count(Status::excluded), p.catalog_version, fresh);
  for (const auto& w : p.warnings) out += "warning: " + w + "\n";
  out += '\n';
  const std::vector<std::string> targets = target_names(p);
  std::vector<std::string> headers{"COMBINATION", "STATUS", "CUDA", "CUDNN", "NCCL", "MIN-DRIVER"};
  for (const auto& n : targets) headers.push_back(n);
  for (const auto& g : p.query.gpus) headers.push_back("ON " + g);  // a column per GPU asked about
  if (query) headers.push_back("USABLE");
  Table t(headers);
  size_t rows = 0;
  for (const auto& c : p.combos) {
    if (c.status != Status::valid || !shown(c, o)) continue;
    ++rows;
    std::vector<std::string> cells{c.id, to_string(c.status), c.versions.cuda, c.versions.cudnn.empty() ? "-" : c.versions.cudnn,
                                   c.versions.nccl.empty() ? "-" : c.versions.nccl, c.min_driver.empty() ? "-" : c.min_driver};
    for (size_t i = 0; i < targets.size(); ++i) cells.push_back(i < c.targets.size() ? support_cell(c.targets[i]) : "");
    for (size_t i = 0; i < p.query.gpus.size(); ++i) cells.push_back(i < c.query_gpus.size() ? support_cell(c.query_gpus[i]) : "");
    if (query) cells.push_back(c.usable ? (*c.usable ? "yes" : "no") : "");
    t.add_row(std::move(cells));
    for (const auto& why : c.why_not) t.add_note("not usable: " + why);
    for (const auto& n : c.end_of_life) t.add_note("end of life: " + n.text);
    if (c.usable && *c.usable)
      for (const auto& only : c.conditions) t.add_note("only if: " + only);
  }
  if (rows > 0) out += t.str();
  else out += o.only.empty() ? "no valid combination\n" : "no valid combination matches --only\n";
  if (!targets.empty() || !p.query.gpus.empty())
    out += "\nnative: SASS for that GPU; ptx: JIT-compiled from PTX at first launch (slower start, needs the toolkit's driver); -: cannot run\n";
  if (o.valid_only) {
    if (p.count(Status::excluded) > 0) out += fmt::format("({} excluded not shown: --valid)\n", p.count(Status::excluded));
  } else {
    out += exclusions(p, o);
  }
  std::vector<std::string> inferred;
  for (const auto& c : p.combos)
    for (const auto& i : c.inferred)
      if (shown(c, o) && std::find(inferred.begin(), inferred.end(), i) == inferred.end()) inferred.push_back(i);
  if (!inferred.empty()) {
    out += "\nunconfirmed catalog facts used (confidence = \"inferred\"):\n";
    for (const auto& i : inferred) out += "  ! " + i + "\n";
  }
  return out;
}

}  // namespace kiln::plan
