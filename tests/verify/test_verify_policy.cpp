// The policy's decision from the checks a combination has, and the static
// check of a CUDA (not PyTorch) image read from a real `docker save`
// archive: versions, driver libraries, compilers, device code.
#include <catch2/catch.hpp>

#include "image/image.h"
#include "image_builder.h"
#include "matrix/matrix.h"
#include "skip.h"
#include "support.h"
#include "verify/internal.h"

using namespace kiln;
using namespace kiln::testing;
using namespace kiln::verify::test;

namespace {

verify::Runner runner(const std::string& name, const std::string& gpu, std::vector<std::string> classes) {
  verify::Runner r;
  r.name = name;
  r.gpu = *matrix::parse_gpu_mode(gpu);
  r.gpu_classes = std::move(classes);
  return r;
}

verify::CheckResult check(const std::string& what, const std::string& on, const std::string& status,
                          std::vector<std::string> problems = {}) {
  return {what, on, verify::parse_check_status(status), std::move(problems), nlohmann::json::object(), false};
}

matrix::Policy policy(std::vector<std::string> checks, std::vector<std::string> classes = {}) {
  matrix::Policy p;
  p.verify = std::move(checks);
  p.gpu_classes = std::move(classes);
  return p;
}

verify::ComboVerdict decided(std::vector<verify::CheckResult> checks, const matrix::Policy& p,
                             const std::vector<verify::Runner>& runners) {
  verify::ComboVerdict v{"c", "sha256:1", false, "", std::move(checks)};
  verify::detail::decide(v, p, runners, *ArchList::parse("7.5;8.0;9.0"));
  return v;
}

}  // namespace

TEST_CASE("policy: every required check, on this image", "[verify][policy]") {
  const auto local = runner("local", "none", {});
  const auto h100 = runner("h100", "nvidia", {"sm_90"});
  const auto t4 = runner("t4", "nvidia", {"sm_75"});

  SECTION("static only: a passed static check verifies") {
    auto v = decided({check("static", "local", "passed")}, policy({"static"}), {local});
    CHECK(v.verified);
    CHECK(v.reason.empty());
  }
  SECTION("static only: not run") {
    auto v = decided({}, policy({"static"}), {local});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "static check not run");
  }
  SECTION("static only: failed, with its first problem") {
    auto v = decided({check("static", "local", "failed", {"label io.kiln.combo is \"\"", "second"})}, policy({"static"}), {local});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "static check failed: label io.kiln.combo is \"\"");
  }
  SECTION("gpu on sm_90 with no runner of that class: awaiting one") {
    auto v = decided({check("static", "local", "passed")}, policy({"static", "gpu"}, {"sm_90"}), {local, t4});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "awaiting a GPU runner of class sm_90");
  }
  SECTION("gpu passed on a runner of another class does not count") {
    auto v = decided({check("static", "local", "passed"), check("gpu", "t4", "passed")}, policy({"static", "gpu"}, {"sm_90"}),
                     {local, t4});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "awaiting a GPU runner of class sm_90");
  }
  SECTION("gpu passed on a runner of the class: verified") {
    auto v = decided({check("static", "local", "passed"), check("gpu", "h100", "passed")}, policy({"static", "gpu"}, {"sm_90"}),
                     {local, h100});
    CHECK(v.verified);
  }
  SECTION("a gpu check that failed names its runner and problem") {
    auto v = decided({check("static", "local", "passed"), check("gpu", "h100", "failed", {"cuBLAS GEMM wrong: max error 3.2"})},
                     policy({"static", "gpu"}, {"sm_90"}), {local, h100});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "gpu check failed on h100: cuBLAS GEMM wrong: max error 3.2");
  }
  SECTION("no GPU found on a runner of the class is never a pass") {
    auto v = decided({check("static", "local", "passed"), check("gpu", "h100", "no-gpu")}, policy({"static", "gpu"}, {"sm_90"}),
                     {local, h100});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "gpu check for sm_90 did not pass");
  }
  SECTION("two classes: each needs its own pass; every reason is given") {
    auto v = decided({check("static", "local", "failed", {"no nvcc"}), check("gpu", "h100", "passed")},
                     policy({"static", "gpu"}, {"sm_90", "sm_75"}), {local, h100, t4});
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "static check failed: no nvcc; gpu check for sm_75 did not pass");
  }
}

