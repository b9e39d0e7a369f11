// The portable smoke unit: its command lines, its result read back and
// judged, the suite hash, the verdict cache on a real ledger, and the
// policy's classes x counts x driver branches. The real no-GPU JSON of a
// unit run through the engine is exercised in tests/export/units_e2e.sh.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "state/ledger.h"
#include "matrix/matrix.h"
#include "util/diag.h"
#include "util/sha256.h"
#include "util/text.h"
#include "verify/internal.h"
#include "verify/smoke_unit.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

verify::SmokeUnit unit() {
  verify::SmokeUnit u;
  u.combo_id = "cuda13.0-ubuntu24.04-devel";
  u.runner = "gpuhost";
  u.image_id = "sha256:" + std::string(64, 'a');
  u.image_ref = "127.0.0.1:5000/kiln/gpu-host@sha256:" + std::string(64, 'b');
  u.smoke_ref = "127.0.0.1:5000/kiln/gpu-host-smoke@sha256:" + std::string(64, 'c');
  u.suite_hash = std::string(64, 'd');
  u.gpu_classes = {"sm_90"};
  u.gpus = 2;
  u.shm_size = 1LL << 30;
  u.timeout_s = 600;
  return u;
}

// A kiln.smoke-unit/v1 document as kiln-smoke-unit prints it. The GPU facts
// below are written by this test (there is no GPU here): they exercise the
// acceptance rule, they prove nothing about an image.
nlohmann::json unit_doc(int exit_code, bool with_devices) {
  nlohmann::json env_data{{"driver_version", "13.0"}, {"driver_release", "580.159.04"}, {"devices", nlohmann::json::array()}};
  if (with_devices)
    for (int i = 0; i < 2; ++i) env_data["devices"].push_back({{"index", i}, {"name", "NVIDIA H200"}, {"compute_capability", "9.0"}});
  nlohmann::json smoke{{"schema", "kiln-smoke/1"},
                       {"exit_code", exit_code},
                       {"host", "c0ffee"},
                       {"started_at", "2026-12-01T07:00:00Z"},
                       {"gpu", {{"usable", with_devices}, {"device_count", with_devices ? 2 : 0}}},
                       {"sections", {{"env", {{"status", "pass"}, {"data", env_data}}},
                                     {"cublas", {{"status", exit_code == 1 ? "fail" : "pass"}, {"errors", {"GEMM wrong"}}}}}}};
  return {{"schema", "kiln.smoke-unit/v1"}, {"image_id", unit().image_id}, {"suite_hash", unit().suite_hash},
          {"runner", "gpuhost"},            {"scheduler", "podman"},       {"job", ""},
          {"node", "gpu-7"},                {"driver_release", "580.159.04"}, {"started_at", "2026-12-01T07:00:00Z"},
          {"exit_code", exit_code},         {"programs", {{"kiln-smoke", {{"exit_code", exit_code}, {"report", smoke}}}}}};
}

}  // namespace

TEST_CASE("unit command lines: docker, podman in devices mode, pyxis", "[verify][unit]") {
  verify::SmokeUnit u = unit();
  std::string docker = verify::unit_command(u, verify::UnitEngine::docker);
  CHECK(docker.rfind("timeout 600 docker run --rm --network none --read-only --tmpfs /tmp:rw,size=256m --shm-size 1073741824 ", 0) == 0);
  CHECK(docker.find(" --gpus 2 ") != std::string::npos);
  CHECK(docker.find(" -e KILN_RUNNER=gpuhost ") != std::string::npos);
  CHECK(docker.find(" -e NCCL_NVLS_ENABLE=0 ") != std::string::npos);
  CHECK(docker.substr(docker.size() - u.smoke_ref.size() - 50).find("--entrypoint /opt/kiln-smoke/kiln-smoke-unit " + u.smoke_ref) !=
        std::string::npos);

  u.gpu_mode = matrix::GpuMode::devices;
  u.devices = {"/dev/nvidia0", "/dev/nvidiactl"};
  u.driver_libs = "/usr/local/nvidia/lib64";
  u.image_ld_path = "/usr/local/cuda/lib64";
  auto argv = verify::unit_argv(u, verify::UnitEngine::podman);
  CHECK(argv[2] == "podman");
  CHECK(join(argv, " ").find("--device /dev/nvidia0 --device /dev/nvidiactl -v /usr/local/nvidia/lib64:/usr/local/nvidia/lib64:ro "
                             "-e LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/cuda/lib64") != std::string::npos);

  std::string srun = verify::unit_command(u, verify::UnitEngine::pyxis);
  CHECK(srun.find("srun --ntasks=1 --gres=gpu:2 --time=10 --container-image=127.0.0.1:5000#kiln/gpu-host-smoke@sha256:") == 0);
  CHECK(srun.find("KILN_SCHEDULER=slurm,KILN_RUNNER=gpuhost /opt/kiln-smoke/kiln-smoke-unit") != std::string::npos);

  CHECK(verify::shell_line({"echo", "it's", "a b"}) == "echo 'it'\\''s' 'a b'");
  CHECK(verify::unit_from_json(verify::to_json(u)).driver_libs == u.driver_libs);
  CHECK_THROWS_AS(verify::unit_from_json(nlohmann::json{{"combo", "x"}}), std::invalid_argument);
}

