// Verdicts on synthetic fat-binary facts: which GPU each library serves, the
// image's overall answer, and the driver floors (catalog rules).
#include <catch2/catch.hpp>

#include "audit/verdict.h"
#include "catalog/compat.h"
#include "util/diag.h"

using namespace kiln;
using namespace kiln::audit;

namespace {

const catalog::Catalog& cat() {
  static const catalog::Catalog c = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  return c;
}

// A library with these SASS and PTX entries; PTX entries carry `isa`.
FatbinScan lib(std::string path, std::vector<Arch> sass, std::vector<Arch> ptx, std::pair<unsigned, unsigned> isa = {0, 0}) {
  FatbinInfo info;
  for (const auto& a : sass) info.entries.push_back({EntryKind::sass, a});
  for (const auto& a : ptx) {
    FatbinEntry e{EntryKind::ptx, a};
    e.version_major = static_cast<std::uint16_t>(isa.first);
    e.version_minor = static_cast<std::uint16_t>(isa.second);
    info.entries.push_back(e);
  }
  info.sass = std::move(sass);
  info.ptx = std::move(ptx);
  return {std::move(path), info, ""};
}

Components cuda(const std::string& runtime) {
  Components c;
  c.cuda_runtime.push_back({runtime, "usr/local/cuda/lib64/libcudart.so." + runtime});
  return c;
}

const GpuVerdict& gpu(const ImageVerdict& v, const std::string& name) {
  for (const auto& g : v.gpus)
    if (g.gpu.name == name) return g;
  FAIL("no verdict for " << name);
  throw 0;
}

}  // namespace

TEST_CASE("catalog compat: releases for runtimes and PTX ISA versions", "[audit][verdict]") {
  CHECK(catalog::release_for(cat(), Version::must("12.4.127"))->version.str() == "12.4");
  CHECK(catalog::release_for(cat(), Version::must("12.5"))->version.str() == "12.6");  // not catalogued: next newer
  CHECK(catalog::release_for(cat(), Version::must("13.9")) == nullptr);
  CHECK(catalog::release_for_ptx_isa(cat(), Version::must("8.4"))->version.str() == "12.4");
  CHECK(catalog::release_for_ptx_isa(cat(), Version::must("8.5"))->version.str() == "12.6");
  CHECK(catalog::release_for_ptx_isa(cat(), Version::must("9.0"))->version.str() == "13.0");
  CHECK(catalog::release_for_ptx_isa(cat(), Version::must("99.0")) == nullptr);
  CHECK(catalog::runtime_floor(*cat().find_cuda(Version::must("12.4"))).why ==
        "CUDA 12.4 runtime needs ≥ 525.60.13 (minor-version compatibility)");
}

TEST_CASE("per-library verdicts and their words", "[audit][verdict]") {
  const auto* rt = cat().find_cuda(Version::must("12.4"));
  const FatbinScan a = lib("libA.so", {{7, 5, 0}, {8, 0, 0}, {9, 0, 'a'}}, {{7, 5, 0}}, {8, 4});
  auto judge1 = [&](const char* name) { return judge_library(a.path, *a.info, resolve_gpus({name}, cat())[0], rt, cat()); };

  CHECK(judge1("A100").support == Support::native);
  CHECK(judge1("A10").via == "sm_80");  // 8.6 runs 8.0 SASS
  CHECK(judge1("H100").via == "sm_90a");
  const auto p100 = judge1("P100");
  CHECK(p100.support == Support::unsupported);
  CHECK(p100.reason == "no SASS for sm_60 and PTX only for compute_75");
  const auto b200 = judge1("B200");  // sm_90a is not forward compatible: PTX
  CHECK(b200.support == Support::ptx_jit);
  CHECK(b200.via == "compute_75");
  CHECK(b200.min_driver == "550.54.15");  // PTX ISA 8.4 -> CUDA 12.4's driver
  CHECK_THAT(b200.driver_why, Catch::Contains("PTX ISA 8.4 is written by CUDA 12.4"));

  const FatbinScan none = lib("libB.so", {{7, 5, 0}}, {});
  CHECK(judge_library(none.path, *none.info, resolve_gpus({"sm_60"}, cat())[0], rt, cat()).reason == "no SASS for sm_60 and no PTX");
}

