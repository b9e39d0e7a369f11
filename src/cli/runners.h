// The runners a verb works with, from the matrix and --runner flags.
#pragma once
#include <string>
#include <vector>

#include "matrix/matrix.h"
#include "build/build.h"
#include "verify/verify.h"

namespace kiln::cli {

// Matrix runners (all, or those named); a runner without an engine uses
// DOCKER_HOST. With no runners at all: one "local" runner without GPUs.
std::vector<verify::Runner> runners_for(const matrix::Matrix& m, const std::vector<std::string>& names);

// The engines to build on: the runners named with --builder (or all runners
// that name an engine), else DOCKER_HOST / the default socket.
std::vector<build::EngineSpec> engines_for(const matrix::Matrix& m, const std::vector<std::string>& names);

}  // namespace kiln::cli
