// The portable units of a plan: each combination's smoke image built (its
// suite once per toolchain) and, with the release image, pushed by digest to
// the staging registry; one unit per (image, GPU runner class).
#include <algorithm>

#include <fmt/format.h>

#include "registry/registry.h"
#include "util/select.h"
#include "verify/internal.h"
#include "verify/smoke_unit.h"

namespace kiln::verify {

namespace {

std::string hex_of(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

// Pushes `image` (an id or name on the engine) as REPO:TAG; returns
// REPO@sha256:<manifest digest>.
std::string push_by_digest(engine::Client& eng, const std::string& image, const std::string& repo, const std::string& tag,
                           const std::string& credential_helper) {
  registry::Reference ref = registry::parse_reference(repo + ":" + tag);
  eng.tag_image(image, ref.host + "/" + ref.repo, tag);
  auto creds = registry::lookup_credentials(ref.host, registry::docker_config_dir(), credential_helper);
  engine::PushResult pushed = eng.push_image(ref.host + "/" + ref.repo, tag, registry::engine_auth(creds, ref.host), nullptr);
  if (!pushed.ok) throw EnvironmentError(fmt::format("push of {}:{} failed: {}", repo, tag, pushed.error));
  return ref.host + "/" + ref.repo + "@" + pushed.digest;
}

std::string image_ld_path(const std::optional<engine::ImageInfo>& info) {
  if (info)
    for (const auto& kv : info->env)
      if (kv.rfind("LD_LIBRARY_PATH=", 0) == 0) return kv.substr(16);
  return "";
}

}  // namespace

std::string default_staging(const plan::Plan& p) {
  if (p.registry.url.empty() || p.registry.repository.empty()) return "";
  return p.registry.url + "/" + p.registry.repository;
}

namespace detail {

StagedImages stage_images(const plan::Combo& c, const plan::Plan& p, const render::Renderer& renderer,
                          const Runner& builder, const Options& o, const std::string& staging) {
  StagedImages out;
  engine::Client eng(builder.endpoint);
  std::string image = render::local_image(p, c.id);
  auto info = eng.inspect_image(image);
  if (!info) {
    out.error = "not built: run kiln build";
    return out;
  }
  const plan::Combo* devel = p.sibling(c, "devel");
  if (!devel) {
    out.error = "the matrix has no devel image of this combination to compile the smoke suite";
    return out;
  }
  SmokeImage smoke = build_smoke_image(c, p, renderer, image, info->id, render::local_image(p, devel->id), builder, o);
  if (smoke.tag.empty()) {
    out.error = smoke.error;
    return out;
  }
  out.image_id = info->id;
  out.suite_built = smoke.suite_built;
  out.image_ref = push_by_digest(eng, info->id, staging, "kiln-push-" + hex_of(info->id), p.registry.credential_helper);
  out.smoke_ref = push_by_digest(eng, smoke.tag, staging + "-smoke",
                                 fmt::format("kiln-smoke-{}-{}", hex_of(info->id).substr(0, 16), o.suite_hash.substr(0, 16)),
                                 p.registry.credential_helper);
  out.image_ld_path = image_ld_path(eng.inspect_image(smoke.tag));
  return out;
}

SmokeUnit make_unit(const plan::Combo& c, const Runner& r, const StagedImages& staged, const Options& o) {
  SmokeUnit u;
  u.combo_id = c.id;
  u.runner = r.name;
  u.image_id = staged.image_id;
  u.image_ref = staged.image_ref;
  u.smoke_ref = staged.smoke_ref;
  u.suite_hash = o.suite_hash;
  u.gpu_classes = r.gpu_classes;
  u.gpu_product = r.gpu_product;
  u.gpus = std::max(1, r.gpus);
  u.shm_size = r.shm_size;
  u.timeout_s = o.timeout_s;
  u.gpu_mode = r.gpu;  // none: a CPU runner's command attaches nothing (the unit then says no GPU)
  if (r.gpu == matrix::GpuMode::slurm) {  // a Slurm job's GPUs: the --gres it asks for
    u.gpus = r.slurm.gpus;
    if (u.gpus == 0) u.gpu_mode = matrix::GpuMode::none;
  }
  u.devices = r.devices;
  u.driver_libs = r.driver_libs;
  u.image_ld_path = staged.image_ld_path;
  return u;
}

}  // namespace detail

PreparedUnits prepare_units(const plan::Plan& p, const render::Renderer& renderer, const Options& options,
                            const std::string& staging) {
  if (options.runners.empty()) throw EnvironmentError("no runner to build smoke units on");
  if (staging.empty())
    throw InputError({p.matrix_path}, "no staging registry: give --staging REGISTRY/REPO or a [registry] url and repository");
  Options o = options;
  o.suite_hash = current_suite_hash(o, renderer);
  std::vector<Runner> classes;
  for (const auto& r : o.runners)
    if (!r.gpu_classes.empty()) classes.push_back(r);
  if (classes.empty()) throw InputError({p.matrix_path}, "no runner names gpu_classes: a unit is per GPU runner class");
  PreparedUnits out;
  out.suite_hash = o.suite_hash;
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid || !selected(c.id, o.only)) continue;
    if (std::count(c.policy.verify.begin(), c.policy.verify.end(), "gpu") == 0) continue;
    // A GPU check never runs emulated: units go to runners of the image's platform.
    const std::string platform = matrix::oci_platform(c.platform);
    if (std::none_of(classes.begin(), classes.end(), [&](const Runner& r) { return r.platform == platform; })) {
      out.problems.push_back({c.id, "awaiting a runner for " + platform});
      continue;
    }
    detail::StagedImages staged = detail::stage_images(c, p, renderer, o.runners.front(), o, staging);
    if (!staged.error.empty()) {
      out.problems.push_back({c.id, staged.error});
      continue;
    }
    out.suites_built += staged.suite_built;
    for (const auto& r : classes) {
      if (r.platform != platform) continue;  // a GPU check never runs emulated
      // A class the arch list cannot serve gets no unit: it could only fail.
      if (std::any_of(r.gpu_classes.begin(), r.gpu_classes.end(),
                      [&](const std::string& cls) { return !detail::class_refusal(cls, c.arch).empty(); })) {
        out.problems.push_back({c.id, fmt::format("runner {}: {}", r.name, detail::class_refusal(r.gpu_classes.front(), c.arch))});
        continue;
      }
      out.units.push_back(detail::make_unit(c, r, staged, o));
    }
  }
  return out;
}

nlohmann::json to_json(const PreparedUnits& u) {
  nlohmann::json units = nlohmann::json::array();
  for (const auto& unit : u.units) {
    nlohmann::json j = to_json(unit);
    j["commands"] = {{"docker", unit_command(unit, UnitEngine::docker)},
                     {"podman", unit_command(unit, UnitEngine::podman)},
                     {"pyxis", unit_command(unit, UnitEngine::pyxis)}};
    units.push_back(j);
  }
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& [combo, why] : u.problems) problems.push_back({{"combination", combo}, {"problem", why}});
  return {{"schema", "kiln.units/v1"}, {"suite_hash", u.suite_hash}, {"suites_built", u.suites_built},
          {"units", units}, {"problems", problems}};
}

}  // namespace kiln::verify
