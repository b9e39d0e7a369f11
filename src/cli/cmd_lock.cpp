// kiln lock MATRIX [--update]: pin the matrix's bases by digest and its apt
// sources to a dated package snapshot, in MATRIX.lock (src/lock/lock.h,
// docs/sbom.md "Pinned inputs").
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "lock/lock.h"
#include "registry/registry.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/text.h"

namespace kiln::cli {

namespace {

struct LockArgs {
  std::string matrix;
  bool update = false;
  std::string debian_snapshot, ubuntu_snapshot;
  bool plain_http = false;
  std::string format = "table";
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The engine first: its image id, and the RepoDigest of the reference's own
// repository when it was pulled from (or pushed to) a registry.
std::optional<lock::BasePin> from_engine(const std::string& reference, std::string& why) {
  try {
    engine::Client client;
    auto info = client.inspect_image(reference);
    if (!info) return std::nullopt;
    lock::BasePin pin{reference, info->id, "", "engine"};
    std::string repo = reference.substr(0, reference.find('@'));
    if (auto colon = repo.rfind(':'); colon != std::string::npos && repo.find('/', colon) == std::string::npos)
      repo.resize(colon);
    for (const auto& rd : info->repo_digests)
      if (rd.starts_with(repo + "@")) pin.digest = rd.substr(repo.size() + 1);
    return pin;
  } catch (const std::exception& e) {
    why = fmt::format("engine: {}; ", e.what());
    return std::nullopt;
  }
}

std::optional<lock::BasePin> from_registry(const std::string& reference, bool plain_http, std::string& why) {
  try {
    registry::Reference ref = registry::parse_reference(reference);
    registry::Options o;
    o.host = ref.host == "docker.io" ? "registry-1.docker.io" : ref.host;
    o.insecure = plain_http || registry::is_loopback_host(ref.host);
    o.max_attempts = 2;
    registry::Client reg(o);
    auto d = reg.head_manifest(ref.repo, ref.ref().empty() ? "latest" : ref.ref());
    if (!d) {
      why += fmt::format("registry {}: no such manifest", o.host);
      return std::nullopt;
    }
    return lock::BasePin{reference, "", d->digest, "registry"};
  } catch (const std::exception& e) {
    why += fmt::format("registry: {}", e.what());
    return std::nullopt;
  }
}

int run_lock(const Common& common, const LockArgs& a) {
  // The plan as the matrix writes it, never pinned by an existing lock: the
  // lock is made from the references themselves.
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = load_matrix(common, a.matrix);
  plan::Plan p = plan::make_plan(m, cat);
  lock::Services services;
  services.debian = a.debian_snapshot.empty() ? env_or("KILN_SNAPSHOT_DEBIAN", services.debian) : a.debian_snapshot;
  services.ubuntu = a.ubuntu_snapshot.empty() ? env_or("KILN_SNAPSHOT_UBUNTU", services.ubuntu) : a.ubuntu_snapshot;
  const std::string path = lock::lock_path(a.matrix);
  std::optional<lock::Lock> before = lock::read(path);

  lock::Resolver resolve = [&](const std::string& reference, std::string& why) {
    if (auto pin = from_engine(reference, why)) return pin;
    if (why.empty()) why = "not on the engine; ";
    return from_registry(reference, a.plain_http, why);
  };
  lock::Lock after = lock::make_lock(p, cat, resolve, services, lock::snapshot_timestamp());
  const bool write = !before || a.update;
  // Without --update an existing lock stays; what --update would change is
  // still shown (the snapshot's date always moves).
  std::vector<std::string> changes = before ? lock::diff(*before, after) : std::vector<std::string>{};
  if (write) write_file_atomic(path, lock::to_toml(after, a.matrix));

  if (a.format == "json") {
    nlohmann::json bases = nlohmann::json::array(), snaps = nlohmann::json::array();
    for (const auto& b : after.bases)
      bases.push_back({{"reference", b.reference}, {"image_id", b.image_id}, {"digest", b.digest}, {"source", b.source},
                       {"pinned", b.pinned()}});
    for (const auto& s : after.snapshots)
      snaps.push_back({{"os", s.os}, {"family", s.family}, {"timestamp", s.timestamp}, {"url", s.url}});
    emit(common, json_text({{"schema", "kiln.lock/v1"}, {"lock", path}, {"written", write}, {"bases", bases},
                            {"snapshots", snaps}, {"changes", changes}}, 2) + "\n", true);
    return 0;
  }
  std::string out;
  if (!before) out += fmt::format("wrote {}: {} base(s), {} snapshot(s)\n", path, after.bases.size(), after.snapshots.size());
  else if (a.update) out += fmt::format("updated {}: {}\n", path, changes.empty() ? "nothing changed" : fmt::format("{} change(s)", changes.size()));
  else if (changes.empty()) out += fmt::format("{} exists, was kept, and is current:\n", path);
  else out += fmt::format("{} exists and was kept; `kiln lock --update {}` would change:\n", path, a.matrix);
  const lock::Lock& shown = write ? after : *before;
  if (!before || (!a.update && changes.empty())) {
    for (const auto& b : shown.bases) out += fmt::format("  base      {:<40} {}\n", b.reference, b.digest.empty() ? b.image_id : b.digest);
    for (const auto& s : shown.snapshots) out += fmt::format("  snapshot  {:<40} {}\n", s.os, s.url);
  }
  for (const auto& c : changes) out += "  " + c + "\n";
  emit(common, out, false);
  return 0;
}

}  // namespace

void register_lock(CLI::App& app, Common& common) {
  auto args = std::make_shared<LockArgs>();
  CLI::App* sub = app.add_subcommand("lock", "Pin a matrix's base images by digest and its apt sources to a package snapshot (MATRIX.lock)");
  sub->add_option("matrix", args->matrix, "The matrix file; the lock is written next to it")->required()->check(CLI::ExistingFile);
  sub->add_flag("--update", args->update, "Move an existing lock (bases resolved again, a new snapshot date) and print what changed");
  sub->add_option("--debian-snapshot", args->debian_snapshot,
                  "Debian's snapshot service (env KILN_SNAPSHOT_DEBIAN; default https://snapshot.debian.org/archive/debian/)");
  sub->add_option("--ubuntu-snapshot", args->ubuntu_snapshot,
                  "Ubuntu's snapshot service (env KILN_SNAPSHOT_UBUNTU; default https://snapshot.ubuntu.com/ubuntu/)");
  sub->add_flag("--plain-http", args->plain_http, "Plain HTTP to a registry that is not on this machine");
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, args] { return run_lock(common, *args); });
}

}  // namespace kiln::cli