TEST_CASE("digest references split as Docker reads them", "[verify][unit]") {
  auto r = verify::split_digest_ref("127.0.0.1:5000/kiln/x-smoke@sha256:" + std::string(64, '1'));
  REQUIRE(r);
  CHECK(r->registry == "127.0.0.1:5000");
  CHECK(r->path == "kiln/x-smoke");
  CHECK_FALSE(verify::split_digest_ref("kiln/x:tag"));
  CHECK(verify::split_digest_ref("kiln/x@sha256:" + std::string(64, '2'))->registry.empty());
}

TEST_CASE("a unit result is accepted only for the digest and suite expected, with GPU facts", "[verify][unit]") {
  const std::string id = unit().image_id, suite = unit().suite_hash;
  auto pass = verify::read_unit_result(unit_doc(0, true));
  CHECK(verify::unit_result_problem(pass, id, suite).empty());
  CHECK(pass.placement.gpu_model == "NVIDIA H200");
  CHECK(pass.placement.gpu_class == "sm_90");
  CHECK(pass.placement.gpu_count == 2);
  CHECK(pass.placement.driver == "580.159.04");
  CHECK(pass.placement.driver_branch == "580");
  CHECK(pass.placement.node == "gpu-7");
  CHECK(std::string(verify::unit_status_word(pass.exit_code)) == "passed");

  CHECK(verify::unit_result_problem(pass, "sha256:" + std::string(64, 'e'), suite).find("kiln expects sha256:eee") != std::string::npos);
  CHECK(verify::unit_result_problem(pass, id, std::string(64, 'f')).find("the suite changed") != std::string::npos);
  auto no_model = verify::read_unit_result(unit_doc(0, false));
  CHECK(verify::unit_result_problem(no_model, id, suite).find("names no GPU model") != std::string::npos);
  // "No usable GPU" carries no model and is accepted: recorded as no-gpu, never a pass.
  auto no_gpu = verify::read_unit_result(unit_doc(3, false));
  CHECK(verify::unit_result_problem(no_gpu, id, suite).empty());
  CHECK(std::string(verify::unit_status_word(3)) == "no-gpu");
  auto failed = verify::read_unit_result(unit_doc(1, true));
  REQUIRE(failed.problems.size() == 1);
  CHECK(failed.problems[0] == "cublas: GEMM wrong");
  // A bare kiln-smoke document names no image: refused.
  auto bare = verify::read_unit_result(unit_doc(0, true)["programs"]["kiln-smoke"]["report"]);
  CHECK(verify::unit_result_problem(bare, id, suite).find("names no image id") != std::string::npos);
  CHECK_THROWS_AS(verify::read_unit_result(nlohmann::json{{"schema", "other/1"}}), std::invalid_argument);
  CHECK(verify::driver_branch("13.0").empty());
}

