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

// Builds (incrementally) the smoke image of a combination and runs it.
CheckResult gpu_check(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                      const std::string& image, const Runner& runner, const Options& o);

// The policy's decision from the checks that ran (or were reused).
void decide(ComboVerdict& v, const matrix::Policy& policy, const std::vector<Runner>& runners);

}  // namespace kiln::verify::detail
