// The fact table (tests/catalog/facts.toml) against the real catalog, and
// the fixture table against a fixture catalog that carries the schema's new
// facts (architectures, platforms, a verbatim NVIDIA_REQUIRE_CUDA).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
#include "fact_table.h"
#include "util/diag.h"

using namespace kiln;
using catalog::Catalog;

namespace {

namespace fs = std::filesystem;

void check_all(const Catalog& c, const std::string& file) {
  std::vector<facts::Outcome> outcomes = facts::check_facts(c, file);
  REQUIRE_FALSE(outcomes.empty());
  for (const auto& o : outcomes) {
    INFO(o.where << ": " << o.what << "\n  source: " << o.source);
    for (const auto& f : o.failures) FAIL_CHECK(f);
    CHECK(o.failures.empty());
  }
}

// recipes/ with gpus.toml replaced by the fixture's.
std::string fixture_recipes() {
  fs::path dir = fs::temp_directory_path() / ("kiln-facts-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(std::string(KILN_SOURCE_DIR) + "/recipes", dir, fs::copy_options::recursive);
  fs::copy_file(std::string(KILN_SOURCE_DIR) + "/tests/catalog/data/limits/catalog/gpus.toml", dir / "catalog/gpus.toml",
                fs::copy_options::overwrite_existing);
  return dir.string();
}

std::string write_facts(const std::string& text) {
  fs::path file = fs::temp_directory_path() / ("kiln-facts-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(file) << text;
  return file.string();
}

}  // namespace

TEST_CASE("every row of the fact table holds", "[catalog][facts]") {
  static Catalog c = Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  check_all(c, std::string(KILN_SOURCE_DIR) + "/tests/catalog/facts.toml");
}

TEST_CASE("the fixture table proves driver limits, platforms, renames and NVIDIA_REQUIRE_CUDA", "[catalog][facts]") {
  Catalog c = Catalog::load(fixture_recipes());
  // A verbatim string for 12.4 (the fixture's; NVIDIA's lists more brands).
  for (auto& r : c.cuda)
    if (r.version == Version::must("12.4"))
      r.require_cuda = "cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=tesla,driver>=535,driver<536 brand=nvidia,driver>=535,driver<536";
  // A cuDNN 9 wheel whose arch list still names 3.7: only cuDNN's floor stops K80.
  for (auto& r : c.pytorch)
    if (r.version.matches(Version::must("2.4")))
      for (auto& b : r.builds)
        if (b.cuda == Version::must("11.8")) {
          b.cudnn = Version::must("9.1.0.70");
          b.arch = *ArchList::parse("3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0");
        }
  check_all(c, std::string(KILN_SOURCE_DIR) + "/tests/catalog/data/limits/facts.toml");
}

TEST_CASE("a wrong row fails, naming what it checks and its source", "[catalog][facts]") {
  static Catalog c = Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  auto out = facts::check_facts(c, write_facts(R"(
[[fact]]
what = "deliberately wrong"
source = "this test"
kind = "cuda"
cuda = "12.4"
min_driver = "1.2.3"
)"));
  REQUIRE(out.size() == 1);
  CHECK(out[0].what == "deliberately wrong");
  CHECK(out[0].source == "this test");
  REQUIRE(out[0].failures.size() == 1);
  CHECK(out[0].failures[0] == "min_driver: expected \"1.2.3\", kiln says \"525.60.13\"");
}

TEST_CASE("a row with an unknown key, kind or a missing source is an error", "[catalog][facts][bad-input]") {
  static Catalog c = Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  try {
    facts::check_facts(c, write_facts(R"(
[[fact]]
what = "typo"
source = "x"
kind = "cuda"
cuda = "12.4"
min_drvier = "525.60.13"

[[fact]]
what = "no source"
kind = "gpu"
gpu = "T4"

[[fact]]
what = "odd kind"
source = "x"
kind = "gpus"
)"));
    FAIL("expected InputError");
  } catch (const InputError& e) {
    std::string all = e.what();
    CHECK(all.find(":7:1: error: unknown key 'min_drvier' (did you mean 'min_driver'?)") != std::string::npos);
    CHECK(all.find("missing required key 'source'") != std::string::npos);
    CHECK(all.find("unknown kind \"gpus\"") != std::string::npos);
  }
}
