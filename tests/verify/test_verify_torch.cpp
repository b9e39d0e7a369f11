// The static check's PyTorch logic on a synthetic site-packages tree packed
// into an image (real dist-info METADATA and torch/version.py files; a
// stand-in libtorch_cuda.so compiled here by nvcc for chosen -gencode sets),
// the policy's refusal of GPU classes an arch list cannot serve, and the
// runners' shm_size/ipc settings.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <list>

#include "audit/components.h"
#include "catalog/catalog.h"
#include "image/image.h"
#include "image_builder.h"
#include "matrix/matrix.h"
#include "report/report.h"
#include "support.h"
#include "verify/internal.h"

using namespace kiln;
using namespace kiln::testing;
using namespace kiln::verify::test;

namespace {

const std::string kSite = "opt/venv/lib/python3.12/site-packages/";

plan::Combo torch_combo(const std::string& arch = "7.5;8.0;9.0") {
  plan::Combo c;
  c.id = "pytorch2.11-cuda13.0-runtime";
  c.versions.pytorch = "2.11.0";
  c.versions.cuda = "13.0.2";
  c.versions.cudnn = "9.19.0.56";
  c.versions.nccl = "2.28.9";
  c.versions.flavor = "runtime";
  c.arch = *ArchList::parse(arch);
  return c;
}

struct Tree {
  std::string torch_version = "2.11.0+cu130";
  std::string torch_cuda = "'13.0'";
  std::string dist_version = "2.11.0+cu130";
  std::string cudnn_wheel = "9.19.0.56";
  std::string libtorch_cuda;  // bytes; empty: none
  std::string libtorch_cuda_linalg;
  std::string nvshmem_host;  // bytes for usr/lib/x86_64-linux-gnu/libnvshmem_host.so.3; empty: none
};

std::string metadata(const std::string& name, const std::string& version) {
  return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nSummary: x\n\nVersion: 0.0 in the description\n";
}

image::ImageFs image_of(const Tree& t) {
  const std::string cudnn_dist = kSite + "nvidia_cudnn_cu13-" + t.cudnn_wheel + ".dist-info";
  const std::string nccl_dist = kSite + "nvidia_nccl_cu13-2.28.9.dist-info";
  const std::string torch_dist = kSite + "torch-" + t.dist_version + ".dist-info";
  const std::string rt_dist = kSite + "nvidia_cuda_runtime-13.0.96.dist-info";
  std::vector<TarItem> items{
      dir("opt/"), dir("opt/venv/"), dir(kSite), dir(kSite + "torch/"), dir(kSite + "torch/lib/"),
      file(kSite + "torch/version.py", "from typing import Optional\n__version__ = '" + t.torch_version +
                                            "'\ndebug = False\ncuda: Optional[str] = " + t.torch_cuda +
                                            "\ngit_version = 'abc'\nhip: Optional[str] = None\n"),
      dir(torch_dist + "/"), file(torch_dist + "/METADATA", metadata("torch", t.dist_version)),
      dir(cudnn_dist + "/"), file(cudnn_dist + "/METADATA", metadata("nvidia-cudnn-cu13", t.cudnn_wheel)),
      dir(nccl_dist + "/"), file(nccl_dist + "/METADATA", metadata("nvidia-nccl-cu13", "2.28.9")),
      dir(rt_dist + "/"), file(rt_dist + "/METADATA", metadata("nvidia-cuda-runtime", "13.0.96")),
      file(kSite + "nvidia/cudnn/lib/libcudnn.so.9", "not an ELF: names no version"),
      file(kSite + "nvidia/nccl/lib/libnccl.so.2", "not an ELF"),
      // The host userland's packaged copies beside the wheels (the GPU host's base).
      file("usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0", "packaged"),
      file("usr/lib/x86_64-linux-gnu/libnccl.so.2.28.3", "packaged"),
  };
  if (!t.libtorch_cuda.empty()) items.push_back(file(kSite + "torch/lib/libtorch_cuda.so", t.libtorch_cuda));
  if (!t.libtorch_cuda_linalg.empty()) items.push_back(file(kSite + "torch/lib/libtorch_cuda_linalg.so", t.libtorch_cuda_linalg));
  if (!t.nvshmem_host.empty()) items.push_back(file("usr/lib/x86_64-linux-gnu/libnvshmem_host.so.3", t.nvshmem_host));
  return saved_image({items});
}

}  // namespace

