// kiln explain ID [MATRIX]: one combination's whole story -- how it was
// resolved (or the rule that excluded it), which GPUs it serves, the tags it
// renders to, and what the ledger knows about it. Read-only.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/runners.h"
#include "state/ledger.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/table.h"
#include "util/text.h"
#include "util/version.h"
#include "verify/verify.h"

namespace kiln::cli {

namespace {

struct ExplainArgs {
  std::string id;
  std::string matrix;
  std::string state_dir;
  std::string format = "table";
  plan::Query query;
};

const plan::Combo& find_combo(const plan::Plan& p, const std::string& id) {
  for (const auto& c : p.combos)
    if (c.id == id) return c;
  std::vector<std::string> near;  // ids sharing the longest prefix: a typo in the tail
  size_t best = 0;
  for (const auto& c : p.combos) {
    size_t n = 0;
    while (n < id.size() && n < c.id.size() && id[n] == c.id[n]) ++n;
    if (n > best) best = n, near.clear();
    if (n == best && near.size() < 3) near.push_back(c.id);
  }
  throw InputError({"ID"}, fmt::format("matrix '{}' has no combination '{}'{}", p.matrix_name, id,
                                       near.empty() || best == 0 ? "" : "; closest: " + join(near, ", ")));
}

struct LedgerStory {
  std::string state_dir, status = "pending", image, error, log;
  bool verified = false;
  std::string why_not;
  std::vector<std::string> checks;
};

std::optional<LedgerStory> ledger_story(const Loaded& l, const plan::Combo& c, const std::string& named) {
  auto dir = find_state_dir(named);
  if (!dir) return std::nullopt;
  LedgerStory s{*dir};
  state::Ledger ledger(*dir + "/state.db");
  for (const auto& known : ledger.combos(l.m.name)) {
    if (known.combo_id != c.id) continue;
    s.status = std::string(state::to_string(known.status));
    if (const auto& b = known.final_build) s.image = b->image_id, s.error = b->error, s.log = b->log_path;
  }
  if (s.status == "built" && !s.image.empty()) {
    verify::ComboVerdict v = verify::recorded_verdict(c, s.image, runners_for(l.m, {}), *dir);
    s.verified = v.verified;
    s.why_not = v.reason;
    for (const auto& ch : v.checks) s.checks.push_back(ch.check + "@" + ch.runner + "=" + verify::to_string(ch.status));
  }
  return s;
}

std::string support_words(const plan::TargetSupport& t) {
  std::string out = kiln::to_string(t.support);
  if (!t.via.empty()) out += " via " + t.via;
  if (!t.min_driver.empty()) out += ", driver >= " + t.min_driver;
  if (!t.reason.empty()) out += ": " + t.reason;
  return out;
}

std::string story(const plan::Plan& p, const plan::Combo& c, const std::optional<LedgerStory>& s) {
  std::string out = fmt::format("{} (matrix {}, catalog {})\n", c.id, p.matrix_name, p.catalog_version);
  std::vector<std::string> axes;
  for (const auto& [k, v] : c.axes) axes.push_back(k + "=" + v);
  out += fmt::format("  axes        {}\n", join(axes, " "));
  if (c.status == plan::Status::excluded) {
    out += fmt::format("  status      excluded by rule {}\n  why         {}\n", c.rule.empty() ? "(unnamed)" : c.rule, c.reason);
    return out;
  }
  const auto& v = c.versions;
  out += "  status      valid\n";
  out += fmt::format("  resolved    CUDA {}, cuDNN {}, NCCL {}{}{}, {} {}\n", v.cuda, v.cudnn.empty() ? "-" : v.cudnn,
                     v.nccl.empty() ? "-" : v.nccl, v.pytorch.empty() ? "" : ", PyTorch " + v.pytorch,
                     v.python.empty() ? "" : ", Python " + v.python, v.os, v.flavor);
  out += fmt::format("  base        {}\n  install     {}\n", c.base, c.install.method);
  out += fmt::format("  arch list   {}\n", c.arch.empty() ? "-" : c.arch.str());
  for (const auto& t : c.targets) out += fmt::format("  target      {:<8} {}\n", t.name, support_words(t));
  out += fmt::format("  min driver  {}\n  NVIDIA_REQUIRE_CUDA  {}\n", c.min_driver.empty() ? "-" : c.min_driver, c.require_cuda);
  for (const auto& tag : c.tags) out += fmt::format("  tag         {}\n", tag);
  out += fmt::format("  policy      verify {}{}\n", join(c.policy.verify, " + "),
                     c.policy.gpu_classes.empty() ? "" : " on GPU classes " + join(c.policy.gpu_classes, ", "));
  for (const auto& i : c.inferred) out += fmt::format("  inferred    {}\n", i);
  for (const auto& src : c.sources) out += fmt::format("  source      {}\n", src);
  if (c.usable) {
    out += fmt::format("  on {}{}  {}\n", p.query.driver.empty() ? "" : "driver " + p.query.driver + " ",
                       join(p.query.gpus, ","), *c.usable ? "usable" : "not usable");
    for (const auto& t : c.query_gpus) out += fmt::format("    {:<8} {}\n", t.name, support_words(t));
    for (const auto& why : c.why_not) out += fmt::format("    not usable: {}\n", why);
  }
  if (!s) {
    out += "  ledger      none here or in a parent directory (nothing built from here)\n";
    return out;
  }
  out += fmt::format("  ledger      {}/state.db\n  build       {}{}\n", s->state_dir, s->status, s->image.empty() ? "" : " " + s->image);
  if (!s->error.empty()) out += fmt::format("  error       {}{}\n", s->error, s->log.empty() ? "" : " (log: " + s->log + ")");
  if (s->status == "built")
    out += fmt::format("  verified    {}{}\n", s->verified ? "yes" : "no", s->verified ? "" : ": " + s->why_not);
  if (!s->checks.empty()) out += fmt::format("  checks      {}\n", join(s->checks, " "));
  return out;
}

int run_explain(const Common& common, const ExplainArgs& a) {
  if (!a.query.driver.empty() && !Version::parse(a.query.driver))
    throw InputError({"--driver"}, "driver must be a version such as 535.104.05");
  Loaded l = load_plan(common, a.matrix, a.query);
  const plan::Combo& c = find_combo(l.p, a.id);
  auto s = c.status == plan::Status::valid ? ledger_story(l, c, a.state_dir) : std::nullopt;
  if (a.format != "json") {
    emit(common, story(l.p, c, s), false);
    return 0;
  }
  nlohmann::json j = {{"schema", "kiln.explain/v1"}, {"matrix", l.p.matrix_name}, {"catalog_version", l.p.catalog_version},
                      {"combo", plan::to_json(c)}, {"ledger", nullptr}};
  if (s)
    j["ledger"] = {{"path", s->state_dir + "/state.db"}, {"status", s->status}, {"image_id", s->image}, {"error", s->error},
                   {"log", s->log}, {"verified", s->verified}, {"reason", s->why_not}, {"checks", s->checks}};
  emit(common, json_text(j, 2) + '\n', true);
  return 0;
}

}  // namespace

void register_explain(CLI::App& app, Common& common) {
  auto a = std::make_shared<ExplainArgs>();
  CLI::App* sub = app.add_subcommand("explain", "Tell one combination's whole story: resolution or exclusion, GPUs, tags, ledger");
  sub->add_option("id", a->id, "Combination id (kiln plan lists them)")->required();
  sub->add_option("matrix", a->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--driver", a->query.driver, "Driver version to check against, e.g. 535.104.05");
  sub->add_option("--gpu", a->query.gpus, "GPU name or sm_XY to check against (repeatable)");
  sub->add_option("--state-dir", a->state_dir, "Ledger location (default: the nearest .kiln/ from here up)");
  sub->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, a] { return run_explain(common, *a); });
}

}  // namespace kiln::cli