TEST_CASE("the image serves a GPU only if every library does", "[audit][verdict]") {
  const std::vector<FatbinScan> libs = {
      lib("libA.so", {{7, 0, 0}, {7, 5, 0}, {8, 0, 0}, {9, 0, 0}}, {{9, 0, 0}}, {8, 4}),
      lib("libB.so", {{8, 0, 0}}, {{8, 0, 0}}),  // PTX without an ISA version: the runtime's toolkit
      lib("libC.so", {}, {}),                    // no device code: ignored
  };
  const auto gpus = resolve_gpus({"V100", "T4", "A100", "H100", "B200"}, cat());
  const ImageVerdict v = judge(cuda("12.4.127"), libs, gpus, cat());
  REQUIRE(v.release);
  CHECK(v.release->version.str() == "12.4");

  CHECK(gpu(v, "V100").support == Support::unsupported);
  CHECK(gpu(v, "V100").unsupported == std::vector<std::string>{"libB.so"});
  CHECK(gpu(v, "T4").support == Support::unsupported);
  CHECK(gpu(v, "A100").support == Support::native);
  CHECK(gpu(v, "A100").min_driver == "525.60.13");
  CHECK(gpu(v, "H100").support == Support::ptx_jit);  // libB runs through compute_80
  CHECK(gpu(v, "H100").jit == std::vector<std::string>{"libB.so"});
  CHECK(gpu(v, "H100").min_driver == "550.54.15");
  CHECK_THAT(gpu(v, "H100").driver_why, Catch::Contains("records no PTX ISA, so taking the CUDA 12.4 runtime"));
  CHECK(gpu(v, "B200").support == Support::ptx_jit);
  CHECK(gpu(v, "B200").libraries.size() == 2);

  // The PTX floor, unless B200's architecture needs a newer first driver.
  Version floor = Version::must("550.54.15");
  catalog::DriverFloor blackwell = catalog::architecture_floor(cat(), "B200", *ComputeCapability::parse("10.0"));
  if (!blackwell.driver.empty() && blackwell.driver > floor) floor = blackwell.driver;
  CHECK(v.min_driver == floor.str());
  CHECK(v.unreadable.empty());

  // check-driver's question.
  CHECK_FALSE(why_not_on_driver(v, Version::must("560.35.05")).empty());  // V100 and T4 unsupported
  const ImageVerdict served = judge(cuda("12.4.127"), libs, resolve_gpus({"A100", "H100"}, cat()), cat());
  CHECK(why_not_on_driver(served, Version::must("550.54.15")).empty());
  const auto old = why_not_on_driver(served, Version::must("535.104.05"));
  REQUIRE(old.size() == 1);
  CHECK_THAT(old[0], Catch::StartsWith("driver 535.104.05 is too old: H100 (sm_90): libB.so runs only through PTX compute_80"));
  const ImageVerdict a100 = judge(cuda("12.4.127"), libs, resolve_gpus({"A100"}, cat()), cat());
  CHECK(why_not_on_driver(a100, Version::must("525.60.13")).empty());
  CHECK(why_not_on_driver(a100, Version::must("470.82.01")) ==
        std::vector<std::string>{"driver 470.82.01 is too old: CUDA 12.4 runtime needs ≥ 525.60.13 (minor-version compatibility)"});
}

