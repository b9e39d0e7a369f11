// Shared between the plan's own files; not part of its public header.
#pragma once
#include "catalog/compat.h"
#include "plan/plan.h"

namespace kiln::plan::detail {

// Resolves one combination's versions, install recipe and base, or marks it
// excluded with the catalog rule that fails (resolve.cpp).
void resolve(Combo& combo, const matrix::Matrix& m, const catalog::Catalog& c);

// Arch list, target support, driver floor, NVIDIA_REQUIRE_CUDA (targets.cpp).
void resolve_targets(Combo& combo, const matrix::Matrix& m, const catalog::Catalog& c);
// One GPU against a resolved combination: its arch list, platform and cuDNN.
TargetSupport support_of(const std::string& name, const Combo& combo, const catalog::CudaRelease& cuda,
                         const catalog::Catalog& c);
void answer_query(Combo& combo, const Query& q, const catalog::Catalog& c);

// "T4 (sm_75)": shared with the audit (catalog/compat.h).
using catalog::gpu_label;

}  // namespace kiln::plan::detail
