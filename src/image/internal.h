// Shared between the image room's files; not part of the public interface.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include "image/image.h"
#include "util/sha256.h"

namespace kiln::image::detail {

using kiln::Sha256;  // util/sha256.h; digests are "sha256:" + hex()

// "sha256:<64 lowercase hex>" only; anything else (other algorithms, "../")
// would also become a blob path, so it is refused.
bool is_sha256_digest(std::string_view digest);

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;

// Whole blob into memory, at most `limit` bytes; checks `digest` if non-empty.
std::string read_blob(BlobSource& src, const std::string& name, std::size_t limit, const std::string& digest = {});

// Called for every member of a layer; `member` counts from 0.
using MemberFn = std::function<void(archive* a, archive_entry* e, std::size_t member)>;
// Streams one layer tar (`where` prefixes errors) (any compression libarchive reads). With `verify`,
// hashes the raw bytes and compares with layer.digest, else with
// `diff_id` when the layer turns out to be uncompressed. Returns whether a
// digest was checked. `stop` ends the walk early (no verification then).
bool stream_layer(BlobSource& src, const LayerInfo& layer, const std::string& where, const std::string& diff_id, bool verify,
                  const MemberFn& fn, const std::function<bool()>& stop = {});

struct Layout {
  ImageConfig config;
  std::vector<LayerInfo> layers;
  std::vector<std::string> warnings;
};
Layout read_layout(BlobSource& src, const ReadOptions& options);

}  // namespace kiln::image::detail
