#include "cli/runners.h"

#include <algorithm>

#include <fmt/format.h>

#include "util/diag.h"
#include "util/text.h"

namespace kiln::cli {

namespace {

// A runner's TLS settings: the environment's (DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH, as for `docker -H`), replaced by what the runner writes;
// a runner that names its certificates wants TLS unless it says otherwise.
engine::TlsSettings tls_of(const matrix::Runner& r) {
  engine::TlsSettings t = engine::TlsSettings::from_env();
  const bool names_files = !r.cert_path.empty() || !r.ca.empty() || !r.cert.empty() || !r.key.empty();
  if (!r.cert_path.empty()) t.cert_path = r.cert_path;
  if (!r.ca.empty()) t.ca = r.ca;
  if (!r.cert.empty()) t.cert = r.cert;
  if (!r.key.empty()) t.key = r.key;
  if (r.tls_verify) t.verify = r.tls_verify;
  else if (names_files) t.verify = true;
  return t;
}

// A runner's engine URL, or DOCKER_HOST's when it names none.
engine::Endpoint endpoint_of(const matrix::Runner& r) {
  const bool has_tls = r.tls_verify || !r.cert_path.empty() || !r.ca.empty() || !r.cert.empty() || !r.key.empty();
  try {
    if (r.engine.empty()) {
      if (has_tls) throw std::invalid_argument("tls_verify, cert_path, ca, cert and key need the runner's engine = \"tcp://HOST:PORT\"");
      return engine::Endpoint::from_env();
    }
    engine::Endpoint ep = engine::Endpoint::parse(r.engine, tls_of(r));
    if (has_tls && ep.transport != engine::Endpoint::Transport::tcp)
      throw std::invalid_argument("tls_verify, cert_path, ca, cert and key apply to tcp:// engines, not " + ep.uri());
    return ep;
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
                   r.shm_size > 0 ? r.shm_size : verify::Runner{}.shm_size, r.ipc, r.gpus, r.gpu_product, r.slurm});
    if (!r.platforms.empty()) out.back().platform = r.platforms.front();  // the host's own; others are emulated builds
  }
  require_runners(m, names, "--runner");
  if (out.empty()) out.push_back(verify::Runner{.name = "local", .endpoint = engine::Endpoint::from_env()});
  return out;
}

verify::Options verify_options(const matrix::Matrix& m, const std::vector<std::string>& runner_names,
                               const std::string& state_dir, const std::vector<std::string>& only,
                               const std::string& data_dir, const catalog::Catalog* catalog) {
  verify::Options o;
  o.runners = runners_for(m, runner_names);
  o.state_dir = state_dir;
  o.only = only;
  o.kernels_dir = data_dir + "/kernels";
  o.catalog = catalog;
  return o;
}

std::vector<build::EngineSpec> engines_for(const matrix::Matrix& m, const std::vector<std::string>& names) {
  std::vector<build::EngineSpec> out;
  for (const auto& r : m.runners) {
    bool wanted = names.empty() ? !r.engine.empty() || !r.builder.empty() : std::count(names.begin(), names.end(), r.name) > 0;
    if (!wanted) continue;
    out.push_back({.name = r.name, .endpoint = endpoint_of(r), .backend = r.backend, .builder = r.builder, .jobs = r.jobs,
                   .platforms = r.platforms, .labels = r.labels});
  }
  require_runners(m, names, "--builder");
  if (out.empty()) out.push_back({"default", engine::Endpoint::from_env(), matrix::Backend::engine});
  return out;
}

}  // namespace kiln::cli
