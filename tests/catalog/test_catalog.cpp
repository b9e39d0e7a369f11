// The catalog under recipes/ must say what ../shared/CATALOG-FACTS.md says,
// and be consistent with itself (every PyTorch build's arch list within what
// its CUDA can target, every NCCL it names known and built for that CUDA).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
#include "catalog/compat.h"
#include "util/diag.h"
#include "util/text.h"

using namespace kiln;
using catalog::Catalog;

static const Catalog& cat() {
  static Catalog c = Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  return c;
}

static Version v(const char* s) { return Version::must(s); }

TEST_CASE("CUDA driver floors follow the release notes", "[catalog]") {
  CHECK(cat().find_cuda(v("11.8"))->min_driver.str() == "450.80.02");
  CHECK(cat().find_cuda(v("11.8"))->driver.str() == "520.61.05");
  CHECK(cat().find_cuda(v("12.4"))->min_driver.str() == "525.60.13");
  CHECK(cat().find_cuda(v("12.4"))->full.str() == "12.4.1");
  CHECK(cat().find_cuda(v("12.8"))->driver.str() == "570.124.06");
  CHECK(cat().find_cuda(v("13.0"))->min_driver >= v("580"));
}

TEST_CASE("CUDA SASS ranges follow CMake's list", "[catalog]") {
  auto cc = [](const char* s) { return *ComputeCapability::parse(s); };
  CHECK(cat().find_cuda(v("11.8"))->can_target(cc("3.7")));
  CHECK_FALSE(cat().find_cuda(v("12.0"))->can_target(cc("3.7")));
  CHECK(cat().find_cuda(v("12.8"))->can_target(cc("12.0")));
  CHECK_FALSE(cat().find_cuda(v("12.6"))->can_target(cc("10.0")));
  CHECK_FALSE(cat().find_cuda(v("13.0"))->can_target(cc("6.0")));
  CHECK_FALSE(cat().find_cuda(v("13.0"))->can_target(cc("7.0")));
  CHECK(cat().find_cuda(v("13.0"))->can_target(cc("11.0")));
  CHECK_FALSE(cat().find_cuda(v("13.0"))->can_target(cc("10.1")));  // renamed 11.0
}

TEST_CASE("PyTorch builds bundle the cuDNN and NCCL the release matrix names", "[catalog]") {
  const auto* t26 = cat().find_pytorch(v("2.6"));
  REQUIRE(t26);
  CHECK(t26->version.str() == "2.6.0");
  const auto* b = t26->build_for(v("12.4"));
  REQUIRE(b);
  CHECK(b->cudnn.str() == "9.1.0.70");
  CHECK(b->nccl.str() == "2.21.5");
  CHECK(t26->build_for(v("12.8")) == nullptr);
  CHECK(t26->build_for(v("12.6"))->cudnn.str() == "9.5.1.17");
  CHECK(cat().find_pytorch(v("2.8"))->build_for(v("12.9"))->arch.str() == "7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX");
  CHECK(cat().find_pytorch(v("2.1"))->build_for(v("11.8"))->arch.str() == "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0");
}

TEST_CASE("unconfirmed facts are marked inferred", "[catalog]") {
  CHECK(cat().find_pytorch(v("2.5"))->build_for(v("12.4"))->provenance.inferred);  // NCCL 2.21.5 ⚠
  CHECK(cat().find_pytorch(v("1.13"))->build_for(v("11.7"))->provenance.inferred);  // NCCL 2.14.3 ⚠
  CHECK_FALSE(cat().find_pytorch(v("2.8"))->build_for(v("12.6"))->provenance.inferred);
}

TEST_CASE("GPU names resolve to their compute capability", "[catalog]") {
  CHECK(cat().resolve_gpu("P100")->str() == "6.0");
  CHECK(cat().resolve_gpu("h100")->str() == "9.0");
  CHECK(cat().resolve_gpu("T4")->str() == "7.5");
  CHECK(cat().resolve_gpu("B200")->str() == "10.0");
  CHECK(cat().resolve_gpu("sm_86")->str() == "8.6");
  CHECK_FALSE(cat().resolve_gpu("Voodoo2"));
  CHECK(cat().gpu_name(*ComputeCapability::parse("6.0")) == "P100");
}

