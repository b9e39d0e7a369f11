// Pieces of the survey room shared by its files; not part of its interface
// (tests include it for the parsers).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "survey/survey.h"
#include "util/cc.h"
#include "util/toml_reader.h"
#include "util/version.h"

namespace kiln::survey::detail {

// ---- Python packaging text ----------------------------------------------

// PEP 503 normalisation: lower case, runs of -_. become one '-'.
std::string normalize_name(std::string_view name);

// One Requires-Dist line: "nvidia-cudnn-cu13==9.19.0.56; platform_system == \"Linux\"",
// or the older "nvidia-cudnn-cu12 (==8.9.2.26) ; ...".
struct Requirement {
  std::string name;  // normalised
  std::vector<std::string> extras;
  std::string pin;  // the version after == / ===, else ""
  std::string spec;  // the whole version specifier
  std::string marker;
};
std::optional<Requirement> parse_requirement(std::string_view text);

// A METADATA file: Name, Version and the Requires-Dist lines (those that
// apply only with an extra are left out).
struct Metadata {
  std::string name, version;
  std::vector<Requirement> requires_dist;
};
Metadata parse_metadata(std::string_view text);

// torch/version.py: `__version__ = '2.11.0+cu130'`, `cuda: Optional[str] = '13.0'`.
struct TorchVersionPy {
  std::string version;  // "2.11.0+cu130"
  std::string cuda;     // "13.0"; "" for None (a CPU build)
};
TorchVersionPy parse_version_py(std::string_view text);

// "2.11.0+cu130" -> 2.11.0 and "cu130"; nullopt for pre-releases ("2.12.0rc1", ".dev").
struct TorchVersion {
  Version version;
  std::string local;
};
std::optional<TorchVersion> parse_torch_version(std::string_view text);
// "cu130" -> 13.0, "cu118" -> 11.8, "cu92" -> 9.2; nullopt for cpu, rocm6.2, ...
std::optional<Version> cuda_of_local(std::string_view local);

// torch-2.11.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl
struct WheelName {
  std::string name;  // normalised
  std::string version;
  std::string python_tag, abi_tag, platform;
  std::string python() const;  // "3.12", "3.13t" (free-threaded); "" if not cpXY
};
std::optional<WheelName> parse_wheel_name(std::string_view filename);

// ---- what a torch wheel or installation says ----------------------------

struct TorchArtifact {
  std::string kind;  // "wheel" | "site-packages"
  std::string path;
  std::string label;  // how rows name it
  std::string source_key, source_text;
  TorchVersionPy version_py;
  Metadata metadata;
  std::vector<std::string> python;  // from the wheel tag or lib/pythonX.Y
  std::map<std::string, std::string> installed;  // nvidia-* / cuda-toolkit dist-infos: name -> version
  // Arch list read from libtorch_cuda.so's fat binaries.
  bool arch_read = false;
  std::string arch_file;  // where it was read, or why not
  ArchList arch;          // portable SASS and PTX
  std::vector<std::string> arch_specific;    // SASS/PTX of a few kernels only (sm_89, sm_90a beside the list)
};
TorchArtifact read_wheel(const std::string& path);
TorchArtifact read_site_packages(const std::string& dir);

// ---- documents ---------------------------------------------------------

struct IndexFile {
  std::string filename;
  WheelName wheel;
  bool yanked = false;
};
struct IndexPage {
  std::string source;
  std::vector<IndexFile> files;  // torch wheels only
  std::size_t skipped = 0;       // other files (sdists, other projects)
};
// PEP 691 JSON (application/vnd.pypi.simple.v1+json) or the HTML simple page.
IndexPage parse_index(std::string_view body, const std::string& source);

struct Redistrib {
  std::string release_date, release_label;
  std::map<std::string, std::string> components;  // "cuda_cudart" -> "13.0.96"; "nvidia_driver" too
};
Redistrib parse_redistrib(std::string_view body, const std::string& source);

struct DockerfileFacts {
  std::string cuda_version;  // ENV CUDA_VERSION
  std::string require_cuda;  // ENV NVIDIA_REQUIRE_CUDA of the x86_64 stage
};
DockerfileFacts parse_dockerfile(std::string_view text, const std::string& source);

// PyPI's JSON API for a project: releases with their first upload time.
struct PypiRelease {
  std::string version;
  std::string uploaded;  // ISO date of the first file, "" when none
  bool yanked = false;   // every file yanked
};
std::vector<PypiRelease> parse_pypi(std::string_view body, const std::string& source);

// ---- fetching ----------------------------------------------------------

bool is_url(std::string_view text);
struct Fetched {
  std::string body;
  std::string content_type;
  std::string name;  // the URL or path
};
// A URL through libcurl (redirects followed, timeouts kept), else a file.
Fetched fetch(const std::string& url_or_path, const std::string& accept = "");

// ---- comparing -----------------------------------------------------------

void compare_torch(const catalog::Catalog& cat, const TorchArtifact& a, const std::vector<Redistrib>& redistribs,
                   Report& report);
void compare_index(const catalog::Catalog& cat, const IndexPage& page, Report& report);
void compare_redistrib(const catalog::Catalog& cat, const Redistrib& r, const std::string& source, const std::string& sha,
                       Report& report);
void compare_dockerfile(const catalog::Catalog& cat, const DockerfileFacts& d, const std::string& source,
                        const std::string& sha, Report& report);
void compare_pypi(const catalog::Catalog& cat, const std::vector<PypiRelease>& releases, const std::string& source,
                  Report& report);
// NVIDIA_REQUIRE_CUDA as the catalog states it for an nvidia/cuda base image:
// the release's require_cuda, else built from require_branches x require_brands.
std::string catalog_require_cuda(const catalog::CudaRelease& cuda, const catalog::Catalog& cat);

// ---- editing TOML text in place ----------------------------------------

// A TOML literal for an array of strings (one string: util's toml_string).
std::string toml_strings(const std::vector<std::string>& items);

}  // namespace kiln::survey::detail
