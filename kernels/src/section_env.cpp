// env: runtime and driver versions, the devices, and the versions the image
// was expected to carry compared with what actually loaded.

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>

#include "checks.h"
#include "cuda_util.h"
#include "sections.h"

#if KILN_SMOKE_WITH_CUBLAS
#include <cublas_v2.h>
#endif
#if KILN_SMOKE_WITH_CUDNN
#include <cudnn.h>
#endif
#if KILN_SMOKE_WITH_NCCL
#include <nccl.h>
#endif

namespace kiln::smoke {

std::string DeviceInfo::label() const {
  return std::to_string(index) + " (" + name + ", sm_" + std::to_string(cc_major) +
         std::to_string(cc_minor) + ")";
}

static std::uint64_t fresh_seed(const Options& o) {
  if (o.seed) return o.seed;
  auto t = std::chrono::system_clock::now().time_since_epoch().count();
  return static_cast<std::uint64_t>(t) & ((1ull << 53) - 1);  // exact in a JSON number
}

static DeviceInfo read_device(int index) {
  cudaDeviceProp p{};
  KILN_CUDA(cudaGetDeviceProperties(&p, index));
  DeviceInfo d;
  d.index = index;
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.memory_bytes = p.totalGlobalMem;
  char bus[32] = {0};
  if (cudaDeviceGetPCIBusId(bus, sizeof bus, index) == cudaSuccess) d.pci_bus_id = bus;
  return d;
}

Context probe_context(const Options& options) {
  Context ctx{options};
  ctx.seed = fresh_seed(options);
  // Both calls work without a driver: the runtime version is compiled in and
  // a missing libcuda reads as driver 0.
  cudaRuntimeGetVersion(&ctx.runtime_version);
  cudaDriverGetVersion(&ctx.driver_version);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    ctx.gpu.error = cuda_error_text(e);
    if (ctx.driver_version == 0) ctx.gpu.error += " (no NVIDIA driver loaded: libcuda not found)";
    return ctx;
  }
  if (count == 0) {
    ctx.gpu.error = "no CUDA devices visible";
    return ctx;
  }
  try {
    for (int i = 0; i < count; ++i) ctx.devices.push_back(read_device(i));
  } catch (const CudaError& err) {
    ctx.gpu.error = err.what();
    return ctx;
  }
  ctx.gpu.usable = true;
  ctx.gpu.device_count = count;
  return ctx;
}

static Json device_json(const DeviceInfo& d) {
  Json j = Json::object();
  j["index"] = d.index;
  j["name"] = d.name;
  j["compute_capability"] = std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor);
  j["sm_count"] = d.sm_count;
  j["memory_mib"] = static_cast<long long>(d.memory_bytes >> 20);
  j["pci_bus_id"] = d.pci_bus_id;
  return j;
}

// Compares one expected version; records the comparison in `out`.
static void check_expected(Section& s, Json& out, const char* what, const std::string& expected,
                           const std::optional<std::string>& found) {
  if (expected.empty()) return;
  Json& j = out[what];
  j["expected"] = expected;
  j["found"] = found ? Json(*found) : Json();
  bool ok = found && version_matches(expected, *found);
  j["match"] = ok;
  if (!found)
    s.fail(std::string("expected ") + what + " " + expected +
           ", but kiln-smoke was built without it (absent from the image at build time)");
  else if (!ok)
    s.fail(version_mismatch_message(what, expected, *found));
}

// The file a library symbol was loaded from: tells which of several
// installed copies (system, pip wheel, toolkit) the image really uses.
static Json loaded_from(const void* symbol) {
  Dl_info info{};
  if (dladdr(symbol, &info) && info.dli_fname) return Json(std::string(info.dli_fname));
  return Json();
}

static Json library_paths() {
  Json p = Json::object();
  p["cudart"] = loaded_from(reinterpret_cast<const void*>(&cudaRuntimeGetVersion));
#if KILN_SMOKE_WITH_CUBLAS
  p["cublas"] = loaded_from(reinterpret_cast<const void*>(&cublasGetProperty));
#endif
#if KILN_SMOKE_WITH_CUDNN
  p["cudnn"] = loaded_from(reinterpret_cast<const void*>(&cudnnGetVersion));
#endif
#if KILN_SMOKE_WITH_NCCL
  p["nccl"] = loaded_from(reinterpret_cast<const void*>(&ncclGetVersion));
#endif
  return p;
}

