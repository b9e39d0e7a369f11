#include <catch2/catch.hpp>

#include "skip.h"

#include <fstream>

#include "audit/components.h"
#include "audit/scan.h"
#include "image_builder.h"

using namespace kiln::audit;
using namespace kiln::testing;

TEST_CASE("component parsers", "[audit][components]") {
  CHECK(soname_version("libcudart.so.12.4.127", "libcudart") == std::optional<std::string>("12.4.127"));
  CHECK(soname_version("libcudnn.so.9.1.0", "libcudnn") == std::optional<std::string>("9.1.0"));
  CHECK_FALSE(soname_version("libcudart.so.13", "libcudart"));
  CHECK_FALSE(soname_version("libcudnn_ops.so.9.1.0", "libcudnn"));
  CHECK_FALSE(soname_version("libcublasLt.so.12.4.5.8", "libcublas"));

  auto os = parse_os_release("# c\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\nVERSION_ID='22.04'\nbroken line\n");
  CHECK(os["ID"] == "ubuntu");
  CHECK(os["VERSION_ID"] == "22.04");
  CHECK(os["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS");

  auto t = parse_torch_version_py(
      "from typing import Optional\n__all__ = ['__version__']\n__version__ = '2.4.0+cu124'\ndebug = False\n"
      "cuda: Optional[str] = '12.4'\ngit_version = 'e4ee3be4063b7c430974252fdf7db42273388d86'\nhip: Optional[str] = None\n");
  REQUIRE(t);
  CHECK(t->version == "2.4.0+cu124");
  CHECK(t->cuda == "12.4");
  CHECK(t->git_version == "e4ee3be4063b7c430974252fdf7db42273388d86");
  CHECK_FALSE(parse_torch_version_py("nothing here"));

  auto v = parse_cuda_version_json(R"J({"cuda":{"name":"CUDA SDK","version":"12.4.1"},"cuda_cudart":{"name":"CUDA Runtime (cudart)","version":"12.4.127"}})J");
  CHECK(v["cuda"] == "12.4.1");
  CHECK(v["cuda_cudart"] == "12.4.127");
  CHECK(parse_cuda_version_json("not json").empty());

  CHECK(parse_cudnn_version_h("#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 19\n#define CUDNN_PATCHLEVEL 0\n") ==
        std::optional<std::string>("9.19.0"));
  std::ifstream real("/usr/local/cuda/include/cudnn_version.h");
  if (real) {
    std::string text{std::istreambuf_iterator<char>(real), {}};
    CHECK(parse_cudnn_version_h(text).has_value());
  }

}

TEST_CASE("detect components in a built image", "[audit][components]") {
  TestImage img;
  img.layers.push_back(make_tar({
      file("usr/lib/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n"),
      sym("etc/os-release", "../usr/lib/os-release"),
      file("usr/local/cuda-12.4/version.json", R"({"cuda":{"version":"12.4.1"},"cuda_cudart":{"version":"12.4.127"}})"),
      sym("usr/local/cuda", "cuda-12.4"),
      file("usr/local/cuda-12.4/lib64/libcudart.so.12.4.127", "not really an ELF"),
      sym("usr/local/cuda-12.4/lib64/libcudart.so.12", "libcudart.so.12.4.127"),
      file("usr/lib/x86_64-linux-gnu/libcudnn.so.9.1.0", "x"),
      file("usr/include/x86_64-linux-gnu/cudnn_version_v9.h", "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 1\n#define CUDNN_PATCHLEVEL 0\n"),
      file("usr/lib/x86_64-linux-gnu/libnccl.so.2.21.5", "x"),
      file("usr/bin/python3.10", "py"),
  }));
  img.layers.push_back(make_tar({
      file("usr/local/lib/python3.10/dist-packages/torch/version.py", "__version__ = '2.4.0+cu124'\ncuda = '12.4'\ngit_version = 'abc'\n"),
      dir("usr/local/lib/python3.10/dist-packages/nvidia_cublas_cu12-12.4.5.8.dist-info/"),
      dir("usr/local/lib/python3.10/dist-packages/nvidia_cudnn_cu12-9.1.0.70.dist-info/"),
      file("usr/local/lib/python3.10/dist-packages/nvidia/cudnn/lib/libcudnn.so.9", "x"),
  }, ARCHIVE_FILTER_GZIP));
  img.config["config"] = {{"Env", {"CUDA_VERSION=12.4.1", "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471"}}};
  const std::string tar = tar_of(img.oci());
  const auto fs = kiln::image::read_image(kiln::image::tar_source(bytes_of(tar)));
  const Components c = detect_components(fs);
  auto versions = [](const std::vector<Found>& v) {
    std::string s;
    for (const auto& f : v) s += (s.empty() ? "" : " ") + f.version;
    return s;
  };
  CHECK(versions(c.cuda_toolkit) == "12.4.1");
  CHECK(versions(c.cuda_runtime) == "12.4.127");
  CHECK(versions(c.cudnn) == "9.1.0 9.1.0.70");
  CHECK(versions(c.cublas) == "12.4.5.8");
  CHECK(versions(c.nccl) == "2.21.5");
  CHECK(versions(c.python) == "3.10");
  REQUIRE(c.torch);
  CHECK(c.torch->version == "2.4.0+cu124");
  CHECK(c.torch->cuda == "12.4");
  CHECK(c.torch->path == "usr/local/lib/python3.10/dist-packages/torch/version.py");
  REQUIRE(c.os);
  CHECK(c.os->id == "ubuntu");
  CHECK(c.os->version_id == "22.04");
  CHECK(c.env_cuda_version == "12.4.1");
  CHECK(c.env_require_cuda == "cuda>=12.4 brand=tesla,driver>=470,driver<471");
}

TEST_CASE("scan an image's CUDA libraries for fat binaries", "[audit][components][nvcc]") {
#ifdef KILN_CUDA_FIXTURES
  std::ifstream f(std::string(KILN_CUDA_FIXTURES) + "/sm80_ptx90", std::ios::binary);
  const std::string elf{std::istreambuf_iterator<char>(f), {}};
  REQUIRE(elf.size() > 1000);
  TestImage img;
  img.layers.push_back(make_tar({file("opt/torch/lib/libtorch_cuda.so", elf), file("usr/lib/libcublas.so.12.4.5.8", "garbage"),
                                 file("usr/lib/libc.so.6", "ignored")}, ARCHIVE_FILTER_ZSTD));
  const std::string tar = tar_of(img.docker_save(true));
  const auto fs = kiln::image::read_image(kiln::image::tar_source(bytes_of(tar)));
  const auto scans = scan_image_binaries(fs);
  // Chosen by the ELF magic, not the name: the text placeholders named
  // like libraries are not ELF, so they cost their first bytes and are not listed.
  REQUIRE(scans.size() == 1);
  CHECK(scans[0].path == "opt/torch/lib/libtorch_cuda.so");
  REQUIRE(scans[0].info);
  CHECK(scans[0].info->sass == std::vector<Arch>{{8, 0, 0}});
  CHECK(scans[0].info->ptx == std::vector<Arch>{{9, 0, 0}});
#else
  KILN_SKIP("nvcc not found at configure time");
#endif
}