TEST_CASE("an unreadable fat binary fails closed: unknown, never native", "[audit][verdict]") {
  // Read as "no device code", a library whose fat binary cannot be read
  // would make the image native everywhere, and check-driver would pass.
  const std::vector<FatbinScan> libs = {
      lib("libA.so", {{6, 0, 0}, {7, 5, 0}, {8, 0, 0}, {9, 0, 0}}, {{9, 0, 0}}, {8, 4}),
      {"libD.so", std::nullopt, "fat-binary container size 99999 exceeds its section (truncated?) at 0x40"},
  };
  const auto gpus = resolve_gpus({"P100", "A100", "B200"}, cat());
  const ImageVerdict v = judge(cuda("12.4.127"), libs, gpus, cat());
  for (const auto& g : v.gpus) {
    INFO(g.gpu.name);
    CHECK(g.support == Support::unsupported);  // never native, never served
    CHECK(std::string(support_name(g)) == "unknown");
    CHECK(g.unknown == std::vector<std::string>{"libD.so"});
    CHECK(g.unsupported.empty());
    CHECK(g.min_driver.empty());
    REQUIRE(g.libraries.size() == 2);
    CHECK(g.libraries[1].unknown);
    CHECK_THAT(g.libraries[1].reason, Catch::StartsWith("fat binary unreadable: fat-binary container size 99999"));
  }
  CHECK(v.min_driver.empty());  // its PTX could need any driver
  CHECK_THAT(v.driver_why, Catch::StartsWith("unknown: libD.so: fat binary unreadable"));
  CHECK(v.unreadable == std::vector<std::string>{"libD.so: fat binary unreadable: fat-binary container size 99999 exceeds its "
                                                 "section (truncated?) at 0x40"});
  bool warned = false, no_code = false;
  for (const auto& w : v.warnings) {
    warned |= w.starts_with("libD.so: fat binary unreadable: ");
    no_code |= w.find("no library in the image carries CUDA device code") != std::string::npos;
  }
  CHECK(warned);
  CHECK_FALSE(no_code);

  // check-driver: the driver is new enough and P100 would be served by
  // libA alone; the unreadable library still fails it, by name.
  const auto why = why_not_on_driver(v, Version::must("999.0"));
  REQUIRE(why.size() == 4);
  CHECK_THAT(why[0], Catch::StartsWith("P100 (sm_60) unknown: libD.so: fat binary unreadable: fat-binary container size"));
  CHECK_THAT(why[3], Catch::StartsWith("minimum driver unknown: libD.so: fat binary unreadable"));
  // Without GPUs to judge (check-driver without --gpu) it fails too.
  const ImageVerdict floor_only = judge(cuda("12.4.127"), libs, {}, cat());
  CHECK(why_not_on_driver(floor_only, Version::must("999.0")) ==
        std::vector<std::string>{"minimum driver unknown: libD.so: fat binary unreadable: fat-binary container size 99999 exceeds "
                                 "its section (truncated?) at 0x40"});
  // An unsupported library is the stronger answer: the GPU is unsupported, not unknown.
  const ImageVerdict t4 = judge(cuda("12.4.127"), {lib("libE.so", {{8, 0, 0}}, {}), libs[1]}, resolve_gpus({"T4"}, cat()), cat());
  CHECK(std::string(support_name(t4.gpus[0])) == "unsupported");
  CHECK_THAT(why_not_on_driver(t4, Version::must("999.0"))[0], Catch::StartsWith("T4 (sm_75) unsupported: libE.so: no SASS"));
}

TEST_CASE("where the CUDA runtime version comes from", "[audit][verdict]") {
  Components c;
  CHECK_FALSE(cuda_runtime_of(c));
  c.torch = TorchInfo{"2.6.0+cu124", "12.4", "", "torch/version.py"};
  CHECK(cuda_runtime_of(c)->source == "torch/version.py (torch.version.cuda)");
  c.env_cuda_version = "12.4.1";
  CHECK(cuda_runtime_of(c)->source == "env:CUDA_VERSION");
  c.cuda_toolkit.push_back({"12.4.1", "usr/local/cuda/version.json"});
  CHECK(cuda_runtime_of(c)->source == "usr/local/cuda/version.json");
  c.cuda_runtime = {{"12.4.127", "a/libcudart.so.12.4.127"}, {"12.6.77", "b/libcudart.so.12.6.77"}};
  CHECK(cuda_runtime_of(c)->version.str() == "12.6.77");  // the newest: the strictest floor

  const ImageVerdict v = judge(c, {}, {}, cat());
  CHECK(v.min_driver == "525.60.13");
  bool several = false, no_code = false;
  for (const auto& w : v.warnings) {
    several |= w.find("several CUDA runtimes (12.4, 12.6)") != std::string::npos;
    no_code |= w.find("no library in the image carries CUDA device code") != std::string::npos;
  }
  CHECK(several);
  CHECK(no_code);
  CHECK_THROWS_AS(resolve_gpus({"Voodoo2"}, cat()), InputError);
}

