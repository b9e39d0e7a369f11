// Every class of bad matrix input must give file:line:col and a message a
// user can act on; good input must read back exactly.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "matrix/matrix.h"

using namespace kiln;
using matrix::parse_matrix_text;

static const char* kGood = R"(
name = "t"
targets = ["T4", "sm_90"]
[axes]
pytorch = ["2.6", "2.7"]
cuda = ["12.4", "12.6"]
cudnn = "9"
os = ["ubuntu22.04"]
flavor = ["runtime", "devel"]
[[exclude]]
pytorch = "2.7"
cuda = "12.4"
reason = "not published"
[[include]]
pytorch = "2.6"
cuda = "11.8"
flavor = "runtime"
[policy]
verify = ["static", "gpu"]
gpu_classes = ["sm_90"]
[registry]
url = "127.0.0.1:5000"
repository = "kiln/t"
insecure = true
[tags]
templates = ["{pytorch}-{cuda}-{flavor}"]
[[base]]
os = "ubuntu22.04"
image = "local/ubuntu:22.04"
[runners.gpu]
engine = "unix:///tmp/podman.sock"
gpu = "devices"
)";

// The text of every diagnostic, one per line.
static std::string errors_of(const std::string& text) {
  try {
    parse_matrix_text(text, "m.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("a complete matrix reads back exactly", "[matrix]") {
  auto m = parse_matrix_text(kGood, "m.toml");
  CHECK(m.name == "t");
  REQUIRE(m.axis("pytorch"));
  CHECK(m.axis("pytorch")->values.size() == 2);
  CHECK(m.axis("cudnn")->values[0].text == "9");
  CHECK(m.axis("python") == nullptr);
  CHECK(m.axis("cuda")->values[1].where.str() == "m.toml:6:17");
  REQUIRE(m.exclude.size() == 1);
  CHECK(m.exclude[0].reason == "not published");
  CHECK(m.include[0].values.at("cuda").text == "11.8");
  CHECK(m.policy.gpu_classes == std::vector<std::string>{"sm_90"});
  CHECK(m.registry.insecure);
  CHECK(m.tag_templates[0].text == "{pytorch}-{cuda}-{flavor}");
  CHECK(m.bases[0].image == "local/ubuntu:22.04");
  CHECK(m.runners[0].name == "gpu");
  CHECK(m.runners[0].gpu == matrix::GpuMode::devices);
  CHECK(m.runners[0].backend == matrix::Backend::engine);
}

TEST_CASE("the default tag scheme is pytorch/pytorch's", "[matrix]") {
  auto m = parse_matrix_text("name='x'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n", "m.toml");
  CHECK(m.tag_templates[0].text == "{pytorch}-cuda{cuda}-cudnn{cudnn_major}-{flavor}");
}

TEST_CASE("malformed TOML points at the syntax error", "[matrix][bad-input]") {
  CHECK(errors_of("name = \"x\"\n[axes\ncuda = 1\n").rfind("m.toml:2:", 0) == 0);
  CHECK(errors_of("name = \"unterminated\n").rfind("m.toml:1:", 0) == 0);
}

TEST_CASE("wrong types are reported with what was expected", "[matrix][bad-input]") {
  auto e = errors_of("name = 3\n[axes]\ncuda = [12.4]\nos=['ubuntu22.04']\nflavor=['runtime']\n");
  CHECK(e.find("m.toml:1:8: error: 'name' must be a string, not an integer") != std::string::npos);
  CHECK(e.find("m.toml:3:9: error: 'cuda' must hold strings, not a float") != std::string::npos);
}

TEST_CASE("unknown keys are errors, with a suggestion", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\npytorh=['2.6']\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n");
  CHECK(e.find("m.toml:3:1: error: unknown key 'pytorh' (did you mean 'pytorch'?)") != std::string::npos);
  e = errors_of("name='x'\ncolour='red'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n");
  CHECK(e.find("m.toml:2:1: error: unknown key 'colour'") != std::string::npos);
}

TEST_CASE("empty axes and duplicate values are errors", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\ncuda=[]\nos=['ubuntu22.04']\nflavor=['runtime','runtime']\n");
  CHECK(e.find("m.toml:3:6: error: 'cuda' must not be empty") != std::string::npos);
  CHECK(e.find("'runtime' appears twice in axis 'flavor'") != std::string::npos);
  CHECK(errors_of("name='x'\n[axes]\nos=['ubuntu22.04']\nflavor=['runtime']\n").find("missing required key 'cuda'") != std::string::npos);
}

TEST_CASE("flavor, checks and policies are closed sets", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['slim']\n[policy]\nverify=['vibes']\ntargets='most'\n");
  CHECK(e.find("flavor must be \"runtime\" or \"devel\", not \"slim\"") != std::string::npos);
  CHECK(e.find("unknown check \"vibes\"") != std::string::npos);
  CHECK(e.find("policy.targets must be") != std::string::npos);
  e = errors_of("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[policy]\nverify=['gpu']\n");
  CHECK(e.find("names no GPU class") != std::string::npos);
}

TEST_CASE("contradictory include and exclude are an error at the include", "[matrix][bad-input]") {
  auto e = errors_of(
      "name='x'\n[axes]\ncuda=['12.4']\nos=['ubuntu22.04']\nflavor=['runtime']\n"
      "[[include]]\ncuda='12.4'\nos='ubuntu24.04'\nflavor='runtime'\n"
      "[[exclude]]\nos='ubuntu24.04'\nreason='no'\n");
  CHECK(e.find("[[exclude]] #1: os \"ubuntu24.04\" is not a value of axis 'os'") != std::string::npos);
  e = errors_of(
      "name='x'\n[axes]\ncuda=['12.4', '12.6']\nos=['ubuntu22.04']\nflavor=['runtime']\n"
      "[[include]]\ncuda='12.6'\nos='ubuntu22.04'\nflavor='runtime'\npython='3.10'\n"
      "[[exclude]]\ncuda='12.6'\nreason='no'\n");
  CHECK(e.find("m.toml:6:1: error: [[include]] #1 is removed again by [[exclude]] #1") != std::string::npos);
}

TEST_CASE("exclude rules need a reason and known axes", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[[exclude]]\ncuda='12.4'\ngpu='T4'\n");
  CHECK(e.find("missing required key 'reason'") != std::string::npos);
  CHECK(e.find("unknown key 'gpu' in [[exclude]]") != std::string::npos);
}

TEST_CASE("registry urls carry no scheme; runners are tables", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[registry]\nurl='https://r'\nrepository='a'\n[runners]\nx=1\n");
  CHECK(e.find("without a scheme") != std::string::npos);
  CHECK(e.find("runner 'x' must be a table") != std::string::npos);
}

TEST_CASE("policy overrides are checked like rules", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[policy]\n"
                     "[[policy.override]]\ngpu='T4'\nverify=['gpu']\n");
  CHECK(e.find("unknown key 'gpu' in [[policy.override]]") != std::string::npos);
  CHECK(e.find("this override requires \"gpu\" but names no gpu_classes") != std::string::npos);
  CHECK(e.find("must match at least one axis value") != std::string::npos);
}

TEST_CASE("an arch list must parse (found by the fuzzer)", "[matrix][bad-input]") {
  auto e = errors_of("name='x'\narch_list='driver7.5'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n");
  CHECK(e.find("m.toml:2:11: error: arch_list \"driver7.5\" is not an arch list") != std::string::npos);
}

// Names become directories and Dockerfile text; policies must not
// wave images through.
TEST_CASE("a matrix name is a safe path component and repository name", "[matrix][bad-input]") {
  const char* rest = "\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  CHECK(errors_of(std::string("name='../../x'") + rest).find("m.toml:1:6: error: name \"../../x\" must be lower-case") != std::string::npos);
  CHECK(errors_of(std::string("name='..'") + rest).find("'..' is not a name") != std::string::npos);
  CHECK(errors_of(std::string("name='A'") + rest).find("must be lower-case") != std::string::npos);
  CHECK(errors_of(std::string("name=\"x\\nRUN id\"") + rest).find("holds a newline") != std::string::npos);
  CHECK(errors_of(std::string("name='ok-name_2.x'") + rest).empty());
}

