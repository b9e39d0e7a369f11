// Which CUDA, cuDNN, NCCL, PyTorch, Python and OS an image holds, read from
// file names and a few small files of its final filesystem, plus the
// config's env. Reports what is there; judging it is the caller's job.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/fatbin.h"
#include "image/image.h"

namespace kiln::audit {

struct Found {
  std::string version;  // "12.4.127", "9.1.0", "3.11"
  std::string path;     // where it was read ("env:CUDA_VERSION" for env)
  auto operator<=>(const Found&) const = default;
};

struct TorchInfo {
  std::string version, cuda, git_version, path;  // torch/version.py
};

struct OsInfo {
  std::string id, version_id, pretty_name, path;  // /etc/os-release
};

struct Components {
  // One entry per distinct version found, sorted; usually one each.
  std::vector<Found> cuda_toolkit;  // version.json "cuda" / version.txt
  std::vector<Found> cuda_runtime;  // libcudart.so.X.Y.Z, version.json "cuda_cudart", nvidia-cuda-runtime wheel
  std::vector<Found> cublas, cudnn, nccl;
  std::vector<Found> python;        // X.Y of each python3.X interpreter
  std::optional<TorchInfo> torch;
  // pip's layout (site-packages): torch-*.dist-info, and the nvidia-*
  // wheels' (also in cudnn/nccl/cublas/cuda_runtime above, by dist-info
  // name and METADATA Version). Paths name the dist-info directory.
  std::vector<Found> torch_dist;
  std::optional<OsInfo> os;
  std::string env_cuda_version;     // config env CUDA_VERSION
  std::string env_require_cuda;     // config env NVIDIA_REQUIRE_CUDA
  std::string architecture;         // config architecture ("amd64", "arm64")
};

Components detect_components(const image::ImageFs& fs);

// Pure parsers, one per evidence kind (tested on their own).
// ("libcudart.so.12.4.127", "libcudart") -> "12.4.127"; nullopt if no X.Y.
std::optional<std::string> soname_version(std::string_view filename, std::string_view stem);
std::map<std::string, std::string> parse_os_release(std::string_view text);
std::optional<TorchInfo> parse_torch_version_py(std::string_view text);
// {"cuda": "13.0.2", "cuda_cudart": "13.0.96", ...} from version.json.
std::map<std::string, std::string> parse_cuda_version_json(std::string_view text);
std::optional<std::string> parse_cudnn_version_h(std::string_view text);
// The Name and Version fields of a dist-info METADATA (RFC 822 headers).
std::pair<std::string, std::string> parse_metadata_name_version(std::string_view text);

// Whether a Found was read from pip's layout (a *-packages directory):
// the copy torch's RPATH points at, not a system package beside it.
bool from_site_packages(const Found& f);

// The small files detect_components reads (os-release, torch/version.py,
// cudnn_version.h, CUDA version.json/txt), by path and size.
bool is_component_file(std::string_view path, std::uint64_t size);

}  // namespace kiln::audit
