// kiln lock MATRIX: the inputs a matrix leaves floating, pinned (issue 17
// item 1). A base image reference ("kiln/debian:12", "nvidia/cuda:12.4.1-...")
// can name other bytes tomorrow, and `apt-get install libcudart12` installs
// whatever the mirror has today. MATRIX.lock (next to the matrix, TOML)
// records each base by digest and, per OS, a package snapshot -- a
// snapshot.debian.org / snapshot.ubuntu.com timestamp URL the apt steps use
// instead of the live mirror. Builds read the lock when it is there: FROM by
// digest, apt through the snapshot (build argument KILN_APT_SNAPSHOT, whose
// default in the rendered Dockerfile is the locked URL), and the lock's
// entry for a combination is part of its input hash. docs/sbom.md, "Pinned
// inputs".
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "plan/plan.h"

namespace kiln::lock {

struct BasePin {
  std::string reference;  // as the plan names it: "kiln/debian:12"
  std::string image_id;   // the engine's image id ("sha256:..."), when the engine has it
  std::string digest;     // a registry manifest digest (RepoDigest or the registry's), when there is one
  std::string source;     // "engine" | "registry": who answered
  // What FROM names: "repository@digest" when there is a registry digest;
  // otherwise the reference (the build checks its image id against the lock).
  std::string pinned() const;
};

struct Snapshot {
  std::string os;         // "debian12"
  std::string family;     // "debian" | "ubuntu"
  std::string timestamp;  // "20261201T000000Z"
  std::string url;        // the apt source: ".../archive/debian/20261201T000000Z/"
};

struct Lock {
  std::string matrix;               // the matrix's name
  std::vector<BasePin> bases;       // sorted by reference
  std::vector<Snapshot> snapshots;  // sorted by os
  const BasePin* base(std::string_view reference) const;
  const Snapshot* snapshot(std::string_view os) const;
};

// "matrices/offline.toml" -> "matrices/offline.lock" (as Cargo.toml -> Cargo.lock).
std::string lock_path(const std::string& matrix_path);

// The file, with its header comment; sorted, so the same lock is the same bytes.
std::string to_toml(const Lock& l, const std::string& matrix_path);
// Throws InputError at file:line:col for a malformed lock.
Lock parse(std::string_view text, const std::string& path);
std::optional<Lock> read(const std::string& path);  // nullopt: no such file

// What changed between two locks, one line each ("base kiln/debian:12:
// sha256:a... -> sha256:b..."); empty when nothing did.
std::vector<std::string> diff(const Lock& before, const Lock& after);

// Where the snapshot services are: Debian's and Ubuntu's by default, or a
// mirror of them (KILN_SNAPSHOT_DEBIAN / KILN_SNAPSHOT_UBUNTU, or flags).
struct Services {
  std::string debian = "https://snapshot.debian.org/archive/debian/";
  std::string ubuntu = "https://snapshot.ubuntu.com/ubuntu/";
};
// "20261201T000000Z" for now, or for KILN_NOW (RFC 3339 "2026-12-01T00:00:00Z").
std::string snapshot_timestamp();
std::string snapshot_url(const Services& s, std::string_view family, std::string_view timestamp);

// How a base reference is pinned: the engine first (image id and the
// RepoDigest of the same repository), else the registry's manifest digest.
// nullopt with `why` set: cannot be resolved.
using Resolver = std::function<std::optional<BasePin>(const std::string& reference, std::string& why)>;

// The lock for a plan: every valid combination's external base, every
// valid combination's OS snapshot. Throws InputError (exit 2) naming each
// base that cannot be resolved. `previous` (for --update) is ignored.
Lock make_lock(const plan::Plan& p, const catalog::Catalog& c, const Resolver& resolve, const Services& s,
               const std::string& timestamp);

// Pins the plan: each valid combination's base to its pinned reference,
// its apt snapshot and its lock entry (the text the input hash covers).
// A base or OS the lock lacks: InputError naming it ("kiln lock --update").
void apply(const Lock& l, const std::string& lock_file, plan::Plan& p);

}  // namespace kiln::lock
