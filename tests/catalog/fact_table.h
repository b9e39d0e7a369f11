// The data-driven fact table: rows of expected answers, each with the
// source that states it, evaluated through kiln's own code paths (catalog
// lookups, make_plan with --driver/--gpu, the GPU driver limits that
// check-driver and audit use) -- never by re-reading the catalog's TOML.
//
// Row schema (tests/catalog/facts.toml, documented in recipes/README.md):
//   [[fact]]
//   what = "…"; source = "…"; kind = "torch_build" | "torch_release" | "driver" | "cuda" | "gpu"
//   torch_build:   pytorch, cuda, any of: exists (bool), cudnn, nccl, cublas, arch_list (exact)
//   torch_release: pytorch, any of: default_cuda, cuda_builds (array), python (array)
//   driver:        gpu, driver, optional pytorch + cuda (a torch wheel) or cuda alone;
//                  ok (bool); optional reason (a substring of the answer's words:
//                  why_not and conditions). ok is `kiln plan --driver --gpu`'s
//                  usable, except that an answer relying on forward
//                  compatibility (the cuda-compat package of an nvidia/cuda
//                  base) is not ok: the row states what the wheel or toolkit
//                  itself runs on. Without cuda, the GPU's architecture limits.
//   cuda:          cuda, any of: require_cuda, min_driver, driver, sass (array)
//   gpu:           gpu, any of: cc, platforms (array), cc_under_cuda (inline table cuda -> cc)
// An unknown key, a missing one or a malformed row is an error (a typo never
// silently passes).
#pragma once
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace kiln::facts {

struct Outcome {
  std::string where;   // facts.toml:LINE:COL
  std::string what;
  std::string source;
  std::vector<std::string> failures;  // empty: the row holds
};

// Throws InputError for a malformed facts file.
std::vector<Outcome> check_facts(const catalog::Catalog& c, const std::string& facts_file);

}  // namespace kiln::facts