TEST_CASE("the suite hash follows kernels/ sources and the smoke template", "[verify][unit]") {
  fs::path dir = fs::temp_directory_path() / ("kiln-suite-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "src");
  fs::create_directories(dir / "build");
  write_file_atomic((dir / "CMakeLists.txt").string(), "project(x)\n");
  write_file_atomic((dir / "src/main.cpp").string(), "int main() {}\n");
  std::string a = verify::suite_hash(dir.string(), "FROM x\n");
  write_file_atomic((dir / "build/junk.o").string(), "not the suite");  // a build directory is not the suite
  CHECK(verify::suite_hash(dir.string(), "FROM x\n") == a);
  CHECK(verify::suite_hash(dir.string(), "FROM y\n") != a);
  write_file_atomic((dir / "src/main.cpp").string(), "int main() { return 0; }\n");
  CHECK(verify::suite_hash(dir.string(), "FROM x\n") != a);
  CHECK(a.size() == 64);
  fs::remove_all(dir);
}

TEST_CASE("the verdict cache: a pass with placement, per image, runner and suite", "[verify][unit]") {
  fs::path dir = fs::temp_directory_path() / ("kiln-cache-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  verify::Placement where{"slurm", "h200x2", "node-3", "4711", "NVIDIA H200", "sm_90", "580.159.04", "580", 2, "2026-12-01T07:00:00Z"};
  const std::string id = unit().image_id, suite = unit().suite_hash;
  verify::record_gpu_verdict(dir.string(), id, "passed", where, suite, nlohmann::json::object(), {});
  state::Ledger ledger(dir.string() + "/state.db");
  auto hit = verify::cached_pass(ledger, id, "h200x2", "gpu", suite);
  REQUIRE(hit);
  CHECK(hit->reused);
  CHECK(verify::placement_from_json(hit->detail["placement"]).node == "node-3");
  CHECK_FALSE(verify::cached_pass(ledger, id, "h200x2", "gpu", std::string(64, 'f')));  // a changed suite
  CHECK_FALSE(verify::cached_pass(ledger, "sha256:" + std::string(64, '9'), "h200x2", "gpu", suite));  // a changed image
  CHECK_FALSE(verify::cached_pass(ledger, id, "other", "gpu", suite));
  fs::remove_all(dir);
}

TEST_CASE("policy: classes x GPU counts x driver branches, from where each pass ran", "[verify][unit][policy]") {
  matrix::Policy p;
  p.verify = {"gpu"};
  p.gpu_classes = {"sm_90"};
  p.gpu_counts = {1, 2};
  p.driver_branches = {"535", "580"};
  auto pass_on = [](const std::string& runner, int count, const std::string& driver) {
    verify::Placement where{"kubernetes", runner, "n", "", "NVIDIA H200", "sm_90", driver, verify::driver_branch(driver), count, ""};
    return verify::CheckResult{"gpu", runner, verify::CheckStatus::passed, {}, {{"placement", verify::placement_json(where)}}, true};
  };
  verify::ComboVerdict v;
  v.checks = {pass_on("a", 1, "580.159.04"), pass_on("b", 2, "580.159.04")};
  verify::detail::decide(v, p, {}, *ArchList::parse("9.0"));
  CHECK_FALSE(v.verified);
  CHECK(v.reason.find("awaiting a gpu pass for sm_90 with 1 GPU(s) on driver branch 535") != std::string::npos);
  v.checks.push_back(pass_on("c", 1, "535.261.03"));
  v.checks.push_back(pass_on("d", 2, "535.261.03"));
  verify::detail::decide(v, p, {}, *ArchList::parse("9.0"));
  CHECK(v.verified);
}

TEST_CASE("matrix keys: policy gpu_counts and driver_branches, runner gpus and gpu_product", "[verify][unit][matrix]") {
  const std::string base = R"(
name = "t"
[axes]
cuda = ["12.4"]
os = ["debian13"]
flavor = ["runtime"]
)";
  auto m = matrix::parse_matrix_text(base + R"(
[policy]
verify = ["static", "gpu"]
gpu_classes = ["sm_90"]
gpu_counts = [1, 2]
driver_branches = ["535", "580"]
[runners.h200x2]
gpu = "nvidia"
gpu_classes = ["sm_90"]
gpus = 2
gpu_product = "NVIDIA-H200"
)",
                                     "m.toml");
  CHECK(m.policy.gpu_counts == std::vector<int>{1, 2});
  CHECK(m.policy.driver_branches == std::vector<std::string>{"535", "580"});
  REQUIRE(m.runners.size() == 1);
  CHECK(m.runners[0].gpus == 2);
  CHECK(m.runners[0].gpu_product == "NVIDIA-H200");
  auto error_of = [&](const std::string& extra) {
    try {
      matrix::parse_matrix_text(base + extra, "m.toml");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("[policy]\ngpu_counts = [0]\n").find("0 is not a GPU count") != std::string::npos);
  CHECK(error_of("[policy]\ndriver_branches = [\"r580\"]\n").find("is not a driver branch") != std::string::npos);
  CHECK(error_of("[runners.x]\ngpus = 99\n").find("gpus = 99 is not a GPU count") != std::string::npos);
}