TEST_CASE("check status words: what the ledger and JSON hold", "[verify][policy]") {
  using verify::CheckStatus;
  for (CheckStatus s : {CheckStatus::passed, CheckStatus::failed, CheckStatus::no_gpu, CheckStatus::error})
    CHECK(verify::parse_check_status(verify::to_string(s)) == s);
  CHECK(std::string(verify::to_string(CheckStatus::no_gpu)) == "no-gpu");
  CHECK(verify::parse_check_status("skipped") == CheckStatus::error);  // a word kiln never writes
}

namespace {

const std::string kLib = "usr/lib/x86_64-linux-gnu/";

plan::Combo cuda_combo(const std::string& flavor, const std::string& arch = "8.0;9.0") {
  plan::Combo c;
  c.id = "cuda12.4-debian13-" + flavor;
  c.versions.cuda = "12.4.1";
  c.versions.cudnn = "9.1.0";
  c.versions.nccl = "2.22.3";
  c.versions.flavor = flavor;
  c.arch = *ArchList::parse(arch);
  return c;
}

// A saved image with the CUDA 12.4 userland's library names, plus `extra`
// files; read back through the image room.
image::ImageFs cuda_image(std::vector<TarItem> extra) {
  std::vector<TarItem> items{dir("usr/"), dir("usr/lib/"), dir(kLib),
                             file(kLib + "libcudart.so.12.4.127", "x"), sym(kLib + "libcudart.so.12", "libcudart.so.12.4.127"),
                             file(kLib + "libnccl.so.2.22.3", "x"), file(kLib + "libcudnn.so.9.1.0", "x")};
  if (extra.empty()) return saved_image({items});
  return saved_image({items, extra});  // a second layer, as a later RUN step
}

}  // namespace

TEST_CASE("static check of a CUDA image's files against its plan", "[verify][static]") {
  SECTION("a runtime image with what the plan promises passes") {
    auto r = verify::detail::static_check_files(cuda_combo("runtime"), cuda_image({}));
    INFO(all(r));
    CHECK(r.status == verify::CheckStatus::passed);
    CHECK(r.problems.empty());
    CHECK(r.detail["found"]["CUDA runtime"][0]["version"] == "12.4.127");
    CHECK(r.detail["found"]["NCCL"][0]["version"] == "2.22.3");
  }
  SECTION("another NCCL than planned") {
    auto c = cuda_combo("runtime");
    c.versions.nccl = "2.21.5";
    auto r = verify::detail::static_check_files(c, cuda_image({}));
    CHECK(r.status == verify::CheckStatus::failed);
    CHECK(has_problem(r, "the plan promises NCCL 2.21.5, the image has 2.22.3"));
  }
  SECTION("a planned cuDNN the image lacks") {
    auto c = cuda_combo("runtime");
    c.versions.cudnn = "9.8.0";
    auto r = verify::detail::static_check_files(c, cuda_image({}));
    CHECK(has_problem(r, "the plan promises cuDNN 9.8.0, the image has 9.1.0"));
  }
  SECTION("the driver library inside the image would shadow the host's") {
    auto r = verify::detail::static_check_files(cuda_combo("runtime"), cuda_image({file(kLib + "libcuda.so.550.54.15", "x")}));
    CHECK(r.status == verify::CheckStatus::failed);
    CHECK(has_problem(r, "the image ships the driver library /" + kLib + "libcuda.so.550.54.15"));
  }
  SECTION("a runtime image with a compiler") {
    auto r = verify::detail::static_check_files(cuda_combo("runtime"), cuda_image({dir("usr/bin/"), file("usr/bin/gcc", "x")}));
    CHECK(has_problem(r, "the runtime image holds a compiler (gcc)"));
  }
  SECTION("a devel image needs nvcc; through /usr/local/cuda's link is enough") {
    auto none = verify::detail::static_check_files(cuda_combo("devel"), cuda_image({}));
    CHECK(has_problem(none, "the devel image has no nvcc"));
    auto linked = verify::detail::static_check_files(
        cuda_combo("devel"), cuda_image({dir("usr/local/"), dir("usr/local/cuda-12.4/"), dir("usr/local/cuda-12.4/bin/"),
                                          file("usr/local/cuda-12.4/bin/nvcc", "x"), sym("usr/local/cuda", "cuda-12.4")}));
    INFO(all(linked));
    CHECK(linked.status == verify::CheckStatus::passed);
  }
}

