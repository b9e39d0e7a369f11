// Offline image reading: the final filesystem of a container image, read
// from a `docker save` archive or an OCI image layout (directory or tar),
// streamed through libarchive, never unpacked to disk. See docs/audit.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::image {

// Every failure: names the archive, the blob or layer, and the entry.
struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An open file descriptor, closed with the last reference.
class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Bytes that lie plainly (uncompressed, contiguous) in a file: a member of an
// uncompressed tar on disk, a blob file of a layout directory, a file inside
// an uncompressed layer of either. A reader that needs random access (the
// fat-binary reader maps it) or a hash on another thread uses it instead of
// pulling the bytes through the stream.
struct FileRegion {
  std::shared_ptr<const FileHandle> file;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

// A pull stream of bytes (a blob). read() returns 0 at the end; throws ImageError.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  virtual std::size_t read(std::byte* buf, std::size_t n) = 0;
  // Where these bytes lie in a file, if they do (see FileRegion); then a
  // caller may use the region and leave the stream unread.
  virtual std::optional<FileRegion> region() const { return std::nullopt; }
  // A sparse tar member: read() would fill its holes with zeros. A reader
  // that writes the bytes to a file uses read_run() instead and leaves the
  // holes as holes.
  virtual bool sparse() const { return false; }
  // The next stored run of bytes and its offset in the stream: a sparse
  // member's holes are skipped, never materialised. 0 at the end. Use
  // either read() or read_run() on one stream, not both.
  virtual std::size_t read_run(std::byte* buf, std::size_t n, std::uint64_t& offset) {
    offset = run_at_;
    const std::size_t got = read(buf, n);
    run_at_ += got;
    return got;
  }

 private:
  std::uint64_t run_at_ = 0;
};

// What a hostile image can make a reader expand, hold or write. A breach is
// an ImageError naming the image, the layer (with its digest) and the
// member. See docs/audit.md, "Bounds on hostile input".
struct Limits {
  // Bytes one member may hand out to its reader (held in memory or written
  // to a temporary file); a member that claims more is refused before a
  // byte is read. The largest CUDA libraries are well under 2 GiB.
  std::uint64_t max_member_size = std::uint64_t(4) << 30;
  // Bytes all members read in one pass over an image may hand out together.
  std::uint64_t max_total_size = std::uint64_t(64) << 30;
  // A layer (or a compressed outer archive) may expand to at most
  // expansion_floor + max_expansion x its stored bytes: decompressed tar
  // bytes, plus the holes of sparse members that are read.
  std::uint64_t max_expansion = 100;
  std::uint64_t expansion_floor = std::uint64_t(256) << 20;
};

// Where an image's blobs come from. Names are paths inside the layout:
// "manifest.json", "index.json", "blobs/sha256/<hex>", "<id>/layer.tar".
// A later source (engine /images/{name}/get, a registry) plugs in here.
class BlobSource {
 public:
  virtual ~BlobSource() = default;
  virtual std::string describe() const = 0;  // for error messages
  virtual bool exists(const std::string& name) = 0;
  virtual std::unique_ptr<ByteStream> open(const std::string& name) = 0;  // throws if absent
  // Where the blob lies plainly in a file, if it does: its layers are then
  // walked with seeks over the bodies they do not need and hashed on other
  // threads, instead of streamed.
  virtual std::optional<FileRegion> region(const std::string& /*name*/) { return std::nullopt; }
};

// A tar (optionally gzip/zstd/xz-compressed) holding a docker-save or OCI
// layout. Refuses anything but a regular file (a FIFO would block forever);
// a compressed one is held to `limits` (max_expansion).
std::shared_ptr<BlobSource> tar_source(const std::filesystem::path& path, const Limits& limits = {});
// The same from memory, without a copy; `bytes` must outlive the source
// and every ImageFs read from it (read_files streams them again).
std::shared_ptr<BlobSource> tar_source(std::span<const std::byte> bytes);
// The same, owning its bytes.
std::shared_ptr<BlobSource> tar_source(std::string bytes);
// An OCI image layout directory. A blob that is not a regular file (a FIFO,
// a socket, a device, also through a symlink) is refused without being opened.
std::shared_ptr<BlobSource> dir_source(const std::filesystem::path& path);

enum class FileType { regular, directory, symlink, hardlink, other };

struct FileEntry {
  FileType type = FileType::regular;
  std::uint64_t size = 0;
  std::uint32_t mode = 0;   // permission bits
  std::string link_target;  // symlink target as written; hardlink: target path
  std::size_t layer = 0;    // layer that wrote this version (0 = lowest)
  std::size_t member = 0;   // tar member in that layer that carries the bytes
};

struct ImageConfig {
  std::string digest;  // "sha256:<hex>" of the config blob
  std::string os, architecture;
  std::map<std::string, std::string> env;     // config.Env
  std::map<std::string, std::string> labels;  // config.Labels
  std::vector<std::string> diff_ids;          // rootfs.diff_ids
  std::vector<std::string> repo_tags;         // docker-save RepoTags / OCI ref.name
};

struct LayerInfo {
  std::string blob;        // name in the source
  std::string digest;      // expected "sha256:<hex>", empty when the layout names none
  std::uint64_t size = 0;  // expected size in bytes, 0 when unknown
  std::string media_type;
  bool verified = false;   // digest checked while streaming (or when the cached record of it was written)
  bool from_cache = false; // applied from ReadOptions::cached_layer, its blob not read
};

