// Shared between the image room's files; not part of the public interface.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "image/image.h"
#include "util/sha256.h"

namespace kiln::image::detail {

using kiln::Sha256;  // util/sha256.h; digests are "sha256:" + hex()
using kiln::is_sha256_digest;  // anything else would become a blob path: refused

// Bytes in memory as a ByteStream: a view (the bytes outlive the stream),
// or owned when given an rvalue string.
class MemoryStream : public ByteStream {
 public:
  explicit MemoryStream(std::string_view view) : view_(view) {}
  explicit MemoryStream(std::string&& owned) : owned_(std::move(owned)), view_(owned_) {}
  MemoryStream(const MemoryStream&) = delete;
  MemoryStream& operator=(const MemoryStream&) = delete;
  std::size_t read(std::byte* buf, std::size_t n) override {
    n = std::min(n, view_.size());
    std::memcpy(buf, view_.data(), n);
    view_.remove_prefix(n);
    return n;
  }

 private:
  std::string owned_;
  std::string_view view_;
};

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;

// Whole blob into memory, at most `limit` bytes; checks `digest` if non-empty.
std::string read_blob(BlobSource& src, const std::string& name, std::size_t limit, const std::string& digest = {});

// Where the current member's body lies in the stream that the archive's
// format reads, as (offset, size): known when that stream is not compressed
// and the body is contiguous (not a sparse file).
std::optional<std::pair<std::uint64_t, std::uint64_t>> body_place(archive* a, archive_entry* e);

// A file's type in words for an error ("a FIFO", "a socket", ...).
const char* file_kind(unsigned mode);
// Opens `path` only if it is a regular file (symlinks followed): a FIFO,
// socket or device is refused by its stat, before any open() that could
// block or act on a device; O_NONBLOCK and an fstat of what was opened close
// the race with a file swapped in between.
std::shared_ptr<const FileHandle> open_regular(const std::filesystem::path& path);

// Holds one walk over a layer (or the outer archive) to ReadOptions::limits:
// the expansion of its stored bytes, and the bytes each member and all of
// them hand out. Every breach names `where`, the member and the flag that
// raises the limit. check_expansion() runs from libarchive's read callbacks
// (each 64 KiB of stored bytes), so a bomb stops while it is decompressed.
class Budget {
 public:
  Budget(const Limits& limits, std::string where, std::uint64_t* total = nullptr)
      : limits_(limits), where_(std::move(where)), total_(total) {}
  const std::string& where() const { return where_; }
  // A new member's header was read.
  void next_member(archive_entry* e);
  // Its reader starts: refuses a claimed size over max_member_size, and
  // counts a sparse member's holes into the expansion.
  void start_reading(archive* a, archive_entry* e);
  // `n` more bytes handed to the member's reader.
  void hand_out(archive* a, std::uint64_t n);
  // Decompressed (+ holes read) against stored bytes; throws ImageError.
  void check_expansion(archive* a) const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  Limits limits_;  // a copy: a stream's budget may outlive the options it came from
  std::string where_;
  std::uint64_t* total_;
  std::string member_;
  std::uint64_t holes_ = 0, member_bytes_ = 0;
};

// sha256 and size of a blob region, computed on worker threads (at most one
// per spare core) while the layers are walked. Stops early when destroyed.
class RegionHasher {
 public:
  struct Result {
    std::string digest;  // "sha256:<hex>"
    std::uint64_t size = 0;
    std::string error;   // a read failed
  };
  explicit RegionHasher(std::vector<std::optional<FileRegion>> regions);
  ~RegionHasher();
  RegionHasher(const RegionHasher&) = delete;
  RegionHasher& operator=(const RegionHasher&) = delete;
  bool has(std::size_t i) const { return i < regions_.size() && regions_[i].has_value(); }
  Result wait(std::size_t i);  // only when has(i)

 private:
  struct State;
  std::vector<std::optional<FileRegion>> regions_;
  std::shared_ptr<State> state_;
};

// Called for every member of a layer; `member` counts from 0; `body` is
// where its bytes lie in a file, when they do (FileRegion).
using MemberFn = std::function<void(archive* a, archive_entry* e, std::size_t member, const std::optional<FileRegion>& body)>;
// Walks one layer tar (`where` prefixes errors) (any compression libarchive
// reads). A layer that lies in a file (`region`) is read with seeks over the
// bodies nobody reads. With `verify`, the raw bytes' digest (from
// walk.hasher when it has this layer, else hashed while streaming) is
// compared with layer.digest, else with
// `diff_id` when the layer turns out to be uncompressed. Returns whether a
// digest was checked. `stop` ends the walk early (no verification then).
struct LayerWalk {
  std::optional<FileRegion> region;
  RegionHasher* hasher = nullptr;  // holds the digest of layer `index` when it has one
  std::size_t index = 0;
  Budget* budget = nullptr;        // limits the walk (ReadOptions::limits); none: unlimited
};
bool stream_layer(BlobSource& src, const LayerInfo& layer, const std::string& where, const std::string& diff_id, bool verify,
                  const MemberFn& fn, const std::function<bool()>& stop = {}, const LayerWalk& walk = {});

struct Layout {
  ImageConfig config;
  std::vector<LayerInfo> layers;
  std::vector<std::string> warnings;
};
Layout read_layout(BlobSource& src, const ReadOptions& options);

}  // namespace kiln::image::detail
