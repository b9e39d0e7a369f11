// Every ELF file of an image is read for device code, chosen by
// its magic whatever its name or mode (executables, Python extensions,
// unhinted and stripped binaries); verdicts say what is known (no device
// code, partial); one definition of a driver library.
#include <elf.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "audit/audit.h"
#include "audit/scan.h"
#include "image_builder.h"

using namespace kiln;
using namespace kiln::audit;
using namespace kiln::testing;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string names(const std::vector<Arch>& v, bool sass) {
  std::string out;
  for (const auto& a : v) out += (out.empty() ? "" : " ") + (sass ? a.sm() : a.compute());
  return out;
}

const FatbinScan* find_scan(const ImageAudit& a, const std::string& path) {
  for (const auto& s : a.libraries)
    if (s.path == path) return &s;
  return nullptr;
}

// Writes `bytes` to an unlinked-on-exit temporary file (the archive path:
// its uncompressed layers are read where they lie, with pread).
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& bytes) {
    path = std::filesystem::temp_directory_path() / ("kiln-test-elf-" + std::to_string(::getpid()) + ".tar");
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("driver libraries: one definition for audit and verify", "[audit][driver]") {
  for (const char* p : {"usr/lib/x86_64-linux-gnu/libcuda.so.1", "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                        "usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1", "usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.535.54",
                        "usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.54", "usr/lib/x86_64-linux-gnu/libcudadebugger.so.1",
                        "usr/lib/x86_64-linux-gnu/libnvidia-nvvm.so.4"}) {
    INFO(p);
    CHECK(is_driver_library(p));
  }
  for (const char* p : {"usr/local/cuda/lib64/stubs/libcuda.so", "usr/local/cuda/lib64/libcudart.so.13", "usr/lib/libcudnn.so.9",
                        "usr/local/cuda/nvvm/lib64/libnvvm.so.4", "usr/lib/x86_64-linux-gnu/libnvidia-egl-wayland.so.1"}) {
    INFO(p);
    CHECK_FALSE(is_driver_library(p));
  }
  TestImage img;
  img.layers.push_back(make_tar({file("usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1", "driver"),
                                 file("usr/local/cuda/lib64/stubs/libcuda.so", "stub"), file("etc/hostname", "x")}));
  const std::string tar = tar_of(img.oci());
  const auto fs = image::read_image(image::tar_source(bytes_of(tar)));
  // What verify's static check refuses (static_check.cpp: one problem per path).
  CHECK(driver_libraries(fs) == std::vector<std::string>{"usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1"});
}

TEST_CASE("a big-endian ELF holds nothing a CUDA host loads; a bad encoding is an error", "[audit][fatbin]") {
  std::string elf(64, '\0');
  elf.replace(0, 4, "\x7f" "ELF");
  elf[EI_CLASS] = ELFCLASS64;
  elf[EI_DATA] = ELFDATA2MSB;
  auto bytes = [](const std::string& s) { return std::span(reinterpret_cast<const std::byte*>(s.data()), s.size()); };
  const FatbinInfo info = read_fatbin(bytes(elf));
  CHECK_FALSE(info.has_device_code());
  CHECK(info.entries.empty());
  elf[EI_DATA] = 7;
  CHECK_THROWS_WITH(read_fatbin(bytes(elf)), Catch::Contains("bad ELF data encoding"));
}

TEST_CASE("an image with no device code says so for every GPU, never native", "[audit][verdict]") {
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  TestImage img;
  // An ELF without device code (this test binary itself), text, a placeholder.
  img.layers.push_back(make_tar({file("usr/bin/tool", slurp("/proc/self/exe")), file("usr/lib/libcudnn.so.9", "not ELF"),
                                 file("usr/local/cuda/version.json", R"({"cuda":{"version":"13.0.2"}})")}));
  const std::string tar = tar_of(img.oci());
  const auto gpus = resolve_gpus({"P100", "T4", "H100"}, cat);
  const ImageAudit a = audit_image_source(image::tar_source(bytes_of(tar)), "empty", gpus, cat);
  CHECK(a.elf_files == 1);
  CHECK(a.libraries.empty());
  for (const auto& g : a.verdict.gpus) {
    INFO(g.gpu.name);
    CHECK(g.no_device_code);
    CHECK(std::string(support_name(g)) == "no device code");
  }
  const nlohmann::json j = to_json(a);
  CHECK(j["gpus"]["P100"]["support"] == "no device code");
  CHECK(j["elf_files"] == 1);
  CHECK_THAT(to_table(a, cat), Catch::Contains("no device code") && !Catch::Contains("native"));
  CHECK_THAT(to_markdown(a, cat), Catch::Contains("| T4 (sm_75) | 7.5 | no device code |"));
}

#ifdef KILN_CUDA_FIXTURES
TEST_CASE("every ELF file is read, whatever its name: nvcc's -gencode sets exactly", "[audit][image][nvcc]") {
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  const std::string fx = KILN_CUDA_FIXTURES;
  struct Case {
    std::string path, fixture, sass, ptx;
  };
  const std::vector<Case> cases = {
      {"usr/local/bin/app", "app", "sm_75 sm_86", "compute_86"},
      {"opt/venv/lib/python3.11/site-packages/ext/_ext.cpython-311-x86_64-linux-gnu.so", "ext.so", "sm_80", "compute_89"},
      {"usr/lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1", "sm_75 sm_120", "compute_120"},
      {"opt/tools/stripped", "app_stripped", "sm_90", "compute_100"},
  };
  std::vector<TarItem> items;
  for (const auto& c : cases) items.push_back(file(c.path, slurp(fx + "/" + c.fixture)));
  items.push_back(file("usr/share/doc/readme.txt", std::string(4096, 'x')));
  TestImage img;
  img.layers.push_back(make_tar(items));  // uncompressed: read in place from a file
  TestImage zimg;
  zimg.layers.push_back(make_tar(items, ARCHIVE_FILTER_ZSTD));  // streamed
  const std::string tar = tar_of(img.oci()), ztar = tar_of(zimg.oci());
  TempFile on_disk(tar);
  const auto gpus = resolve_gpus({"T4", "A100"}, cat);
  const std::vector<ImageAudit> audits = {audit_image_archive(on_disk.path, "file", gpus, cat),
                                          audit_image_source(image::tar_source(bytes_of(ztar)), "zstd", gpus, cat),
                                          audit_image(image::read_image(image::tar_source(bytes_of(tar))), "two-pass", gpus, cat)};
  // The stripped one really lost its symbol table.
  CHECK(slurp(fx + "/app_stripped").size() < slurp(fx + "/app_unstripped").size());
  for (const auto& a : audits) {
    INFO(a.input);
    CHECK(a.elf_files == cases.size());
    CHECK(a.libraries.size() == cases.size());
    for (const auto& c : cases) {
      INFO(c.path);
      const FatbinScan* s = find_scan(a, c.path);
      REQUIRE(s);
      REQUIRE(s->info);
      CHECK(s->error.empty());
      CHECK(names(s->info->sass, true) == c.sass);
      CHECK(names(s->info->ptx, false) == c.ptx);
    }
    // T4: the extension (sm_80, compute_89) and the stripped tool (sm_90) cannot run there.
    CHECK(std::string(support_name(a.verdict.gpus[0])) == "unsupported");
    CHECK(a.verdict.gpus[0].unsupported.size() == 2);
  }
}

TEST_CASE("partial: the core libraries serve the GPU, an optional one (catalog) does not", "[audit][verdict][nvcc]") {
  const auto cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  const catalog::LibraryRole* linalg = cat.library_role("x/torch/lib/libtorch_cuda_linalg.so");
  REQUIRE(linalg);
  CHECK_FALSE(linalg->core);
  CHECK(cat.library_role("x/torch/lib/libtorch_cuda.so")->core);
  CHECK(cat.library_role("usr/lib/libunknown.so") == nullptr);  // not named: core (fail closed)
  const std::string fx = KILN_CUDA_FIXTURES;
  const std::string torch_lib = "opt/venv/lib/python3.12/site-packages/torch/lib/";
  TestImage img;
  img.layers.push_back(make_tar({file(torch_lib + "libtorch_cuda.so", slurp(fx + "/libk_sass.so")),         // sm_75 sm_80 sm_90 + compute_90
                                 file(torch_lib + "libtorch_cuda_linalg.so", slurp(fx + "/libk_sm80.so")),  // sm_80 only
                                 file("usr/local/cuda/version.json", R"({"cuda":{"version":"13.0.2"}})")}));
  const std::string tar = tar_of(img.oci());
  const auto gpus = resolve_gpus({"P100", "T4", "A100", "H100"}, cat);
  const ImageAudit a = audit_image_source(image::tar_source(bytes_of(tar)), "torch", gpus, cat);
  std::map<std::string, std::string> grid;
  for (const auto& g : a.verdict.gpus) grid[g.gpu.name] = support_name(g);
  CHECK(grid == std::map<std::string, std::string>{{"P100", "unsupported"}, {"T4", "partial"}, {"A100", "native"}, {"H100", "partial"}});
  const GpuVerdict& t4 = a.verdict.gpus[1];
  CHECK(t4.support == Support::native);  // what the core libraries give
  CHECK(t4.partial == std::vector<std::string>{torch_lib + "libtorch_cuda_linalg.so"});
  REQUIRE(t4.failing_operations.size() == 1);
  CHECK_THAT(t4.failing_operations[0], Catch::StartsWith("libtorch_cuda_linalg.so: linear algebra (torch.linalg") &&
                                           Catch::EndsWith("has no sm_75 code"));
  CHECK_FALSE(t4.min_driver.empty());  // served: it has a floor
  // P100: the core library itself cannot run there.
  CHECK(a.verdict.gpus[0].unsupported == std::vector<std::string>{torch_lib + "libtorch_cuda.so"});
  // The driver question: a partial GPU is served (its failing operations are in the verdict).
  CHECK(why_not_on_driver(judge(a.components, a.libraries, resolve_gpus({"T4"}, cat), cat), Version::must("590.0")).empty());
  const nlohmann::json j = to_json(a);
  CHECK(j["gpus"]["T4"]["support"] == "partial");
  CHECK(j["gpus"]["T4"]["partial_libraries"] == nlohmann::json({torch_lib + "libtorch_cuda_linalg.so"}));
  CHECK(j["gpus"]["T4"]["libraries"][torch_lib + "libtorch_cuda_linalg.so"]["optional"] == true);
  CHECK_THAT(to_table(a, cat), Catch::Contains("partial") && Catch::Contains("has no sm_75 code"));
  CHECK_THAT(to_markdown(a, cat), Catch::Contains("| T4 (sm_75) | 7.5 | partial |"));
}
#endif

TEST_CASE("libraries.toml: roles are checked with file:line", "[audit][verdict][catalog]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln-libs-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(KILN_SOURCE_DIR "/recipes", dir, fs::copy_options::recursive);
  auto errors = [&](const std::string& text) -> std::string {
    std::ofstream(dir / "catalog/libraries.toml") << text;
    try {
      catalog::Catalog::load(dir.string());
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THAT(errors("[[library]]\nname = \"libx.so\"\ncomponent = \"X\"\nrole = \"optional\"\nsource = [\"L1\"]\n"),
             Catch::Contains("libraries.toml:") && Catch::Contains("operations"));
  CHECK_THAT(errors("[[library]]\nname = \"libx.so\"\ncomponent = \"X\"\nrole = \"sometimes\"\nsource = [\"L1\"]\n"),
             Catch::Contains("'role' must be"));
  CHECK_THAT(errors("[[library]]\nname = \"lib/x.so\"\ncomponent = \"X\"\nrole = \"core\"\nsource = [\"L1\"]\n"),
             Catch::Contains("library file name"));
  CHECK(errors("[[library]]\nname = \"libx.so\"\ncomponent = \"X\"\nrole = \"core\"\nsource = [\"L1\"]\n").empty());
  fs::remove_all(dir);
}
