// Named buildx builders (a runner's `builder = "NAME"`): which driver each
// is, and whether its images land in the runner's engine (--load) or only
// in the staging registry (pushed by digest). docs/build-farm.md.
#include <fmt/format.h>

#include "build/internal.h"

namespace kiln::build::detail {

namespace {

// The docker driver's engine as an Endpoint, when kiln can speak to it.
std::optional<engine::Endpoint> engine_of(const std::string& docker_host) {
  if (docker_host.empty()) return std::nullopt;
  try {
    return engine::Endpoint::parse(docker_host);
  } catch (const std::exception&) {  // a scheme this kiln does not speak: bases are not looked up there
    return std::nullopt;
  }
}

// "HOST/REPO" of the plan's release tags: the registry a remote builder
// pushes to, so promote later tags within one repository.
std::string staging_repository(const plan::Plan& p, const EngineSpec& e) {
  if (p.registry.url.empty())
    throw EnvironmentError(fmt::format(
        "runner '{}': builder '{}' ({} driver) is not the runner's engine, so kiln pushes its images by digest to the "
        "matrix's registry instead of loading them; set [registry] url in the matrix or in kiln.toml (docs/build-farm.md)",
        e.name, e.builder, e.builder_driver));
  std::string repo = p.registry.repository.empty() ? "kiln/" + p.matrix_name : p.registry.repository;
  return p.registry.url + "/" + repo;
}

}  // namespace

Options resolve_builders(Options o, const plan::Plan& p) {
  for (auto& e : o.engines) {
    if (e.builder.empty() || e.builder == "default" || e.backend != matrix::Backend::buildx) continue;
    engine::BuildxBuilderInfo info;
    try {
      info = engine::inspect_buildx_builder(e.builder);
    } catch (const std::exception& ex) {
      throw EnvironmentError(fmt::format("runner '{}': {}", e.name, ex.what()));
    }
    e.builder_driver = info.driver;
    e.builder_engine = info.driver == "docker" ? engine_of(info.docker_host) : std::nullopt;
    // Only the docker driver of this very engine puts images where the
    // runner's engine has them; every other builder's images are pushed.
    e.builder_is_engine = e.builder_engine && e.builder_engine->uri() == e.endpoint.uri();
    if (info.driver == "docker") e.builder_context = info.endpoint;
    if (!e.builder_is_engine) e.staging = staging_repository(p, e);
    e.staging_insecure = p.registry.insecure;
    e.staging_credential_helper = p.registry.credential_helper;
  }
  return o;
}

}  // namespace kiln::build::detail