// What one layer contributed to the final filesystem, as gathered before it
// was applied: enough to apply it again without reading its blob (a layer
// cache keyed by the layer's digest: audit/layer_cache.h).
struct LayerRecord {
  std::vector<std::string> opaque_dirs;                 // directories of .wh..wh..opq
  std::vector<std::string> whiteouts;                   // paths hidden by .wh.<name>
  std::vector<std::pair<std::string, FileEntry>> adds;  // in member order; FileEntry::layer is set on apply
  std::map<std::size_t, std::string> kept;              // member -> bytes kept by ReadOptions::keep
  std::vector<std::string> warnings;                    // what reading it warned about
};

struct ReadOptions {
  std::string ref;                        // tag to pick if several images; empty: the first
  std::string platform = "linux/amd64";   // for OCI indexes listing several platforms
  bool skip_unsafe_entries = false;       // false: a "../" entry fails the read
  std::size_t max_entries = 5'000'000;    // bound on the filesystem map
  Limits limits;                          // what members may expand to, hand out and cost (also read_files/stream_files)
  // false: layers are not hashed (manifests and configs still are). The
  // sha256 of the largest layer is then no longer the floor of a read
  // (about 1 GB/s a core): for archives whose bytes are trusted, e.g. one
  // the local engine just saved from its content store.
  bool verify_digests = true;
  // Single-pass readers. Both see every regular-file member (not hardlinks,
  // whose bytes are their target's) while the layers are first read, by its
  // normalized path; the bytes are hashed whatever they read. `layer` and
  // `member` are what FileEntry names, so a caller keeps results by them and
  // drops those the final filesystem does not name (whited out, overwritten).
  // keep(path, size): the member's bytes stay in the ImageFs (small files:
  // read_files/stream_files then serve them without streaming again).
  std::function<bool(std::string_view path, std::uint64_t size)> keep;
  // on_file: read what it wants of the member (the rest is skipped).
  std::function<void(const std::string& path, std::size_t layer, std::size_t member, std::uint64_t size, ByteStream& in)>
      on_file;
  // A layer cache. cached_layer(index, layer, diff_id) may hand back the
  // record of a layer read before (by its digest): it is applied as read,
  // and the blob is neither opened nor hashed (LayerInfo::from_cache). It is
  // asked for every layer, in order, before any layer is read.
  // layer_read(index, layer, record) sees each layer that was read, after
  // its digest was checked (LayerInfo::verified says whether one was).
  std::function<std::optional<LayerRecord>(std::size_t index, const LayerInfo& layer, const std::string& diff_id)>
      cached_layer;
  std::function<void(std::size_t index, const LayerInfo& layer, const std::string& diff_id, const LayerRecord& record)>
      layer_read;
  // Progress: called before layer `index` of `total` is read or taken from the cache.
  std::function<void(std::size_t index, std::size_t total, const LayerInfo& layer)> layer_start;
};

class ImageFs {
 public:
  using FileFn = std::function<void(const std::string& path, std::span<const std::byte> bytes)>;

  const ImageConfig& config() const { return config_; }
  const std::vector<LayerInfo>& layers() const { return layers_; }
  // The final filesystem: paths relative to "/", no leading slash.
  const std::map<std::string, FileEntry>& files() const { return files_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::string describe() const;

  // The entry at `path` itself, symlinks not followed.
  const FileEntry* find(std::string_view path) const;
  // Follows symlinks in every component, inside the image root (absolute
  // targets are relative to it). nullopt if nothing is there; ImageError if
  // a link climbs out of the root or loops.
  std::optional<std::string> resolve(std::string_view path) const;

  // Streams the needed layers again and calls fn(requested path, bytes) for
  // each path that resolves to a regular file, one file in memory at a time,
  // in layer order. Throws ImageError for a file over max_size.
  void read_files(const std::vector<std::string>& paths, const FileFn& fn,
                  std::uint64_t max_size = std::uint64_t(4) << 30) const;
  // Like read_files, without holding a file in memory: fn(paths, size, in)
  // gets every requested path that shares one stored file, its size, and a
  // stream of its bytes to read (or leave) before returning.
  using StreamFn = std::function<void(const std::vector<std::string>& paths, std::uint64_t size, ByteStream& in)>;
  void stream_files(const std::vector<std::string>& paths, const StreamFn& fn) const;
  // One file's bytes, nullopt if absent or not a regular file.
  std::optional<std::string> read_file(std::string_view path, std::uint64_t max_size = 64u << 20) const;

 private:
  friend ImageFs read_image(std::shared_ptr<BlobSource>, const ReadOptions&);
  std::shared_ptr<BlobSource> source_;
  ImageConfig config_;
  std::vector<LayerInfo> layers_;
  std::map<std::string, FileEntry> files_;
  std::vector<std::string> warnings_;
  std::map<std::pair<std::size_t, std::size_t>, std::string> kept_;  // (layer, member) -> bytes (ReadOptions::keep)
  Limits limits_;
};

ImageFs read_image(std::shared_ptr<BlobSource> source, const ReadOptions& options = {});
// A tar archive or an OCI layout directory on disk; anything else (a FIFO,
// a socket, a device) is refused without being opened.
ImageFs read_image_archive(const std::filesystem::path& path, const ReadOptions& options = {});

// The source for `path`: dir_source for a directory, tar_source for a
// regular file; ImageError naming the path for anything else (never opened).
std::shared_ptr<BlobSource> archive_source(const std::filesystem::path& path, const Limits& limits = {});

// "a/./b//c/" -> "a/b/c"; nullopt when a ".." component is present.
std::optional<std::string> normalize_path(std::string_view path);

}  // namespace kiln::image
