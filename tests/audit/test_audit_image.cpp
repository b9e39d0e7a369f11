// Audits of images built in-test around REAL CUDA ELFs: shared libraries
// nvcc compiled for chosen -gencode sets, plus this machine's libcudart.
#include <elf.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "skip.h"

#include <cstring>

#include <filesystem>
#include <fstream>

#include "audit/audit.h"
#include "image_builder.h"

using namespace kiln;
using namespace kiln::audit;
using namespace kiln::testing;

#ifdef KILN_CUDA_FIXTURES
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("audit of an image with real CUDA libraries", "[audit][image][nvcc]") {
  const std::string cudart = "/usr/local/cuda/lib64/libcudart.so.13";
  if (!std::filesystem::exists(cudart)) {
    KILN_SKIP("no " << cudart);
  }
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  TestImage img;
  img.layers.push_back(make_tar({
      file("usr/lib/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n"),
      sym("etc/os-release", "../usr/lib/os-release"),
      file("usr/local/cuda-13.0/version.json", R"({"cuda":{"version":"13.0.2"},"cuda_cudart":{"version":"13.0.96"}})"),
      sym("usr/local/cuda", "cuda-13.0"),
      file("usr/local/cuda-13.0/lib64/libcudart.so.13", slurp(cudart)),
  }));
  img.layers.push_back(make_tar({
      file("opt/app/lib/libapp_cuda.so", slurp(std::string(KILN_CUDA_FIXTURES) + "/libk_sass.so")),
      file("opt/app/lib/libapp_cuda_ptx80.so", slurp(std::string(KILN_CUDA_FIXTURES) + "/libk_ptx80.so")),
      file("usr/lib/x86_64-linux-gnu/libcuda.so.1", "driver library that must not be here"),
      file("usr/local/cuda-13.0/lib64/stubs/libcuda.so", "a stub is fine"),
  }, ARCHIVE_FILTER_ZSTD));
  img.config["config"] = {{"Env", {"CUDA_VERSION=13.0.2", "NVIDIA_REQUIRE_CUDA=cuda>=13.0"}}};
  const std::string tar = tar_of(img.oci());
  const auto fs = image::read_image(image::tar_source(bytes_of(tar)));
  const auto gpus = resolve_gpus({"P100", "T4", "A100", "L4", "H100", "B200"}, cat);
  const ImageAudit a = audit_image(fs, "in-memory", gpus, cat);

  REQUIRE(a.verdict.runtime);
  CHECK(a.verdict.runtime->version.str() == "13.0.96");
  CHECK(a.verdict.release->version.str() == "13.0");
  std::map<std::string, std::string> grid;
  for (const auto& g : a.verdict.gpus) grid[g.gpu.name] = to_string(g.support);
  CHECK(grid == std::map<std::string, std::string>{{"P100", "unsupported"}, {"T4", "unsupported"}, {"A100", "ptx-jit"},
                                                   {"L4", "ptx-jit"}, {"H100", "ptx-jit"}, {"B200", "ptx-jit"}});
  // A100: both native? libk_ptx80 has only PTX 8.0: the JIT serves 8.0 -> ptx-jit, unless SASS...
  const auto& t4 = a.verdict.gpus[1];
  CHECK(t4.unsupported == std::vector<std::string>{"opt/app/lib/libapp_cuda_ptx80.so"});
  CHECK(t4.libraries.at(1).reason == "no SASS for sm_75 and PTX only for compute_80");
  // PTX from nvcc 13.0 says ISA 9.0: the JIT needs the CUDA 13.0 driver.
  CHECK(a.verdict.gpus[4].min_driver == cat.find_cuda(Version::must("13.0"))->driver.str());
  CHECK(a.verdict.min_driver == cat.find_cuda(Version::must("13.0"))->driver.str());

  const nlohmann::json j = to_json(a);
  CHECK(j["components"]["os"]["pretty_name"] == "Ubuntu 24.04.1 LTS");
  bool listed = false;
  for (const auto& l : j["libraries"])
    if (l["path"] == "opt/app/lib/libapp_cuda.so") {
      listed = true;
      CHECK(l["sass"] == nlohmann::json({"sm_75", "sm_80", "sm_90"}));
      CHECK(l["ptx"] == nlohmann::json({"compute_90"}));
      CHECK(l["ptx_isa"]["compute_90"] == "9.0");
    }
  CHECK(listed);
  CHECK(driver_libraries(fs) == std::vector<std::string>{"usr/lib/x86_64-linux-gnu/libcuda.so.1"});
  bool warned = false;
  for (const auto& w : a.warnings) warned |= w.starts_with("usr/lib/x86_64-linux-gnu/libcuda.so.1: a CUDA driver library");
  CHECK(warned);
  CHECK_THAT(to_table(a, cat), Catch::Contains("A100 (sm_80)"));
  CHECK_THAT(to_markdown(a, cat), Catch::Contains("| L4 (sm_89) | 8.9 | ptx-jit |"));
}
#endif