TEST_CASE("an image's device code against the arch list it promises", "[audit][verdict]") {
  const ArchList offline = *ArchList::parse("7.5;9.0+PTX");
  // NVIDIA's libraries keep their own lists: serving each capability is enough.
  CHECK(arch_promise_gaps({lib("usr/lib/libcublasLt.so.12", {{5, 0, 0}, {7, 5, 0}, {8, 0, 0}, {9, 0, 0}}, {{9, 0, 0}}),
                           lib("usr/lib/libnccl.so.2", {{7, 0, 0}, {8, 0, 0}, {9, 0, 0}}, {}),  // sm_70 serves 7.5
                           lib("usr/lib/libcudart.so.12", {}, {})},
                          offline)
            .empty());
  const auto one = arch_promise_gaps({lib("libk.so", {{8, 0, 0}}, {{8, 0, 0}}), {"libbad.so", std::nullopt, "truncated"}}, offline);
  REQUIRE(one.size() == 2);
  CHECK(one[0] == "libk.so cannot run on 7.5: no SASS for sm_75 and PTX only for compute_80");
  CHECK_THAT(one[1], Catch::StartsWith("libbad.so: fat binary unreadable (truncated)"));

  // PyTorch 2.11.0+cu130 as audited on the GPU host (bench/results/gpu-audit-
  // check-2026-11-29-NVIDIA-H200.txt) against the catalog's arch list for it.
  const ArchList torch = *ArchList::parse("7.5;8.0;8.6;9.0;10.0;12.0+PTX");
  const std::vector<FatbinScan> wheel = {
      lib("torch/lib/libtorch_cuda.so",
          {{7, 5, 0}, {8, 0, 0}, {8, 6, 0}, {8, 9, 0}, {9, 0, 0}, {9, 0, 'a'}, {10, 0, 0}, {10, 0, 'a'}, {10, 3, 'a'}, {12, 0, 0},
           {12, 0, 'a'}, {12, 1, 'a'}},
          {}),
      lib("torch/lib/libtorch_cuda_linalg.so", {{8, 0, 0}, {8, 6, 0}, {9, 0, 0}, {10, 0, 0}, {12, 0, 0}}, {}),
  };
  CHECK(arch_promise_gaps(wheel, torch) ==
        std::vector<std::string>{
            "torch/lib/libtorch_cuda.so carries no PTX for compute_120 (7.5;8.0;8.6;9.0;10.0;12.0+PTX promises it: newer GPUs "
            "cannot JIT it)",
            "torch/lib/libtorch_cuda_linalg.so cannot run on 7.5: no SASS for sm_75 and no PTX"});
  // The framework library must carry each entry's own SASS, not only a compatible one.
  const auto narrow = arch_promise_gaps({lib("libtorch_cuda.so", {{8, 0, 0}}, {})}, *ArchList::parse("8.0;8.6"));
  CHECK(narrow == std::vector<std::string>{"libtorch_cuda.so carries no SASS for sm_86 (8.0;8.6 promises it)"});
}

namespace {

// The real catalog plus architecture limits and an aarch64-only GPU, set
// here so the test does not depend on the values recipes/ carries.
const catalog::Catalog& limited() {
  static const catalog::Catalog c = [] {
    catalog::Catalog x = cat();
    catalog::Architecture volta{"Volta", {*ComputeCapability::parse("7.0")}, Version::must("384.59"), 580u, {}};
    catalog::Architecture hopper{"Hopper", {*ComputeCapability::parse("9.0")}, Version::must("520.61.05"), std::nullopt, {}};
    x.architectures = {volta, hopper};
    for (auto& g : x.gpus)
      if (g.name == "Orin") g.platforms = {"aarch64"};
    return x;
  }();
  return c;
}

}  // namespace