TEST_CASE("components read pip's layout: torch and nvidia-* dist-info, METADATA Version", "[verify][torch]") {
  Tree t;
  const auto comp = audit::detect_components(image_of(t));
  REQUIRE(comp.torch);
  CHECK(comp.torch->version == "2.11.0+cu130");
  CHECK(comp.torch->cuda == "13.0");
  REQUIRE(comp.torch_dist.size() == 1);
  CHECK(comp.torch_dist[0].version == "2.11.0+cu130");
  std::vector<std::string> cudnn, pip;
  for (const auto& f : comp.cudnn) {
    cudnn.push_back(f.version);
    if (audit::from_site_packages(f)) pip.push_back(f.version);
  }
  CHECK(cudnn == std::vector<std::string>{"9.14.0", "9.19.0.56"});
  CHECK(pip == std::vector<std::string>{"9.19.0.56"});
  bool runtime = false;
  for (const auto& f : comp.cuda_runtime) runtime |= f.version == "13.0.96" && audit::from_site_packages(f);
  CHECK(runtime);
  CHECK(audit::parse_metadata_name_version(metadata("torch", "2.11.0")) == std::pair<std::string, std::string>{"torch", "2.11.0"});
}

TEST_CASE("static check of a PyTorch image: versions against the plan", "[verify][torch]") {
  SECTION("what the plan promises: no torch problem") {
    auto r = verify::detail::static_check_files(torch_combo(), image_of(Tree{}));
    INFO(all(r));
    CHECK_FALSE(has_problem(r, "the plan promises PyTorch 2.11.0, the image has"));
    CHECK_FALSE(has_problem(r, "torch 2.11.0+cu130 is"));
    CHECK_FALSE(has_problem(r, "dist-info"));
    CHECK_FALSE(has_problem(r, "cuDNN"));
    CHECK_FALSE(has_problem(r, "NCCL"));
    CHECK_FALSE(has_problem(r, "CUDA runtime"));
    CHECK(r.detail["torch"]["version"] == "2.11.0+cu130");
    CHECK(r.detail["torch"]["cuda"] == "13.0");
    // The packaged cuDNN is listed, not judged.
    bool listed = false;
    for (const auto& x : r.detail["found"]["cuDNN"]) listed |= x["version"] == "9.14.0" && x["pip"] == false;
    CHECK(listed);
  }
  SECTION("a cuDNN wheel one build off: the 4th component counts") {
    Tree t;
    t.cudnn_wheel = "9.19.0.55";
    auto r = verify::detail::static_check_files(torch_combo(), image_of(t));
    CHECK(has_problem(r, "the plan promises cuDNN 9.19.0.56, the wheel next to torch is 9.19.0.55"));
    CHECK(r.status == verify::CheckStatus::failed);
  }
  SECTION("a CPU-only torch") {
    Tree t;
    t.torch_cuda = "None";
    auto r = verify::detail::static_check_files(torch_combo(), image_of(t));
    CHECK(has_problem(r, "torch 2.11.0+cu130 is a CPU-only build (cuda = None), the plan promises a CUDA 13.0 build"));
  }
  SECTION("a dist-info without the local tag (torch-2.11.0.dist-info) agrees with 2.11.0+cu130") {
    Tree t;
    t.dist_version = "2.11.0";
    auto r = verify::detail::static_check_files(torch_combo(), image_of(t));
    CHECK_FALSE(has_problem(r, "dist-info"));
  }
  SECTION("another torch release, and a dist-info that disagrees with version.py") {
    Tree t;
    t.torch_version = "2.10.0+cu130";
    auto r = verify::detail::static_check_files(torch_combo(), image_of(t));
    CHECK(has_problem(r, "the plan promises PyTorch 2.11.0, the image has 2.10.0+cu130"));
    CHECK(has_problem(r, "torch/version.py says 2.10.0+cu130, its dist-info 2.11.0+cu130"));
  }
}

