// The compatibility catalog: facts about CUDA, cuDNN, NCCL, PyTorch, GPUs,
// base images and install recipes, read from recipes/ (data, not code).
// Every fact keeps its sources and whether it is confirmed or inferred.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/cc.h"
#include "util/version.h"

namespace kiln::catalog {

struct Provenance {
  std::vector<std::string> sources;          // keys of sources.toml
  bool inferred = false;                     // confidence = "inferred"
  std::vector<std::string> inferred_fields;  // which fields, when known
  std::string note;
};

// One update release of a CUDA minor ("13.0.1") and the driver it shipped.
struct CudaUpdate {
  Version version;
  Version driver;
};

struct CudaRelease {
  Version version;     // "12.4"
  Version full;        // "12.4.1"
  Version driver;      // shipped with the toolkit: PTX JIT needs at least this
  Version min_driver;  // minor-version compatibility floor
  Version ptx_isa;     // PTX ISA its nvcc writes ("8.4"); empty when unknown
  std::vector<ComputeCapability> sass;
  std::vector<ComputeCapability> deprecated_sass;
  std::vector<int> require_branches;  // NVIDIA_REQUIRE_CUDA brand alternatives
  bool require_inferred = false;
  // NVIDIA_REQUIRE_CUDA exactly as NVIDIA's base Dockerfile sets it; empty
  // when not collected (then it is derived from require_branches x brands).
  std::string require_cuda;
  std::vector<CudaUpdate> updates;  // X.Y.1, X.Y.2, ... with their drivers
  Provenance provenance;

  bool can_target(const ComputeCapability& cc) const;
  // The oldest driver known to ship with this minor (x.y.0 or an update):
  // drivers of its branch or newer report CUDA >= X.Y.
  Version first_driver() const;
  std::string sass_range() const;  // "7.5–12.1"
};

struct CudnnRelease {
  Version version;
  std::vector<VersionRange> cuda;
  VersionRange cc;
  Provenance provenance;
  bool supports_cuda(const Version& cuda_version) const;
};

struct NcclRelease {
  Version version;
  std::vector<VersionRange> cuda;
  Provenance provenance;
};

// cudnn, nccl and arch are empty where the catalog marks them inferred and
// no source gives them (the plan then excludes the build).
struct TorchBuild {
  Version cuda;
  Version cudnn;
  Version nccl;
  std::optional<Version> cublas;
  ArchList arch;
  // CPU platforms the build's wheels exist for ("x86_64", "aarch64"); the
  // catalog's `platforms`, default x86_64 alone (aarch64 CUDA wheels are a
  // fact to be read and recorded, never assumed).
  std::vector<std::string> platforms{"x86_64"};
  Provenance provenance;
  bool serves(std::string_view platform) const;
};

struct TorchRelease {
  Version version;
  std::vector<std::string> python;
  std::vector<TorchBuild> builds;
  std::optional<Version> default_cuda;  // what plain `pip install torch` gets
  Provenance provenance;
  const TorchBuild* build_for(const Version& cuda) const;
  std::string cuda_list() const;  // "11.8, 12.4, 12.6"
};

// A GPU architecture and the Linux driver branches that support it [S4].
struct Architecture {
  std::string name;  // "Hopper"
  std::vector<ComputeCapability> cc;
  Version first_driver;                // first driver with support; empty when unknown
  std::optional<unsigned> last_branch;  // last branch supporting an old architecture (580)
  Provenance provenance;
};

struct Gpu {
  std::string name;
  ComputeCapability cc;
  // The systems it comes in: both by default; Jetson/Thor-class parts are
  // aarch64 only, so an x86_64 image never runs on them.
  std::vector<std::string> platforms{"x86_64", "aarch64"};
  // Renamed capability: Thor is sm_101 under CUDA 12.8/12.9, sm_110 from 13.0.
  std::optional<ComputeCapability> former_cc;
  std::optional<Version> renamed_in;

