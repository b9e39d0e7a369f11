// The Slurm runner's pure parts: the batch script kiln writes (run here by
// bash, as slurmd would run it, and its framed output read back), sbatch's
// and scontrol's answers as Slurm 22.05 prints them, and the runner keys
// of a gpu = "slurm" runner. The runner on a real Slurm: slurm_e2e.sh.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "matrix/matrix.h"
#include "util/errors.h"
#include "verify/internal.h"
#include "verify/slurm.h"
#include "verify/smoke_unit.h"

using namespace kiln;
namespace fs = std::filesystem;

TEST_CASE("sbatch's answer names the job id", "[slurm]") {
  CHECK(slurm::parse_submitted("Submitted batch job 42\n") == "42");
  CHECK(slurm::parse_submitted("sbatch: warning: something\nSubmitted batch job 7") == "7");
  CHECK(slurm::parse_submitted("1234;cluster\n") == "1234");  // --parsable
  CHECK(slurm::parse_submitted("99\n") == "99");
  CHECK_FALSE(slurm::parse_submitted("sbatch: error: invalid partition specified: gpu\n"));
  CHECK_FALSE(slurm::parse_submitted("Submitted batch job \n"));
  CHECK_FALSE(slurm::parse_submitted(""));
}

// As `scontrol show job -o 1` printed it on the test's Slurm 22.05 (one line).
const char* kShowJob =
    "JobId=12 JobName=kiln-smoke:offline:cuda12.4-debian13-runtime:slurm UserId=root(0) GroupId=root(0) "
    "MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode "
    "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:04 TimeLimit=00:05:00 "
    "TimeMin=N/A SubmitTime=2026-12-01T06:39:00 StartTime=2026-12-01T06:39:05 EndTime=2026-12-01T06:39:09 "
    "Partition=kiln ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 "
    "Command=/var/tmp/x.sbatch WorkDir=/tmp StdErr=/tmp/j/1.err StdIn=/dev/null StdOut=/tmp/j/1.out Power=\n";

TEST_CASE("scontrol show job: state, reason, node, exit code", "[slurm]") {
  auto j = slurm::parse_show_job(kShowJob);
  CHECK(j.found);
  CHECK(j.id == "12");
  CHECK(j.name == "kiln-smoke:offline:cuda12.4-debian13-runtime:slurm");
  CHECK(j.state == "FAILED");
  CHECK(j.reason == "NonZeroExitCode");
  CHECK(j.node == "vm");
  CHECK(j.exit_code == 3);
  CHECK(j.exit_signal == 0);
  CHECK(j.time_limit == "00:05:00");
  CHECK(j.std_out == "/tmp/j/1.out");
  CHECK(slurm::is_final(j.state));

  auto pending = slurm::parse_show_job(
      "JobId=13 JobName=x JobState=PENDING Reason=ReqNodeNotAvail,_UnavailableNodes:vm Dependency=(null) "
      "ExitCode=0:0 NodeList=(null) BatchHost=(null) Comment=two words here StdOut=/o\n");
  CHECK(pending.state == "PENDING");
  CHECK(pending.node.empty());
  CHECK(pending.reason == "ReqNodeNotAvail,_UnavailableNodes:vm");
  CHECK_FALSE(slurm::is_final(pending.state));

  auto killed = slurm::parse_show_job("JobId=14 JobState=CANCELLED Reason=None ExitCode=0:15 BatchHost=n1");
  CHECK(killed.exit_signal == 15);
  CHECK(slurm::is_final("CANCELLED by 0"));
  CHECK(slurm::is_final("TIMEOUT"));
  CHECK_FALSE(slurm::is_final("COMPLETING"));
  CHECK_FALSE(slurm::is_final("RUNNING"));
  CHECK_FALSE(slurm::parse_show_job("slurm_load_jobs error: Invalid job id specified\n").found);
}

