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

TEST_CASE("the labels the static check expects are read from the rendered Dockerfile", "[render][labels]") {
  auto p = plan_for("offline");
  render::Renderer r(kSrc + "/templates");
  auto x = r.render(p.combos[0], p);
  CHECK(x.labels.at("io.kiln.combo") == p.combos[0].id);
  CHECK(x.labels.at("io.kiln.cuda.version") == "11.8.89");
  CHECK(x.labels.at("io.kiln.arch_list") == p.combos[0].arch.str());
  CHECK(x.labels.at("io.kiln.sass") == "sm_75 sm_90");
  CHECK(x.labels.at("io.kiln.matrix") == "offline");
  CHECK(x.labels.count("io.kiln.pytorch.version") == 0);  // the template writes it only for PyTorch images
  CHECK(x.labels.count("io.kiln.input-hash") == 0);       // build's, not the Dockerfile's

  using render::dockerfile_labels;
  CHECK(dockerfile_labels("FROM x\nlabel a=1 b=\"two words\" \\\n  c=\"q\\\"d\"\nRUN echo LABEL z=9\n") ==
        std::map<std::string, std::string>{{"a", "1"}, {"b", "two words"}, {"c", "q\"d"}});
  CHECK(dockerfile_labels("# LABEL a=1\nLABELS=x\n").empty());
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
  // Dockerfile + kiln.json each, nvcc check per devel, plan.json, bake, .kiln-generated
  CHECK(ta.size() == 2 * dirs.size() + devel + 3);
  CHECK(ta == tb);
  // A second run into the same directory changes nothing.
  auto before = fs::last_write_time(a / "plan.json");
  render::generate(p, r, a.string());
  CHECK(fs::last_write_time(a / "plan.json") == before);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("generate deletes only what it wrote (.kiln-generated)", "[render][generate]") {
  render::Renderer r(kSrc + "/templates");
  fs::path out = scratch("prune");
  auto pytorch = plan_for("pytorch");
  render::generate(pytorch, r, out.string());
  std::string manifest = read_file((out / ".kiln-generated").string());
  CHECK(manifest.find("\nplan.json\n") != std::string::npos);
  CHECK(manifest.find("\npytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime/\n") != std::string::npos);
  CHECK(manifest.find("\npytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime/Dockerfile\n") != std::string::npos);
  // The user's own things, beside and inside kiln's.
  fs::create_directories(out / "myproj");
  std::ofstream(out / "myproj" / "kiln.json") << "{\"mine\": true}";
  std::ofstream(out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime" / "NOTES") << "mine";
  // Another matrix into the same directory: every pytorch combination leaves.
  render::generate(plan_for("offline"), r, out.string());
  CHECK(fs::exists(out / "myproj" / "kiln.json"));
  CHECK(fs::exists(out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime" / "NOTES"));
  CHECK_FALSE(fs::exists(out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime" / "Dockerfile"));
  CHECK_FALSE(fs::exists(out / "pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-devel"));
  CHECK(fs::exists(out / "cuda11.8-debian12-runtime" / "Dockerfile"));
  // The kept directory stays kiln's, so the next pytorch run may use it again.
  render::generate(pytorch, r, out.string());
  CHECK(fs::exists(out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime" / "Dockerfile"));
  CHECK(read_file((out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime" / "NOTES").string()) == "mine");
  CHECK_FALSE(fs::exists(out / "cuda11.8-debian12-runtime"));
  fs::remove_all(out);
}

TEST_CASE("a tree generated before .kiln-generated existed is adopted by its plan.json", "[render][generate]") {
  render::Renderer r(kSrc + "/templates");
  fs::path out = scratch("legacy");
  render::generate(plan_for("pytorch"), r, out.string());
  fs::remove(out / ".kiln-generated");  // as an older kiln left it
  fs::create_directories(out / "myproj");
  std::ofstream(out / "myproj" / "kiln.json") << "{}";
  render::generate(plan_for("offline"), r, out.string());
  CHECK(fs::exists(out / "myproj" / "kiln.json"));  // not in the old plan: not kiln's
  CHECK_FALSE(fs::exists(out / "pytorch2.6-cuda12.4-cudnn9-ubuntu22.04-runtime"));
  CHECK(fs::exists(out / "cuda11.8-debian12-runtime" / "Dockerfile"));
  CHECK(fs::exists(out / ".kiln-generated"));
  fs::remove_all(out);
}

TEST_CASE("generate refuses a directory it did not make", "[render][generate][bad-input]") {
  render::Renderer r(kSrc + "/templates");
  fs::path out = scratch("foreign");
  // A user's project that happens to hold a kiln.json.
  fs::create_directories(out / "project");
  std::ofstream(out / "project" / "kiln.json") << "{}";
  CHECK_THROWS_WITH(render::generate(plan_for("offline"), r, out.string()), Catch::Contains("holds no .kiln-generated"));
  CHECK(fs::exists(out / "project" / "kiln.json"));
  CHECK_FALSE(fs::exists(out / "plan.json"));
  // A list naming a path outside: refused, and nothing is touched.
  fs::remove_all(out);
  fs::create_directories(out);
  std::ofstream(out / ".kiln-generated") << "plan.json\n../victim\n";
  CHECK_THROWS_WITH(render::generate(plan_for("offline"), r, out.string()), Catch::Contains("is not a path kiln writes"));
  // A file kiln would write, there but not listed: refused.
  std::ofstream(out / ".kiln-generated") << "plan.json\n";
  std::ofstream(out / "docker-bake.json") << "mine";
  CHECK_THROWS_WITH(render::generate(plan_for("offline"), r, out.string()), Catch::Contains("kiln did not write it"));
  CHECK(read_file((out / "docker-bake.json").string()) == "mine");
  // A listed combination directory replaced by a link: never written through.
  fs::remove(out / "docker-bake.json");
  fs::path elsewhere = scratch("elsewhere");
  fs::create_directories(elsewhere);
  std::ofstream(out / ".kiln-generated") << "cuda11.8-debian12-runtime/\ncuda11.8-debian12-runtime/Dockerfile\n";
  fs::create_directory_symlink(elsewhere, out / "cuda11.8-debian12-runtime");
  CHECK_THROWS_WITH(render::generate(plan_for("offline"), r, out.string()), Catch::Contains("is not a directory (a symlink?)"));
  CHECK(fs::is_empty(elsewhere));
  fs::remove_all(out);
  fs::remove_all(elsewhere);
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
  CHECK_THROWS_AS(render::Renderer(tmpl.string()), InputError);  // before any combination
  // A name no combination has: found when rendering, before anything is written.
  std::ofstream(tmpl / "Dockerfile.mustache") << "FROM {{base}}\n{{typo}}\n";
  render::Renderer r(tmpl.string());
  fs::path out = scratch("never");
  CHECK_THROWS_AS(render::generate(plan_for("offline"), r, out.string()), InputError);
  CHECK_FALSE(fs::exists(out));
  fs::remove_all(tmpl);
}

namespace {

// A templates directory holding only what a test writes.
struct Templates {
  fs::path dir = scratch("t");
  Templates() { fs::create_directories(dir / "partials"); }
  ~Templates() { fs::remove_all(dir); }
  Templates& main(const std::string& text) {
    std::ofstream(dir / "Dockerfile.mustache") << text;
    return *this;
  }
  Templates& partial(const std::string& name, const std::string& text) {
    std::ofstream(dir / "partials" / (name + ".mustache")) << text;
    return *this;
  }
};

std::string renderer_error(const Templates& t) {
  try {
    render::Renderer r(t.dir.string());
    auto p = plan_for("offline");
    r.render(p.combos[0], p);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Templates fail cleanly, with line:col, before kainjow runs.
TEST_CASE("a partial that includes itself is an error, not a crash", "[render][template][bad-input]") {
  Templates t;
  t.main("FROM {{base}}\n{{> a}}\n").partial("a", "{{#devel}}{{> b}}{{/devel}}\n").partial("b", "x\n{{> a}}\n");
  auto e = renderer_error(t);
  CHECK(e.find("partials/b.mustache:2:1: error: partial 'a' includes itself (a -> b -> a)") != std::string::npos);
}

TEST_CASE("deep nesting is refused before the library parses it", "[render][template][bad-input]") {
  Templates t;
  std::string deep;
  for (int i = 0; i < 20000; ++i) deep += "{{#devel}}";
  for (int i = 0; i < 20000; ++i) deep += "{{/devel}}";
  t.main("FROM {{base}}\n" + deep + "\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:2:321: error: sections nest deeper than 32") != std::string::npos);
}

TEST_CASE("template errors name line and column, and what went wrong", "[render][template][bad-input]") {
  Templates t;
  t.main("# x\nFROM {{base}}\n{{#apt}}\nRUN true\n  {{/devel}}\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:5:3: error: {{/devel}} does not match {{#apt}} opened at 3:1") != std::string::npos);
  t.main("FROM {{base}}\n{{#apt}}\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:2:1: error: {{#apt}} is never closed") != std::string::npos);
  t.main("FROM {{base}}\n{{/apt}}\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:2:1: error: {{/apt}} closes no open section") != std::string::npos);
  t.main("FROM {{base\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:1:6: error: unclosed tag") != std::string::npos);
  t.main("FROM {{bsae}}\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:1:6: error: {{bsae}} names no template value") != std::string::npos);
  t.main("FROM {{base}}\n{{#apt_packages}}{{vlaue}}{{/apt_packages}}\n");
  CHECK(renderer_error(t).find("{{vlaue}} names no template value") != std::string::npos);
  t.main("FROM {{base}}\n{{> nope}}\n");
  CHECK(renderer_error(t).find("Dockerfile.mustache:2:1: error: unknown partial 'nope'") != std::string::npos);
  t.main("{{=<% %>=}}\nFROM <% base %>\n");
  CHECK(renderer_error(t).find("set-delimiter tags") != std::string::npos);
  // Names inside a list section resolve against its items, outer names too.
  t.main("FROM {{base}}\n{{#apt_packages}}{{value}} {{id}}{{^last}},{{/last}}{{/apt_packages}}\n");
  CHECK(renderer_error(t).empty());
}

TEST_CASE("a template cannot render without bound", "[render][template][bad-input]") {
  Templates t;
  std::string open, close;
  for (int i = 0; i < 30; ++i) open += "{{#apt_packages}}", close += "{{/apt_packages}}";
  t.main("FROM {{base}}\n" + open + "x" + close + "\n");
  CHECK(renderer_error(t).find("would render more than") != std::string::npos);
  // Many references to a partial that references another many times.
  std::string many_b, many_c;
  for (int i = 0; i < 2000; ++i) many_b += "{{> b}}", many_c += "{{> c}}";
  t.main("FROM {{base}}\n" + many_b + "\n").partial("b", many_c).partial("c", "{{! nothing }}");
  CHECK(renderer_error(t).find("expands too much") != std::string::npos);
}

TEST_CASE("a context file that is a symlink is refused", "[render][template][bad-input]") {
  Templates t;
  t.main("FROM {{base}}\n");
  fs::create_directories(t.dir / "context");
  fs::create_symlink("/etc/shadow", t.dir / "context" / "shadow");
  CHECK_THROWS_WITH(render::Renderer(t.dir.string()), Catch::Contains("context/shadow: error: is a symbolic link"));
}

TEST_CASE("a value that would inject a Dockerfile line is refused at render", "[render][bad-input]") {
  render::Renderer r(kSrc + "/templates");
  auto p = plan_for("offline");
  auto bad = [&](auto mutate) {
    auto q = p;
    mutate(q.combos[0]);
    try {
      r.render(q.combos[0], q);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad([](plan::Combo& c) { c.base = "kiln/debian:12\nUSER root"; }).find("'base' = \"kiln/debian:12\\nUSER root\" holds a newline") != std::string::npos);
  CHECK(bad([](plan::Combo& c) { c.install.packages.push_back("-o=APT::x"); }).find("'apt_packages'") != std::string::npos);
  CHECK(bad([](plan::Combo& c) { c.install.env.push_back("A=1 B=2"); }).find("'recipe_env'") != std::string::npos);
  CHECK(bad([](plan::Combo& c) { c.tags.push_back("r/x:a b"); }).find("'tags'") != std::string::npos);
}

TEST_CASE("[pip] options reach the pip step: mounts, find-links, no index, secret by id only", "[render][pip]") {
  fs::path dir = scratch("pip");
  fs::create_directories(dir / "wheelhouse");
  std::string text = "name = 'p'\n[axes]\npytorch = ['2.11']\ncuda = ['13.0']\nos = ['ubuntu24.04']\nflavor = ['runtime']\n"
                     "[pip]\nfind_links = ['wheelhouse', 'https://links.internal/torch']\nno_index = true\n"
                     "index_url = 'https://never.internal/simple'\nsecret = 'pip-netrc'\nsecret_env = 'PIP_NETRC'\n";
  plan::Plan p = plan::make_plan(matrix::parse_matrix_text(text, (dir / "m.toml").string()), cat());
  REQUIRE(p.combos.size() == 1);
  REQUIRE(p.combos[0].status == plan::Status::valid);
  render::Rendered r = render::Renderer(kSrc + "/templates").render(p.combos[0], p);
  const std::string& d = r.dockerfile;
  CHECK(d.find("RUN --mount=type=bind,source=kiln-wheels/1,target=/tmp/kiln-wheels/1 \\\n"
               "    --mount=type=secret,id=pip-netrc \\\n    set -eux;") != std::string::npos);
  CHECK(d.find("--no-index") != std::string::npos);
  CHECK(d.find("--index-url") == std::string::npos);  // no_index leaves the index out
  CHECK(d.find("--find-links https://links.internal/torch") != std::string::npos);
  CHECK(d.find("--find-links /tmp/kiln-wheels/1") != std::string::npos);
  CHECK(d.find("NETRC=/run/secrets/pip-netrc /opt/venv/bin/pip install") != std::string::npos);
  CHECK(d.find("\"torch==2.11.0\"") != std::string::npos);
  CHECK(d.find("'nvidia-cudnn-cu13==9.19.0.56' 'nvidia-nccl-cu13==2.28.9'") != std::string::npos);
  CHECK(d.find("#   wheelhouse wheelhouse (the matrix's find_links directory") != std::string::npos);
  CHECK(d.find("PIP_NETRC") == std::string::npos);  // the source's name is kiln's business, not the image's
  REQUIRE(r.context_dirs.size() == 1);
  CHECK(r.context_dirs.at("kiln-wheels/1") == (dir / "wheelhouse").string());
  REQUIRE(r.secrets.size() == 1);
  CHECK((r.secrets[0].id == "pip-netrc" && r.secrets[0].env == "PIP_NETRC" && r.secrets[0].file.empty()));
  CHECK(r.run_mounts);
  fs::remove_all(dir);
}

TEST_CASE("without [pip] the pip step needs no RUN --mount and apt runs only without a venv", "[render][pip]") {
  plan::Plan p = plan_for("pytorch");
  const plan::Combo* c = nullptr;
  for (const auto& x : p.combos)
    if (x.id == "pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-runtime") c = &x;
  REQUIRE(c);
  render::Rendered r = render::Renderer(kSrc + "/templates").render(*c, p);
  CHECK(r.dockerfile.find("--mount") == std::string::npos);
  CHECK(r.dockerfile.find("if ! { command -v python3 >/dev/null 2>&1 && python3 -m venv /opt/venv; }; then") != std::string::npos);
  CHECK(r.dockerfile.find("--index-url https://download.pytorch.org/whl/cu130") != std::string::npos);
  CHECK_FALSE(r.run_mounts);
  CHECK(r.context_dirs.empty());
  CHECK(r.secrets.empty());
}

TEST_CASE("apt takes its proxy per command from build arg APT_PROXY, never from a file left behind", "[render][cache]") {
  plan::Plan p = plan_for("offline");
  render::Renderer r(kSrc + "/templates");
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid) continue;
    const std::string d = r.render(c, p).dockerfile;
    CHECK(d.find("ARG APT_PROXY=\n") != std::string::npos);  // empty default: a plain `docker build` goes direct
    CHECK(d.find("apt-get ${APT_PROXY:+-o Acquire::http::Proxy=$APT_PROXY} update;") != std::string::npos);
    CHECK(d.find("apt-get ${APT_PROXY:+-o Acquire::http::Proxy=$APT_PROXY} install -y") != std::string::npos);
    CHECK(d.find("apt.conf") == std::string::npos);
    CHECK(d.find("ENV APT_PROXY") == std::string::npos);
    CHECK(d.find("http_proxy") == std::string::npos);
    // The .debs and lists go in the step that fetched them.
    CHECK(d.find("apt-get clean; \\\n    rm -rf /var/lib/apt/lists/*\n") != std::string::npos);
  }
}

TEST_CASE("[cache] pip puts pip's cache in a BuildKit cache mount, not a layer", "[render][cache][pip]") {
  fs::path dir = scratch("pipcache");
  fs::create_directories(dir);
  std::string text = "name = 'p'\n[axes]\npytorch = ['2.11']\ncuda = ['13.0']\nos = ['ubuntu24.04']\nflavor = ['runtime']\n"
                     "[cache]\npip = true\n";
  plan::Plan p = plan::make_plan(matrix::parse_matrix_text(text, (dir / "m.toml").string()), cat());
  REQUIRE(p.combos.size() == 1);
  render::Rendered r = render::Renderer(kSrc + "/templates").render(p.combos[0], p);
  CHECK(r.dockerfile.find("RUN --mount=type=cache,id=kiln-pip,target=/root/.cache/pip \\\n    set -eux;") != std::string::npos);
  CHECK(r.dockerfile.find("--no-cache-dir") == std::string::npos);  // pip writes its cache, into the mount
  CHECK(r.run_mounts);  // BuildKit (buildx) or Buildah only: the engine backend refuses it
  // Without [cache] pip, nothing is cached: --no-cache-dir and no mount.
  plan::Plan q = plan_for("pytorch");
  for (const auto& c : q.combos)
    if (c.status == plan::Status::valid) {
      auto d = render::Renderer(kSrc + "/templates").render(c, q).dockerfile;
      CHECK(d.find("--no-cache-dir") != std::string::npos);
      CHECK(d.find("type=cache") == std::string::npos);
      break;
    }
  fs::remove_all(dir);
}
