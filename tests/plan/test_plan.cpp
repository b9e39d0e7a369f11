// Expansion, exclusion and resolution against the real catalog.
#include <catch2/catch.hpp>
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "catalog/compat.h"
#include "plan/plan.h"
#include "util/diag.h"

using namespace kiln;

namespace {

const catalog::Catalog& cat() {
  static catalog::Catalog c = catalog::Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  return c;
}

plan::Plan plan_of(const std::string& toml, const plan::Query& q = {}) {
  return plan::make_plan(matrix::parse_matrix_text(toml, "m.toml"), cat(), q);
}

const plan::Combo& find(const plan::Plan& p, const std::string& id) {
  for (const auto& c : p.combos)
    if (c.id == id) return c;
  FAIL("no combination " << id);
  throw;
}

std::string errors_of(const std::string& toml, const plan::Query& q = {}) {
  try {
    plan_of(toml, q);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

const char* kTorch = R"(
name = "t"
targets = ["T4", "H100", "B200"]
[axes]
pytorch = ["2.6", "2.8"]
cuda = ["12.4", "12.8"]
cudnn = ["9"]
os = ["ubuntu22.04"]
flavor = ["runtime"]
[policy]
targets = "report"
[registry]
url = "127.0.0.1:5000"
repository = "kiln/pytorch"
)";

}  // namespace

TEST_CASE("siblings: the same axes, the other flavor, valid only", "[plan]") {
  const plan::Plan p = plan::make_plan(matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/offline.toml"), cat());
  const plan::Combo& runtime = find(p, "cuda12.4-debian13-runtime");
  const plan::Combo& devel = find(p, "cuda12.4-debian13-devel");
  CHECK(p.sibling(runtime, "devel") == &devel);
  CHECK(p.sibling(devel, "runtime") == &runtime);
  CHECK(p.sibling(devel, "devel") == &devel);  // itself: a devel image compiles its own smoke suite
  // cuda12.4 on debian12 is excluded: never anyone's sibling.
  const plan::Combo& excluded = find(p, "cuda12.4-debian12-devel");
  REQUIRE(excluded.status == plan::Status::excluded);
  CHECK(p.sibling(excluded, "runtime") == nullptr);
}

TEST_CASE("torch 2.6.0 + CUDA 12.4 resolves to the versions its wheel bundles", "[plan]") {
  auto p = plan_of(kTorch);
  CHECK(p.combos.size() == 4);
  const auto& c = find(p, "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime");
  CHECK(c.status == plan::Status::valid);
  CHECK(c.versions.pytorch == "2.6.0");
  CHECK(c.versions.cuda == "12.4.1");
  CHECK(c.versions.cudnn == "9.1.0.70");
  CHECK(c.versions.nccl == "2.21.5");
  CHECK(c.versions.python == "3.10");
  CHECK(c.min_driver == "525.60.13");
  CHECK(c.arch.str() == "5.0;6.0;7.0;7.5;8.0;8.6;9.0");
  CHECK(c.base == "nvidia/cuda:12.4.1-runtime-ubuntu22.04");
  CHECK(c.require_cuda.rfind("cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471", 0) == 0);
  CHECK(c.require_cuda.find("brand=titanrtx,driver>=535,driver<536") != std::string::npos);
  REQUIRE(c.tags.size() == 1);
  CHECK(c.tags[0] == "127.0.0.1:5000/kiln/pytorch:2.6.0-cuda12.4-cudnn9-runtime");
  CHECK(c.install.torch_index == "https://download.pytorch.org/whl/cu124");
  CHECK(c.install.torch_packages == std::vector<std::string>{"torch==2.6.0"});
  // The bundled cuDNN and NCCL exact, as pip constraints named for the CUDA major.
  CHECK(c.install.torch_constraints == std::vector<std::string>{"nvidia-cudnn-cu12==9.1.0.70", "nvidia-nccl-cu12==2.21.5"});
  REQUIRE(c.targets.size() == 3);
  CHECK(c.targets[0].support == Support::native);
  CHECK(c.targets[2].support == Support::unsupported);  // B200: no sm_100, no PTX
  CHECK(c.targets[2].reason == "no SASS for B200 (sm_100) and no PTX at or below compute_100 in the arch list 5.0;6.0;7.0;7.5;8.0;8.6;9.0");
  CHECK_FALSE(c.inferred.empty());  // the 2.6 arch list is unconfirmed
}

TEST_CASE("a CUDA build PyTorch never published is excluded with its rule", "[plan]") {
  auto p = plan_of(kTorch);
  const auto& c = find(p, "pytorch2.6-cuda12.8-cudnn9-ubuntu22.04-runtime");
  CHECK(c.status == plan::Status::excluded);
  CHECK(c.rule == "pytorch-cuda-build");
  CHECK(c.reason == "PyTorch 2.6.0 publishes no CUDA 12.8 build (its CUDA builds: 11.8, 12.4, 12.6)");
  CHECK(c.tags.empty());
}

TEST_CASE("the cudnn axis must match what the wheel bundles", "[plan]") {
  auto p = plan_of(R"(name="t"
[axes]
pytorch=["2.3"]
cuda=["12.1"]
cudnn=["9"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)");
  CHECK(p.combos[0].status == plan::Status::excluded);
  CHECK(p.combos[0].reason == "PyTorch 2.3.1+cu121 bundles cuDNN 8.9.2.26, not cuDNN 9");
}

TEST_CASE("the distribution's Python decides which wheels apply", "[plan]") {
  auto p = plan_of(R"(name="t"
[axes]
pytorch=["2.9"]
cuda=["12.6"]
os=["ubuntu20.04", "ubuntu22.04"]
python=["3.10"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)");
  const auto& focal = find(p, "pytorch2.9-cuda12.6-ubuntu20.04-py3.10-runtime");
  CHECK(focal.status == plan::Status::excluded);
  CHECK(focal.reason == "ubuntu20.04 ships Python 3.8, not 3.10 (kiln installs the distribution's Python)");
  CHECK(find(p, "pytorch2.9-cuda12.6-ubuntu22.04-py3.10-runtime").status == plan::Status::valid);
}

TEST_CASE("policy targets = all excludes a combination that cannot serve a target", "[plan]") {
  auto p = plan_of(R"(name="t"
targets=["P100", "H100"]
[axes]
pytorch=["2.11"]
cuda=["12.6", "13.0"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)");
  const auto& c13 = find(p, "pytorch2.11-cuda13.0-ubuntu22.04-runtime");
  CHECK(c13.status == plan::Status::excluded);
  CHECK(c13.rule == "target-unsupported");
  CHECK(c13.reason == "CUDA 13.0 cannot target P100 (sm_60): its nvcc emits SASS for 7.5–12.1 only");
  CHECK(find(p, "pytorch2.11-cuda12.6-ubuntu22.04-runtime").status == plan::Status::valid);
}

TEST_CASE("a GPU served only through PTX raises the driver floor to the toolkit's driver", "[plan]") {
  auto p = plan_of(R"(name="t"
targets=["A100", "H100"]
arch_list="8.0+PTX"
[axes]
cuda=["12.4"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)");
  const auto& c = p.combos[0];
  CHECK(c.status == plan::Status::valid);
  CHECK(c.targets[0].support == Support::native);
  CHECK(c.targets[1].support == Support::ptx_jit);
  CHECK(c.targets[1].via == "compute_80");
  CHECK(c.min_driver == "550.54.15");
}

TEST_CASE("an explicit arch list outside the toolkit's range is excluded", "[plan]") {
  auto p = plan_of(R"(name="t"
arch_list="6.0;9.0"
[axes]
cuda=["13.0"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)");
  CHECK(p.combos[0].status == plan::Status::excluded);
  CHECK(p.combos[0].reason.rfind("CUDA 13.0 cannot target sm_60 (P100): its nvcc emits SASS for 7.5–12.1 only", 0) == 0);
}

TEST_CASE("targets derive the arch list of images without PyTorch", "[plan]") {
  auto p = plan_of(R"(name="t"
targets=["P100", "T4", "H100", "B200"]
[axes]
cuda=["12.4"]
os=["ubuntu22.04"]
flavor=["runtime"]
[policy]
targets="report"
[tags]
templates=["{id}"]
)");
  const auto& c = p.combos[0];
  CHECK(c.arch.str() == "6.0;7.5;9.0+PTX");
  CHECK(c.targets[3].support == Support::ptx_jit);  // B200 through compute_90
}

TEST_CASE("matrix rules exclude and include, and say where", "[plan]") {
  auto p = plan_of(R"(name="t"
[axes]
cuda=["12.4", "12.6"]
os=["ubuntu22.04"]
flavor=["runtime"]
[[exclude]]
cuda="12.6"
os="ubuntu22.04"
reason="superseded"
[[include]]
cuda="12.6"
os="ubuntu24.04"
[tags]
templates=["{id}"]
)");
  REQUIRE(p.combos.size() == 3);
  CHECK(find(p, "cuda12.6-ubuntu22.04-runtime").reason == "excluded by [[exclude]] #1 at m.toml:6:1: superseded");
  CHECK(find(p, "cuda12.6-ubuntu24.04-runtime").status == plan::Status::valid);
}

TEST_CASE("unknown versions, OS and GPUs are errors at their position", "[plan][bad-input]") {
  auto e = errors_of("name='t'\ntargets=['T4','Voodoo2']\n[axes]\npytorch=['3.0']\ncuda=['12.4','12.3']\nos=['ubuntu26.04']\nflavor=['runtime']\n");
  CHECK(e.find("m.toml:2:15: error: unknown GPU \"Voodoo2\"") != std::string::npos);
  CHECK(e.find("m.toml:4:10: error: unknown PyTorch version 3.0") != std::string::npos);
  CHECK(e.find("m.toml:5:14: error: unknown CUDA version 12.3") != std::string::npos);
  CHECK(e.find("m.toml:6:5: error: unknown os \"ubuntu26.04\"") != std::string::npos);
}

TEST_CASE("tag templates must produce distinct, valid tags", "[plan][bad-input]") {
  auto e = errors_of("name='t'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime','devel']\n[tags]\ntemplates=['cuda{cuda}']\n");
  CHECK(e.find("m.toml:7:12: error: tag \"cuda12.4\" would name both") != std::string::npos);
  e = errors_of("name='t'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n");
  CHECK(e.find("uses {pytorch}, which combination cuda12.4-ubuntu22.04-runtime does not have") != std::string::npos);
  e = errors_of("name='t'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n[tags]\ntemplates=['a/b:{cuda}']\n");
  CHECK(e.find("is not a valid image tag") != std::string::npos);
}

TEST_CASE("--driver and --gpu answer whether each combination runs", "[plan][query]") {
  plan::Query q{"535.104.05", {"P100"}};
  auto p = plan_of(R"(name="t"
[axes]
pytorch=["2.11"]
cuda=["12.6", "13.0"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)", q);
  const auto& c126 = find(p, "pytorch2.11-cuda12.6-ubuntu22.04-runtime");
  CHECK(c126.usable == true);
  const auto& c130 = find(p, "pytorch2.11-cuda13.0-ubuntu22.04-runtime");
  CHECK(c130.usable == false);
  REQUIRE(c130.why_not.size() == 1);
  CHECK(c130.why_not[0] == "CUDA 13.0 cannot target P100 (sm_60): its nvcc emits SASS for 7.5–12.1 only");
  // R535 is one of NVIDIA_REQUIRE_CUDA's alternatives for 13.0: below the
  // minor-version floor it runs there through forward compatibility only.
  auto t4 = plan_of(R"(name="t"
[axes]
pytorch=["2.11"]
cuda=["13.0"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)", {"535.104.05", {"T4"}});
  CHECK(t4.combos[0].usable == true);
  REQUIRE(t4.combos[0].conditions.size() == 1);
  CHECK(t4.combos[0].conditions[0].find("forward compatibility") != std::string::npos);
  CHECK(errors_of("name='t'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n[tags]\ntemplates=['{id}']\n",
                  {"", {"Voodoo2"}}).find("unknown GPU \"Voodoo2\"") != std::string::npos);
}

TEST_CASE("Debian combinations install CUDA from the packages Debian ships", "[plan]") {
  auto p = plan_of(R"(name="t"
[axes]
cuda=["11.8", "12.4"]
os=["debian12", "debian13"]
flavor=["devel"]
[tags]
templates=["{id}"]
[[base]]
os="debian13"
image="kiln/debian:13"
)");
  const auto& trixie = find(p, "cuda12.4-debian13-devel");
  CHECK(trixie.status == plan::Status::valid);
  CHECK(trixie.versions.cuda == "12.4.131");
  CHECK(trixie.versions.nccl == "2.22.3");
  CHECK(trixie.base == "kiln/debian:13");
  CHECK(trixie.install.method == "apt");
  CHECK(trixie.install.remove_driver_libs);
  CHECK(std::count(trixie.install.packages.begin(), trixie.install.packages.end(), "nvidia-cuda-toolkit") == 1);
  CHECK(find(p, "cuda11.8-debian12-devel").base == "debian:12");
  CHECK(find(p, "cuda12.4-debian12-devel").reason == "no recipe installs CUDA 12.4 on debian12 (recipes for debian12: CUDA 11.8)");
}

TEST_CASE("the JSON schema holds every documented field", "[plan][json]") {
  auto j = plan::to_json(plan_of(kTorch, {"550.54.15", {"H100"}}));
  CHECK(j["schema"] == "kiln.plan/v2");
  CHECK(j["matrix"]["name"] == "t");
  const auto& c = j["combos"][0];
  for (const char* key : {"id", "status", "reason", "rule", "versions", "arch_list", "targets", "min_driver", "require_cuda",
                          "platform", "tags", "base", "inferred", "sources", "query"})
    CHECK(c.contains(key));
  CHECK(c["query"].contains("conditions"));
  CHECK(j.contains("catalog_collected"));
  CHECK(j["warnings"].is_array());
  for (const char* key : {"pytorch", "cuda", "cudnn", "nccl", "python", "os", "flavor"}) CHECK(c["versions"].contains(key));
  CHECK(c["targets"]["T4"]["support"] == "native");
  CHECK(c["query"]["usable"] == true);
  CHECK(j["summary"]["valid"] == 2);
}

TEST_CASE("the shipped matrices plan without errors", "[plan][matrices]") {
  for (const char* name : {"pytorch", "legacy-gpus", "offline"}) {
    INFO(name);
    auto m = matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/" + name + ".toml");
    auto p = plan::make_plan(m, cat());
    CHECK(p.count(plan::Status::valid) > 0);
  }
}

TEST_CASE("[[policy.override]] gives matching combinations their own checks", "[plan][policy]") {
  auto p = plan_of(R"(name="t"
[axes]
cuda=["12.4"]
os=["ubuntu22.04"]
flavor=["runtime", "devel"]
[policy]
verify=["static", "gpu"]
gpu_classes=["sm_90"]
[[policy.override]]
flavor="devel"
verify=["static"]
[tags]
templates=["{id}"]
)");
  CHECK(find(p, "cuda12.4-ubuntu22.04-runtime").policy.verify == std::vector<std::string>{"static", "gpu"});
  CHECK(find(p, "cuda12.4-ubuntu22.04-devel").policy.verify == std::vector<std::string>{"static"});
  CHECK(find(p, "cuda12.4-ubuntu22.04-devel").policy.gpu_classes.empty());
}

namespace {

// The real catalog plus the facts the new schema adds, set here so these
// tests do not depend on the values recipes/ carries.
catalog::Catalog with_limits() {
  catalog::Catalog c = cat();
  c.architectures.clear();
  auto arch = [&](const char* name, std::vector<const char*> ccs, const char* first, std::optional<unsigned> last) {
    catalog::Architecture a{name, {}, Version::must(first), last, {}};
    for (const char* cc : ccs) a.cc.push_back(*ComputeCapability::parse(cc));
    c.architectures.push_back(a);
  };
  arch("Pascal", {"6.0", "6.1"}, "361.28", 580);
  arch("Volta", {"7.0"}, "384.59", 580);
  arch("Hopper", {"9.0"}, "520.61.05", std::nullopt);
  arch("Blackwell", {"10.0", "12.0"}, "570.26", std::nullopt);
  for (auto& g : c.gpus)
    if (g.name == "Orin") g.platforms = {"aarch64"};
  for (auto& r : c.cuda)
    if (r.version == Version::must("12.4"))
      r.require_cuda = "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536";
  return c;
}

const char* kOne = R"(name="t"
targets = ["T4", "H100", "B200", "Orin"]
[axes]
pytorch=["2.8"]
cuda=["12.8"]
os=["ubuntu22.04"]
flavor=["runtime"]
[policy]
targets = "report"
[tags]
templates=["{id}"]
)";

}  // namespace

TEST_CASE("each GPU's architecture limits the driver, and the message names the limit", "[plan][query]") {
  catalog::Catalog c = with_limits();
  auto m = matrix::parse_matrix_text(kOne, "m.toml");
  auto p = plan::make_plan(m, c, {"535.104.05", {"B200", "H100"}});
  const auto& combo = p.combos.at(0);
  CHECK(combo.usable == false);
  REQUIRE(combo.why_not.size() == 1);
  CHECK(combo.why_not[0] == "driver 535.104.05 is too old for B200 (sm_100, Blackwell): it needs ≥ 570.26, the first driver with Blackwell support");
  // The target's own floor is its architecture's first driver.
  CHECK(combo.targets[2].min_driver == "570.26");
  CHECK(combo.targets[2].driver_why == "B200 (sm_100, Blackwell) needs driver ≥ 570.26: first driver with Blackwell support");
  CHECK(combo.min_driver == "570.26");

  auto old = plan::make_plan(matrix::parse_matrix_text(R"(name="t"
[axes]
pytorch=["2.6"]
cuda=["12.6"]
os=["ubuntu22.04"]
flavor=["runtime"]
[tags]
templates=["{id}"]
)", "m.toml"), c, {"590.44.01", {"V100", "P100"}});
  REQUIRE(old.combos[0].why_not.size() == 2);
  CHECK(old.combos[0].why_not[0] == "driver 590.44.01 no longer supports V100 (sm_70, Volta): Volta's last driver branch is R580; 590.xx dropped it");
  CHECK(old.combos[0].why_not[1].find("Pascal's last driver branch is R580") != std::string::npos);
}

TEST_CASE("x86_64 images never serve aarch64-only GPUs; [image] platform says otherwise", "[plan]") {
  catalog::Catalog c = with_limits();
  auto p = plan::make_plan(matrix::parse_matrix_text(kOne, "m.toml"), c);
  const auto& orin = p.combos.at(0).targets.at(3);
  CHECK(orin.support == Support::unsupported);
  CHECK(orin.reason == "Orin (sm_87) comes only in aarch64 systems: an x86_64 image never runs on it");
  std::string arm = std::string(kOne) + "[image]\nplatform = \"aarch64\"\n";
  // The catalog records no aarch64 wheels of 2.8.0+cu128 (only cu129): an
  // aarch64 torch image is excluded by rule until recorded (here, as test data).
  CHECK(plan::make_plan(matrix::parse_matrix_text(arm, "m.toml"), c).combos.at(0).rule == "pytorch-platform");
  for (auto& r : c.pytorch)
    for (auto& b : r.builds) b.platforms = {"x86_64", "aarch64"};
  auto pa = plan::make_plan(matrix::parse_matrix_text(arm, "m.toml"), c);
  CHECK(pa.combos.at(0).platform == "aarch64");
  CHECK(pa.combos.at(0).targets.at(3).reason.find("aarch64 systems") == std::string::npos);
  CHECK(errors_of(std::string(kOne) + "[image]\nplatform = \"arm\"\n").find("platform must be \"x86_64\" or \"aarch64\"") !=
        std::string::npos);
}

TEST_CASE("NVIDIA_REQUIRE_CUDA is the catalog's string when it has one", "[plan]") {
  catalog::Catalog c = with_limits();
  auto p = plan::make_plan(matrix::parse_matrix_text(R"(name="t"
[axes]
cuda=["12.4"]
os=["ubuntu22.04", "debian13"]
flavor=["runtime"]
[tags]
templates=["{id}"]
[[base]]
os="debian13"
image="kiln/debian:13"
)", "m.toml"), c, {"545.29.06", {}});
  const auto& nv = find(p, "cuda12.4-ubuntu22.04-runtime");
  CHECK(nv.require_cuda == "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536");
  CHECK(nv.inferred.empty());
  // Without cuda-compat (Debian's packages) the alternative below the
  // minor-version floor is dropped; the rest is kept as written.
  CHECK(find(p, "cuda12.4-debian13-runtime").require_cuda == "cuda>=12.4 brand=tesla,driver>=535,driver<536");
  // R545 reports CUDA 12.3 and is no alternative: the runtime refuses.
  REQUIRE(nv.why_not.size() == 1);
  CHECK(nv.why_not[0].find("the container runtime refuses it") != std::string::npos);
  CHECK(nv.why_not[0].find("alternatives: R470, R535") != std::string::npos);
}

TEST_CASE("\"latest\" takes the newest release and warns when the catalog is stale", "[plan][staleness]") {
  catalog::Catalog c = cat();
  c.collected = "2026-01-01";
  const char* latest = R"(name="t"
[axes]
pytorch=["latest"]
cuda=["12.6", "latest"]
os=["ubuntu22.04"]
flavor=["runtime"]
[policy]
targets = "report"
[tags]
templates=["{id}"]
[[exclude]]
pytorch = "latest"
cuda = "12.6"
reason = "only the newest CUDA"
)";
  auto m = matrix::parse_matrix_text(latest, "m.toml");
  auto p = plan::make_plan(m, c, {}, "2026-11-30");
  Version newest;
  for (const auto& r : c.pytorch) newest = std::max(newest, r.version);
  CHECK(p.combos.at(0).axes.at("pytorch") == newest.prefix(2).str());
  CHECK(p.combos.at(0).status == plan::Status::excluded);  // the rule written with "latest" still matches
  REQUIRE(p.warnings.size() == 1);
  CHECK(p.warnings[0].find("collected 2026-01-01 (333 days ago, over 60)") != std::string::npos);
  CHECK(plan::to_table(p).find("facts collected 2026-01-01)\nwarning: the matrix asks for \"latest\"") != std::string::npos);
  CHECK(plan::to_json(p)["catalog_collected"] == "2026-01-01");
  CHECK(plan::make_plan(m, c, {}, "2026-02-15").warnings.empty());
  CHECK(plan::make_plan(matrix::parse_matrix_text(kOne, "m.toml"), c, {}, "2027-06-01").warnings.empty());  // no "latest"
  c.collected.clear();
  CHECK(plan::make_plan(m, c, {}, "2026-11-30").warnings.at(0).find("records no collection date") != std::string::npos);
}

TEST_CASE("check-driver agrees with NVIDIA_REQUIRE_CUDA for every branch it lists", "[plan][query][require]") {
  // For each CUDA release with an nvidia/cuda base: every branch the string
  // admits is usable (on its brands), and a branch it does not list, older
  // than the release, is refused -- the container runtime's own answer.
  size_t checked = 0;
  for (const auto& rel : cat().cuda) {
    const auto* nb = cat().find_nvidia_base(rel.version);
    if (!nb) continue;
    std::string os;
    for (const auto& o : nb->os)
      if (cat().find_os(o)) os = o;
    if (os.empty()) continue;
    std::string toml = "name=\"t\"\ntargets=[\"T4\"]\n[axes]\ncuda=[\"" + rel.version.str() + "\"]\nos=[\"" + os +
                       "\"]\nflavor=[\"runtime\"]\n[tags]\ntemplates=[\"{id}\"]\n";
    auto first = plan_of(toml);
    if (first.combos[0].status != plan::Status::valid) continue;
    auto req = catalog::RequireCuda::parse(first.combos[0].require_cuda);
    REQUIRE(req);
    for (const auto& alt : req->alternatives) {
      if (alt.driver_min.empty()) continue;
      std::string driver = std::to_string(alt.driver_min.major()) + ".10";
      INFO("CUDA " << rel.version.str() << " on " << os << ", driver " << driver << ": " << first.combos[0].require_cuda);
      auto p = plan_of(toml, {driver, {"T4"}});
      std::string why;
      for (const auto& w : p.combos[0].why_not) why += w + "\n";
      INFO(why);
      CHECK(p.combos[0].usable == true);
      ++checked;
    }
    // A branch just below the release's first driver that the string does not list.
    unsigned below = rel.first_driver().major() - 1;
    bool listed = std::any_of(req->alternatives.begin(), req->alternatives.end(),
                              [&](const auto& a) { return a.admits(Version::must(std::to_string(below) + ".10")); });
    if (!listed && below >= rel.min_driver.major()) {
      auto p = plan_of(toml, {std::to_string(below) + ".10", {"T4"}});
      INFO("CUDA " << rel.version.str() << ", unlisted branch R" << below);
      CHECK(p.combos[0].usable == false);
      CHECK_THAT(p.combos[0].why_not.at(0), Catch::StartsWith("the container runtime refuses it"));
    }
  }
  CHECK(checked > 5);
}

TEST_CASE("a build whose pins no source gives is excluded, not guessed", "[plan]") {
  catalog::Catalog c = cat();
  for (auto& r : c.pytorch)
    if (r.version.matches(Version::must("2.6")))
      for (auto& b : r.builds)
        if (b.cuda == Version::must("12.4")) {
          b.cudnn = {};
          b.arch = {};
        }
  auto p = plan::make_plan(matrix::parse_matrix_text(kTorch, "m.toml"), c);
  const auto& combo = find(p, "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime");
  CHECK(combo.status == plan::Status::excluded);
  CHECK(combo.rule == "pytorch-build-unknown");
  CHECK(combo.reason == "the catalog does not know the cuDNN, arch list of PyTorch 2.6.0+cu124 (marked inferred, no source "
                        "gives them), so kiln cannot check what the image holds");
}

// Issue 15.4: a platform axis -- one combination per platform, one tag (an
// OCI index), each platform resolved by the catalog for itself.
TEST_CASE("the platform axis: per-platform ids, bases and catalog rules, shared tags", "[plan][platform]") {
  const char* m = R"(
name = "t"
targets = ["H100", "GH200"]
[axes]
cuda = ["11.8", "12.4"]
os = ["debian12", "debian13"]
flavor = ["runtime"]
platform = ["linux/amd64", "linux/arm64"]
[policy]
targets = "any"
[tags]
templates = ["cuda{cuda}-{os}-{flavor}"]
[[base]]
os = "debian12"
image = "kiln/debian:12"
[[base]]
os = "debian12"
platform = "aarch64"
image = "kiln/debian:12-arm64"
)";
  plan::Plan p = plan_of(m);
  const plan::Combo& x86 = find(p, "cuda11.8-debian12-runtime");
  const plan::Combo& arm = find(p, "cuda11.8-debian12-runtime-aarch64");
  CHECK(x86.platform == "x86_64");
  CHECK(arm.platform == "aarch64");
  CHECK(arm.axes.at("platform") == "aarch64");  // Docker's word stored as the catalog's
  REQUIRE(x86.status == plan::Status::valid);
  REQUIRE(arm.status == plan::Status::valid);
  CHECK(x86.base == "kiln/debian:12");
  CHECK(arm.base == "kiln/debian:12-arm64");  // the [[base]] naming the platform wins
  CHECK(x86.tags == arm.tags);                // one tag: the index
  // GH200 is Grace (aarch64): only the arm64 image serves it.
  auto support = [](const plan::Combo& c, const std::string& gpu) {
    for (const auto& t : c.targets)
      if (t.name == gpu) return t.support;
    return Support::unsupported;
  };
  CHECK(support(x86, "GH200") == Support::unsupported);
  CHECK(support(arm, "GH200") != Support::unsupported);
  // A devel image's parent is its own platform's runtime.
  CHECK(p.sibling(arm, "runtime") == &arm);
}

TEST_CASE("aarch64 PyTorch builds the catalog does not record are excluded by rule", "[plan][platform]") {
  plan::Plan p = plan_of(R"(
name = "t"
targets = ["H100"]
[axes]
pytorch = ["2.6"]
cuda = ["12.4"]
os = ["ubuntu22.04"]
flavor = ["runtime"]
platform = ["x86_64", "aarch64"]
)");
  const plan::Combo& arm = find(p, "pytorch2.6-cuda12.4-ubuntu22.04-runtime-aarch64");
  CHECK(arm.status == plan::Status::excluded);
  CHECK(arm.rule == "pytorch-platform");
  CHECK(find(p, "pytorch2.6-cuda12.4-ubuntu22.04-runtime").status == plan::Status::valid);
}

// Issue 15.4: which PyTorch CUDA builds have aarch64 (sbsa) wheels, as the
// catalog records them from pytorch/test-infra's release matrix at each
// release's go-live commit (sources TI-A*, recipes/catalog/sources.toml).
TEST_CASE("the catalog's aarch64 PyTorch wheels are exactly the sourced ones", "[plan][platform]") {
  const std::set<std::string> sourced = {
      "2.4.1+cu124",                                 // TI-A241 @ ccfc962e9
      "2.5.1+cu124",                                 // TI-A251 @ 29912dec4
      "2.6.0+cu126",                                 // TI-A260 @ b1bdc3323
      "2.7.1+cu128",                                 // TI-A271 @ 30ee1aaac
      "2.8.0+cu129",                                 // TI-A280 @ 21480431a
      "2.9.1+cu126",  "2.9.1+cu128",  "2.9.1+cu130",   // TI-A291 @ 06789010b
      "2.10.0+cu126", "2.10.0+cu128", "2.10.0+cu130",  // TI-A210 @ e8208cf27
      "2.11.0+cu126", "2.11.0+cu128", "2.11.0+cu130",  // TI-A211 @ 0cd5e78a1
      "2.12.1+cu126", "2.12.1+cu130", "2.12.1+cu132",  // TI-A2121 @ 77e179c3b
      "2.13.0+cu126", "2.13.0+cu130", "2.13.0+cu132",  // TI-A213 @ 6d36e31f4
  };
  std::set<std::string> recorded;
  for (const auto& r : cat().pytorch)
    for (const auto& b : r.builds) {
      std::string name = fmt::format("{}+cu{}{}", r.version.str(), b.cuda.major(), b.cuda.minor());
      CHECK(b.serves("x86_64"));  // every build has x86_64 wheels
      if (!b.serves("aarch64")) continue;
      recorded.insert(name);
      // Each aarch64 fact names its test-infra source.
      CHECK(std::any_of(b.provenance.sources.begin(), b.provenance.sources.end(),
                        [](const std::string& k) { return k.starts_with("TI-A"); }));
    }
  CHECK(recorded == sourced);
}

TEST_CASE("aarch64 PyTorch combinations are valid only where the catalog records the wheel", "[plan][platform]") {
  plan::Plan p = plan_of(R"(
name = "t"
targets = ["H100", "GH200"]
[axes]
pytorch = ["2.3", "2.8", "2.13", "2.14"]
cuda = ["12.1", "12.8", "12.9", "13.0", "13.2"]
os = ["ubuntu22.04"]
flavor = ["runtime"]
platform = ["linux/amd64", "linux/arm64"]
[policy]
targets = "any"
)");
  auto gh200 = [](const plan::Combo& c) {
    for (const auto& t : c.targets)
      if (t.name == "GH200") return t.support;
    return Support::unsupported;
  };
  // 2.8.0: test-infra's 2.8 release matrix lists cuda-aarch64 12.9 only (TI-A280).
  const plan::Combo& cu129 = find(p, "pytorch2.8-cuda12.9-ubuntu22.04-runtime-aarch64");
  REQUIRE(cu129.status == plan::Status::valid);
  CHECK(cu129.platform == "aarch64");
  CHECK(std::count(cu129.sources.begin(), cu129.sources.end(), "TI-A280") == 1);
  CHECK(gh200(cu129) != Support::unsupported);  // Grace: served by the arm64 image
  // The pins and arch list were read from x86_64 wheels: the plan says so.
  CHECK(std::any_of(cu129.inferred.begin(), cu129.inferred.end(), [](const std::string& i) {
    return i.starts_with("PyTorch 2.8.0+cu129 for aarch64: its cuDNN, NCCL and arch list are the x86_64 wheel's");
  }));
  CHECK(std::none_of(find(p, "pytorch2.8-cuda12.9-ubuntu22.04-runtime").inferred.begin(),
                     find(p, "pytorch2.8-cuda12.9-ubuntu22.04-runtime").inferred.end(),
                     [](const std::string& i) { return i.find("for aarch64") != std::string::npos; }));
  const plan::Combo& cu128 = find(p, "pytorch2.8-cuda12.8-ubuntu22.04-runtime-aarch64");
  CHECK(cu128.status == plan::Status::excluded);
  CHECK(cu128.rule == "pytorch-platform");
  CHECK(cu128.reason.starts_with("the catalog records no aarch64 wheels of PyTorch 2.8.0+cu128"));
  CHECK(find(p, "pytorch2.8-cuda12.8-ubuntu22.04-runtime").status == plan::Status::valid);
  // 2.13.0: 12.6, 13.0 and 13.2 aarch64 (TI-A213).
  CHECK(find(p, "pytorch2.13-cuda13.2-ubuntu22.04-runtime-aarch64").status == plan::Status::valid);
  CHECK(find(p, "pytorch2.13-cuda13.0-ubuntu22.04-runtime-aarch64").status == plan::Status::valid);
  // 2.14.0: its go-live is past the test-infra history read, so x86_64 only.
  CHECK(find(p, "pytorch2.14-cuda13.0-ubuntu22.04-runtime").status == plan::Status::valid);
  CHECK(find(p, "pytorch2.14-cuda13.0-ubuntu22.04-runtime-aarch64").rule == "pytorch-platform");
  // 2.3.1: the release matrix has CPU-only aarch64 wheels.
  CHECK(find(p, "pytorch2.3-cuda12.1-ubuntu22.04-runtime").status == plan::Status::valid);
  CHECK(find(p, "pytorch2.3-cuda12.1-ubuntu22.04-runtime-aarch64").rule == "pytorch-platform");
}

TEST_CASE("tags may be shared only by combinations differing in platform", "[plan][platform]") {
  std::string err = errors_of(R"(
name = "t"
targets = ["H100"]
[axes]
cuda = ["11.8"]
os = ["debian12"]
flavor = ["runtime", "devel"]
platform = ["x86_64", "aarch64"]
[tags]
templates = ["cuda{cuda}-{os}"]
)");
  CHECK(err.find("would name both") != std::string::npos);
  // {platform} tells them apart when per-platform tags are wanted too.
  plan::Plan p = plan_of(R"(
name = "t"
targets = ["H100"]
[axes]
cuda = ["11.8"]
os = ["debian12"]
flavor = ["runtime"]
platform = ["x86_64", "aarch64"]
[tags]
templates = ["cuda{cuda}-{os}-{flavor}-{platform}"]
)");
  CHECK(find(p, "cuda11.8-debian12-runtime-aarch64").tags.front().ends_with(":cuda11.8-debian12-runtime-aarch64"));
}