TEST_CASE("cuDNN support ranges", "[catalog]") {
  CHECK(cat().find_cudnn(v("8.9.5"))->supports_cuda(v("12.2")));
  CHECK_FALSE(cat().find_cudnn(v("8.9.5"))->supports_cuda(v("12.4")));
  CHECK(cat().find_cudnn(v("9.17.0"))->supports_cuda(v("13.0")));
  CHECK_FALSE(cat().find_cudnn(v("9.17.0"))->supports_cuda(v("11.8")));
}

TEST_CASE("every PyTorch build is consistent with the CUDA and NCCL entries", "[catalog]") {
  for (const auto& rel : cat().pytorch) {
    for (const auto& b : rel.builds) {
      INFO("PyTorch " << rel.version.str() << " cu" << b.cuda.str());
      const auto* cuda = cat().find_cuda(b.cuda);
      REQUIRE(cuda);
      for (const auto& cc : b.arch.sass) CHECK(cuda->can_target(cc));
      if (b.nccl.empty()) {  // unknown: allowed only where marked inferred
        CHECK(std::count(b.provenance.inferred_fields.begin(), b.provenance.inferred_fields.end(), "nccl") == 1);
        continue;
      }
      const auto* nccl = cat().find_nccl(b.nccl);
      REQUIRE(nccl);
      CHECK(nccl->version == b.nccl);
      bool built_for = false;
      for (const auto& r : nccl->cuda) built_for |= r.contains(b.cuda);
      CHECK(built_for);
    }
  }
}

TEST_CASE("every fact names a known source", "[catalog]") {
  for (const auto& c : cat().cuda) CHECK_FALSE(c.provenance.sources.empty());
  for (const auto& r : cat().pytorch)
    for (const auto& b : r.builds) CHECK_FALSE(b.provenance.sources.empty());
  for (const auto& [key, text] : cat().sources) CHECK_FALSE(text.empty());
}

namespace {
// A copy of recipes/ with one file replaced, to test the loader's errors.
std::string broken_recipes(const std::string& file, const std::string& content) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kiln-broken-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(std::string(KILN_SOURCE_DIR) + "/recipes", dir, fs::copy_options::recursive);
  std::ofstream(dir / file) << content;
  return dir.string();
}
}  // namespace

TEST_CASE("a malformed catalog is reported at file:line:col", "[catalog]") {
  std::string dir = broken_recipes("catalog/cuda.toml", "[[cuda]]\nversion = \"12.4\"\nfull = 12\n");
  try {
    Catalog::load(dir);
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string all = e.what();
    CHECK(all.find("cuda.toml:3:8: error: 'full' must be a string, not an integer") != std::string::npos);
    CHECK(all.find("missing required key 'driver'") != std::string::npos);
  }
  dir = broken_recipes("catalog/nccl.toml", "[[nccl]]\nversion = \"2.1\"\ncuda = [\"12.0\"]\nsource = [\"S99\"]\nsurprise = 1\n");
  try {
    Catalog::load(dir);
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string all = e.what();
    CHECK(all.find("unknown source 'S99'") != std::string::npos);
    CHECK(all.find("nccl.toml:5:1: error: unknown key 'surprise'") != std::string::npos);
  }
}

