// Streaming a layer blob through a nested libarchive reader, hashing the raw
// bytes on the way so the digest is checked without a second read.
#include <array>
#include <exception>

#include "image/internal.h"

namespace kiln::image::detail {


bool is_sha256_digest(std::string_view d) {
  if (!d.starts_with("sha256:") || d.size() != 7 + 64) return false;
  for (char c : d.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string read_blob(BlobSource& src, const std::string& name, std::size_t limit, const std::string& digest) {
  auto s = src.open(name);
  std::string out;
  std::array<std::byte, 1 << 16> buf;
  while (std::size_t n = s->read(buf.data(), buf.size())) {
    if (out.size() + n > limit) throw ImageError(src.describe() + ": " + name + " is larger than " + std::to_string(limit) + " bytes");
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  if (!digest.empty()) {
    Sha256 h;
    h.update(out.data(), out.size());
    if (const auto got = "sha256:" + h.hex(); got != digest)
      throw ImageError(src.describe() + ": " + name + ": digest mismatch: expected " + digest + ", got " + got);
  }
  return out;
}

namespace {

// libarchive pulls from here; C callbacks must not throw, so an exception is
// parked and rethrown once control is back in C++.
struct HashingReader {
  ByteStream* in;
  Sha256 hash;
  std::uint64_t total = 0;
  std::array<std::byte, 1 << 16> buf;
  std::exception_ptr error;

  std::size_t pull() {
    const std::size_t n = in->read(buf.data(), buf.size());
    hash.update(buf.data(), n);
    total += n;
    return n;
  }
  void drain() { while (pull()) {} }
};

la_ssize_t read_cb(archive* a, void* ctx, const void** out) {
  auto* r = static_cast<HashingReader*>(ctx);
  try {
    const std::size_t n = r->pull();
    *out = r->buf.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    r->error = std::current_exception();
    archive_set_error(a, EIO, "blob read failed");
    return -1;
  }
}

}  // namespace

bool stream_layer(BlobSource& src, const LayerInfo& layer, const std::string& where, const std::string& diff_id, bool verify,
                  const MemberFn& fn, const std::function<bool()>& stop) {
  auto in = src.open(layer.blob);
  HashingReader reader{in.get()};
  ArchivePtr a(archive_read_new());
  archive_read_support_filter_all(a.get());  // gzip, zstd, xz, bzip2, lz4 as built
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  auto check = [&](int r) {
    if (reader.error) std::rethrow_exception(reader.error);
    if (r == ARCHIVE_FATAL || r == ARCHIVE_RETRY || r == ARCHIVE_FAILED) {
      const char* s = archive_error_string(a.get());
      throw ImageError(where + ": " + (s ? s : "unreadable tar"));
    }
  };
  check(archive_read_open(a.get(), &reader, nullptr, read_cb, nullptr));
  archive_entry* e = nullptr;
  std::size_t member = 0;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    check(r);
    fn(a.get(), e, member++);
    check(ARCHIVE_OK);
    if (stop && stop()) return false;
  }
  if (!verify) return false;
  try {
    reader.drain();  // tar padding after the end marker counts toward the digest
  } catch (const ImageError& ex) {
    throw ImageError(where + ": " + ex.what());
  }
  const bool plain = archive_filter_code(a.get(), 0) == ARCHIVE_FILTER_NONE;
  const std::string& want = !layer.digest.empty() ? layer.digest : (plain ? diff_id : layer.digest);
  if (layer.size && reader.total != layer.size)
    throw ImageError(where + ": size mismatch: expected " + std::to_string(layer.size) +
                     " bytes, read " + std::to_string(reader.total));
  if (want.empty()) return false;
  if (const auto got = "sha256:" + reader.hash.hex(); got != want)
    throw ImageError(where + ": digest mismatch: expected " + want + ", got " + got);
  return true;
}

}  // namespace kiln::image::detail