TEST_CASE("hostile or broken archives fail with the file's name", "[audit][image]") {
  const auto dir = std::filesystem::temp_directory_path() / "kiln-audit-test";
  std::filesystem::create_directories(dir);
  const auto bad = dir / "broken.tar";
  std::ofstream(bad, std::ios::binary) << "this is not a tar archive at all";
  try {
    (void)image::read_image_archive(bad);
    FAIL("no error");
  } catch (const image::ImageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("broken.tar"));
  }
  std::filesystem::remove_all(dir);
}

#ifdef KILN_CUDA_FIXTURES
TEST_CASE("single-pass audit equals the two-pass one and drops hidden members", "[audit][image][nvcc]") {
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  const std::string sass = slurp(std::string(KILN_CUDA_FIXTURES) + "/libk_sass.so");
  const std::string ptx80 = slurp(std::string(KILN_CUDA_FIXTURES) + "/libk_ptx80.so");
  TestImage img;
  img.layers.push_back(make_tar({
      file("usr/lib/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n"),
      sym("etc/os-release", "../usr/lib/os-release"),
      file("opt/lib/libapp_cuda.so", ptx80),   // overwritten above
      file("opt/lib/libgone_cuda.so", ptx80),  // whited out above
      file("opt/lib/libkeep_cuda.so", ptx80),
  }));
  img.layers.push_back(make_tar({
      file("opt/lib/libapp_cuda.so", sass),
      file("opt/lib/.wh.libgone_cuda.so", ""),
      file("usr/local/cuda-13.0/version.json", R"({"cuda":{"version":"13.0.2"}})"),
  }, ARCHIVE_FILTER_ZSTD));
  const std::string tar = tar_of(img.oci());
  const auto gpus = resolve_gpus({"T4", "H100"}, cat);
  const auto fs = image::read_image(image::tar_source(bytes_of(tar)));
  const ImageAudit two = audit_image(fs, "x", gpus, cat);
  const ImageAudit one = audit_image_source(image::tar_source(bytes_of(tar)), "x", gpus, cat);
  const nlohmann::json j1 = to_json(one), j2 = to_json(two);
  CHECK(j1["libraries"] == j2["libraries"]);
  CHECK(j1["components"] == j2["components"]);
  CHECK(j1["gpus"] == j2["gpus"]);
  REQUIRE(j1["libraries"].size() == 2);
  CHECK(j1["libraries"][0]["path"] == "opt/lib/libapp_cuda.so");
  CHECK(j1["libraries"][0]["sass"] == nlohmann::json({"sm_75", "sm_80", "sm_90"}));
  CHECK(j1["libraries"][1]["path"] == "opt/lib/libkeep_cuda.so");
  CHECK(j1["libraries"][1]["ptx"] == nlohmann::json({"compute_80"}));
  CHECK(j1["components"]["os"]["pretty_name"] == "Ubuntu 24.04.1 LTS");
  CHECK(j1["components"]["cuda_toolkit"][0]["version"] == "13.0.2");

  // From a file, where plain layers are walked with seeks and each library
  // is mapped where it lies in the archive: the same answers.
  img.layers[1] = make_tar({
      file("opt/lib/libapp_cuda.so", sass),
      file("opt/lib/.wh.libgone_cuda.so", ""),
      file("usr/local/cuda-13.0/version.json", R"({"cuda":{"version":"13.0.2"}})"),
  });
  const auto path = std::filesystem::temp_directory_path() / ("kiln-audit-seek-" + std::to_string(::getpid()) + ".tar");
  std::ofstream(path, std::ios::binary) << tar_of(img.docker_save(true));
  const nlohmann::json j3 = to_json(audit_image_archive(path, "x", gpus, cat));
  std::filesystem::remove(path);
  CHECK(j3["libraries"] == j1["libraries"]);
  CHECK(j3["components"] == j1["components"]);
  CHECK(j3["gpus"] == j1["gpus"]);
}
#endif

