// The gpu check on a Slurm runner (gpu = "slurm", docs/verify.md "Slurm"):
// the portable smoke unit of one image (smoke_unit.h: the smoke image by
// digest from the staging registry, one command line) as one batch job;
// every job of a verify run submitted before kiln waits, then followed
// together; the result taken back as `kiln verify --ingest` takes one, with
// where it was obtained (node, GPU model, driver, count).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "render/render.h"
#include "util/child.h"
#include "util/json_out.h"
#include "util/text.h"
#include "verify/internal.h"
#include "verify/slurm.h"
#include "verify/smoke_unit.h"

namespace kiln::verify::detail {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStep = "kiln-smoke-unit";

// The time a job gets: the runner's, else every program's --timeout plus
// two minutes for the node to pull the smoke image.
int time_limit_min(const Runner& r, const Options& o, size_t programs) {
  if (r.slurm.time_limit_min > 0) return r.slurm.time_limit_min;
  return static_cast<int>(std::ceil(static_cast<double>(o.timeout_s) * static_cast<double>(programs) / 60.0)) + 2;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string utc_now() { return kiln::utc_now("%Y-%m-%dT%H:%M:%SZ"); }

// The container tool's form of the unit: docker and podman run it on the
// node's engine; pyxis (and "enroot", which kiln drives through pyxis) as
// `srun --container-image=` inside the allocation.
UnitEngine unit_engine(const Runner& r) { return parse_unit_engine(r.slurm.container).value_or(UnitEngine::docker); }

std::string with_id(std::string f, const std::string& id) {
  if (auto at = f.find("%j"); at != std::string::npos) f.replace(at, 2, id);
  return f;
}

// The unit's document from its framed stdout: the one JSON line it prints
// (a container CLI may print more before it).
std::optional<nlohmann::json> unit_document(const std::string& out) {
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (!doc.is_discarded()) return doc;
  size_t at = out.rfind("\n{");
  if (at == std::string::npos) return std::nullopt;
  doc = nlohmann::json::parse(out.substr(at + 1), nullptr, false);
  if (doc.is_discarded()) return std::nullopt;
  return doc;
}

// Where the verdict was obtained: the unit's placement (GPU model, class,
// count from the suite), with the scheduler's facts: the node and job, and
// the driver as nvidia-smi on the node read it (the kernel module's
// release, whose major is the branch).
Placement placement(const SlurmJob& job, const slurm::JobOutput& out, const slurm::JobInfo& info, const Placement& unit) {
  Placement p = unit;
  p.scheduler = "slurm";
  p.runner = job.runner->name;
  p.node = !out.node.empty() ? out.node : !info.node.empty() ? info.node : p.node;
  p.job = job.id;
  if (!out.gpus.empty()) {  // "0, NVIDIA H200, 580.95.05"
    const std::string& g = out.gpus.front();
    size_t a = g.find(", "), b = g.rfind(", ");
    if (a != std::string::npos && b != a) {
      if (p.gpu_model.empty()) p.gpu_model = g.substr(a + 2, b - a - 2);
      p.driver = g.substr(b + 2);
    }
  }
  p.driver_branch = driver_branch(p.driver);
  if (p.date.empty()) p.date = job.started;
  return p;
}

// The job's end as a check result.
void judge(SlurmJob& job, const slurm::WaitResult& w, const Options& o) {
  CheckResult& r = job.result;
  r = CheckResult{"gpu", job.runner->name, CheckStatus::error, {}, {}, false};
  std::string out_path = with_id(job.output, job.id), err_path = with_id(job.error, job.id);
  nlohmann::json sd = {{"script", job.script}, {"partition", job.runner->slurm.partition},
                       {"gpus_requested", job.runner->slurm.gpus}, {"time_limit_min", job.time_limit_min},
                       {"container", job.runner->slurm.container}, {"image", job.unit.smoke_ref},
                       {"command", unit_command(job.unit, unit_engine(*job.runner))}, {"job_id", job.id},
                       {"state", w.info.state}, {"reason", w.info.reason}, {"node", w.info.node},
                       {"exit_code", w.info.exit_code}, {"run_time", w.info.run_time}, {"output", out_path},
                       {"error", err_path}};
  slurm::JobOutput out = slurm::parse_output(read_text(out_path));
  std::string logs = fmt::format("(output: {}, errors: {})", out_path, err_path);
  std::string state = w.info.state.substr(0, w.info.state.find(' '));
  std::string node = out.node.empty() ? w.info.node : out.node;
  std::string on = node.empty() ? "" : " on " + node;
  const std::string& id = job.id;
  Placement unit_placement;

  if (w.gave_up || state == "TIMEOUT" || state == "DEADLINE") {
    r.status = CheckStatus::timed_out;
    r.problems.push_back(w.gave_up ? fmt::format("slurm job {}{}: {} {}", id, on, w.why, logs)
                                   : fmt::format("slurm job {}{} ran past its time limit of {} min {}", id, on,
                                                 job.time_limit_min, logs));
  } else if (state == "CANCELLED") {
    r.status = CheckStatus::cancelled;
    r.problems.push_back(fmt::format("slurm job {}{} was cancelled ({}) {}", id, on, w.info.state, logs));
  } else if (state != "COMPLETED" && state != "FAILED" && state != "UNKNOWN" && state != "OUT_OF_MEMORY") {
    r.problems.push_back(fmt::format("slurm job {}{} ended {} ({}) before the smoke unit could run to its end {}", id,
                                     on, w.info.state, w.info.reason, logs));  // NODE_FAIL, PREEMPTED, BOOT_FAIL: the cluster's, not the image's
  } else {
    auto step = std::find_if(out.steps.begin(), out.steps.end(), [](const slurm::StepOutput& s) { return s.name == kStep; });
    std::optional<nlohmann::json> doc;
    if (step != out.steps.end() && step->exit_code) doc = unit_document(step->out);
    if (step == out.steps.end() || !step->exit_code) {
      r.status = CheckStatus::failed;
      r.problems.push_back(fmt::format("the smoke unit did not run to its end in slurm job {}{} {}", id, on, logs));
    } else if (!doc) {  // a container CLI that failed, a unit that crashed
      r.status = CheckStatus::failed;
      r.problems.push_back(fmt::format("{} printed no JSON report (exit {}) in slurm job {}{} {}", kStep,
                                       *step->exit_code, id, on, logs));
    } else {
      // The same acceptance as `kiln verify --ingest`: this image id, this
      // suite hash, and the GPU facts.
      try {
        UnitResult res = read_unit_result(*doc);
        AcceptedUnit a = accept_unit(*doc, res, job.image_id, o.suite_hash);
        if (!a.refused.empty()) {
          r.problems.push_back(fmt::format("slurm job {}{}: its result was refused: {} {}", id, on, a.refused, logs));
          r.detail["unit"] = *doc;
        } else {
          r.status = parse_check_status(a.status);
          r.detail = a.detail;
          r.detail["exit_code"] = res.exit_code;
          r.problems = a.problems;
          unit_placement = res.placement;
          if (r.status == CheckStatus::error)
            r.problems.push_back(fmt::format("{} exited {} in slurm job {}{} {}", kStep, res.exit_code, id, on, logs));
        }
      } catch (const std::invalid_argument& e) {
        r.status = CheckStatus::failed;
        r.problems.push_back(fmt::format("{} printed no smoke-unit document ({}) in slurm job {}{} {}", kStep, e.what(),
                                         id, on, logs));
      }
    }
    if (state == "OUT_OF_MEMORY" && r.status != CheckStatus::failed) {
      r.status = CheckStatus::failed;
      r.problems.push_back(fmt::format("slurm job {}{} ran out of memory {}", id, on, logs));
    }
  }
  r.detail["slurm"] = sd;
  r.detail["placement"] = placement_json(placement(job, out, w.info, unit_placement));
  r.detail["suite_hash"] = o.suite_hash;
  r.detail["shm_size"] = job.runner->shm_size;
  if (r.status == CheckStatus::no_gpu)
    r.problems.push_back(fmt::format("slurm job {}{} (gpus = {}): the smoke suite found no usable GPU", id, on,
                                     job.runner->slurm.gpus));
}

// The job kiln gave up on when it was interrupted: scancel'd, never a pass.
void interrupted(SlurmJob& job, int sig, const Options& o) {
  std::string how;
  try {
    slurm::cancel(job.id);
    how = "scancel'd";
  } catch (const std::exception& e) {
    how = fmt::format("scancel failed: {}", e.what());
  }
  job.result = CheckResult{"gpu", job.runner->name, CheckStatus::cancelled, {}, {}, false};
  job.result.problems.push_back(fmt::format("kiln was interrupted (signal {}) while slurm job {} was on the cluster: {}",
                                            sig, job.id, how));
  job.result.detail["slurm"] = {{"script", job.script}, {"job_id", job.id}, {"state", "CANCELLED"},
                                {"image", job.unit.smoke_ref}, {"output", with_id(job.output, job.id)},
                                {"error", with_id(job.error, job.id)}, {"interrupted", true}};
  Placement p;
  p.scheduler = "slurm";
  p.runner = job.runner->name;
  p.job = job.id;
  p.date = job.started;
  job.result.detail["placement"] = placement_json(p);
  job.result.detail["suite_hash"] = o.suite_hash;
  job.done = true;
}

}  // namespace

std::string slurm_job_script(const SlurmJob& job, const std::string& matrix_name) {
  const auto& s = job.runner->slurm;
  slurm::JobSpec spec;
  spec.name = fmt::format("kiln-smoke:{}:{}:{}", matrix_name, job.combo->id, job.runner->name);
  spec.partition = s.partition;
  spec.gpus = s.gpus;
  spec.time_limit_min = job.time_limit_min;
  spec.output = job.output;
  spec.error = job.error;
  spec.sbatch_args = s.sbatch_args;
  UnitEngine engine = unit_engine(*job.runner);
  spec.comment = {fmt::format("kiln verify: the smoke unit of {} (image {}) on runner {}", job.combo->id, job.image_id,
                              job.runner->name),
                  fmt::format("The smoke image by digest from the staging registry, run with {} as `kiln export units` "
                              "prints it;",
                              to_string(engine)),
                  "its stdout (one kiln.smoke-unit/v1 document) is framed by ::kiln-step-begin/end lines."};
  // docker/podman: the runner's container_cli, when it names another program.
  spec.steps.push_back({kStep, unit_argv(job.unit, engine, engine == UnitEngine::pyxis ? "" : s.container_cli)});
  return slurm::job_script(spec);
}

SlurmJob stage_slurm_job(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                         const std::string& image_id, const Runner& runner, const Options& o) {
  SlurmJob job;
  job.combo = &c;
  job.runner = &runner;
  job.image_id = image_id;
  job.result = CheckResult{"gpu", runner.name, CheckStatus::error, {}, {}, false};
  auto fail = [&](const std::string& why) {
    job.result.problems.push_back(why);
    job.done = true;
    return job;
  };
  std::string staging = default_staging(p);
  if (staging.empty())
    return fail("a Slurm runner's job runs the smoke unit from the staging registry by digest: the matrix names no "
                "[registry] url and repository");
  StagedImages staged;
  try {
    staged = stage_images(c, p, renderer, runner, o, staging);
  } catch (const std::exception& e) {  // a push the registry refused
    return fail(e.what());
  }
  if (!staged.error.empty()) return fail(staged.error);
  if (staged.image_id != image_id)
    return fail(fmt::format("the engine's image is {}, kiln verifies {}", staged.image_id, image_id));
  job.unit = make_unit(c, runner, staged, o);
  const auto& s = runner.slurm;
  fs::path dir = fs::absolute(s.job_dir.empty() ? fs::path(o.state_dir) / "slurm" : fs::path(s.job_dir)) / p.matrix_name;
  fs::create_directories(dir);
  std::string stem = c.id + "." + runner.name;
  job.time_limit_min = time_limit_min(runner, o, smoke_programs(c).size());
  job.output = (dir / (stem + ".%j.out")).string();
  job.error = (dir / (stem + ".%j.err")).string();
  job.script = (dir / (stem + ".sbatch")).string();
  try {
    write_file_atomic(job.script, slurm_job_script(job, p.matrix_name));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  job.result.problems.push_back("not submitted");
  return job;
}

void run_slurm_jobs(std::vector<SlurmJob>& jobs, const Options& o, const std::function<void(SlurmJob&)>& on_done) {
  InterruptScope interrupt;
  auto finish = [&](SlurmJob& job) {
    job.done = true;
    if (on_done) on_done(job);
  };
  // Every job on the cluster first: they run side by side.
  std::vector<size_t> submitted;
  for (size_t i = 0; i < jobs.size() && interrupt.signal() == 0; ++i) {
    SlurmJob& job = jobs[i];
    if (job.done) continue;
    try {
      job.id = slurm::submit(job.script);
      job.started = utc_now();
      submitted.push_back(i);
      if (o.on_step) o.on_step(fmt::format("gpu check {} on {}: slurm job {}", job.combo->id, job.runner->name, job.id));
    } catch (const std::exception& e) {  // no sbatch, no controller, a partition it refused
      job.result.problems = {e.what()};
      job.result.detail["slurm"] = {{"script", job.script}, {"image", job.unit.smoke_ref}};
      finish(job);
    }
  }
  std::vector<slurm::Watched> watched;
  for (size_t i : submitted) {
    const SlurmJob& job = jobs[i];
    watched.push_back({job.id, std::chrono::minutes(job.runner->slurm.queue_timeout_min),
                       std::chrono::seconds(job.time_limit_min * 60 + 120)});
  }
  try {
    slurm::wait_all(
        watched,
        [&](size_t k, const std::string& state) {
          const SlurmJob& job = jobs[submitted[k]];
          if (o.on_step)
            o.on_step(fmt::format("gpu check {} on {}: slurm job {} {}", job.combo->id, job.runner->name, job.id, state));
        },
        [&](size_t k, const slurm::WaitResult& w) {
          SlurmJob& job = jobs[submitted[k]];
          judge(job, w, o);
          finish(job);
        },
        [&] { return interrupt.signal() != 0; }, [&](std::chrono::milliseconds d) { interrupt.sleep_for(d); });
  } catch (const std::exception& e) {  // squeue or scontrol stopped answering
    if (interrupt.signal() == 0)
      for (size_t i : submitted)
        if (!jobs[i].done) {
          jobs[i].result.problems = {fmt::format("slurm job {}: {} (it may still be on the cluster: scancel {})",
                                                 jobs[i].id, e.what(), jobs[i].id)};
          finish(jobs[i]);
        }
  }
  if (int sig = interrupt.signal(); sig != 0) {
    std::vector<std::string> ids;
    for (size_t i : submitted)
      if (!jobs[i].done) {
        interrupted(jobs[i], sig, o);
        ids.push_back(jobs[i].id);
        finish(jobs[i]);
      }
    std::fprintf(stderr, "kiln: interrupted: slurm job(s) %s scancel'd and recorded cancelled\n",
                 ids.empty() ? "(none left)" : join(ids, ", ").c_str());
    interrupt.die();
  }
}

}  // namespace kiln::verify::detail
