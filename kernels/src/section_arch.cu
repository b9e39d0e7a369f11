// arch: launches a kernel on every visible device and reports whether the
// driver ran our SASS or JIT-compiled our PTX. This is the section that
// catches "no kernel image is available for execution on the device": an
// image whose binaries lack code for the GPU's architecture.

#include <cstdlib>
#include <cstring>
#include <vector>

#include "checks.h"
#include "cuda_util.h"
#include "sections.h"

namespace kiln::smoke {

// Writes a known pattern, and the architecture the code was compiled for
// (__CUDA_ARCH__ of the PTX/SASS that actually ran).
__global__ void kiln_probe_kernel(unsigned* out, unsigned n, unsigned seed, int* arch) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = (i * 2654435761u) ^ seed;
#ifdef __CUDA_ARCH__
  if (i == 0) *arch = __CUDA_ARCH__;
#endif
}

static bool ptx_jit_forced() {
  const char* v = std::getenv("CUDA_FORCE_PTX_JIT");
  return v && std::strcmp(v, "1") == 0;
}

// Runs the probe on one device; throws CudaError with the runtime's message.
static Json probe_device(const DeviceInfo& dev, unsigned seed) {
  KILN_CUDA(cudaSetDevice(dev.index));
  Json j = Json::object();
  j["device"] = dev.index;
  j["name"] = dev.name;
  j["sm"] = dev.cc_major * 10 + dev.cc_minor;

  static const auto sass = parse_arch_list(KILN_SASS_ARCHS);
  static const auto ptx = parse_arch_list(KILN_PTX_ARCHS);
  std::string source = expected_code_source(dev.cc_major, dev.cc_minor, sass, ptx);
  if (source != "none" && ptx_jit_forced()) source = "ptx-jit";

  // Fails with cudaErrorNoKernelImageForDevice when nothing fits this GPU.
  cudaFuncAttributes attr{};
  KILN_CUDA(cudaFuncGetAttributes(&attr, kiln_probe_kernel));
  j["binary_version"] = attr.binaryVersion;
  j["ptx_version"] = attr.ptxVersion;

  const unsigned n = 1u << 20;
  DeviceBuffer<unsigned> out(n);
  DeviceBuffer<int> arch(1);
  KILN_CUDA(cudaMemset(arch.get(), 0, sizeof(int)));
  kiln_probe_kernel<<<(n + 255) / 256, 256>>>(out.get(), n, seed, arch.get());
  KILN_CUDA(cudaGetLastError());
  KILN_CUDA(cudaDeviceSynchronize());

  std::vector<unsigned> host(n);
  int ran_arch = 0;
  KILN_CUDA(cudaMemcpy(host.data(), out.get(), out.bytes(), cudaMemcpyDeviceToHost));
  KILN_CUDA(cudaMemcpy(&ran_arch, arch.get(), sizeof(int), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (unsigned i = 0; i < n; ++i) wrong += host[i] != ((i * 2654435761u) ^ seed);
  j["compiled_for"] = ran_arch / 10;  // __CUDA_ARCH__ 900 -> 90
  j["code_source"] = source;
  j["wrong_values"] = static_cast<long long>(wrong);
  if (wrong)
    throw std::runtime_error("device " + dev.label() + ": probe kernel wrote " +
                             std::to_string(wrong) + " wrong value(s) of " + std::to_string(n));
  return j;
}

void run_arch(Context& ctx, Section& s) {
  s.data["embedded_sass"] = KILN_SASS_ARCHS;
  s.data["embedded_ptx"] = KILN_PTX_ARCHS;
  Json per_device = Json::array();
  bool any_jit = false;
  for (const auto& dev : ctx.devices) {
    try {
      Json j = probe_device(dev, static_cast<unsigned>(ctx.seed));
      any_jit |= j["code_source"].str() == "ptx-jit";
      per_device.push_back(std::move(j));
    } catch (const std::exception& e) {
      Json j = Json::object();
      j["device"] = dev.index;
      j["name"] = dev.name;
      j["sm"] = dev.cc_major * 10 + dev.cc_minor;
      j["error"] = e.what();
      per_device.push_back(std::move(j));
      s.fail("device " + dev.label() + ": " + e.what() + " [embedded SASS: " +
             (*KILN_SASS_ARCHS ? KILN_SASS_ARCHS : "none") + "; PTX: " +
             (*KILN_PTX_ARCHS ? KILN_PTX_ARCHS : "none") + "]");
    }
  }
  s.data["devices"] = per_device;
  if (any_jit)
    s.notes.push_back("ran from PTX through the driver's JIT compiler: works, but the first "
                      "launch pays the compile and no SASS in the image targets this GPU");
  s.pass_unless_failed();
}

}  // namespace kiln::smoke
