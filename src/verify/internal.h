// Shared by the verify room's files.
#pragma once
#include <filesystem>
#include <memory>

#include "image/image.h"
#include "render/render.h"
#include "verify/verify.h"

namespace kiln::verify::detail {

CheckResult static_check(const plan::Combo& c, const plan::Plan& p, const std::string& image,
                         engine::Client& client, const Options& o);

// The part of the static check that reads the image's files (no engine):
// device code, component versions, PyTorch, driver libraries, compilers.
CheckResult static_check_files(const plan::Combo& c, const image::ImageFs& fs);

// Builds (incrementally) the smoke image of a combination and runs it.
CheckResult gpu_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                      const std::string& image, const Runner& runner, const Options& o);

// The policy's decision from the checks that ran (or were reused). A GPU
// class the arch list cannot serve is refused, whatever the checks say.
void decide(ComboVerdict& v, const matrix::Policy& policy, const std::vector<Runner>& runners, const ArchList& arch);

// Why a GPU class (a policy's or a runner's "sm_70") cannot run an image
// built for `arch`, in words; "" when it can (SASS or PTX JIT).
std::string class_refusal(const std::string& gpu_class, const ArchList& arch);

}  // namespace kiln::verify::detail
