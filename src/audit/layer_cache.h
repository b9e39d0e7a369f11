// What auditing one layer found, kept on disk by the layer's digest, so an
// image that shares base layers with one audited before reads only its new
// layers (`kiln audit`, `kiln verify`'s static check). See docs/audit.md,
// "Layer cache".
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "audit/fatbin.h"
#include "image/image.h"

namespace kiln::audit {

// One layer's part of an audit: what it adds to and hides from the final
// filesystem (paths, types, whiteouts), the small component files it holds,
// and the fat-binary scan of each member the ELF scanner looked at (every
// regular member of kMinElfSize bytes or more): nullopt for one that is not
// ELF, so a cached layer answers for all of its members and none is read again.
struct LayerEntry {
  image::LayerRecord record;
  std::vector<std::pair<std::size_t, std::optional<FatbinScan>>> scans;  // tar member -> scan (nullopt: not ELF)
};

// A directory of entries named by layer digest, at most `max_bytes` of them:
// the least recently used go first. Entries carry a format and scanner
// revision and a checksum; one that is unreadable, of another revision or
// damaged is a miss (and is rewritten when the layer is read again), never
// an error. Writes are atomic (temporary file + rename), so concurrent
// kiln processes may share a directory.
class LayerCache {
 public:
  static constexpr std::uint64_t kDefaultMaxBytes = std::uint64_t(256) << 20;

  explicit LayerCache(std::filesystem::path dir, std::uint64_t max_bytes = kDefaultMaxBytes);
  // $KILN_AUDIT_CACHE, else $XDG_CACHE_HOME/kiln/audit, else ~/.cache/kiln/audit;
  // the size from $KILN_AUDIT_CACHE_SIZE (bytes, or with K/M/G) when set.
  static std::filesystem::path default_dir();
  static std::uint64_t default_max_bytes();

  const std::filesystem::path& dir() const { return dir_; }
  // The entry for `digest` ("sha256:<hex>"); nullopt for a miss of any kind.
  std::optional<LayerEntry> get(const std::string& digest);
  // Stores it (best effort: a cache that cannot be written is skipped, and
  // says so once in warnings()), then evicts down to the size bound.
  void put(const std::string& digest, const LayerEntry& entry);
  // Damaged entries met and cache write failures, for the audit's warnings.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::filesystem::path path_of(const std::string& digest) const;
  void evict();

  std::filesystem::path dir_;
  std::uint64_t max_bytes_;
  std::vector<std::string> warnings_;
  bool write_failed_ = false;
};

// The digest that names a layer's cache entry: the digest of its blob as the
// manifest lists it (compressed or not), or, for a classic docker save
// `<id>/layer.tar` named by no digest, its diff_id (an uncompressed blob's
// digest is its diff_id). Empty: no key.
std::string cache_key(const image::LayerInfo& layer, const std::string& diff_id);

}  // namespace kiln::audit
