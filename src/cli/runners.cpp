#include "cli/runners.h"

#include <algorithm>

#include <fmt/format.h>

#include "util/diag.h"

namespace kiln::cli {

std::vector<verify::Runner> runners_for(const matrix::Matrix& m, const std::vector<std::string>& names) {
  std::vector<verify::Runner> out;
  for (const auto& r : m.runners) {
    if (!names.empty() && std::count(names.begin(), names.end(), r.name) == 0) continue;
    engine::Endpoint ep = r.engine.empty() ? engine::Endpoint::from_env() : engine::Endpoint{r.engine.substr(7)};
    out.push_back({r.name, ep, r.gpu, r.gpu_classes, r.backend, r.devices, r.driver_libs,
                   r.shm_size > 0 ? r.shm_size : verify::Runner{}.shm_size, r.ipc});
  }
  for (const auto& n : names)
    if (std::none_of(m.runners.begin(), m.runners.end(), [&](const auto& r) { return r.name == n; }))
      throw InputError({"--runner"}, fmt::format("the matrix has no runner '{}'", n));
  if (out.empty()) out.push_back({"local", engine::Endpoint::from_env(), "none", {}, "engine", {}, "", verify::Runner{}.shm_size, ""});
  return out;
}

std::vector<build::EngineSpec> engines_for(const matrix::Matrix& m, const std::vector<std::string>& names) {
  std::vector<build::EngineSpec> out;
  for (const auto& r : m.runners) {
    bool wanted = names.empty() ? !r.engine.empty() : std::count(names.begin(), names.end(), r.name) > 0;
    if (!wanted) continue;
    if (r.engine.rfind("unix://", 0) != 0)
      throw InputError(r.where, fmt::format("runner '{}' needs engine = \"unix:///path/to.sock\" to build", r.name));
    out.push_back({r.name, engine::Endpoint{r.engine.substr(7)}, r.backend});
  }
  for (const auto& n : names)
    if (std::none_of(m.runners.begin(), m.runners.end(), [&](const auto& r) { return r.name == n; }))
      throw InputError({"--builder"}, fmt::format("the matrix has no runner '{}'", n));
  if (out.empty()) out.push_back({"default", engine::Endpoint::from_env(), "engine"});
  return out;
}

}  // namespace kiln::cli
