// The grammars of strings that become paths, image names and Dockerfile text.
#include <catch2/catch.hpp>

#include "util/validate.h"

using namespace kiln;

namespace {
bool ok(grammar::Check check, std::string_view text) { return !check(text).has_value(); }
}  // namespace

TEST_CASE("OCI image references follow distribution's grammar", "[util][grammar]") {
  for (const char* good : {"ubuntu", "ubuntu:22.04", "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04", "kiln/debian:12",
                           "127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel", "localhost/x", "Registry.Example.com/a/b",
                           "kiln.local/offline:cuda11.8-debian12-runtime", "a__b/c-d--e.f:x",
                           "ubuntu@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
    CHECK(ok(grammar::image_reference, good));
  for (const char* bad : {"", "Ubuntu", "ubuntu:22.04\nUSER root", "ubuntu:22.04 --privileged", "../x", "a//b", "a/",
                          "host:port/x", "ubuntu:", "ubuntu:-x", "ubuntu@sha256:abc", "-x", "a..b", "x:y:z"})
    CHECK_FALSE(ok(grammar::image_reference, bad));
}

TEST_CASE("names are safe path components; tags are tags", "[util][grammar]") {
  for (const char* good : {"offline", "gpu-host-sm75", "a.b_c__d", "x1"}) CHECK(ok(grammar::name, good));
  for (const char* bad : {"", ".", "..", "../x", "a/b", "A", "-x", "x-", "a b", "x\n"}) CHECK_FALSE(ok(grammar::name, bad));
  for (const char* good : {"cuda12.4-debian13-devel", "_x", "V1.2"}) CHECK(ok(grammar::tag, good));
  for (const char* bad : {"", ".", "..", ".x", "-x", "a/b", "a:b"}) CHECK_FALSE(ok(grammar::tag, bad));
  CHECK_FALSE(ok(grammar::tag, std::string(129, 'a')));
}

TEST_CASE("registry hosts and repositories", "[util][grammar]") {
  for (const char* good : {"127.0.0.1:5000", "localhost", "registry.example.com", "ghcr.io/team"}) CHECK(ok(grammar::registry, good));
  for (const char* bad : {"", "https://r", "r:port", "-r", "r:5000/", "r:5000/../x", "r\n"}) CHECK_FALSE(ok(grammar::registry, bad));
  CHECK(*grammar::registry("") == "is empty: release tags would go to Docker Hub; give a host[:port] such as \"127.0.0.1:5000\"");
  CHECK(ok(grammar::repository, "ml/pytorch"));
  for (const char* bad : {"", "../a", "a/../b", "A/b", "a/b:c"}) CHECK_FALSE(ok(grammar::repository, bad));
}

TEST_CASE("Debian packages, apt components, ENV lines, pip requirements, URLs, paths", "[util][grammar]") {
  for (const char* good : {"libcudart12", "nvidia-cuda-toolkit", "g++", "libc6:amd64", "libnccl2=2.22.3-1", "python3.11"})
    CHECK(ok(grammar::debian_package, good));
  for (const char* bad : {"", "a", "-y", "--allow-unauthenticated", "Lib", "x;rm", "x y", "x\nRUN id", "x=", "x:"})
    CHECK_FALSE(ok(grammar::debian_package, bad));
  CHECK(ok(grammar::apt_component, "non-free-firmware"));
  CHECK_FALSE(ok(grammar::apt_component, "main;rm"));
  for (const char* good : {"NVCC_PREPEND_FLAGS=-ccbin=cuda-g++", "PATH=/opt/venv/bin:$PATH", "A=", "_X=${Y}"})
    CHECK(ok(grammar::env_assignment, good));
  for (const char* bad : {"=x", "1A=x", "A", "A-B=x", "A=x y", "A=\"x\"", "A=x\\", "A=x\nRUN id"})
    CHECK_FALSE(ok(grammar::env_assignment, bad));
  for (const char* good : {"torch==2.6.0", "torch", "nvidia-cudnn-cu12[extra]>=9,<10", "torch==2.6.0+cu124", "a.b_c-d~=1.*"})
    CHECK(ok(grammar::pip_requirement, good));
  for (const char* bad : {"", "-r x", "--extra-index-url=http://e", "torch==2.6 --pre", "torch\"", "torch==", "torch=2",
                          "torch==$(id)"})
    CHECK_FALSE(ok(grammar::pip_requirement, bad));
  for (const char* good : {"https://download.pytorch.org/whl/cu124", "http://127.0.0.1:8080/simple/", "https://u@h/x%20y"})
    CHECK(ok(grammar::url, good));
  for (const char* bad : {"", "ftp://x", "https://", "https://x/a;b", "https://x/a b", "https://x/$(id)", "https://x/a&b",
                          "https://x/`id`", "https://x/a\nb"})
    CHECK_FALSE(ok(grammar::url, bad));
  for (const char* good : {"/opt/venv", "/usr/lib/x86_64-linux-gnu/nvidia", "/"}) CHECK(ok(grammar::absolute_path, good));
  for (const char* bad : {"", "opt/venv", "/opt/../etc", "/opt/./x", "/opt/v env", "/opt/$x"}) CHECK_FALSE(ok(grammar::absolute_path, bad));
}

TEST_CASE("quoted() makes any text safe to print in one line", "[util][grammar]") {
  CHECK(grammar::quoted("a\nb\x1b\"") == "\"a\\nb\\x1b\\\"\"");
  CHECK(grammar::quoted(std::string(100, 'x')).size() < 100);
}

TEST_CASE("catalog strings are checked by the grammar of their key", "[util][grammar]") {
  toml::table doc = toml::parse(std::string_view("[[cuda]]\nruntime = [\"ok1\", \"bad\\nRUN id\"]\ndevel_env = [\"A=b c\"]\n"
                         "index_url = \"https://x/cu{cuda_nodot}\"\npackages = [\"torch=={pytorch}\"]\nnote = \"free\\ntext\"\n"),
                                 std::string_view("c.toml"));
  std::vector<Diagnostic> diags;
  grammar::check_catalog_strings(doc, "c.toml", diags);
  REQUIRE(diags.size() == 2);
  // Keys in toml++'s order (sorted).
  CHECK(diags[0].str().rfind("c.toml:3:14: error: 'devel_env' = \"A=b c\" its value may not hold blanks", 0) == 0);
  CHECK(diags[1].str() == "c.toml:2:19: error: 'runtime' = \"bad\\nRUN id\" holds a newline");
}
