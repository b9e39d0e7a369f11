// The survey room's parsers and comparisons on the fixture documents
// (tests/survey/data, see its README) and a copy of the catalog; --write on
// that copy. Wheels built with nvcc are exercised by test_survey_cli.sh.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "survey/internal.h"
#include "util/diag.h"
#include "util/text.h"

namespace fs = std::filesystem;
using namespace kiln;
using namespace kiln::survey;
using namespace kiln::survey::detail;

namespace {

const std::string kData = std::string(KILN_SOURCE_DIR) + "/tests/survey/data/";

// recipes/ copied to a fresh temporary directory, with the test catalog's
// pytorch.toml and cuda.toml in place of the real ones.
struct CatalogCopy {
  fs::path root;
  CatalogCopy() {
    root = fs::temp_directory_path() / ("kiln-survey-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(root);
    fs::create_directories(root);
    fs::copy(std::string(KILN_SOURCE_DIR) + "/recipes", root / "recipes", fs::copy_options::recursive);
    for (const char* f : {"pytorch.toml", "cuda.toml"})
      fs::copy_file(kData + "catalog/" + f, root / "recipes" / "catalog" / f, fs::copy_options::overwrite_existing);
  }
  ~CatalogCopy() { fs::remove_all(root); }
  std::string recipes() const { return (root / "recipes").string(); }
  std::string file(const char* name) const { return (root / "recipes" / "catalog" / name).string(); }
  catalog::Catalog load() const { return catalog::Catalog::load(recipes()); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

const Row* find_row(const Report& r, const std::string& fact) {
  for (const auto& row : r.rows)
    if (row.fact == fact) return &row;
  return nullptr;
}

}  // namespace

TEST_CASE("Requires-Dist lines in the forms torch wheels used", "[survey]") {
  auto r = parse_requirement(R"(nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux")");
  REQUIRE(r);
  CHECK(r->name == "nvidia-cudnn-cu13");
  CHECK(r->pin == "9.19.0.56");
  CHECK(r->marker == R"(platform_system == "Linux")");
  // torch 2.1-era METADATA: the specifier in parentheses.
  r = parse_requirement(R"(nvidia_cudnn_cu12 (==8.9.2.26) ; platform_system == "Linux")");
  REQUIRE(r);
  CHECK(r->name == "nvidia-cudnn-cu12");
  CHECK(r->pin == "8.9.2.26");
  // CUDA 13 wheels: the toolkit metapackage with extras.
  r = parse_requirement("cuda-toolkit[cublas,cudart,nvrtc]==13.0.2");
  REQUIRE(r);
  CHECK(r->name == "cuda-toolkit");
  CHECK(r->extras == std::vector<std::string>{"cublas", "cudart", "nvrtc"});
  CHECK(r->pin == "13.0.2");
  // Not pins.
  CHECK(parse_requirement("typing-extensions>=4.10.0")->pin.empty());
  CHECK(parse_requirement("triton~=3.8.0")->pin.empty());
  CHECK(parse_requirement("x==2.*")->pin.empty());
}

TEST_CASE("METADATA: headers only, extras left out", "[survey]") {
  Metadata m = parse_metadata(
      "Metadata-Version: 2.4\nName: torch\nVersion: 2.11.0+cu130\nRequires-Dist: nvidia-nccl-cu13==2.28.9\n"
      "Requires-Dist: opt-einsum>=3.3; extra == \"opt-einsum\"\n\nRequires-Dist: nvidia-cudnn-cu13==1.0\n");
  CHECK(m.name == "torch");
  CHECK(m.version == "2.11.0+cu130");
  REQUIRE(m.requires_dist.size() == 1);
  CHECK(m.requires_dist[0].name == "nvidia-nccl-cu13");
}

TEST_CASE("torch/version.py, wheel names and local versions", "[survey]") {
  auto v = parse_version_py("__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n");
  CHECK(v.version == "2.11.0+cu130");
  CHECK(v.cuda == "13.0");
  CHECK(parse_version_py("__version__ = '2.11.0+cpu'\ncuda: Optional[str] = None\n").cuda.empty());
  CHECK(parse_version_py("__version__ = '1.13.1+cu117'\ncuda = '11.7'\n").cuda == "11.7");

  auto t = parse_torch_version("2.11.0+cu130");
  REQUIRE(t);
  CHECK(t->version == Version::must("2.11.0"));
  CHECK(t->local == "cu130");
  CHECK_FALSE(parse_torch_version("2.12.0rc1"));
  CHECK_FALSE(parse_torch_version("2.12.0.dev20260101+cu130"));
  CHECK(cuda_of_local("cu130") == Version::must("13.0"));
  CHECK(cuda_of_local("cu118") == Version::must("11.8"));
  CHECK(cuda_of_local("cu92") == Version::must("9.2"));
  CHECK_FALSE(cuda_of_local("cpu"));
  CHECK_FALSE(cuda_of_local("rocm6.2"));

  auto w = parse_wheel_name("torch-2.11.0+cu130-cp313-cp313t-manylinux_2_28_x86_64.whl");
  REQUIRE(w);
  CHECK(w->name == "torch");
  CHECK(w->python() == "3.13t");
  CHECK(parse_wheel_name("torch-2.11.0+cu130-cp310-cp310-win_amd64.whl")->python() == "3.10");
  CHECK_FALSE(parse_wheel_name("torch-2.11.0.tar.gz"));
}

TEST_CASE("index pages: PEP 691 JSON and the HTML simple API", "[survey]") {
  IndexPage json = parse_index(read_file(kData + "cu130_torch.json"), "cu130_torch.json");
  CHECK(json.files.size() == 4 * 7 * 2 + 4 * 5);
  CHECK(json.files.front().wheel.version.ends_with("+cu130"));
  IndexPage html = parse_index(read_file(kData + "cu129_torch.html"), "cu129_torch.html");
  CHECK(html.files.size() == (6 + 4 * 7) * 2);
  // Percent-encoded "+" in hrefs, link text preferred.
  CHECK(html.files.front().filename.find("+cu129") != std::string::npos);
  // Only hrefs, yanked files marked.
  IndexPage bare = parse_index(
      R"(<html><a href="/whl/torch-2.9.0%2Bcu126-cp312-cp312-manylinux_2_28_x86_64.whl#sha256=00"></a>)"
      R"(<a href="x/torch-2.9.1%2Bcu126-cp312-cp312-manylinux_2_28_x86_64.whl" data-yanked="">t</a>)"
      R"(<a href="/numpy-2.0-cp312-cp312-linux_x86_64.whl">numpy-2.0-cp312-cp312-linux_x86_64.whl</a></html>)",
      "inline");
  REQUIRE(bare.files.size() == 1);  // "t" is no wheel name; numpy is another project
  CHECK(bare.files[0].filename == "torch-2.9.0+cu126-cp312-cp312-manylinux_2_28_x86_64.whl");
  CHECK(bare.skipped == 2);
  CHECK_THROWS_AS(parse_index("plain text", "x"), InputError);
  CHECK_THROWS_AS(parse_index("{\"name\": \"torch\"}", "x"), InputError);
}

TEST_CASE("redistrib JSON and nvidia/cuda Dockerfiles", "[survey]") {
  Redistrib r = parse_redistrib(read_file(kData + "redistrib_13.0.2.json"), kData + "redistrib_13.0.2.json");
  CHECK(r.release_label == "13.0.2");
  CHECK(r.components.at("cuda_cudart") == "13.0.96");
  CHECK(r.components.at("libcublas") == "13.1.0.3");
  CHECK(r.components.at("nvidia_driver") == "580.95.05");
  // No release_label: the file name says it.
  CHECK(parse_redistrib(R"({"cuda_cudart": {"version": "12.4.127"}})", "/x/redistrib_12.4.1.json").release_label == "12.4.1");
  CHECK_THROWS_AS(parse_redistrib(R"({"cuda_cudart": {"version": "12.4.127"}})", "x.json"), InputError);

  DockerfileFacts d = parse_dockerfile(read_file(kData + "Dockerfile.13.0.2-base-ubuntu24.04"), "Dockerfile");
  CHECK(d.cuda_version == "13.0.2");
  CHECK(d.require_cuda.starts_with("cuda>=13.0 brand=unknown,driver>=535,driver<536 "));  // amd64, not sbsa's
  // Legacy ENV form and continuation lines.
  DockerfileFacts legacy = parse_dockerfile(
      "FROM ubuntu:20.04\nENV CUDA_VERSION 11.8.0\nENV NVIDIA_REQUIRE_CUDA \"cuda>=11.8 brand=tesla,driver>=470,driver<471\"\n",
      "legacy");
  CHECK(legacy.cuda_version == "11.8.0");
  CHECK(legacy.require_cuda == "cuda>=11.8 brand=tesla,driver>=470,driver<471");  // Docker removes the quotes
  DockerfileFacts cont = parse_dockerfile("ENV A=1 \\\n    NVIDIA_REQUIRE_CUDA=\"cuda>=12.4 brand=tesla,driver>=470,driver<471\" \\\n    CUDA_VERSION=12.4.1\n", "c");
  CHECK(cont.cuda_version == "12.4.1");
  CHECK(cont.require_cuda == "cuda>=12.4 brand=tesla,driver>=470,driver<471");
  CHECK_THROWS_AS(parse_dockerfile("FROM scratch\n", "x"), InputError);
}

TEST_CASE("every fixture document agrees with the test catalog", "[survey]") {
  CatalogCopy copy;
  catalog::Catalog cat = copy.load();
  Inputs in;
  in.indexes = {kData + "cu130_torch.json", kData + "cu129_torch.html"};
  in.redistribs = {kData + "redistrib_13.0.2.json"};
  in.dockerfiles = {kData + "Dockerfile.13.0.2-base-ubuntu24.04"};
  Report r = check(cat, in);
  for (const auto& row : r.rows)
    if (row.differs) FAIL_CHECK(row.fact << ": catalog " << row.catalog << ", artifact " << row.artifact << " " << row.detail);
  CHECK(r.differences() == 0);
  CHECK(find_row(r, "pytorch 2.10.0 CUDA 12.9: published"));
  CHECK(find_row(r, "CUDA 13.0: driver shipped")->artifact == "580.95.05");
  CHECK_FALSE(find_row(r, "CUDA 13.0.2: libcublas")->compared);
}

TEST_CASE("index pages: releases the catalog lacks, and the reverse", "[survey]") {
  CatalogCopy copy;
  catalog::Catalog cat = copy.load();
  auto page = [](std::vector<std::string> names) {
    IndexPage p;
    p.source = "test";
    for (auto& n : names) p.files.push_back({n, *parse_wheel_name(n), false});
    return p;
  };
  Report r;
  compare_index(cat,
                page({"torch-2.9.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl", "torch-2.9.2+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",
                      "torch-2.11.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl", "torch-2.12.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",
                      "torch-2.8.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl"}),
                r);
  CHECK(find_row(r, "pytorch 2.10.0 CUDA 13.0: published")->artifact == "not listed");
  CHECK(find_row(r, "pytorch 2.9.1 CUDA 13.0: published")->differs);
  CHECK(find_row(r, "pytorch 2.9 CUDA 13.0: newest patch")->artifact == "2.9.2");
  CHECK(find_row(r, "pytorch 2.12 CUDA 13.0: release")->differs);
  CHECK(find_row(r, "pytorch 2.11.0 CUDA 13.0: python")->detail == "only in the catalog: 3.10 3.11 3.13 3.14");
  CHECK_FALSE(find_row(r, "pytorch 2.8 CUDA 13.0: release"));  // older than the catalog's line-up
  CHECK(r.changes.empty());                                     // an index cannot say what a build bundles

  // PyPI's own page: no local versions, the default builds.
  Report pypi;
  compare_index(cat, page({"torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl", "torch-2.11.0-cp312-cp312-win_amd64.whl",
                           "torch-2.10.0-cp312-cp312-manylinux_2_28_x86_64.whl"}), pypi);
  CHECK(find_row(pypi, "pytorch 2.9.1 default build: published")->differs);
  CHECK_FALSE(find_row(pypi, "pytorch 2.11.0 default build: published")->differs);

  Report cu126;
  compare_index(cat, page({"torch-2.11.0+cu126-cp312-cp312-manylinux_2_28_x86_64.whl"}), cu126);
  CHECK(find_row(cu126, "pytorch 2.11.0 CUDA 12.6: build")->differs);
}

TEST_CASE("PyPI: releases newer than the catalog", "[survey]") {
  CatalogCopy copy;
  catalog::Catalog cat = copy.load();
  Report r;
  compare_pypi(cat, parse_pypi(read_file(kData + "pypi_torch.json"), "pypi"), "pypi", r);
  std::vector<std::string> newer;
  for (const auto& row : r.rows)
    if (row.differs) newer.push_back(row.artifact.substr(0, row.artifact.find(' ')));
  CHECK(newer == std::vector<std::string>{"2.12.0", "2.13.0", "2.14.0", "2.15.0"});
  CHECK(r.rows[0].catalog == "newest 2.11.0");
}

TEST_CASE("--write edits the TOML text in place: values, new keys, sources, comments", "[survey]") {
  CatalogCopy copy;
  const std::string before = read_file(copy.file("cuda.toml"));
  // No require_cuda: the catalog's string is built from branches x brands
  // (one branch here, so it differs whatever the brands); an older driver.
  std::string text = before;
  text.erase(text.find("require_cuda = "), text.find('\n', text.find("require_cuda = ")) - text.find("require_cuda = ") + 1);
  text.replace(text.find("require_branches = [535, 550, 565, 570, 575]"), 44, "require_branches = [535]");
  text.replace(text.find("driver = \"580.95.05\""), 20, "driver = \"580.65.06\"  # stale");
  write_file_atomic(copy.file("cuda.toml"), text);

  catalog::Catalog cat = copy.load();
  Inputs in;
  in.redistribs = {kData + "redistrib_13.0.2.json"};
  in.dockerfiles = {kData + "Dockerfile.13.0.2-base-ubuntu24.04"};
  Report r = check(cat, in);
  CHECK(r.differences() == 2);
  CHECK(find_row(r, "CUDA 13.0: driver shipped")->differs);
  CHECK(find_row(r, "CUDA 13.0: NVIDIA_REQUIRE_CUDA")->differs);

  auto files = write(cat, r);
  CHECK(files.size() == 2);  // cuda.toml and sources.toml
  CHECK(r.differences() == 0);
  const std::string after = read_file(copy.file("cuda.toml"));
  CHECK(after.find("driver = \"580.95.05\"  # stale") != std::string::npos);  // the comment stays beside the value
  CHECK(after.find("# A test catalog for tests/survey") == 0);
  CHECK(after.find("require_branches = [535]\nrequire_cuda = \"cuda>=13.0 brand=unknown") != std::string::npos);
  CHECK(after.find("source = [\"S1\", \"S2\", \"S3\", \"S10\", \"S11\", \"redistrib:redistrib_13.0.2.json sha256:") != std::string::npos);
  const std::string sources = read_file(copy.file("sources.toml"));
  CHECK(sources.find("\"redistrib:redistrib_13.0.2.json sha256:") != std::string::npos);
  CHECK(sources.find("# Where every fact in this catalog comes from.") == 0);

  Report again = check(copy.load(), in);
  CHECK(again.differences() == 0);
  // Nothing left to write: the files stay as they are.
  const std::string sources_now = read_file(copy.file("sources.toml"));
  CHECK(write(copy.load(), again).empty());
  CHECK(read_file(copy.file("sources.toml")) == sources_now);
}

TEST_CASE("--write keeps a comment inside a multi-line source list", "[survey]") {
  CatalogCopy copy;
  std::string text = read_file(copy.file("cuda.toml"));
  const std::string one_line = "source = [\"S1\", \"S2\", \"S3\", \"S10\", \"S11\"]";
  const auto at = text.rfind(one_line);
  REQUIRE(at != std::string::npos);
  text.replace(at, one_line.size(), "source = [\n  \"S1\", \"S2\", \"S3\",\n  \"S10\", \"S11\"  # the Dockerfiles\n]");
  text.replace(text.find("driver = \"580.95.05\""), 20, "driver = \"580.65.06\"");
  write_file_atomic(copy.file("cuda.toml"), text);
  catalog::Catalog cat = copy.load();
  Inputs in;
  in.redistribs = {kData + "redistrib_13.0.2.json", kData + "redistrib_13.0.2.json"};  // twice: recorded once
  Report r = check(cat, in);
  REQUIRE(r.differences() == 2);
  write(cat, r);
  const std::string after = read_file(copy.file("cuda.toml"));
  const auto key = after.find("\"S11\", \"redistrib:redistrib_13.0.2.json sha256:");
  CHECK(key != std::string::npos);
  CHECK(after.find("  # the Dockerfiles\n]", key) != std::string::npos);
  CHECK(after.find("redistrib:redistrib_13.0.2.json", key + 10) == std::string::npos);
  CHECK(check(copy.load(), in).differences() == 0);
}