  ComputeCapability cc_under(const Version& cuda) const;
  bool runs_on(std::string_view platform) const;
};

struct OsInfo {
  std::string name;      // "ubuntu22.04"
  std::string family;    // "ubuntu" | "debian"
  std::string codename;  // "bookworm"
  std::string image;     // "ubuntu:22.04"
  std::string python;    // the distribution's Python
};

struct NvidiaBase {
  Version cuda;
  std::vector<std::string> os;
  std::string cudnn_variant;  // "cudnn8" | "cudnn"
  Provenance provenance;
};

// How CUDA gets into an image for one OS (or OS family) and CUDA release.
struct CudaRecipe {
  std::string os;         // exact OS, or empty when os_family applies
  std::string os_family;  // "ubuntu"
  std::string cuda;       // "11.8" or "*"
  std::string method;     // "nvidia-base" | "apt"
  Version full;           // exact version the packages install
  std::vector<std::string> components;
  std::vector<std::string> runtime;
  std::vector<std::string> devel;
  std::optional<Version> nccl;
  bool remove_driver_libs = false;
  bool devel_from_runtime = false;  // the devel image is built on the runtime one
  std::vector<std::string> devel_env;  // "K=V" set in devel images
  // CPU platforms the packages exist for (Debian's architectures, named as
  // the plan names platforms: "x86_64", "aarch64"); default x86_64 alone.
  std::vector<std::string> platforms{"x86_64"};
  Provenance provenance;
  bool serves(std::string_view platform) const;
};

// recipes/install/pytorch.toml: where pip finds the wheels (a matrix's
// [pip] section replaces these key by key) and what it pins.
struct TorchRecipe {
  std::string index_url;  // pattern with {cuda_nodot}
  std::vector<std::string> extra_index_urls;
  std::vector<std::string> find_links;  // URLs (a matrix may add local directories)
  bool no_index = false;
  std::string venv;
  std::vector<std::string> packages;  // patterns with {pytorch}, {cuda_nodot}, {cuda_major}
  // pip constraints (pin what the packages pull, install nothing themselves):
  // patterns with {cuda_major}, {cudnn}, {nccl}; one whose value the catalog
  // does not know is left out, never guessed.
  std::vector<std::string> constraints;
  std::map<std::string, std::vector<std::string>> python_packages;  // by OS family
};

// A library of a component (libraries.toml): whether the component needs it
// on every GPU it serves (core), or only for some operations, which then
// fail on a GPU its device code misses while the rest works (`partial`).
// Libraries the file does not name count as core.
// End of life (eol.toml): when nvidia/cuda image tags of a CUDA release stop
// being supported, and when an OS release's regular security support ends.
struct EndOfLife {
  std::string kind;     // "cuda" | "os"
  std::string name;     // "11.8" | "debian12"
  std::string eol;      // "YYYY-MM-DD": CUDA tags end of life; the OS's regular security support ends
  std::string removal;  // "YYYY-MM-DD" or "": CUDA tags deleted from Docker Hub/NGC; the OS's extended support ends
  Provenance provenance;
};

struct LibraryRole {
  std::string name;        // file name prefix: "libtorch_cuda_linalg.so" matches "…/libtorch_cuda_linalg.so"; "nvprof"
  std::string component;   // "PyTorch", "CUDA toolkit"
  bool core = true;
  std::string operations;  // what fails without it: "linear algebra (torch.linalg)"
  Provenance provenance;
};

struct Catalog {
  std::string version;  // catalog_version: recorded in images and hashes
  std::string root;     // the recipes/ directory it came from
  std::string collected;  // "2026-11-30": when the facts were collected; empty if unrecorded
  std::map<std::string, std::string> sources;
  std::vector<CudaRelease> cuda;
  std::vector<CudnnRelease> cudnn;
  std::vector<NcclRelease> nccl;
  std::vector<TorchRelease> pytorch;
  std::vector<Gpu> gpus;
  std::vector<Architecture> architectures;
  std::vector<OsInfo> os;
  std::string nvidia_repository;
  std::vector<std::string> require_brands;  // for NVIDIA_REQUIRE_CUDA
  std::vector<NvidiaBase> nvidia_bases;
  std::vector<CudaRecipe> cuda_recipes;
  TorchRecipe torch_recipe;
  std::vector<LibraryRole> libraries;  // catalog/libraries.toml (optional file)
  std::vector<EndOfLife> end_of_life;  // catalog/eol.toml (optional file)
  // The entry for a CUDA release ("11.8") or an OS ("debian12"); nullptr: none recorded.
  const EndOfLife* find_end_of_life(std::string_view kind, std::string_view name) const;

  // Reads recipes/catalog/*.toml and recipes/install/*.toml; throws
  // InputError naming file:line:col for anything malformed.
  static Catalog load(const std::string& recipes_dir);

  // "12.4" or "12.4.1" -> the 12.4 release.
  const CudaRelease* find_cuda(const Version& v) const;
  // "2.6" -> newest 2.6.x; "2.6.0" -> exactly that.
  const TorchRelease* find_pytorch(const Version& v) const;
  // "9.5" -> newest 9.5.x the catalog knows.
  const CudnnRelease* find_cudnn(const Version& v) const;
  const NcclRelease* find_nccl(const Version& v) const;
  // The cuDNN entry describing a bundled/installed cuDNN: the newest entry of
  // the same major.minor, else the nearest older one of the same major, else
  // the nearest newer one of that major; null when the major is unknown.
  const CudnnRelease* cudnn_entry_for(const Version& v) const;
  const Gpu* find_gpu(std::string_view name) const;  // case-insensitive
  // The role of the library at `path` (by file name); null: not named (core).
  const LibraryRole* library_role(std::string_view path) const;
  const Architecture* architecture_of(const ComputeCapability& cc) const;
  const OsInfo* find_os(std::string_view name) const;
  const NvidiaBase* find_nvidia_base(const Version& cuda) const;
  const CudaRecipe* find_cuda_recipe(const OsInfo& os, const Version& cuda) const;
  // A GPU name ("H100", case-insensitive) or a capability ("sm_90", "9.0").
  std::optional<ComputeCapability> resolve_gpu(std::string_view name_or_cc) const;
  // The same, as the GPU is known to a given CUDA release (Thor: 10.1 before 13.0).
  std::optional<ComputeCapability> resolve_gpu(std::string_view name_or_cc, const Version& cuda) const;
  // "P100" for 6.0; the first catalogued name, or "" when none.
  std::string gpu_name(const ComputeCapability& cc) const;

  std::string known_cuda() const;     // "11.0, 11.1, ..." for error messages
  std::string known_pytorch() const;
  std::string known_os() const;
};

}  // namespace kiln::catalog
