// The catalog under recipes/ must say what ../shared/CATALOG-FACTS.md says,
// and be consistent with itself (every PyTorch build's arch list within what
// its CUDA can target, every NCCL it names known and built for that CUDA).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
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
  CHECK(cat().find_pytorch(v("2.11"))->build_for(v("13.0"))->cudnn.str() == "9.17.1.4");
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