namespace {

// The loader's errors for one replaced file, all of them in one string.
std::string load_errors(const std::string& file, const std::string& content) {
  try {
    Catalog::load(broken_recipes(file, content));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a second entry for the same GPU, CUDA, cuDNN, NCCL or PyTorch is an error", "[catalog][bad-input]") {
  std::string e = load_errors("catalog/gpus.toml",
                              "source = [\"S4\"]\n[[gpu]]\ncc = \"7.5\"\nnames = [\"T4\"]\n[[gpu]]\ncc = \"8.0\"\nnames = [\"A100\", \"t4\"]\n");
  CHECK_THAT(e, Catch::Contains("gpus.toml:7:18: error: duplicate GPU name \"t4\" (names are case-insensitive) (first at "));
  CHECK_THAT(e, Catch::Contains("gpus.toml:4:10)"));
  e = load_errors("catalog/cuda.toml", R"([[cuda]]
version = "12.4"
full = "12.4.1"
driver = "550.54.15"
min_driver = "525.60.13"
sass = ["7.5"]
source = ["S1"]
[[cuda]]
version = "12.4"
full = "12.4.0"
driver = "550.54.14"
min_driver = "525.60.13"
sass = ["7.5"]
source = ["S1"]
)");
  CHECK_THAT(e, Catch::Contains("cuda.toml:9:11: error: duplicate CUDA 12.4 (first at "));
  e = load_errors("catalog/cudnn.toml", "[[cudnn]]\nversion = \"9.1.0\"\ncuda = [\"12.0..12.4\"]\ncc = \"5.0..9.0\"\nsource = [\"S5\"]\n"
                                        "[[cudnn]]\nversion = \"9.1\"\ncuda = [\"12.0..12.4\"]\ncc = \"5.0..9.0\"\nsource = [\"S5\"]\n");
  CHECK_THAT(e, Catch::Contains("cudnn.toml:7:11: error: duplicate cuDNN 9.1"));
  e = load_errors("catalog/nccl.toml", "[[nccl]]\nversion = \"2.21.5\"\ncuda = [\"12.0\"]\nsource = [\"S6\"]\n"
                                       "[[nccl]]\nversion = \"2.21.5\"\ncuda = [\"12.4\"]\nsource = [\"S6\"]\n");
  CHECK_THAT(e, Catch::Contains("nccl.toml:6:11: error: duplicate NCCL 2.21.5"));
  e = load_errors("catalog/pytorch.toml", R"([[pytorch]]
version = "2.6.0"
python = ["3.10"]
source = ["S6"]
  [[pytorch.build]]
  cuda = "12.4"
  cudnn = "9.1.0.70"
  nccl = "2.21.5"
  arch_list = "7.5"
  [[pytorch.build]]
  cuda = "12.4"
  cudnn = "9.1.0.70"
  nccl = "2.21.5"
  arch_list = "8.0"
[[pytorch]]
version = "2.6.0"
python = ["3.10"]
source = ["S6"]
  [[pytorch.build]]
  cuda = "12.6"
  cudnn = "9.5.1.17"
  nccl = "2.21.5"
  arch_list = "7.5"
)");
  CHECK_THAT(e, Catch::Contains("pytorch.toml:11:10: error: duplicate PyTorch 2.6.0 build for CUDA 12.4 (first at "));
  CHECK_THAT(e, Catch::Contains("pytorch.toml:16:11: error: duplicate PyTorch 2.6.0 (first at "));
}

TEST_CASE("the new schema's keys are read and checked", "[catalog][bad-input]") {
  std::string e = load_errors("catalog/gpus.toml", R"(source = ["S4"]
[[gpu]]
cc = "11.0"
names = ["Thor"]
platforms = ["aarch64", "arm"]
former_cc = "10.1"
[[architecture]]
name = "Volta"
cc = ["7.0", "seven"]
first_driver = "384.59"
last_branch = "580"
[[architecture]]
name = "Hopper"
cc = ["9.0", "7.0"]
first_driver = "x"
last_brnach = 5
)");
  CHECK_THAT(e, Catch::Contains("gpus.toml:5:13: error: 'platforms' holds \"arm\""));
  CHECK_THAT(e, Catch::Contains("'former_cc' and 'renamed_in' go together"));
  CHECK_THAT(e, Catch::Contains("gpus.toml:9:6: error: 'cc' holds a bad compute capability \"seven\""));
  CHECK_THAT(e, Catch::Contains("gpus.toml:11:15: error: 'last_branch' must be an integer, not a string"));
  CHECK_THAT(e, Catch::Contains("gpus.toml:14:6: error: duplicate compute capability 7.0 in two architectures"));
  CHECK_THAT(e, Catch::Contains("gpus.toml:15:16: error: 'first_driver' is not a version: \"x\""));
  CHECK_THAT(e, Catch::Contains("gpus.toml:16:1: error: unknown key 'last_brnach' (did you mean 'last_branch'?)"));

  e = load_errors("catalog/cuda.toml", R"([[cuda]]
version = "13.0"
full = "13.0.2"
driver = "580.95.05"
min_driver = "580.65.06"
sass = ["7.5"]
require_cuda = "cuda>=13.0 brand=tesla,drvier>=535"
updates = [{ version = "12.9.1", driver = "575.57.08" }, { version = "13.0.1", driver = "x" }]
source = ["S1"]
[[cuda]]
version = "12.9"
full = "12.9.1"
driver = "575.57.08"
min_driver = "525.60.13"
sass = ["7.5"]
require_cuda = "cuda>=12.8 brand=tesla,driver>=535,driver<536"
source = ["S1"]
)");
  CHECK_THAT(e, Catch::Contains("cuda.toml:7:16: error: 'require_cuda' is not an NVIDIA_REQUIRE_CUDA string: unknown condition \"drvier>=535\""));
  CHECK_THAT(e, Catch::Contains("cuda.toml:8:24: error: update 12.9.1 is not a CUDA 13.0 release"));
  CHECK_THAT(e, Catch::Contains("'driver' is not a version: \"x\""));
  CHECK_THAT(e, Catch::Contains("cuda.toml:16:16: error: 'require_cuda' asks for cuda>=12.8, not 12.9"));

  e = load_errors("catalog/sources.toml", "catalog_version = \"x\"\ncollected = \"2026-11-30\"\n[sources]\nS1 = \"a\"\n");
  CHECK_THAT(e, Catch::Contains("sources.toml:2:13: error: 'collected' must be a TOML date such as 2026-11-30 (no quotes)"));

  e = load_errors("catalog/pytorch.toml", R"([[pytorch]]
version = "2.9.1"
python = ["3.10"]
default_cuda = "12.9"
source = ["S6"]
  [[pytorch.build]]
  cuda = "12.8"
  cudnn = "9.10.2.21"
  nccl = "2.27.3"
  cublas = "12.8.four"
  arch_list = "7.5"
)");
  CHECK_THAT(e, Catch::Contains("pytorch.toml:4:16: error: 'default_cuda' 12.9 is none of PyTorch 2.9.1's CUDA builds (12.8)"));
  CHECK_THAT(e, Catch::Contains("pytorch.toml:10:12: error: 'cublas' is not a version: \"12.8.four\""));
}

TEST_CASE("the new schema's values reach the catalog", "[catalog]") {
  // The real sources.toml with the collection date set (whatever it says now).
  std::string sources;
  const std::string real = read_file(std::string(KILN_SOURCE_DIR) + "/recipes/catalog/sources.toml");
  for (std::string_view line : split(real, '\n')) {
    if (line.starts_with("collected")) continue;
    sources += std::string(line) + "\n";
    if (line.starts_with("catalog_version")) sources += "collected = 2026-11-30\n";
  }
  std::string dir = broken_recipes("catalog/sources.toml", sources);
  std::filesystem::copy_file(std::string(KILN_SOURCE_DIR) + "/tests/catalog/data/limits/catalog/gpus.toml",
                             dir + "/catalog/gpus.toml", std::filesystem::copy_options::overwrite_existing);
  Catalog c = Catalog::load(dir);
  CHECK(c.collected == "2026-11-30");
  const auto* thor = c.find_gpu("thor");
  REQUIRE(thor);
  CHECK(thor->platforms == std::vector<std::string>{"aarch64"});
  CHECK(c.resolve_gpu("Thor", v("12.8"))->str() == "10.1");
  CHECK(c.resolve_gpu("Thor", v("13.0"))->str() == "11.0");
  CHECK(c.resolve_gpu("Thor")->str() == "11.0");
  CHECK(c.find_gpu("T4")->platforms.size() == 2);
  const auto* volta = c.architecture_of(*ComputeCapability::parse("7.0"));
  REQUIRE(volta);
  CHECK(volta->name == "Volta");
  CHECK(volta->last_branch == 580u);
  CHECK(c.architecture_of(*ComputeCapability::parse("9.0"))->provenance.inferred);
  // The cuDNN entry for a bundled version, on entries of this test's own.
  Catalog d;
  for (const char* ver : {"8.5.0", "9.0.0", "9.5.1", "9.5.0"}) d.cudnn.push_back({v(ver), {}, {}, {}});
  CHECK(d.cudnn_entry_for(v("9.1.0.70"))->version.str() == "9.0.0");  // nearest older of the major
  CHECK(d.cudnn_entry_for(v("9.5.1.17"))->version.str() == "9.5.1");  // same major.minor, newest
  CHECK(d.cudnn_entry_for(v("8.3.2.44"))->version.str() == "8.5.0");  // nearest newer when none older
  CHECK(d.cudnn_entry_for(v("7.6.5")) == nullptr);
}

TEST_CASE("NVIDIA_REQUIRE_CUDA strings read as the container runtime reads them", "[catalog][compat]") {
  auto r = catalog::RequireCuda::parse("cuda>=12.6 brand=tesla,driver>=535,driver<536 brand=nvidia,driver>=535,driver<536");
  REQUIRE(r);
  CHECK(r->cuda.str() == "12.6");
  REQUIRE(r->alternatives.size() == 2);
  CHECK(r->alternatives[1].brand == "nvidia");
  CHECK(r->alternatives[0].admits(v("535.104.05")));
  CHECK_FALSE(r->alternatives[0].admits(v("536.1")));
  std::string why;
  CHECK_FALSE(catalog::RequireCuda::parse("cuda>=12.6 brand=tesla,driver=535", &why));
  CHECK(why == "unknown condition \"driver=535\"");
  CHECK_FALSE(catalog::RequireCuda::parse("", &why));
  // The CUDA a driver reports: the newest release whose first driver's branch it has.
  CHECK(catalog::driver_cuda(cat(), v("535.104.05")).str() == "12.2");
  CHECK(catalog::driver_cuda(cat(), v("580.65.06")).str() == "13.0");
  CHECK(catalog::driver_cuda(cat(), v("418.1")).empty());
}

TEST_CASE("a value may be left out only where 'inferred' names it", "[catalog][bad-input]") {
  const char* release = R"([[pytorch]]
version = "2.15.0"
confidence = "inferred"
inferred = ["python"]
source = ["S6"]
  [[pytorch.build]]
  cuda = "13.0"
  confidence = "inferred"
  inferred = ["cudnn", "nccl", "arch_list"]
  source = ["S6"]
  [[pytorch.build]]
  cuda = "13.2"
  nccl = "2.28.9"
  source = ["S6"]
)";
  std::string e = load_errors("catalog/pytorch.toml", release);
  CHECK_THAT(e, Catch::Contains("pytorch.toml:11:3: error: missing required key 'cudnn'"));
  CHECK_THAT(e, Catch::Contains("pytorch.toml:11:3: error: missing required key 'arch_list'"));
  CHECK_THAT(e, !Catch::Contains("pytorch.toml:7:3"));   // the inferred build loads
  CHECK_THAT(e, !Catch::Contains("'python'"));
}

namespace {
bool cites(const catalog::Provenance& p, const std::string& key) {
  return std::find(p.sources.begin(), p.sources.end(), key) != p.sources.end();
}
bool marks_inferred(const catalog::Provenance& p, const std::string& field) {
  return std::find(p.inferred_fields.begin(), p.inferred_fields.end(), field) != p.inferred_fields.end();
}
}  // namespace

// Facts settled on 2026-12-01 (issue 12's open items b, c, d): each value
// and the source key it rests on, so a later edit cannot keep the value and
// drop its source (or the reverse) unnoticed.
TEST_CASE("2.13's PTX is decided by the v2.13.0 tag's build_env_setup.py", "[catalog][sources]") {
  for (const char* cuda : {"13.0", "13.2", "12.9"}) {
    INFO("torch 2.13 cu" << cuda);
    const auto* b = cat().find_pytorch(v("2.13"))->build_for(v(cuda));
    REQUIRE(b);
    CHECK(b->arch.str() == "7.5;8.0;8.6;9.0;10.0;12.0");
    CHECK(b->arch.ptx.empty());
    CHECK(cites(b->provenance, "KAINE-WI"));
    CHECK_FALSE(marks_inferred(b->provenance, "arch_list"));
  }
  CHECK(cites(cat().find_pytorch(v("2.13"))->build_for(v("13.0"))->provenance, "PT-188925"));
  // Its cuBLAS: cuda-toolkit 13.0.3.0 of a locked 2.13.0+cu130 install.
  const auto* cu130 = cat().find_pytorch(v("2.13"))->build_for(v("13.0"));
  REQUIRE(cu130->cublas);
  CHECK(cu130->cublas->str() == "13.1.1.3");
  CHECK(cites(cu130->provenance, "LOCK-213-130"));
  CHECK(cites(cu130->provenance, "PYPI-214"));
  CHECK_FALSE(cat().find_pytorch(v("2.13"))->build_for(v("13.0"))->provenance.inferred);
}

TEST_CASE("2.12's cuDNN pins and the cu129 builds carry their sources", "[catalog][sources]") {
  const auto* t212 = cat().find_pytorch(v("2.12"));
  REQUIRE(t212);
  const auto* cu126 = t212->build_for(v("12.6"));
  CHECK(cu126->cudnn.str() == "9.10.2.21");
  CHECK(cites(cu126->provenance, "RELMD-MAIN"));
  CHECK_FALSE(cu126->provenance.inferred);
  const auto* cu132 = t212->build_for(v("13.2"));
  CHECK(cu132->cudnn.str() == "9.20.0.48");
  CHECK(cites(cu132->provenance, "RELMD-MAIN"));
  CHECK_FALSE(cu132->provenance.inferred);
  // cu129: 2.12.1 is on the index, its pins were never read.
  const auto* cu129 = t212->build_for(v("12.9"));
  REQUIRE(cu129);
  CHECK(cu129->arch.str() == "7.5;8.0;8.6;9.0;10.0;12.0");
  CHECK(cites(cu129->provenance, "KAINE-WI"));
  CHECK(cu129->cudnn.empty());
  CHECK(marks_inferred(cu129->provenance, "cudnn"));
  CHECK(marks_inferred(cu129->provenance, "nccl"));
  // 2.11 cu129 keeps +PTX (the v2.11.0 build_cuda.sh), pins still unread.
  const auto* b211 = cat().find_pytorch(v("2.11"))->build_for(v("12.9"));
  CHECK(b211->arch.str() == "7.5;8.0;8.6;9.0;10.0;12.0+PTX");
  CHECK(cites(b211->provenance, "KAINE-WI"));
  CHECK_FALSE(marks_inferred(b211->provenance, "arch_list"));
  CHECK(marks_inferred(b211->provenance, "cudnn"));
  // 2.14 publishes no cu129 (the index ends cu129 at 2.13.0).
  CHECK(cat().find_pytorch(v("2.14"))->build_for(v("12.9")) == nullptr);
}

TEST_CASE("each architecture's first driver is the GA row of NVIDIA's Table 3", "[catalog][sources]") {
  const std::pair<const char*, const char*> rows[] = {
      {"6.0", "367.48"},    {"7.0", "384.81"},    {"7.5", "410.48"},    {"8.0", "450.51.05"}, {"8.6", "455.23"},
      {"8.9", "520.61.05"}, {"9.0", "520.61.05"}, {"10.0", "570.26"},   {"12.0", "570.26"},   {"10.3", "575.51.03"}};
  for (const auto& [cc, driver] : rows) {
    INFO("sm " << cc);
    const auto* a = cat().architecture_of(*ComputeCapability::parse(cc));
    REQUIRE(a);
    CHECK(a->first_driver.str() == driver);
    CHECK(cites(a->provenance, "RN-1322"));
  }
  // Kepler and Maxwell predate the table (it starts at CUDA 7.0.28): no first driver.
  for (const char* cc : {"3.7", "5.2"}) {
    INFO("sm " << cc);
    const auto* a = cat().architecture_of(*ComputeCapability::parse(cc));
    REQUIRE(a);
    CHECK(a->first_driver.empty());
    CHECK(cites(a->provenance, "RN-1322"));
  }
  for (const char* key : {"RN-1322", "KAINE-WI", "RELMD-MAIN", "PT-188925", "LOCK-213-130"}) CHECK(cat().sources.count(key) == 1);
}
