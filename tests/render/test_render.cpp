// Golden Dockerfiles, deterministic trees, and templates that fail cleanly.
// KILN_UPDATE_GOLDEN=1 rewrites the golden files after a deliberate change.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "render/render.h"
#include "util/diag.h"
#include "util/text.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const std::string kSrc = KILN_SOURCE_DIR;

const catalog::Catalog& cat() {
  static catalog::Catalog c = catalog::Catalog::load(kSrc + "/recipes");
  return c;
}

plan::Plan plan_for(const std::string& matrix) {
  return plan::make_plan(matrix::parse_matrix_file(kSrc + "/matrices/" + matrix + ".toml"), cat());
}

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("kiln-render-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(p);
  return p;
}

std::map<std::string, std::string> read_tree(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_file(e.path().string());
  return files;
}

void check_golden(const plan::Plan& p, const std::string& id) {
  render::Renderer r(kSrc + "/templates");
  const plan::Combo* combo = nullptr;
  for (const auto& c : p.combos)
    if (c.id == id) combo = &c;
  REQUIRE(combo);
  std::string got = r.render(*combo, p).dockerfile;
  fs::path golden = fs::path(kSrc) / "tests/render/golden" / (id + ".Dockerfile");
  if (std::getenv("KILN_UPDATE_GOLDEN")) write_file_atomic(golden.string(), got);
  REQUIRE(fs::exists(golden));
  CHECK(got == read_file(golden.string()));
}

}  // namespace

TEST_CASE("offline Dockerfiles match their golden copies", "[render][golden]") {
  auto p = plan_for("offline");
  for (const char* id : {"cuda11.8-debian12-runtime", "cuda11.8-debian12-devel", "cuda12.4-debian13-runtime", "cuda12.4-debian13-devel"})
    check_golden(p, id);
}

TEST_CASE("PyTorch Dockerfiles match their golden copies", "[render][golden]") {
  auto p = plan_for("pytorch");
  check_golden(p, "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime");
  check_golden(p, "pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-devel");
}

TEST_CASE("rendered images carry the labels and environment later stages read", "[render]") {
  auto p = plan_for("offline");
  render::Renderer r(kSrc + "/templates");
  auto x = r.render(p.combos[0], p);
  for (const char* needle : {"FROM kiln/debian:12", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
                             "NVIDIA_REQUIRE_CUDA=\"cuda>=11.8", "io.kiln.cuda.version=\"11.8.89\"", "io.kiln.sass=\"sm_75 sm_90\"",
                             "io.kiln.ptx=\"compute_90\"", "USER kiln", "libcudart11.0"})
    CHECK(x.dockerfile.find(needle) != std::string::npos);
  CHECK(x.dockerfile.find("nvidia-cuda-toolkit") == std::string::npos);  // runtime: no compiler
  CHECK(x.inputs["versions"]["cuda"] == "11.8.89");
  CHECK(x.inputs["catalog_version"] == cat().version);
}

TEST_CASE("generate writes the same bytes every time", "[render]") {
  auto p = plan_for("pytorch");
  render::Renderer r(kSrc + "/templates");
  fs::path a = scratch("a"), b = scratch("b");
  auto dirs = render::generate(p, r, a.string());
  render::generate(p, r, b.string());
  CHECK(dirs.size() == p.count(plan::Status::valid));
  auto ta = read_tree(a), tb = read_tree(b);
  size_t devel = 0;
  for (const auto& c : p.combos) devel += c.status == plan::Status::valid && c.versions.flavor == "devel";
  CHECK(ta.size() == 2 * dirs.size() + devel + 2);  // Dockerfile + kiln.json each, nvcc check per devel, plan.json, bake
  CHECK(ta == tb);
  // A second run into the same directory changes nothing.
  auto before = fs::last_write_time(a / "plan.json");
  render::generate(p, r, a.string());
  CHECK(fs::last_write_time(a / "plan.json") == before);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("combinations that left the plan are removed, other files kept", "[render]") {
  render::Renderer r(kSrc + "/templates");
  fs::path out = scratch("prune");
  fs::create_directories(out / "stale-combo");
  std::ofstream(out / "stale-combo" / "kiln.json") << "{}";
  fs::create_directories(out / "notes");
  std::ofstream(out / "notes" / "README") << "mine";
  render::generate(plan_for("offline"), r, out.string());
  CHECK_FALSE(fs::exists(out / "stale-combo"));
  CHECK(fs::exists(out / "notes" / "README"));
  fs::remove_all(out);
}

TEST_CASE("the bake file names every valid combination", "[render]") {
  auto p = plan_for("offline");
  auto bake = render::bake_file(p);
  CHECK(bake["group"]["default"]["targets"].size() == p.count(plan::Status::valid));
  CHECK(bake["target"]["cuda12_4-debian13-devel"]["context"] == "./cuda12.4-debian13-devel");
  CHECK(bake["target"]["cuda12_4-debian13-devel"]["tags"][0] == "kiln.local/offline:cuda12.4-debian13-devel");
  CHECK(bake["target"]["cuda12_4-debian13-devel"]["contexts"]["kiln.local/offline:cuda12.4-debian13-runtime"] ==
        "target:cuda12_4-debian13-runtime");
}

TEST_CASE("a missing or broken template fails before anything is written", "[render][bad-input]") {
  fs::path tmpl = scratch("tmpl");
  fs::create_directories(tmpl / "partials");
  CHECK_THROWS_AS(render::Renderer(tmpl.string()), InputError);
  std::ofstream(tmpl / "Dockerfile.mustache") << "FROM {{base}}\n{{#apt}}\n";  // unclosed section
  render::Renderer r(tmpl.string());
  fs::path out = scratch("never");
  CHECK_THROWS_AS(render::generate(plan_for("offline"), r, out.string()), InputError);
  CHECK_FALSE(fs::exists(out));
  fs::remove_all(tmpl);
}