TEST_CASE("audit verdicts: architecture limits, platform, cuDNN floor", "[audit][verdict]") {
  const std::vector<FatbinScan> libs = {lib("libA.so", {{3, 7, 0}, {7, 0, 0}, {8, 0, 0}, {8, 7, 0}, {9, 0, 0}}, {})};
  Components comp = cuda("12.4.127");
  comp.architecture = "amd64";
  comp.cudnn.push_back({"9.1.0", "usr/include/cudnn_version.h"});
  const auto gpus = resolve_gpus({"K80", "V100", "H100", "Orin"}, limited());
  const ImageVerdict v = judge(comp, libs, gpus, limited());
  CHECK(v.platform == "x86_64");
  CHECK(gpu(v, "Orin").support == Support::unsupported);
  CHECK(gpu(v, "Orin").reason == "Orin (sm_87) comes only in aarch64 systems: an x86_64 image never runs on it");
  CHECK(gpu(v, "K80").support == Support::unsupported);  // SASS for 3.7, but cuDNN 9 starts at 5.0
  CHECK_THAT(gpu(v, "K80").reason, Catch::StartsWith("cuDNN 9.1.0 does not serve K80 (sm_37)"));
  CHECK(gpu(v, "H100").min_driver == "525.60.13");  // Hopper's first driver is lower than the runtime floor

  const ImageVerdict ok = judge(comp, libs, resolve_gpus({"V100", "H100"}, limited()), limited());
  CHECK(why_not_on_driver(ok, Version::must("580.65.06")).empty());
  CHECK(why_not_on_driver(ok, Version::must("590.44.01")) ==
        std::vector<std::string>{"driver 590.44.01 no longer supports V100 (sm_70, Volta): Volta's last driver branch is R580; 590.xx dropped it"});
  const auto why = why_not_on_driver(judge(comp, libs, gpus, limited()), Version::must("580.65.06"));
  REQUIRE(why.size() == 2);
  CHECK_THAT(why[0], Catch::StartsWith("K80 (sm_37) unsupported: cuDNN 9.1.0 does not serve K80"));
  CHECK_THAT(why[1], Catch::StartsWith("Orin (sm_87) unsupported: Orin (sm_87) comes only in aarch64 systems"));

  comp.architecture = "arm64";
  CHECK(gpu(judge(comp, libs, gpus, limited()), "Orin").support == Support::native);
}

TEST_CASE("check-driver judges an image's NVIDIA_REQUIRE_CUDA by the catalog's rule", "[audit][verdict]") {
  const std::vector<FatbinScan> libs = {lib("libA.so", {{7, 5, 0}}, {})};
  Components comp = cuda("12.4.127");
  comp.env_require_cuda = "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536";
  const ImageVerdict v = judge(comp, libs, resolve_gpus({"T4"}, cat()), cat());
  // Listed branch at or above the floor: a condition, not a failure.
  CHECK(why_not_on_driver(v, Version::must("535.104.05")).empty());
  REQUIRE(conditions_on_driver(v, Version::must("535.104.05")).size() == 1);
  CHECK_THAT(conditions_on_driver(v, Version::must("535.104.05"))[0], Catch::Contains("only on brands tesla"));
  // Listed branch below the floor: forward compatibility on those brands.
  CHECK(why_not_on_driver(v, Version::must("470.82.01")).empty());
  CHECK_THAT(conditions_on_driver(v, Version::must("470.82.01"))[0], Catch::Contains("forward compatibility"));
  // Not listed and older than 12.4: the runtime refuses.
  const auto refused = why_not_on_driver(v, Version::must("545.29.06"));
  REQUIRE(refused.size() == 1);
  CHECK_THAT(refused[0], Catch::StartsWith("the container runtime refuses it: driver 545.29.06 predates CUDA 12.4"));
  CHECK(conditions_on_driver(v, Version::must("550.54.15")).empty());  // cuda>=12.4 holds
  CHECK(why_not_on_driver(v, Version::must("550.54.15")).empty());
}