TEST_CASE("no string may hold a newline, but a description may", "[matrix][bad-input]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nflavor=['runtime']\n";
  auto e = errors_of(std::string(head) + "os=[\"u\\nRUN id\"]\n");
  CHECK(e.find("m.toml:5:5: error: 'os' = \"u\\nRUN id\" holds a newline") != std::string::npos);
  CHECK(errors_of(std::string("description=\"two\\nlines\"\n") + head + "os=['u']\n").empty());
  e = errors_of(std::string(head) + "os=['u']\n[[base]]\nos='u'\nimage='kiln/debian:12 --privileged'\n");
  CHECK(e.find("[[base]] image \"kiln/debian:12 --privileged\" its tag may hold only") != std::string::npos);
}

TEST_CASE("verify = [] and an empty registry url are errors", "[matrix][bad-input]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto e = errors_of(std::string(head) + "[policy]\nverify=[]\n");
  CHECK(e.find("m.toml:7:8: error: policy.verify = [] would call every built image verified") != std::string::npos);
  e = errors_of(std::string(head) + "[[policy.override]]\nflavor='runtime'\nverify=[]\n");
  CHECK(e.find("this override's verify = [] would call every built image verified") != std::string::npos);
  e = errors_of(std::string(head) + "[registry]\nurl=''\nrepository='a'\n");
  CHECK(e.find("m.toml:7:5: error: registry.url \"\" is empty: release tags would go to Docker Hub") != std::string::npos);
  e = errors_of(std::string(head) + "[registry]\nurl='r:5000'\nrepository='../a'\n");
  CHECK(e.find("registry.repository \"../a\"") != std::string::npos);
}

