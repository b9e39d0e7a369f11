// Shared by `kiln audit` and `kiln check-driver`: turn an IMAGE argument into
// an audit (cmd_audit.cpp).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "catalog/catalog.h"
#include "cli/progress.h"

namespace CLI {
class App;
}

namespace kiln::engine {
class SavedArchive;
}

namespace kiln::cli {

// How IMAGE arguments are read: the flags audit and check-driver share.
struct InputOptions {
  bool plain_http = false;     // docker:// over HTTP from any host (loopback hosts always are)
  bool verify_digests = true;  // false: layers are trusted, not hashed (image::ReadOptions)
  image::Limits limits;        // --max-member-size, --max-total-size, --max-expansion
  bool use_cache = true;       // --no-cache: read every layer, store nothing
  std::string cache_dir;       // --cache-dir; empty: audit::LayerCache::default_dir()
  Progress::Mode progress = Progress::Mode::quiet;  // the layer progress line on stderr
  // --platform: the image an OCI index (multi-arch tag) names for this
  // platform, "linux/amd64" or "linux/arm64" (also "aarch64", "arm64").
  std::string platform = "linux/amd64";
};

// True for docker://HOST[:PORT]/REPO with neither tag nor digest: every tag
// of the repository is audited (audit_repository).
bool names_repository(const std::string& image);
// Every tag of the repository `image` names: kiln's record and staging tags
// skipped, tags naming one manifest audited once. Throws InputError naming
// IMAGE when the tag list cannot be read; a tag that cannot be read is a row
// with its error.
audit::RepositoryAudit audit_repository(const std::string& image, const std::vector<audit::GpuTarget>& gpus,
                                        const catalog::Catalog& c, const InputOptions& opts = {});

// An IMAGE argument opened for reading (audit, sbom): the blobs, what was
// read ("engine unix://...", "registry HOST", "archive"), and the engine's
// saved archive kept while the source is read.
struct OpenedImage {
  std::shared_ptr<image::BlobSource> source;
  std::string label;
  std::string manifest_digest;  // docker://...@sha256:HEX: the digest named
  std::shared_ptr<engine::SavedArchive> saved;
};
// IMAGE as audit_input reads it (below); InputError naming IMAGE (exit 2).
OpenedImage open_image(const std::string& image, const InputOptions& opts = {});

// IMAGE is a `docker save` or OCI tar, an OCI layout directory,
// `docker-daemon:NAME`, `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` (read
// from the registry: plain HTTP for a loopback host, or for any host with
// `plain_http`; TLS otherwise), or an engine image name when no such file
// exists. Throws InputError naming IMAGE for anything unreadable (exit 2).
audit::ImageAudit audit_input(const std::string& image, const std::vector<audit::GpuTarget>& gpus,
                              const catalog::Catalog& c, const InputOptions& opts = {});

// --plain-http, --no-verify-digests and the limits on hostile input, for audit_input.
void add_input_flags(CLI::App* sub, InputOptions& opts);

}  // namespace kiln::cli