TEST_CASE("the batch script: #SBATCH lines, quoted steps, framed output", "[slurm]") {
  slurm::JobSpec job;
  job.name = "kiln-smoke:m:c:r";
  job.partition = "gpu";
  job.gpus = 2;
  job.time_limit_min = 7;
  job.output = "/jobs/c.r.%j.out";
  job.error = "/jobs/c.r.%j.err";
  job.sbatch_args = {"--account=ml"};
  job.steps = {{"kiln-smoke", {"printf", "%s", "{\"verdict\": \"no-gpu\"}"}},  // no newline at its end
               {"torch", {"sh", "-c", "echo \"it's\"; echo line2; exit 3"}},
               {"libtorch", {"sh", "-c", "echo garbage; exit 2"}}};
  std::string s = slurm::job_script(job);
  CHECK(s.rfind("#!/bin/bash\n#SBATCH --job-name=kiln-smoke:m:c:r\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:2\n"
                "#SBATCH --time=7\n", 0) == 0);
  CHECK(s.find("#SBATCH --output=/jobs/c.r.%j.out\n") != std::string::npos);
  CHECK(s.find("#SBATCH --account=ml\n") != std::string::npos);
  CHECK(s.find("'sh' ") == std::string::npos);  // plain words unquoted
  CHECK(s.find("sh -c 'echo \"it'\\''s\"; echo line2; exit 3' </dev/null\n") != std::string::npos);

  job.gpus = 0;
  job.partition.clear();
  std::string no_gpu = slurm::job_script(job);
  CHECK(no_gpu.find("--gres") == std::string::npos);
  CHECK(no_gpu.find("--partition") == std::string::npos);

  // Run it as slurmd would (bash, stdout to the output file) and read it back.
  fs::path dir = fs::temp_directory_path() / ("kiln-slurm-script-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  { std::ofstream(dir / "job.sh") << s; }
  std::string cmd = "cd " + dir.string() + " && PATH=/usr/bin:/bin bash job.sh >out.txt 2>err.txt; echo $? >rc.txt";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto slurp = [&](const char* f) { std::ifstream in(dir / f); std::stringstream ss; ss << in.rdbuf(); return ss.str(); };
  CHECK(slurp("rc.txt") == "3\n");  // the first nonzero step's code
  auto o = slurm::parse_output(slurp("out.txt"));
  CHECK(o.node.size() > 0);
  REQUIRE(o.steps.size() == 3);
  CHECK(o.steps[0].name == "kiln-smoke");
  CHECK(o.steps[0].out == "{\"verdict\": \"no-gpu\"}");
  CHECK(o.steps[0].exit_code == 0);
  CHECK(o.steps[1].out == "it's\nline2\n");
  CHECK(o.steps[1].exit_code == 3);
  CHECK(o.steps[2].out == "garbage\n");
  CHECK(o.steps[2].exit_code == 2);
  fs::remove_all(dir);
}

TEST_CASE("output of a job killed mid-step: the step has no exit code", "[slurm]") {
  auto o = slurm::parse_output(
      "::kiln-node n7\n::kiln-gpu 0, NVIDIA H200, 580.95.05\n::kiln-gpu 1, NVIDIA H200, 580.95.05\n"
      "::kiln-step-begin kiln-smoke\n{\"partial\":\nslurmstepd: error: *** JOB 5 CANCELLED AT 2026-12-01T06:40:00 ***\n");
  CHECK(o.node == "n7");
  REQUIRE(o.gpus.size() == 2);
  CHECK(o.gpus[1] == "1, NVIDIA H200, 580.95.05");
  REQUIRE(o.steps.size() == 1);
  CHECK_FALSE(o.steps[0].exit_code);
  CHECK(slurm::parse_output("").steps.empty());
}

TEST_CASE("the steps' words round-trip through the shell", "[slurm]") {
  for (std::string w : {"plain", "with space", "it's", "$HOME", "a\"b", "`x`", "", "--shm-size=1g", "*"}) {
    // Run through /bin/sh -c, which reads the quoted word back.
    FILE* f = ::popen(("printf %s " + verify::shell_line({w})).c_str(), "r");
    REQUIRE(f);
    std::string got;
    char buf[256];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) got.append(buf, n);
    ::pclose(f);
    CHECK(got == w);
  }
}