TEST_CASE("GPU classes are written as sm_XY wherever they appear", "[matrix][bad-input]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto e = errors_of(std::string(head) + "[policy]\nverify=['gpu']\ngpu_classes=['H100']\n");
  CHECK(e.find("GPU class \"H100\" is not a compute capability") != std::string::npos);
  e = errors_of(std::string(head) + "[runners.g]\ngpu='nvidia'\ngpu_classes=['9.0']\n");
  CHECK(e.find("GPU class \"9.0\" must be written \"sm_90\"") != std::string::npos);
  auto m = parse_matrix_text(std::string(head) + "[policy]\nverify=['gpu']\ngpu_classes=['sm_90']\n", "m.toml");
  REQUIRE(m.gpu_classes_named.size() == 1);
  CHECK(m.gpu_classes_named[0].where.str() == "m.toml:8:14");
}

TEST_CASE("an override value no axis or include holds is an error", "[matrix][bad-input]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime','devel']\n";
  auto e = errors_of(std::string(head) + "[[policy.override]]\nflavor='devle'\nverify=['static']\n");
  CHECK(e.find("m.toml:7:8: error: [[policy.override]] #1: flavor \"devle\" is not a value of axis 'flavor'") != std::string::npos);
  CHECK(errors_of(std::string(head) + "[[include]]\ncuda='12.6'\nos='u'\nflavor='devel'\n"
                  "[[policy.override]]\ncuda='12.6'\nverify=['static']\n").empty());
}

TEST_CASE("runner names and device paths are checked", "[matrix][bad-input]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto e = errors_of(std::string(head) + "[runners.\"../r\"]\ngpu='devices'\ndevices=['dev/nvidia0']\n");
  CHECK(e.find("runner name \"../r\"") != std::string::npos);
  CHECK(e.find("device \"dev/nvidia0\" is not an absolute path") != std::string::npos);
}

