// The arch list PyTorch was compiled for (TORCH_CUDA_ARCH_LIST), read back
// from libtorch_cuda.so's fat binaries. Shared by `kiln catalog check`
// (survey) and verify's static check, so that both apply one rule.
#pragma once
#include <string>
#include <vector>

#include "audit/fatbin.h"
#include "util/cc.h"

namespace kiln::audit {

struct TorchArchList {
  ArchList list;                      // the portable SASS and PTX of the list
  std::vector<std::string> specific;  // a few kernels only: "sm_90a", "sm_89" beside the list
};

// TORCH_CUDA_ARCH_LIST applies to every .cu file torch compiles, so its
// entries sit in (nearly) every fat binary of libtorch_cuda.so; a few files
// add kernels for single architectures on top (FP8/attention kernels for
// sm_89, sm_90a, sm_100a...). Measured on torch 2.11.0+cu130 (cuobjdump
// --list-elf): sm_75/80/86/90/100/120 in 444 fat binaries each, sm_100a and
// sm_103a in 59, sm_90a in 4, sm_89, sm_120a and sm_121a in 1 — and
// torch.cuda.get_arch_list() names the six. So an architecture belongs to
// the list when it is in at least half as many fat binaries as the most
// common one; the others are `specific`. Only `counted` entries count.
TorchArchList torch_arch_list(const std::vector<FatbinEntry>& entries);

}  // namespace kiln::audit