#ifdef KILN_TORCH_FIXTURE
TEST_CASE("static check reads libtorch_cuda.so's arch list by the majority rule", "[verify][torch][nvcc]") {
  Tree t;
  t.libtorch_cuda = slurp(KILN_TORCH_FIXTURE);  // sm_75/80/90 in 3 fat binaries, sm_90a in 1
  REQUIRE_FALSE(t.libtorch_cuda.empty());
  SECTION("equal to the catalog's list: sm_90a is listed apart, not counted") {
    auto r = verify::detail::static_check_files(torch_combo("7.5;8.0;9.0"), image_of(t));
    INFO(all(r));
    CHECK_FALSE(has_problem(r, "libtorch_cuda.so"));
    CHECK(r.detail["torch"]["arch"]["read"] == "7.5;8.0;9.0");
    CHECK(r.detail["torch"]["arch"]["specific"] == nlohmann::json::array({"sm_90a"}));
  }
  SECTION("the catalog promises 8.6 and +PTX that the library lacks") {
    auto r = verify::detail::static_check_files(torch_combo("7.5;8.0;8.6;9.0+PTX"), image_of(t));
    CHECK(has_problem(r, "carries SASS for sm_75, sm_80, sm_90 in most of its fat binaries, the arch list 7.5;8.0;8.6;9.0+PTX promises sm_75, sm_80, sm_86, sm_90"));
    CHECK(has_problem(r, "carries PTX for none, the arch list 7.5;8.0;8.6;9.0+PTX promises compute_90"));
  }
  SECTION("torch's other libraries keep their own lists: a gap there is a warning, not a failure") {
    t.libtorch_cuda_linalg = slurp(KILN_TORCH_LINALG_FIXTURE);  // sm_80, sm_90: nothing for 7.5
    auto r = verify::detail::static_check_files(torch_combo("7.5;8.0;9.0"), image_of(t));
    INFO(all(r));
    CHECK_FALSE(has_problem(r, "libtorch_cuda_linalg.so"));
    REQUIRE(r.detail.contains("warnings"));
    CHECK_THAT(r.detail["warnings"][0].get<std::string>(), Catch::Contains("torch/lib/libtorch_cuda_linalg.so cannot run on 7.5"));
    // The same library in a CUDA-only image is judged as any library.
    auto cuda_only = torch_combo("7.5;8.0;9.0");
    cuda_only.versions.pytorch.clear();
    CHECK(has_problem(verify::detail::static_check_files(cuda_only, image_of(t)), "libtorch_cuda_linalg.so cannot run on 7.5"));
  }
  SECTION("a library the catalog calls optional (libraries.toml) keeps its own list: a warning, as audit's partial") {
    t.nvshmem_host = slurp(KILN_TORCH_LINALG_FIXTURE);  // sm_80, sm_90: nothing for 7.5
    auto cuda_only = torch_combo("7.5;8.0;9.0");
    cuda_only.versions.pytorch.clear();
    const auto cat = kiln::catalog::Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
    auto r = verify::detail::static_check_files(cuda_only, image_of(t), &cat);
    INFO(all(r));
    CHECK_FALSE(has_problem(r, "libnvshmem_host.so.3"));
    REQUIRE(r.detail.contains("warnings"));
    CHECK_THAT(r.detail["warnings"].dump(), Catch::Contains("libnvshmem_host.so.3 cannot run on 7.5") &&
                                                Catch::Contains("optional: NVSHMEM symmetric memory"));
    // Without the catalog's word every library is core.
    CHECK(has_problem(verify::detail::static_check_files(cuda_only, image_of(t)), "libnvshmem_host.so.3 cannot run on 7.5"));
  }
  SECTION("a list shorter than what the library carries is not equal either") {
    auto r = verify::detail::static_check_files(torch_combo("8.0;9.0"), image_of(t));
    CHECK(has_problem(r, "carries SASS for sm_75, sm_80, sm_90 in most of its fat binaries, the arch list 8.0;9.0 promises sm_80, sm_90"));
  }
}
#endif

TEST_CASE("a PyTorch image without libtorch_cuda.so fails the arch check", "[verify][torch]") {
  auto r = verify::detail::static_check_files(torch_combo(), image_of(Tree{}));
  CHECK(has_problem(r, "the image has no readable torch/lib/libtorch_cuda.so"));
}