#ifdef KILN_CUDA_FIXTURES
namespace {

// Offset and size of an ELF64 section by name (the fixtures are nvcc's own
// x86-64 output).
std::pair<std::size_t, std::size_t> section(const std::string& elf, const std::string& name) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof eh);
  auto shdr = [&](std::size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, elf.data() + eh.e_shoff + i * eh.e_shentsize, sizeof sh);
    return sh;
  };
  const Elf64_Shdr names = shdr(eh.e_shstrndx);
  for (std::size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sh = shdr(i);
    if (name == elf.c_str() + names.sh_offset + sh.sh_name) return {sh.sh_offset, sh.sh_size};
  }
  FAIL("no section " << name);
  return {};
}

}  // namespace

TEST_CASE("a library whose fat binary cannot be read makes the image unknown, never native", "[audit][image][nvcc]") {
  // Counted as "no device code", such a library would make the image native
  // on every GPU, and check-driver --driver 390.0 --gpu P100 would pass.
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  const std::string good = slurp(std::string(KILN_CUDA_FIXTURES) + "/libk_sass.so");
  const auto [at, size] = section(good, ".nv_fatbin");
  REQUIRE(size > 64);
  struct Corruption {
    const char* what;
    std::size_t offset;  // in .nv_fatbin
    std::string bytes;
    const char* error;
  };
  const std::uint64_t huge = 0x7fff'ffff'ffffULL;
  const std::vector<Corruption> cases = {
      {"container size past the section (truncated)", 8, std::string(reinterpret_cast<const char*>(&huge), 8), "exceeds its section"},
      {"unknown container header size", 6, std::string("\xff\x7f", 2), "header size"},
      {"bad magic", 0, std::string("\0\0\0\x01", 4), "bad fat-binary magic"},
      {"an entry of the first container cut off", 16 + 8, std::string("\xff\xff\xff\x0f\0\0\0\0", 8), ""},
  };
  const auto gpus = resolve_gpus({"P100", "T4", "A100", "H100"}, cat);
  for (const auto& c : cases) {
    SECTION(c.what) {
      std::string bad = good;
      bad.replace(at + c.offset, c.bytes.size(), c.bytes);
      TestImage img;
      img.layers.push_back(make_tar({file("opt/app/lib/libapp_cuda.so", bad)}));
      const std::string tar = tar_of(img.oci());
      const ImageAudit a = audit_image_source(image::tar_source(bytes_of(tar)), "corrupt", gpus, cat);
      REQUIRE(a.libraries.size() == 1);
      CHECK_FALSE(a.libraries[0].info);
      CHECK_THAT(a.libraries[0].error, Catch::Contains(c.error));
      for (const auto& g : a.verdict.gpus) {
        INFO(g.gpu.name);
        CHECK(g.support != Support::native);
        CHECK(std::string(support_name(g)) == "unknown");
        CHECK(g.unknown == std::vector<std::string>{"opt/app/lib/libapp_cuda.so"});
      }
      // check-driver --driver 390.0 --gpu P100: fails, naming the library and why.
      const auto p100 = judge(a.components, a.libraries, resolve_gpus({"P100"}, cat), cat);
      const auto why = why_not_on_driver(p100, Version::must("390.0"));
      REQUIRE_FALSE(why.empty());
      CHECK_THAT(why[0], Catch::StartsWith("P100 (sm_60) unknown: opt/app/lib/libapp_cuda.so: fat binary unreadable: "));
      const nlohmann::json j = to_json(a);
      CHECK(j["gpus"]["H100"]["support"] == "unknown");
      CHECK(j["gpus"]["H100"]["unknown_libraries"] == nlohmann::json({"opt/app/lib/libapp_cuda.so"}));
      CHECK(j["gpus"]["H100"]["libraries"]["opt/app/lib/libapp_cuda.so"]["support"] == "unknown");
      CHECK(j["libraries"][0]["error"].is_string());
      CHECK(j["min_driver"].is_null());
      CHECK_THAT(j["min_driver_reason"].get<std::string>(), Catch::StartsWith("unknown: opt/app/lib/libapp_cuda.so: fat binary unreadable"));
      CHECK_THAT(to_table(a, cat), Catch::Contains("unknown") && Catch::Contains("fat binary unreadable"));
      CHECK_THAT(to_markdown(a, cat), Catch::Contains("| H100 (sm_90) | 9.0 | unknown |"));
    }
  }
  // The same bytes uncorrupted: native where the SASS is.
  TestImage img;
  img.layers.push_back(make_tar({file("opt/app/lib/libapp_cuda.so", good)}));
  const std::string tar = tar_of(img.oci());
  const ImageAudit a = audit_image_source(image::tar_source(bytes_of(tar)), "good", gpus, cat);
  CHECK(std::string(support_name(a.verdict.gpus[3])) == "native");
}
#endif
