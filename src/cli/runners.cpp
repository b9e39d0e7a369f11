#include "cli/runners.h"

#include <algorithm>

#include <fmt/format.h>

#include "util/diag.h"
#include "util/text.h"

namespace kiln::cli {

namespace {

// A runner's engine URL, or DOCKER_HOST's when it names none.
engine::Endpoint endpoint_of(const matrix::Runner& r) {
  if (r.engine.empty()) return engine::Endpoint::from_env();
  try {
    return engine::Endpoint::parse(r.engine);
  } catch (const std::invalid_argument& e) {
    throw InputError(r.where, fmt::format("runner '{}': {}", r.name, e.what()));
  }
}

// Where runners were looked for, for a name found nowhere: the matrix's
// [runners.*] and, unless it opts out, kiln's config file (merged in by
// load_matrix; `kiln config` names the file), with the runners known and
// the file each came from -- the name may be missing from either.
std::string where_runners_come_from(const matrix::Matrix& m) {
  std::string out = fmt::format("looked in the matrix {}'s [runners.*]", m.path);
  out += m.use_config ? " and in kiln's config file (`kiln config` names the one in use)"
                      : fmt::format(" only (use_config = false at {})", m.use_config_where.str());
  std::vector<std::string> known;
  for (const auto& r : m.runners) known.push_back(fmt::format("{} ({})", r.name, r.where.str()));
  return out + (known.empty() ? "; neither names any runner" : "; runners known: " + join(known, ", "));
}

// Every name given with `flag` must be a runner of the matrix or the config.
void require_runners(const matrix::Matrix& m, const std::vector<std::string>& names, const char* flag) {
  for (const auto& n : names)
    if (std::none_of(m.runners.begin(), m.runners.end(), [&](const auto& r) { return r.name == n; }))
      throw InputError({flag}, fmt::format("no runner '{}': {}", n, where_runners_come_from(m)));
}

}  // namespace

std::vector<verify::Runner> runners_for(const matrix::Matrix& m, const std::vector<std::string>& names) {
  std::vector<verify::Runner> out;
  for (const auto& r : m.runners) {
    if (!names.empty() && std::count(names.begin(), names.end(), r.name) == 0) continue;
    out.push_back({r.name, endpoint_of(r), r.gpu, r.gpu_classes, r.backend, r.devices, r.driver_libs,
                   r.shm_size > 0 ? r.shm_size : verify::Runner{}.shm_size, r.ipc});
  }
  require_runners(m, names, "--runner");
  if (out.empty()) out.push_back(verify::Runner{.name = "local", .endpoint = engine::Endpoint::from_env()});
  return out;
}

std::vector<build::EngineSpec> engines_for(const matrix::Matrix& m, const std::vector<std::string>& names) {
  std::vector<build::EngineSpec> out;
  for (const auto& r : m.runners) {
    bool wanted = names.empty() ? !r.engine.empty() : std::count(names.begin(), names.end(), r.name) > 0;
    if (!wanted) continue;
    out.push_back({r.name, endpoint_of(r), r.backend});
  }
  require_runners(m, names, "--builder");
  if (out.empty()) out.push_back({"default", engine::Endpoint::from_env(), matrix::Backend::engine});
  return out;
}

}  // namespace kiln::cli