#ifdef KILN_TORCH_LINALG_FIXTURE
TEST_CASE("static check: device code against the arch list", "[verify][static][nvcc]") {
  // A library nvcc built here for 8.0;9.0 (SASS only).
  const std::string lib = slurp(KILN_TORCH_LINALG_FIXTURE);
  REQUIRE(!lib.empty());
  auto fs = [&] { return cuda_image({dir("opt/"), dir("opt/app/"), file("opt/app/libapp_cuda.so", lib)}); };
  SECTION("the list it was built for") {
    auto r = verify::detail::static_check_files(cuda_combo("runtime", "8.0;9.0"), fs());
    INFO(all(r));
    CHECK(r.status == verify::CheckStatus::passed);
    REQUIRE(r.detail["device_code"]["libraries"].size() == 1);
    CHECK(r.detail["device_code"]["libraries"][0]["sass"] == nlohmann::json{"sm_80", "sm_90"});
  }
  SECTION("a capability it cannot run on") {
    auto r = verify::detail::static_check_files(cuda_combo("runtime", "7.5;8.0;9.0"), fs());
    CHECK(r.status == verify::CheckStatus::failed);
    CHECK(has_problem(r, "opt/app/libapp_cuda.so cannot run on 7.5"));
  }
}
#else
TEST_CASE("static check: device code against the arch list", "[verify][static][nvcc]") {
  KILN_SKIP("nvcc not found at configure time");
}
#endif

// Issue 15.4: each platform is verified on its own runner class. A GPU check
// never runs emulated, so a pass on an x86_64 GPU host says nothing about an
// arm64 image; with no runner of its platform the image waits, it does not fail.
TEST_CASE("policy: gpu checks count only on runners of the image's platform", "[verify][policy][platform]") {
  const auto local = runner("local", "none", {});
  const auto h100 = runner("h100", "nvidia", {"sm_90"});  // platform default: linux/amd64
  auto gh200 = runner("gh200", "nvidia", {"sm_90"});
  gh200.platform = "linux/arm64";
  const auto p = policy({"static", "gpu"}, {"sm_90"});
  auto decide_for = [&](std::vector<verify::CheckResult> checks, const std::vector<verify::Runner>& runners,
                        const std::string& platform) {
    verify::ComboVerdict v{"c", "sha256:1", false, "", std::move(checks)};
    verify::detail::decide(v, p, runners, *ArchList::parse("7.5;8.0;9.0"), platform);
    return v;
  };
  CHECK(h100.platform == "linux/amd64");

  SECTION("an arm64 image with only an x86_64 GPU runner awaits an arm64 one") {
    auto v = decide_for({check("static", "local", "passed")}, {local, h100}, "linux/arm64");
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "awaiting a runner for linux/arm64 with GPU class sm_90 (runner h100 is linux/amd64)");
  }
  SECTION("a pass on the x86_64 runner does not vouch for the arm64 image, a failure there does not fail it") {
    auto pass = decide_for({check("static", "local", "passed"), check("gpu", "h100", "passed")}, {local, h100}, "linux/arm64");
    CHECK_FALSE(pass.verified);
    CHECK(pass.reason.starts_with("awaiting a runner for linux/arm64"));
    auto fail = decide_for({check("static", "local", "passed"), check("gpu", "h100", "failed", {"exec format error"})},
                           {local, h100}, "linux/arm64");
    CHECK(fail.reason.starts_with("awaiting a runner for linux/arm64"));
  }
  SECTION("a pass on an arm64 runner of the class verifies the arm64 image") {
    auto v = decide_for({check("static", "local", "passed"), check("gpu", "gh200", "passed")}, {local, h100, gh200}, "linux/arm64");
    CHECK(v.verified);
  }
  SECTION("and not the amd64 one") {
    auto v = decide_for({check("static", "local", "passed"), check("gpu", "gh200", "passed")}, {local, gh200}, "linux/amd64");
    CHECK_FALSE(v.verified);
    CHECK(v.reason == "awaiting a runner for linux/amd64 with GPU class sm_90 (runner gh200 is linux/arm64)");
  }
  SECTION("amd64 with no runner of the class at all: the words stay as they were") {
    auto v = decide_for({check("static", "local", "passed")}, {local}, "linux/amd64");
    CHECK(v.reason == "awaiting a GPU runner of class sm_90");
  }
}