static Json library_versions(std::optional<std::string>& cudnn, std::optional<std::string>& nccl) {
  Json libs = Json::object();
#if KILN_SMOKE_WITH_CUBLAS
  int maj = 0, min = 0, pat = 0;
  cublasGetProperty(MAJOR_VERSION, &maj);
  cublasGetProperty(MINOR_VERSION, &min);
  cublasGetProperty(PATCH_LEVEL, &pat);
  libs["cublas"] = std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(pat);
#else
  libs["cublas"] = Json();
#endif
#if KILN_SMOKE_WITH_CUDNN
  cudnn = cudnn_version_string(static_cast<int>(cudnnGetVersion()));
  libs["cudnn"] = *cudnn;
  libs["cudnn_header"] = cudnn_version_string(CUDNN_VERSION);
  libs["cudnn_built_for_cuda"] = cuda_version_string(static_cast<int>(cudnnGetCudartVersion()));
#else
  libs["cudnn"] = Json();
#endif
#if KILN_SMOKE_WITH_NCCL
  int v = 0;
  if (ncclGetVersion(&v) == ncclSuccess) nccl = nccl_version_string(v);
  libs["nccl"] = nccl ? Json(*nccl) : Json();
  libs["nccl_header"] = nccl_version_string(NCCL_VERSION_CODE);
#else
  libs["nccl"] = Json();
#endif
  return libs;
}

// The kernel module's release ("580.159.04") from /proc/driver/nvidia/version:
// the driver *branch* (580) that kiln's verdict cache and a policy's driver
// range are keyed by; the CUDA driver API version (13.0) does not tell
// branches apart. Null when the file is not there (no driver, or a
// container that does not see it).
static Json driver_release() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  if (!in || !std::getline(in, line)) return Json();
  std::smatch m;
  // Both the proprietary and the open module print it between double blanks.
  if (std::regex_search(line, m, std::regex("  ([0-9]+\\.[0-9]+(\\.[0-9]+)?)  "))) return Json(m[1].str());
  return Json();
}

void run_env(Context& ctx, Section& s) {
  const Options& o = ctx.options;
  Json& d = s.data;
  d["runtime_version"] = cuda_version_string(ctx.runtime_version);
  d["runtime_version_code"] = ctx.runtime_version;
  d["driver_version"] = ctx.driver_version ? Json(cuda_version_string(ctx.driver_version)) : Json();
  d["driver_version_code"] = ctx.driver_version;
  d["driver_release"] = driver_release();
  if (driver_older_than_runtime(ctx.driver_version, ctx.runtime_version))
    s.fail("CUDA driver " + cuda_version_string(ctx.driver_version) +
           " is older than the CUDA runtime " + cuda_version_string(ctx.runtime_version) +
           " it must run (update the driver or add the CUDA forward-compatibility package)");

  Json devs = Json::array();
  for (const auto& dev : ctx.devices) devs.push_back(device_json(dev));
  d["devices"] = devs;

  std::optional<std::string> cudnn, nccl;
  d["libraries"] = library_versions(cudnn, nccl);
  d["library_paths"] = library_paths();
  Json& cmp = d["expected"];
  cmp = Json::object();
  check_expected(s, cmp, "CUDA", o.expect_cuda, cuda_version_string(ctx.runtime_version));
  check_expected(s, cmp, "cuDNN", o.expect_cudnn, cudnn);
  check_expected(s, cmp, "NCCL", o.expect_nccl, nccl);

  if (!ctx.gpu.usable) {
    // Versions were still read; but with no GPU env proves nothing about it.
    if (s.status != Status::Fail) s.status = Status::Skipped;
    s.notes.push_back("no usable GPU: " + ctx.gpu.error);
    return;
  }
  s.pass_unless_failed();
}

}  // namespace kiln::smoke