TEST_CASE("a GPU class the arch list cannot serve is refused, never verified", "[verify][policy]") {
  const ArchList arch = *ArchList::parse("7.5;8.0;8.6;9.0;10.0;12.0");
  CHECK(verify::detail::class_refusal("sm_90", arch).empty());
  CHECK(verify::detail::class_refusal("sm_89", arch).empty());  // sm_86 SASS runs on 8.9
  const std::string why = verify::detail::class_refusal("sm_70", arch);
  CHECK_THAT(why, Catch::StartsWith("GPU class sm_70 cannot run this image: its arch list 7.5;8.0;8.6;9.0;10.0;12.0 has no SASS"));

  verify::ComboVerdict v{"c", "sha256:1", false, "", {}};
  v.checks.push_back({"static", "gpuhost", verify::CheckStatus::passed, {}, {}, false});
  v.checks.push_back({"gpu", "gpuhost", verify::CheckStatus::passed, {}, {}, false});
  verify::Runner runner;
  runner.name = "gpuhost";
  runner.gpu = matrix::GpuMode::devices;
  runner.gpu_classes = {"sm_70"};
  matrix::Policy policy;
  policy.verify = {"static", "gpu"};
  policy.gpu_classes = {"sm_70"};
  // Even a recorded pass on a runner of that class does not verify it.
  verify::detail::decide(v, policy, {runner}, arch);
  CHECK_FALSE(v.verified);
  CHECK_THAT(v.reason, Catch::Contains("GPU class sm_70 cannot run this image"));
  // The same verdicts for a class the list serves: verified.
  runner.gpu_classes = {"sm_90"};
  policy.gpu_classes = {"sm_90"};
  verify::detail::decide(v, policy, {runner}, arch);
  CHECK(v.verified);
}

TEST_CASE("runners take shm_size and ipc", "[verify][runners]") {
  const char* text = R"(
name = "t"
[axes]
cuda = ["13.0"]
os = ["ubuntu24.04"]
flavor = ["runtime"]
[runners.gpu]
gpu = "devices"
shm_size = "64m"
ipc = "private"
[runners.big]
shm_size = "2g"
[runners.plain]
)";
  auto m = matrix::parse_matrix_text(text, "t.toml");
  REQUIRE(m.runners.size() == 3);
  std::map<std::string, const matrix::Runner*> by;
  for (const auto& r : m.runners) by[r.name] = &r;
  CHECK(by["gpu"]->shm_size == 64ll << 20);
  CHECK(by["gpu"]->ipc == "private");
  CHECK(by["big"]->shm_size == 2ll << 30);
  CHECK(by["plain"]->shm_size == 0);  // kiln's default (1 GiB) applies
  CHECK_THROWS_WITH(matrix::parse_matrix_text("name = \"t\"\n[axes]\ncuda = [\"13.0\"]\n[runners.x]\nshm_size = \"lots\"\n", "t.toml"),
                    Catch::Contains("shm_size \"lots\" is not a size"));
  CHECK_THROWS_WITH(matrix::parse_matrix_text("name = \"t\"\n[axes]\ncuda = [\"13.0\"]\n[runners.x]\nipc = \"container:x\"\n", "t.toml"),
                    Catch::Contains("ipc must be"));
}

TEST_CASE("a PyTorch image's gpu check runs three programs with the plan's versions", "[verify][smoke]") {
  auto programs = verify::detail::smoke_programs(torch_combo());
  REQUIRE(programs.size() == 3);
  // Library version calls name 3 components: kiln-smoke and LibTorch get 9.19.0;
  // smoke_torch.py gets the wheel's 4 (it reads the dist-info).
  CHECK(programs[0].name == "kiln-smoke");
  CHECK(programs[0].entrypoint.empty());
  CHECK(programs[0].args == std::vector<std::string>{"--expect-cuda", "13.0", "--expect-nccl", "2.28.9", "--expect-cudnn", "9.19.0"});
  CHECK(programs[1].entrypoint == std::vector<std::string>{"python3", "/opt/kiln-smoke/smoke_torch.py"});
  CHECK(programs[1].args == std::vector<std::string>{"--expect-cuda", "13.0", "--expect-nccl", "2.28.9", "--expect-cudnn",
                                                     "9.19.0.56", "--expect-torch", "2.11.0"});
  CHECK(programs[2].entrypoint == std::vector<std::string>{"/opt/kiln-smoke/kiln-smoke-torch"});
  CHECK(programs[2].args == std::vector<std::string>{"--expect-cuda", "13.0", "--expect-torch", "2.11.0", "--expect-cudnn", "9.19.0"});
  auto cuda_only = torch_combo();
  cuda_only.versions.pytorch.clear();
  CHECK(verify::detail::smoke_programs(cuda_only).size() == 1);
}