namespace {
std::string errors_of(const std::string& text) {
  try {
    matrix::parse_matrix_text(text, "m.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
const char* kHead = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
}  // namespace

TEST_CASE("a gpu = \"slurm\" runner's keys", "[slurm][matrix]") {
  auto m = matrix::parse_matrix_text(std::string(kHead) +
                                         "[runners.cluster]\ngpu='slurm'\npartition='h100'\ngpus=8\ncontainer='podman'\n"
                                         "container_cli='/opt/podman/bin/podman'\ntime_limit=15\nqueue_timeout=120\n"
                                         "sbatch_args=['--account=ml', '--qos=short']\njob_dir='/shared/kiln-jobs'\n"
                                         "gpu_classes=['sm_90']\n",
                                     "m.toml");
  REQUIRE(m.runners.size() == 1);
  const auto& r = m.runners[0];
  CHECK(r.gpu == matrix::GpuMode::slurm);
  CHECK(std::string(matrix::to_string(r.gpu)) == "slurm");
  CHECK(r.slurm.partition == "h100");
  CHECK(r.slurm.gpus == 8);
  CHECK(r.slurm.container == "podman");
  CHECK(r.slurm.container_cli == "/opt/podman/bin/podman");
  CHECK(r.slurm.time_limit_min == 15);
  CHECK(r.slurm.queue_timeout_min == 120);
  CHECK(r.slurm.sbatch_args == std::vector<std::string>{"--account=ml", "--qos=short"});
  CHECK(r.slurm.job_dir == "/shared/kiln-jobs");

  auto d = matrix::parse_matrix_text(std::string(kHead) + "[runners.ci]\ngpu='slurm'\ngpus=0\n", "m.toml");
  CHECK(d.runners[0].slurm.gpus == 0);
  CHECK(d.runners[0].slurm.container == "docker");
  CHECK(d.runners[0].slurm.time_limit_min == 0);

  auto e = errors_of(std::string(kHead) + "[runners.g]\ngpu='nvidia'\npartition='p'\n");
  CHECK(e.find("m.toml:8:11: error: runner 'g': partition applies to gpu = \"slurm\" runners only") != std::string::npos);
  e = errors_of(std::string(kHead) + "[runners.s]\ngpu='slurm'\ncontainer='singularity'\ngpus=-1\ntime_limit=0\n");
  CHECK(e.find("container must be \"docker\", \"podman\", \"enroot\" or \"pyxis\"") != std::string::npos);
  CHECK(e.find("gpus is the GPU count") != std::string::npos);
  CHECK(e.find("time_limit is in minutes, 1 to 525600") != std::string::npos);
  e = errors_of(std::string(kHead) + "[runners.s]\ngpu='slurm'\nsbatch_args=['-A ml']\ncontainer_cli='sudo docker'\n");
  CHECK(e.find("sbatch_args entry \"-A ml\" must be one long option") != std::string::npos);
  CHECK(e.find("container_cli is one program") != std::string::npos);
  e = errors_of(std::string(kHead) + "[runners.s]\ngpu='slurmm'\n");
  CHECK(e.find("gpu must be \"none\", \"nvidia\", \"cdi\", \"devices\" or \"slurm\"") != std::string::npos);
}

TEST_CASE("squeue's line of a job: state, reason, node, start", "[slurm]") {
  auto j = slurm::parse_queue_line("12|RUNNING|None|node7|2026-12-01T10:06:25");
  REQUIRE(j);
  CHECK(j->id == "12");
  CHECK(j->state == "RUNNING");
  CHECK(j->reason.empty());
  CHECK(j->node == "node7");
  CHECK(j->start_time == "2026-12-01T10:06:25");
  auto p = slurm::parse_queue_line("13|PENDING|Resources||N/A");
  REQUIRE(p);
  CHECK(p->reason == "Resources");
  CHECK(p->node.empty());
  CHECK_FALSE(slurm::parse_queue_line("slurm_load_jobs error: Invalid job id specified"));
  CHECK_FALSE(slurm::parse_queue_line(""));
}

namespace {

// A Slurm runner's job as stage_slurm_job makes it, for images already on
// the staging registry (no engine, no registry here: only the rendering).
struct StagedJob {
  plan::Combo combo;
  verify::Runner runner;
  verify::Options options;
  verify::detail::SlurmJob job;
  StagedJob(const std::string& container, int gpus, const std::string& cli = "") {
    combo.id = "cuda13.0-ubuntu24.04-runtime";
    runner.name = "h200";
    runner.gpu = matrix::GpuMode::slurm;
    runner.gpu_classes = {"sm_90"};
    runner.slurm.container = container;
    runner.slurm.container_cli = cli;
    runner.slurm.gpus = gpus;
    runner.slurm.partition = "gpu";
    options.suite_hash = std::string(64, 'd');
    options.timeout_s = 600;
    verify::detail::StagedImages staged;
    staged.image_id = "sha256:" + std::string(64, 'a');
    staged.image_ref = "127.0.0.1:5000/kiln/m@sha256:" + std::string(64, 'b');
    staged.smoke_ref = "127.0.0.1:5000/kiln/m-smoke@sha256:" + std::string(64, 'c');
    job.combo = &combo;
    job.runner = &runner;
    job.image_id = staged.image_id;
    job.unit = verify::detail::make_unit(combo, runner, staged, options);
    job.time_limit_min = 12;
    job.output = "/shared/jobs/x.%j.out";
    job.error = "/shared/jobs/x.%j.err";
  }
  std::string script() const { return verify::detail::slurm_job_script(job, "m"); }
};

}  // namespace

TEST_CASE("a Slurm runner's job runs the portable unit: the smoke image by digest, `kiln export units`' line", "[slurm][unit]") {
  const std::string smoke_ref = "127.0.0.1:5000/kiln/m-smoke@sha256:" + std::string(64, 'c');
  SECTION("docker: the node's engine pulls the digest; every GPU with the job's CUDA_VISIBLE_DEVICES") {
    StagedJob j("docker", 8);
    std::string s = j.script();
    std::string line = verify::unit_command(j.job.unit, verify::UnitEngine::docker);
    CHECK(s.find("\n" + line + " </dev/null\n") != std::string::npos);  // the unit's own line, nothing else
    CHECK(line.starts_with("timeout 600 docker run --rm --network none --read-only"));
    CHECK(line.find("--gpus all -e CUDA_VISIBLE_DEVICES --entrypoint /opt/kiln-smoke/kiln-smoke-unit " + smoke_ref) !=
          std::string::npos);
    CHECK(line.find("KILN_SCHEDULER=docker") != std::string::npos);
    CHECK(s.find("#SBATCH --gres=gpu:8\n") != std::string::npos);
    CHECK(s.find("#SBATCH --partition=gpu\n") != std::string::npos);
    CHECK(s.find("#SBATCH --time=12\n") != std::string::npos);
    CHECK(s.find("#SBATCH --job-name=kiln-smoke:m:cuda13.0-ubuntu24.04-runtime:h200\n") != std::string::npos);
  }
  SECTION("podman with its own program: CDI names every GPU; gpus = 0 attaches none") {
    StagedJob j("podman", 2, "/opt/podman/bin/podman");
    std::string s = j.script();
    CHECK(s.find("timeout 600 /opt/podman/bin/podman run --rm") != std::string::npos);
    CHECK(s.find("--device nvidia.com/gpu=all -e CUDA_VISIBLE_DEVICES --entrypoint") != std::string::npos);
    StagedJob none("podman", 0);
    std::string n = none.script();
    CHECK(n.find("--device") == std::string::npos);
    CHECK(n.find("--gres") == std::string::npos);
    CHECK(n.find(smoke_ref) != std::string::npos);
  }
  SECTION("pyxis and enroot: srun --container-image in enroot's REGISTRY#REPO@DIGEST form") {
    for (const char* tool : {"pyxis", "enroot"}) {
      StagedJob j(tool, 4, "/ignored/docker");
      std::string s = j.script();
      std::string line = verify::unit_command(j.job.unit, verify::UnitEngine::pyxis);
      CHECK(s.find("\n" + line + " </dev/null\n") != std::string::npos);
      CHECK(line == "srun --ntasks=1 --gres=gpu:4 --time=10 --container-image=127.0.0.1:5000#kiln/m-smoke@sha256:" +
                        std::string(64, 'c') +
                        " --no-container-mount-home --container-writable "
                        "--export=ALL,NCCL_NVLS_ENABLE=0,TORCH_SYMM_MEM_DISABLE_MULTICAST=1,NVSHMEM_DISABLE_NVLS=1,"
                        "KILN_SCHEDULER=slurm,KILN_RUNNER=h200 /opt/kiln-smoke/kiln-smoke-unit");
      CHECK(s.find("/ignored/docker") == std::string::npos);
      CHECK(s.find("#SBATCH --gres=gpu:4\n") != std::string::npos);
    }
    StagedJob cpu("pyxis", 0);
    CHECK(cpu.script().find("--gres") == std::string::npos);  // a GPU-less node's job asks for none
  }
  SECTION("the pyxis script as bash runs it: srun's words arrive whole, the unit's JSON comes back framed") {
    // A stand-in srun (no pyxis here) that prints a unit document naming its arguments.
    fs::path dir = fs::temp_directory_path() / ("kiln-slurm-pyxis-" + std::to_string(::getpid()));
    fs::create_directories(dir / "bin");
    {
      std::ofstream f(dir / "bin" / "srun");
      f << "#!/bin/sh\nprintf '{\"schema\":\"kiln.smoke-unit/v1\",\"argc\":%d,\"image\":\"%s\"}\\n' \"$#\" \"$4\"\nexit 3\n";
    }
    fs::permissions(dir / "bin" / "srun", fs::perms::owner_all);
    StagedJob j("pyxis", 4);
    { std::ofstream(dir / "job.sh") << j.script(); }
    std::string cmd = "cd " + dir.string() + " && PATH=" + (dir / "bin").string() +
                      ":/usr/bin:/bin bash job.sh >out.txt 2>err.txt; echo $? >rc.txt";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto slurp = [&](const char* f) { std::ifstream in(dir / f); std::stringstream ss; ss << in.rdbuf(); return ss.str(); };
    CHECK(slurp("rc.txt") == "3\n");
    auto o = slurm::parse_output(slurp("out.txt"));
    REQUIRE(o.steps.size() == 1);
    CHECK(o.steps[0].name == "kiln-smoke-unit");
    CHECK(o.steps[0].exit_code == 3);
    auto doc = nlohmann::json::parse(o.steps[0].out);
    CHECK(doc["argc"] == 8);
    CHECK(doc["image"] == "--container-image=127.0.0.1:5000#kiln/m-smoke@sha256:" + std::string(64, 'c'));
    fs::remove_all(dir);
  }
}
