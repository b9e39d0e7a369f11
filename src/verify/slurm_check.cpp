// The gpu check on a Slurm runner (gpu = "slurm", docs/verify.md "Slurm"):
// the smoke programs of one image as one batch job, each in a container the
// job starts on its node; the verdict from the job's framed output, with
// where it was obtained (node, GPU model, driver, count).
#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "render/render.h"
#include "util/json_out.h"
#include "util/text.h"
#include "verify/internal.h"
#include "verify/slurm.h"
#include "verify/smoke_unit.h"

namespace kiln::verify::detail {

namespace fs = std::filesystem;

namespace {

// Switches that keep NVLink multicast off (smoke.cpp passes the same into
// engine containers): `-e NAME` hands the job's value in, if it has one.
constexpr const char* kSafetyEnv[] = {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"};

// One smoke program as the job runs it on the node. docker/podman: as the
// engine runner's container (no network, read-only root, /tmp tmpfs, the
// runner's shm and ipc); the GPUs Slurm gave the job reach the container as
// CUDA_VISIBLE_DEVICES. pyxis: srun --container-image inside the
// allocation; enroot: `enroot start` of the image imported by an earlier step.
std::vector<std::string> program_argv(const Runner& r, const std::string& image, const std::string& sqsh,
                                      const SmokeProgram& prog) {
  const auto& s = r.slurm;
  std::vector<std::string> argv;
  std::vector<std::string> cmd = prog.entrypoint;
  if (cmd.empty()) cmd = {"/opt/kiln-smoke/kiln-smoke"};  // the smoke image's entrypoint, spelled out for srun/enroot
  if (s.container == "docker" || s.container == "podman") {
    argv = {s.container_cli.empty() ? s.container : s.container_cli, "run", "--rm", "--network", "none", "--read-only",
            "--tmpfs", "/tmp:rw,size=256m", "--shm-size", std::to_string(r.shm_size)};
    if (!r.ipc.empty()) argv.insert(argv.end(), {"--ipc", r.ipc});
    if (s.gpus > 0) {
      if (s.container == "docker") argv.insert(argv.end(), {"--gpus", "all"});
      else argv.insert(argv.end(), {"--device", "nvidia.com/gpu=all"});
      argv.insert(argv.end(), {"-e", "CUDA_VISIBLE_DEVICES"});
      for (const char* e : kSafetyEnv) argv.insert(argv.end(), {"-e", e});
    }
    if (!prog.entrypoint.empty()) argv.insert(argv.end(), {"--entrypoint", prog.entrypoint.front()});
    argv.push_back(image);
    if (!prog.entrypoint.empty()) argv.insert(argv.end(), prog.entrypoint.begin() + 1, prog.entrypoint.end());
  } else if (s.container == "pyxis") {
    argv = {"srun", "--ntasks=1", "--container-image=" + image, "--no-container-mount-home", "--container-remap-root"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
  } else {  // enroot
    argv = {"enroot", "start", sqsh};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
  }
  argv.insert(argv.end(), prog.args.begin(), prog.args.end());
  return argv;
}

// The time a job gets: the runner's, else every program's --timeout plus
// two minutes for the node to start the container (an image pull).
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

// Where the verdict was obtained, in the portable unit's terms
// (smoke_unit.h): the node, the job, and the GPUs as the suite saw them
// (model, class, count); the driver as nvidia-smi on the node read it (the
// kernel module's release, whose major is the branch), else the suite's.
Placement placement(const Runner& runner, const slurm::JobOutput& out, const slurm::JobInfo& info,
                    const nlohmann::json& suite, const std::string& started) {
  Placement p = read_placement(suite);
  p.scheduler = "slurm";
  p.runner = runner.name;
  p.node = out.node.empty() ? info.node : out.node;
  p.job = info.id;
  if (!out.gpus.empty()) {  // "0, NVIDIA H200, 580.95.05"
    const std::string& g = out.gpus.front();
    size_t a = g.find(", "), b = g.rfind(", ");
    if (a != std::string::npos && b != a) {
      if (p.gpu_model.empty()) p.gpu_model = g.substr(a + 2, b - a - 2);
      p.driver = g.substr(b + 2);
    }
  }
  p.driver_branch = driver_branch(p.driver);
  if (p.date.empty()) p.date = started;
  return p;
}

}  // namespace

CheckResult slurm_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                        const std::string& image, const Runner& runner, const Options& o) {
  CheckResult r{"gpu", runner.name, CheckStatus::error, {}, {}, false};
  std::string smoke = smoke_image_for(c, p, renderer, image, runner, o, r.problems);
  if (smoke.empty()) return r;
  const auto& s = runner.slurm;
  fs::path dir = fs::absolute(s.job_dir.empty() ? fs::path(o.state_dir) / "slurm" : fs::path(s.job_dir)) / p.matrix_name;
  fs::create_directories(dir);
  std::string stem = c.id + "." + runner.name;
  std::vector<SmokeProgram> programs = smoke_programs(c);

  slurm::JobSpec job;
  job.name = fmt::format("kiln-smoke:{}:{}:{}", p.matrix_name, c.id, runner.name);
  job.partition = s.partition;
  job.gpus = s.gpus;
  job.time_limit_min = time_limit_min(runner, o, programs.size());
  job.output = (dir / (stem + ".%j.out")).string();
  job.error = (dir / (stem + ".%j.err")).string();
  job.sbatch_args = s.sbatch_args;
  job.comment = {fmt::format("kiln verify: the smoke suite of {} ({}) on runner {}", c.id, image, runner.name),
                 "Each step's stdout (its JSON report) is framed by ::kiln-step-begin/end lines."};
  std::string sqsh = (dir / (stem + ".sqsh")).string();
  if (s.container == "enroot")  // the image as a squashfs, from the local engine (dockerd://) of the node
    job.steps.push_back({"import", {"enroot", "import", "--output", sqsh, "dockerd://" + smoke}});
  for (const auto& prog : programs) job.steps.push_back({prog.name, program_argv(runner, smoke, sqsh, prog)});
  fs::path script = dir / (stem + ".sbatch");
  write_file_atomic(script.string(), slurm::job_script(job));

  std::string started = utc_now();
  nlohmann::json sd = {{"script", script.string()}, {"partition", s.partition}, {"gpus_requested", s.gpus},
                       {"time_limit_min", job.time_limit_min}, {"container", s.container}, {"image", smoke}};
  std::string id;
  slurm::WaitResult w;
  try {
    id = slurm::submit(script.string());
    if (o.on_step) o.on_step(fmt::format("gpu check {} on {}: slurm job {}", c.id, runner.name, id));
    w = slurm::wait(id, std::chrono::minutes(s.queue_timeout_min),
                    std::chrono::seconds(job.time_limit_min * 60 + 120), [&](const std::string& state) {
                      if (o.on_step) o.on_step(fmt::format("gpu check {} on {}: slurm job {} {}", c.id, runner.name, id, state));
                    });
  } catch (const std::exception& e) {  // no sbatch, no controller, a partition it refused
    r.problems.push_back(e.what());
    r.detail["slurm"] = sd;
    return r;
  }
  auto expand = [&](std::string f) {
    if (auto at = f.find("%j"); at != std::string::npos) f.replace(at, 2, id);
    return f;
  };
  std::string out_path = expand(job.output), err_path = expand(job.error);
  sd.update({{"job_id", id}, {"state", w.info.state}, {"reason", w.info.reason}, {"node", w.info.node},
             {"exit_code", w.info.exit_code}, {"run_time", w.info.run_time}, {"output", out_path}, {"error", err_path}});
  slurm::JobOutput out = slurm::parse_output(read_text(out_path));
  std::string logs = fmt::format("(output: {}, errors: {})", out_path, err_path);
  std::string state = w.info.state.substr(0, w.info.state.find(' '));
  std::string on = out.node.empty() && w.info.node.empty() ? "" : " on " + (out.node.empty() ? w.info.node : out.node);

  if (w.gave_up || state == "TIMEOUT" || state == "DEADLINE") {
    r.status = CheckStatus::timed_out;
    r.problems.push_back(w.gave_up ? fmt::format("slurm job {}{}: {} {}", id, on, w.why, logs)
                                   : fmt::format("slurm job {}{} ran past its time limit of {} min {}", id, on,
                                                 job.time_limit_min, logs));
  } else if (state == "CANCELLED") {
    r.status = CheckStatus::cancelled;
    r.problems.push_back(fmt::format("slurm job {}{} was cancelled ({}) {}", id, on, w.info.state, logs));
  } else if (state != "COMPLETED" && state != "FAILED" && state != "UNKNOWN" && state != "OUT_OF_MEMORY") {
    r.problems.push_back(fmt::format("slurm job {}{} ended {} ({}) before the smoke suite could run to its end {}", id,
                                     on, w.info.state, w.info.reason, logs));  // NODE_FAIL, PREEMPTED, BOOT_FAIL: the cluster's, not the image's
  } else {
    std::vector<ProgramOutcome> runs;
    for (const auto& prog : programs) {
      ProgramOutcome run;
      auto it = std::find_if(out.steps.begin(), out.steps.end(), [&](const slurm::StepOutput& st) { return st.name == prog.name; });
      if (it == out.steps.end() || !it->exit_code) run.not_started = fmt::format("{} did not run to its end in slurm job {}{} {}", prog.name, id, on, logs);
      else {
        run.out = it->out;
        run.exit_code = *it->exit_code;
        run.err = "see " + err_path;
      }
      runs.push_back(std::move(run));
    }
    judge_smoke(programs, runs, o.timeout_s, r);
    // A job that ran and printed no report (a container CLI that failed, a
    // program that crashed) failed the check: its log says why.
    if (r.status == CheckStatus::error) {
      r.status = CheckStatus::failed;
      r.problems.push_back(fmt::format("slurm job {}{} {} exit {} {}", id, on, w.info.state, w.info.exit_code, logs));
    }
    if (state == "OUT_OF_MEMORY" && r.status != CheckStatus::failed) {
      r.status = CheckStatus::failed;
      r.problems.push_back(fmt::format("slurm job {}{} ran out of memory {}", id, on, logs));
    }
  }
  r.detail["slurm"] = sd;
  r.detail["placement"] = placement_json(placement(runner, out, w.info, r.detail, started));
  r.detail["shm_size"] = runner.shm_size;
  if (r.status == CheckStatus::no_gpu)
    r.problems.push_back(fmt::format("slurm job {}{} (gpus = {}): the smoke suite found no usable GPU", id, on, s.gpus));
  return r;
}

}  // namespace kiln::verify::detail
