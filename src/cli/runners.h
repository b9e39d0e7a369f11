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

// What every verb that verifies starts from (verify, run, export): the
// runners, the state directory, --only, the smoke kernels under the data
// directory and the catalog (null where no check reads it).
verify::Options verify_options(const matrix::Matrix& m, const std::vector<std::string>& runner_names,
                               const std::string& state_dir, const std::vector<std::string>& only,
                               const std::string& data_dir, const catalog::Catalog* catalog);

// The engines to build on: the runners named with --builder (or all runners
// that name an engine), else DOCKER_HOST / the default socket.
std::vector<build::EngineSpec> engines_for(const matrix::Matrix& m, const std::vector<std::string>& names);

}  // namespace kiln::cli
