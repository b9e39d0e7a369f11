// Runs the checks each combination's policy needs, reusing verdicts the
// ledger already holds for the same image id (unless forced).
#include <algorithm>

#include <fmt/format.h>

#include "util/errors.h"
#include "util/select.h"
#include "state/ledger.h"
#include "util/json_out.h"
#include "verify/internal.h"
#include "verify/smoke_unit.h"

namespace kiln::verify {

const char* to_string(CheckStatus s) {
  switch (s) {
    case CheckStatus::passed: return "passed";
    case CheckStatus::failed: return "failed";
    case CheckStatus::no_gpu: return "no-gpu";
    case CheckStatus::timed_out: return "timed-out";
    case CheckStatus::cancelled: return "cancelled";
    case CheckStatus::error: break;
  }
  return "error";
}

CheckStatus parse_check_status(std::string_view word) {
  for (CheckStatus s : {CheckStatus::passed, CheckStatus::failed, CheckStatus::no_gpu, CheckStatus::timed_out,
                        CheckStatus::cancelled})
    if (word == to_string(s)) return s;
  return CheckStatus::error;
}

size_t Report::verified() const {
  return static_cast<size_t>(std::count_if(combos.begin(), combos.end(), [](const ComboVerdict& v) { return v.verified; }));
}

namespace {

using detail::decide;

bool wants(const matrix::Policy& policy, const char* check) {
  return std::count(policy.verify.begin(), policy.verify.end(), check) > 0;
}

}  // namespace

std::optional<CheckResult> cached_pass(const state::Ledger& ledger, const std::string& image_id, const std::string& runner,
                                       const std::string& check, const std::string& suite_hash) {
  for (const auto& v : ledger.verdicts(image_id))
    if (v.runner == runner && v.check == check && parse_check_status(v.status) == CheckStatus::passed) {
      CheckResult r{check, runner, CheckStatus::passed, {}, nlohmann::json::parse(v.detail_json, nullptr, false), true};
      if (check == "gpu" && (!r.detail.is_object() || r.detail.value("suite_hash", "") != suite_hash)) continue;
      return r;
    }
  return std::nullopt;
}

namespace {

// Passes that came from elsewhere (`--ingest`, the Slurm runner) for runners
// this run does not drive: the policy counts them, nothing is rerun.
std::vector<CheckResult> recorded_gpu_passes(const state::Ledger& ledger, const std::string& image_id,
                                             const std::vector<Runner>& driven, const std::string& suite_hash) {
  std::vector<CheckResult> out;
  for (const auto& v : ledger.verdicts(image_id)) {
    if (v.check != "gpu" || parse_check_status(v.status) != CheckStatus::passed) continue;
    if (std::any_of(driven.begin(), driven.end(), [&](const Runner& r) { return r.name == v.runner; })) continue;
    CheckResult r{"gpu", v.runner, CheckStatus::passed, {}, nlohmann::json::parse(v.detail_json, nullptr, false), true};
    if (!r.detail.is_object() || r.detail.value("suite_hash", "") != suite_hash) continue;
    out.push_back(std::move(r));
  }
  return out;
}

void record(state::Ledger& ledger, const std::string& image_id, const CheckResult& r) {
  nlohmann::json detail = r.detail;
  detail["problems"] = r.problems;
  ledger.record_verdict({image_id, r.runner, r.check, to_string(r.status), json_text(detail), 0});  // a smoke log may hold any bytes
}

// The ledger's latest gpu verdict of this image on this runner is this
// refusal (decided from the arch list, no container ran).
bool same_refusal_recorded(const state::Ledger& ledger, const std::string& image_id, const CheckResult& refusal) {
  for (const auto& v : ledger.verdicts(image_id)) {
    if (v.runner != refusal.runner || v.check != refusal.check) continue;
    auto d = nlohmann::json::parse(v.detail_json, nullptr, false);
    return parse_check_status(v.status) == refusal.status && d.is_object() && d.value("refused", false) &&
           d.value("problems", nlohmann::json::array()) == nlohmann::json(refusal.problems);
  }
  return false;
}

// Runs `run` unless the ledger already has a pass for this image, runner
// and check; records what ran.
template <typename Fn>
CheckResult checked(state::Ledger& ledger, const Options& o, const std::string& image_id, const std::string& runner,
                    const std::string& check, Fn run) {
  if (!o.force)
    if (auto r = cached_pass(ledger, image_id, runner, check, o.suite_hash)) return *r;
  CheckResult r;
  try {
    r = run();
  } catch (const std::exception& e) {  // an engine or image problem: this check's error
    r = CheckResult{check, runner, CheckStatus::error, {e.what()}, {}, false};
  }
  r.runner = runner;
  record(ledger, image_id, r);
  return r;
}

void step(const Options& o, const std::string& what) {
  if (o.on_step) o.on_step(what);
}

// A runner whose GPU class the arch list cannot serve gets no gpu check: a
// pass there would vouch for code that never ran on its GPU.
std::string runner_refusal(const Runner& r, const ArchList& arch) {
  for (const auto& cls : r.gpu_classes)
    if (auto why = detail::class_refusal(cls, arch); !why.empty()) return fmt::format("runner {}: {}", r.name, why);
  return "";
}

// The smoke stage builds on the image and compiles in its devel sibling, in
// the runner's engine: both pulled there by digest when they were pushed.
void pull_for_smoke(const plan::Combo& c, const plan::Plan& p, const PushedImage& img, const Runner& r,
                    const Options& o) {
  engine::Client eng(r.endpoint);
  pull_pushed(eng, p, img.ref, render::local_image(p, c.id));
  if (const plan::Combo* devel = p.sibling(c, "devel"); devel && devel != &c)
    if (auto d = pushed_image(*devel, p, o.state_dir)) pull_pushed(eng, p, d->ref, render::local_image(p, devel->id));
}

// A Slurm runner's gpu check waiting for its job: where its result goes.
struct PendingSlurm {
  detail::SlurmJob job;
  size_t combo = 0, check = 0;  // report.combos[combo].checks[check]
};

// A Slurm runner's gpu check, unless the ledger has its pass: the unit's
// images staged and the batch script written; the job is submitted with
// every other (verify_plan). One that could not be staged is recorded now.
CheckResult stage_slurm(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer, const Options& o,
                        state::Ledger& ledger, const std::string& image_id, const std::optional<PushedImage>& pushed,
                        const Runner& r, std::vector<PendingSlurm>& pending, size_t combo_index, size_t check_index);

ComboVerdict verify_combo(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                          const Options& o, state::Ledger& ledger, std::vector<PendingSlurm>& pending,
                          size_t combo_index) {
  ComboVerdict v{c.id, "", false, "", {}};
  const Runner& first = o.runners.front();
  engine::Client client(first.endpoint);
  std::string image = render::local_image(p, c.id);
  // Pushed by a builder that is not the engine: read from the registry.
  const std::optional<PushedImage> pushed = pushed_image(c, p, o.state_dir);
  auto info = pushed ? std::nullopt : client.inspect_image(image);
  if (!info && !pushed) {
    v.reason = "not built: run kiln build";
    return v;
  }
  v.image_id = pushed ? pushed->image_id : info->id;
  if (wants(c.policy, "static"))
    v.checks.push_back(checked(ledger, o, v.image_id, first.name, "static",
                               [&] {
                                 step(o, "static check " + c.id);
                                 const auto labels = renderer.render(c, p).labels;
                                 return pushed ? detail::static_check_pushed(c, p, labels, *pushed, o)
                                               : detail::static_check(c, p, labels, image, client, o);
                               }));
  if (wants(c.policy, "gpu"))
    for (const auto& r : o.runners) {
      if (r.platform != matrix::oci_platform(c.platform)) continue;  // an arm64 image on an x86_64 GPU host proves nothing
      if (r.gpu == matrix::GpuMode::none && !o.smoke_on_cpu) continue;
      if (auto why = runner_refusal(r, c.arch); !why.empty()) {  // not run: it could only fail, or pass on the wrong GPU
        CheckResult refused{"gpu", r.name, CheckStatus::failed, {why}, {{"refused", true}}, false};
        // The same refusal of the same bytes is already on record: it is a
        // fact about the arch list, so saying it again adds only a row.
        refused.reused = same_refusal_recorded(ledger, v.image_id, refused);
        if (!refused.reused) record(ledger, v.image_id, refused);
        v.checks.push_back(std::move(refused));
        continue;
      }
      if (r.gpu == matrix::GpuMode::slurm) {
        v.checks.push_back(stage_slurm(c, p, renderer, o, ledger, v.image_id, pushed, r, pending, combo_index, v.checks.size()));
        continue;
      }
      v.checks.push_back(checked(ledger, o, v.image_id, r.name, "gpu",
                                 [&] {
                                   step(o, "gpu check " + c.id + " on " + r.name);
                                   if (pushed) pull_for_smoke(c, p, *pushed, r, o);
                                   return detail::gpu_check(c, p, renderer, image, r, o);
                                 }));
    }
  if (wants(c.policy, "gpu"))
    for (auto& r : recorded_gpu_passes(ledger, v.image_id, o.runners, o.suite_hash)) v.checks.push_back(std::move(r));
  return v;  // decided once its Slurm jobs, if any, have ended
}

CheckResult stage_slurm(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer, const Options& o,
                        state::Ledger& ledger, const std::string& image_id, const std::optional<PushedImage>& pushed,
                        const Runner& r, std::vector<PendingSlurm>& pending, size_t combo_index, size_t check_index) {
  if (!o.force)
    if (auto cached = cached_pass(ledger, image_id, r.name, "gpu", o.suite_hash)) return *cached;
  step(o, "gpu check " + c.id + " on " + r.name + ": staging the smoke unit");
  detail::SlurmJob job;
  try {
    if (pushed) pull_for_smoke(c, p, *pushed, r, o);
    job = detail::stage_slurm_job(c, p, renderer, image_id, r, o);
  } catch (const std::exception& e) {  // an engine or image problem: this check's error
    job.result = CheckResult{"gpu", r.name, CheckStatus::error, {e.what()}, {}, false};
    job.done = true;
  }
  job.result.runner = r.name;
  if (job.done) {
    record(ledger, image_id, job.result);
    return job.result;
  }
  CheckResult waiting = job.result;
  pending.push_back({std::move(job), combo_index, check_index});
  return waiting;
}

}  // namespace

std::string current_suite_hash(const Options& o, const render::Renderer& r) {
  return o.suite_hash.empty() ? suite_hash(o.kernels_dir, r.smoke_template()) : o.suite_hash;
}

Report verify_plan(const plan::Plan& p, const render::Renderer& r, const Options& options) {
  if (options.runners.empty()) throw EnvironmentError("no runner to verify on");
  Options o = options;
  o.suite_hash = current_suite_hash(o, r);
  for (const auto& runner : o.runners) {
    try {
      engine::Client(runner.endpoint).ping();
    } catch (const std::exception& e) {
      throw EnvironmentError(fmt::format("runner '{}': {}", runner.name, e.what()));
    }
  }
  state::Ledger ledger(o.state_dir + "/state.db");
  Report report;
  std::vector<PendingSlurm> pending;
  std::vector<const plan::Combo*> combos;
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid) continue;
    if (!selected(c.id, o.only))
      continue;
    report.combos.push_back(verify_combo(c, p, r, o, ledger, pending, report.combos.size()));
    combos.push_back(&c);
  }
  if (!pending.empty()) {
    // Every Slurm job of this run at once, each result recorded as it ends
    // (an interrupt records the rest as cancelled before kiln ends).
    std::vector<detail::SlurmJob> jobs;
    for (auto& pj : pending) jobs.push_back(std::move(pj.job));
    detail::run_slurm_jobs(jobs, o, [&](detail::SlurmJob& job) {
      const PendingSlurm& at = pending[static_cast<size_t>(&job - jobs.data())];
      ComboVerdict& v = report.combos[at.combo];
      job.result.runner = job.runner->name;
      record(ledger, v.image_id, job.result);
      v.checks[at.check] = job.result;
    });
  }
  for (size_t i = 0; i < report.combos.size(); ++i)
    if (!report.combos[i].image_id.empty()) decide(report.combos[i], combos[i]->policy, o.runners, combos[i]->arch,
                                                        matrix::oci_platform(combos[i]->platform));
  return report;
}

