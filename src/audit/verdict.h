// Which GPUs and drivers an image can serve, judged from what its bytes say
// (fat binaries, components) against the catalog's rules. Plain data in,
// plain data out: reading the image is the caller's job (audit.h does both).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "audit/components.h"
#include "audit/fatbin.h"
#include "catalog/catalog.h"
#include "util/cc.h"

namespace kiln::audit {

// A GPU to judge, as the user named it ("T4", "sm_90", "8.6").
struct GpuTarget {
  std::string name;
  ComputeCapability cc;
};
// Resolves names through the catalog; throws InputError for unknown ones.
std::vector<GpuTarget> resolve_gpus(const std::vector<std::string>& names, const catalog::Catalog& c);
// P100, V100, T4, A100, L4, H100, B200: the data-center line since Pascal.
std::vector<std::string> default_gpu_names();

// The CUDA runtime the image's code runs against, and the evidence.
struct CudaRuntime {
  Version version;     // "12.4.127" or "12.4"
  std::string source;  // "usr/local/cuda/lib64/libcudart.so.12.4.127", "env:CUDA_VERSION", ...
};
// libcudart first (what really runs), then version.json's toolkit,
// CUDA_VERSION, torch's cuda; the newest when one kind names several.
std::optional<CudaRuntime> cuda_runtime_of(const Components& comp);

// One library, one GPU.
struct LibraryVerdict {
  std::string path;
  Support support = Support::unsupported;
  std::string via;     // "sm_75" / "compute_90"
  std::string reason;  // unsupported: "no SASS for sm_60 and PTX only for compute_75"
  std::string min_driver;  // ptx-jit: the driver its PTX needs
  std::string driver_why;
  // Its fat binary could not be read (corrupt, truncated, unknown version,
  // bad ELF): what it needs is not known, so it never counts as serving the
  // GPU. support is then `unsupported` and reason says why (fail closed).
  bool unknown = false;
  // Unsupported, but the catalog (libraries.toml) calls the library optional:
  // only `operations` fail on this GPU; the rest of the image still runs.
  bool optional = false;
  std::string operations;
};

struct GpuVerdict {
  GpuTarget gpu;
  // The worst over the libraries with device code: the image serves a GPU
  // only if each of them does. native with no library at all. A library
  // whose fat binary cannot be read makes it `unsupported` with `unknown`
  // naming it (shown as "unknown": never native, never served).
  Support support = Support::native;
  std::vector<LibraryVerdict> libraries;  // one per library with device code or an unreadable fat binary
  std::vector<std::string> unsupported;   // paths of libraries that do not serve it
  std::vector<std::string> jit;           // paths that serve it only through PTX
  std::vector<std::string> unknown;       // paths whose fat binary could not be read
  // Optional libraries (catalog) that do not serve it while the core ones
  // do: the verdict reads `partial`, and each line says what fails
  // ("libtorch_cuda_linalg.so: linear algebra (torch.linalg ...) has no sm_75 code").
  std::vector<std::string> partial;
  std::vector<std::string> failing_operations;
  // No library of the image carries device code (and none is unreadable):
  // nothing limits or proves anything, shown as "no device code", never native.
  bool no_device_code = false;
  std::string min_driver;                 // empty when unsupported or unknown
  std::string driver_why;
  // Unsupported whatever the device code says: an aarch64-only GPU and an
  // x86_64 image, or a GPU below the installed cuDNN's capability floor.
  std::string reason;
};

struct ImageVerdict {
  std::optional<CudaRuntime> runtime;
  const catalog::CudaRelease* release = nullptr;  // the catalog's release for the runtime
  std::vector<GpuVerdict> gpus;
  std::string min_driver;  // the highest over the served GPUs; empty if unknown
  std::string driver_why;
  std::vector<std::string> warnings;
  // "path: why" of each library whose fat binary could not be read; any makes
  // min_driver unknown (its PTX could need a newer driver) and fails
  // why_not_on_driver whatever the GPUs.
  std::vector<std::string> unreadable;
  std::string platform;      // "x86_64" / "aarch64" from the config; empty if unknown
  std::string require_cuda;  // the image's NVIDIA_REQUIRE_CUDA, judged with the catalog's rule
  // The catalog judged against (it outlives the verdict, as `release` does):
  // the driver questions below need its architectures and CUDA releases.
  const catalog::Catalog* catalog = nullptr;
};

// "native", "ptx-jit", "partial" (the core libraries serve it, optional
// ones named in `partial` do not), "no device code" (nothing in the image
// carries any), "unsupported", or "unknown" when only unreadable libraries
// keep the GPU from being served.
const char* support_name(const GpuVerdict& g);

// Judges each GPU against each scanned library that has device code.
ImageVerdict judge(const Components& comp, const std::vector<FatbinScan>& scans, const std::vector<GpuTarget>& gpus,
                   const catalog::Catalog& c);

// One library on one GPU, given the runtime's release (may be null).
LibraryVerdict judge_library(const std::string& path, const FatbinInfo& info, const GpuTarget& gpu,
                             const catalog::CudaRelease* runtime, const catalog::Catalog& c);

// Where an image's device code breaks the promise of its arch list (the
// plan's, which kiln writes into the io.kiln.arch_list label): every library
// with device code must run on each promised capability, through SASS or
// PTX; the framework library that is built for exactly that list
// (libtorch_cuda.so) must also carry SASS for each entry and PTX for each
// +PTX entry. One line per broken promise, naming the library. Unreadable
// libraries count as breaking it. Only shared libraries (".so" in the file
// name) are held to it: an executable's kernels (a toolkit tool) are not.
std::vector<std::string> arch_promise_gaps(const std::vector<FatbinScan>& scans, const ArchList& promised);

// Does an image with this verdict run on `driver`? Reasons it does not:
// unsupported GPUs, each GPU architecture's driver limits (first driver,
// last branch), NVIDIA_REQUIRE_CUDA refusing the driver, driver floors; an
// unreadable library is one (nothing can be promised about it).
std::vector<std::string> why_not_on_driver(const ImageVerdict& v, const Version& driver);
// Where it runs on `driver` only under a condition: NVIDIA_REQUIRE_CUDA
// admitting the driver's branch only on some GPU brands.
std::vector<std::string> conditions_on_driver(const ImageVerdict& v, const Version& driver);

}  // namespace kiln::audit