TEST_CASE("the programs' exit codes decide the gpu check: no GPU is never a pass", "[verify][smoke]") {
  using verify::detail::combined_status;
  CHECK(combined_status({{0, false}, {0, false}, {0, false}}) == verify::CheckStatus::passed);
  CHECK(combined_status({{0, false}, {3, false}, {0, false}}) == verify::CheckStatus::no_gpu);
  CHECK(combined_status({{3, false}, {3, false}, {3, false}}) == verify::CheckStatus::no_gpu);
  CHECK(combined_status({{0, false}, {1, false}, {3, false}}) == verify::CheckStatus::failed);
  CHECK(combined_status({{0, false}, {-1, true}}) == verify::CheckStatus::failed);  // a timeout
  CHECK(combined_status({{0, false}, {-1, false}}) == verify::CheckStatus::error);  // did not start
  CHECK(combined_status({{0, false}, {139, false}}) == verify::CheckStatus::error);  // a crash
}

// The numbers a report shows come from the smoke documents a GPU run wrote
// (bench/results: kiln-smoke on an H100, smoke_torch.py on 2x H200).
TEST_CASE("gpu check summary and the run report's GEMM column read real smoke documents") {
  auto load = [](const char* name) {
    std::ifstream in(std::string(KILN_SOURCE_DIR) + "/bench/results/" + name);
    REQUIRE(in);
    return nlohmann::json::parse(in);
  };
  nlohmann::json detail = load("2026-11-25-H100-80GB-HBM3-smoke-a-sm90.json");
  detail["torch"] = load("smoke-torch-2026-12-01-2xH200.json");
  nlohmann::json s = kiln::verify::detail::smoke_summary(detail);
  CHECK(s["gemm_bf16_tflops_cublas"].get<double>() == Approx(806.87).epsilon(0.001));
  CHECK(s["gemm_bf16_tflops_torch_matmul"].get<double>() == Approx(815.69).epsilon(0.001));
  CHECK(s["ddp_ranks"] == 2);
  CHECK(s["ddp_busbw_gbps"].get<double>() == Approx(298.35).epsilon(0.001));
  CHECK(s["torch"] == "2.11.0+cu130");
  CHECK(s["gpus"].size() == 1);
  CHECK(s["line"].get<std::string>().find("NVIDIA H100 80GB HBM3") != std::string::npos);
  // The H100 run had one GPU (NCCL 1 rank): no busbw to show; DDP had 2 ranks.
  CHECK(s["line"].get<std::string>().find("NCCL busbw n/a (one rank)") != std::string::npos);
  CHECK(s["line"].get<std::string>().find("DDP 2 rank(s) busbw 298 GB/s") != std::string::npos);

  nlohmann::json one = detail;
  one["torch"] = load("smoke-torch-2026-12-01-1xH200.json");
  CHECK(kiln::verify::detail::smoke_summary(one)["line"].get<std::string>().find("DDP 1 rank(s) busbw n/a (one rank)") !=
        std::string::npos);

  kiln::verify::CheckResult gpu{"gpu", "h100", kiln::verify::CheckStatus::passed, {}, detail, false};
  gpu.detail["summary"] = s;
  kiln::verify::Report v;
  v.combos.push_back({"c", "sha256:1", true, "", {gpu}});
  kiln::plan::Plan p;
  p.matrix_name = "m";
  kiln::plan::Combo c;
  c.id = "c";
  c.status = kiln::plan::Status::valid;
  p.combos.push_back(c);
  auto r = kiln::report::assemble(p, nullptr, &v, nullptr);
  REQUIRE(r.rows.size() == 1);
  CHECK(r.rows[0].gemm_bf16_tflops == "807");
  CHECK(r.rows[0].measured.size() == 1);
}