TEST_CASE("a runner names a buildx builder, only with backend buildx", "[matrix][builder]") {
  const char* head = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto m = parse_matrix_text(std::string(head) + "[runners.farm]\nbackend='buildx'\nbuilder='k8s-farm'\n", "m.toml");
  REQUIRE(m.runners.size() == 1);
  CHECK(m.runners[0].builder == "k8s-farm");
  CHECK(m.runners[0].backend == matrix::Backend::buildx);
  auto e = errors_of(std::string(head) + "[runners.farm]\nbuilder='k8s-farm'\n");
  CHECK(e.find("m.toml:7:9: error: runner 'farm': builder \"k8s-farm\" is a buildx builder; it needs backend = \"buildx\"") !=
        std::string::npos);
  e = errors_of(std::string(head) + "[runners.farm]\nbackend='buildx'\nbuilder='a b'\n");
  CHECK(e.find("builder name \"a b\"") != std::string::npos);
}

TEST_CASE("[pip] reads index, find-links (URL or directory beside the matrix) and the secret's source", "[matrix][pip]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kiln-matrix-pip-" + std::to_string(::getpid()));
  fs::create_directories(dir / "wheelhouse");
  std::string path = (dir / "m.toml").string();
  auto m = parse_matrix_text("name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[pip]\n"
                             "index_url='https://pypi.internal/simple'\nextra_index_urls=['https://e.internal/simple']\n"
                             "find_links=['wheelhouse', 'https://w.internal/links']\nno_index=true\n"
                             "packages=['torch==2.11.0+cu130']\nsecret='pip-netrc'\nsecret_file='netrc'\n", path);
  CHECK(*m.pip.index_url == "https://pypi.internal/simple");
  CHECK(*m.pip.extra_index_urls == std::vector<std::string>{"https://e.internal/simple"});
  REQUIRE(m.pip.find_links->size() == 2);
  CHECK((*m.pip.find_links)[0].directory == (dir / "wheelhouse").string());
  CHECK((*m.pip.find_links)[1].directory.empty());
  CHECK(*m.pip.no_index);
  CHECK(m.pip.secret == "pip-netrc");
  CHECK(m.pip.secret_file == (dir / "netrc").string());
  CHECK(m.pip.secret_env.empty());
  fs::remove_all(dir);
}

TEST_CASE("[pip] refuses credentials in URLs, a secret without one source, a missing wheelhouse", "[matrix][pip][bad-input]") {
  const std::string axes = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n[pip]\n";
  auto e = errors_of(axes + "index_url='https://ci:hunter2@pypi.internal/simple'\n");
  CHECK(e.find("m.toml:7:11: error: [pip] index_url") != std::string::npos);
  CHECK(e.find("holds credentials") != std::string::npos);
  CHECK(errors_of(axes + "extra_index_urls=['https://u:p@e/simple']\n").find("holds credentials") != std::string::npos);
  CHECK(errors_of(axes + "secret='s'\n").find("needs exactly one source") != std::string::npos);
  CHECK(errors_of(axes + "secret='s'\nsecret_env='A'\nsecret_file='f'\n").find("needs exactly one source") != std::string::npos);
  CHECK(errors_of(axes + "secret_env='A'\n").find("without 'secret'") != std::string::npos);
  CHECK(errors_of(axes + "secret='s'\nsecret_env='1BAD-NAME'\n").find("not an environment variable name") != std::string::npos);
  CHECK(errors_of(axes + "find_links=['no-such-wheelhouse-dir']\n").find("neither an http(s) URL nor a directory") != std::string::npos);
  CHECK(errors_of(axes + "packages=['torch; rm -rf /']\n").find("[pip] packages entry") != std::string::npos);
  CHECK(errors_of(axes + "index='https://x'\n").find("unknown key 'index'") != std::string::npos);
}

