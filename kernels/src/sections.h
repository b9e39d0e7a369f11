// The sections of kiln-smoke. Each lives in its own section_<name> file and is
// compiled only when its library is in the image (KILN_SMOKE_WITH_<LIB>);
// main.cpp reports a compiled-out section as "absent".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "options.h"
#include "report.h"

namespace kiln::smoke {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  std::size_t memory_bytes = 0;
  std::string pci_bus_id;
  std::string label() const;  // "0 (NVIDIA H100 80GB HBM3, sm_90)"
};

struct Context {
  const Options& options;
  GpuProbe gpu;
  int runtime_version = 0;
  int driver_version = 0;
  std::vector<DeviceInfo> devices;
  std::uint64_t seed = 0;  // fresh random data per run, reported for replay
};

// Fills runtime/driver versions, devices and the usable verdict.
Context probe_context(const Options& options);

void run_env(Context& ctx, Section& s);
void run_arch(Context& ctx, Section& s);
void run_memory(Context& ctx, Section& s);
void run_cublas(Context& ctx, Section& s);
void run_cudnn(Context& ctx, Section& s);
void run_nccl(Context& ctx, Section& s);

}  // namespace kiln::smoke