ComboVerdict recorded_verdict(const plan::Combo& c, const std::string& image_id, const std::vector<Runner>& runners,
                              const std::string& state_dir) {
  state::Ledger ledger(state_dir + "/state.db");
  ComboVerdict v{c.id, image_id, false, "", {}};
  for (const auto& rec : ledger.verdicts(image_id)) {
    CheckResult r{rec.check, rec.runner, parse_check_status(rec.status), {}, nlohmann::json::parse(rec.detail_json, nullptr, false), true};
    if (r.detail.contains("problems"))
      for (const auto& p : r.detail["problems"]) r.problems.push_back(p.get<std::string>());
    v.checks.push_back(std::move(r));
  }
  decide(v, c.policy, runners, c.arch, matrix::oci_platform(c.platform));
  if (v.checks.empty()) v.reason = "not verified yet: run kiln verify";
  return v;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json combos = nlohmann::json::array();
  for (const auto& v : r.combos) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : v.checks)
      checks.push_back({{"check", c.check}, {"runner", c.runner}, {"status", to_string(c.status)}, {"problems", c.problems},
                        {"reused", c.reused}, {"detail", c.detail}});
    combos.push_back({{"id", v.id}, {"image_id", v.image_id}, {"verified", v.verified},
                      {"reason", v.reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.reason)}, {"checks", checks}});
  }
  return {{"schema", "kiln.verify/v1"}, {"verified", r.verified()}, {"combos", combos}};
}

}  // namespace kiln::verify