TEST_CASE("[cache] and [budget] read back; sizes in decimal and binary units", "[matrix][cache]") {
  const std::string axes = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto m = parse_matrix_text(axes + "[cache]\napt='kiln'\npip=true\n[budget]\nruntime='6GB'\ndevel='1.5GiB'\n", "m.toml");
  CHECK(m.cache.apt == "kiln");
  CHECK(m.cache.pip);
  CHECK(m.budget.bytes.at("runtime") == 6000000000LL);
  CHECK(m.budget.bytes.at("devel") == 1610612736LL);
  CHECK(m.budget.written.at("runtime") == "6GB");
  CHECK(parse_matrix_text(axes + "[cache]\napt='http://10.0.0.5:3142'\n", "m.toml").cache.apt == "http://10.0.0.5:3142");
  auto none = parse_matrix_text(axes, "m.toml");
  CHECK(none.cache.apt.empty());
  CHECK_FALSE(none.cache.pip);
  CHECK(none.budget.bytes.empty());
  CHECK(matrix::parse_byte_size("800MB") == 800000000LL);
  CHECK(matrix::parse_byte_size("512 MiB") == 536870912LL);
  CHECK(matrix::parse_byte_size("123") == 123);
  CHECK(matrix::parse_byte_size("6 gigs") == 0);
  CHECK(matrix::parse_byte_size("GB") == 0);
}

TEST_CASE("[cache] and [budget] refuse what they cannot use, at file:line:col", "[matrix][cache][bad-input]") {
  const std::string axes = "name='x'\n[axes]\ncuda=['12.4']\nos=['u']\nflavor=['runtime']\n";
  auto e = errors_of(axes + "[cache]\napt='https://proxy:3142'\n");
  CHECK(e.find("m.toml:7:5: error: [cache] apt") != std::string::npos);
  CHECK(e.find("must be \"kiln\"") != std::string::npos);
  CHECK(errors_of(axes + "[cache]\napt='http://u:secret@proxy:3142'\n").find("holds credentials") != std::string::npos);
  CHECK(errors_of(axes + "[cache]\napt='yes'\n").find("must be \"kiln\"") != std::string::npos);
  CHECK(errors_of(axes + "[cache]\nwheels=true\n").find("unknown key 'wheels'") != std::string::npos);
  auto b = errors_of(axes + "[budget]\nruntime='big'\n");
  CHECK(b.find("m.toml:7:9: error: [budget] runtime \"big\" is not a size") != std::string::npos);
  CHECK(errors_of(axes + "[budget]\nsmoke='1GB'\n").find("unknown key 'smoke'") != std::string::npos);
}

TEST_CASE("the platform axis takes the catalog's words and Docker's", "[matrix][platform]") {
  auto m = parse_matrix_text(R"(name = "x"
[axes]
cuda = ["12.4"]
os = ["debian13"]
flavor = ["runtime"]
platform = ["linux/amd64", "arm64"]
[[exclude]]
platform = "linux/arm64"
cuda = "12.4"
reason = "not yet"
[[base]]
platform = "linux/arm64"
image = "kiln/debian:13-arm64"
)", "m.toml");
  const auto* axis = m.axis("platform");
  REQUIRE(axis);
  REQUIRE(axis->values.size() == 2);
  CHECK(axis->values[0].text == "x86_64");
  CHECK(axis->values[1].text == "aarch64");
  CHECK(m.exclude.at(0).values.at("platform").text == "aarch64");
  CHECK(m.bases.at(0).platform == "aarch64");
  CHECK(kiln::matrix::oci_platform("aarch64") == "linux/arm64");
  CHECK(kiln::matrix::oci_platform("x86_64") == "linux/amd64");
}

TEST_CASE("a platform kiln does not know, twice, or with [image] platform is an error", "[matrix][platform][bad-input]") {
  std::string base = "name = \"x\"\n[axes]\ncuda = [\"12.4\"]\nos = [\"debian13\"]\nflavor = [\"runtime\"]\n";
  std::string bad = errors_of(base + "platform = [\"ppc64le\"]\n");
  CHECK(bad.find("m.toml:6:13") != std::string::npos);
  CHECK(bad.find("platform \"ppc64le\" is not \"x86_64\" or \"aarch64\"") != std::string::npos);
  CHECK(errors_of(base + "platform = [\"arm64\", \"aarch64\"]\n").find("appears twice") != std::string::npos);
  CHECK(errors_of(base + "platform = [\"arm64\"]\n[image]\nplatform = \"aarch64\"\n").find("keep the axis") != std::string::npos);
  CHECK(errors_of(base + "[[base]]\nplatform = \"s390x\"\nimage = \"x\"\n").find("[[base]] platform \"s390x\"") != std::string::npos);
}
