// Images a buildx builder pushed instead of loading (docs/build-farm.md):
// found through the ledger, read from the registry by digest.
#include <fmt/format.h>

#include "state/ledger.h"
#include "verify/internal.h"

namespace kiln::verify {

std::optional<PushedImage> pushed_image(const plan::Combo& c, const plan::Plan& p, const std::string& state_dir) {
  state::Ledger ledger(state_dir + "/state.db");
  for (const auto& cs : ledger.combos(p.matrix_name)) {
    if (cs.combo_id != c.id || cs.stage_ids.empty()) continue;
    auto history = ledger.history(cs.stage_ids.back());
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->status != state::BuildStatus::built || it->matrix != p.matrix_name) continue;
      if (it->image_ref.empty() || it->image_id.empty()) return std::nullopt;  // the newest build went into an engine
      return PushedImage{it->image_id, it->image_ref};
    }
  }
  return std::nullopt;
}

registry::Options registry_options(const plan::Plan& p, const std::string& host) {
  registry::Options ro;
  ro.host = host;
  ro.insecure = p.registry.insecure || registry::is_loopback_host(host);
  ro.credential_helper = p.registry.credential_helper;
  return ro;
}

void pull_pushed(engine::Client& eng, const plan::Plan& p, const std::string& ref, const std::string& local) {
  registry::Reference r = registry::parse_reference(ref);
  auto creds = registry::lookup_credentials(r.host, registry::docker_config_dir(), p.registry.credential_helper);
  const std::string repo = r.host + "/" + r.repo;
  eng.pull_image(repo, r.digest, registry::engine_auth(creds, r.host));
  auto colon = local.rfind(':');
  eng.tag_image(repo + "@" + r.digest, local.substr(0, colon), local.substr(colon + 1));
}

}  // namespace kiln::verify
