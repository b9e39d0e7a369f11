// Failures of the world around kiln, as opposed to bad input (InputError,
// util/diag.h) and kiln's own bugs (std::logic_error): an engine, runner or
// secret that is not there. The CLI exits 2 for them, naming the endpoint.
#pragma once
#include <stdexcept>

namespace kiln {

struct EnvironmentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace kiln
