// Every ELF file of an image, by its magic: see scan.h.
#include "audit/scan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>

namespace kiln::audit {

namespace {

// A streamed ELF up to this size is held whole (bounded); a bigger one
// goes through a temporary file.
constexpr std::uint64_t kHoldUpTo = std::uint64_t(8) << 20;
constexpr std::size_t kChunk = std::size_t(1) << 16;

FatbinScan scan_region(const std::string& path, const image::FileRegion& r) {
  FatbinScan s{path};
  try {
    s.info = read_fatbin_region(r.file->fd(), r.offset, r.size);
  } catch (const FatbinError& e) {
    record_scan_error(s, e);
  }
  return s;
}

bool region_is_elf(const image::FileRegion& r) {
  std::array<std::byte, 4> head{};
  return r.size >= 4 && ::pread(r.file->fd(), head.data(), head.size(), static_cast<off_t>(r.offset)) == 4 && is_elf(head);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);  // also when the stream throws (a limit reached)
  }
};

// The rest of an ELF member after its first `have` bytes (already in buf),
// written where it lies to an unlinked temporary file: a sparse member's
// holes stay holes (never written). The size is set last, once the stream
// has accepted the claimed size.
FatbinScan spill(const std::string& path, std::uint64_t size, image::ByteStream& in, std::array<std::byte, kChunk>& buf,
                 std::size_t have, std::uint64_t have_at) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-elf-XXXXXX").string();
  Fd f{::mkstemp(tmpl.data())};
  if (f.fd < 0) return {path, std::nullopt, "cannot create a temporary file in " + std::filesystem::temp_directory_path().string()};
  ::unlink(tmpl.c_str());  // gone once closed, whatever happens
  bool ok = true;
  std::uint64_t at = have_at;
  for (std::size_t n = have; ok && n > 0; n = in.read_run(buf.data(), buf.size(), at))
    for (std::size_t done = 0; ok && done < n;) {
      const ssize_t w = ::pwrite(f.fd, buf.data() + done, n - done, static_cast<off_t>(at + done));
      ok = w > 0;
      done += ok ? std::size_t(w) : 0;
    }
  struct stat st {};
  if (ok && ::fstat(f.fd, &st) == 0 && std::uint64_t(st.st_size) < size) ok = ::ftruncate(f.fd, static_cast<off_t>(size)) == 0;
  FatbinScan s{path};
  if (!ok) {
    s.error = "cannot write a temporary copy";
    return s;
  }
  try {
    s.info = read_fatbin_region(f.fd, 0, size);
  } catch (const FatbinError& e) {
    record_scan_error(s, e);
  }
  return s;
}

bool is_file(const image::FileEntry& f) { return f.type == image::FileType::regular || f.type == image::FileType::hardlink; }

}  // namespace

std::optional<FatbinScan> scan_file_stream(const std::string& path, std::uint64_t size, image::ByteStream& in) {
  if (size < kMinElfSize) return std::nullopt;
  if (const auto r = in.region(); r && r->size > 0) {  // lies plainly in the archive: read it there
    if (!region_is_elf(*r)) return std::nullopt;
    return scan_region(path, *r);
  }
  // The first run tells: a sparse member starting with a hole starts with zeros.
  std::array<std::byte, kChunk> buf;
  std::uint64_t at = 0;
  std::size_t n = in.read_run(buf.data(), buf.size(), at);
  while (at == 0 && n < 4) {  // a stream may hand out a few bytes at a time
    std::uint64_t next_at = 0;
    const std::size_t more = in.read_run(buf.data() + n, buf.size() - n, next_at);
    if (more == 0 || next_at != at + n) return std::nullopt;
    n += more;
  }
  if (at != 0 || n < 4 || !is_elf(std::span(buf.data(), 4))) return std::nullopt;
  if (size > kHoldUpTo || in.sparse()) return spill(path, size, in, buf, n, at);
  std::vector<std::byte> bytes(buf.begin(), buf.begin() + n);
  bytes.reserve(size);
  while (std::size_t got = in.read_run(buf.data(), buf.size(), at)) {
    if (at != bytes.size()) bytes.resize(at);  // not sparse: never taken; kept exact anyway
    bytes.insert(bytes.end(), buf.begin(), buf.begin() + got);
  }
  return scan_fatbin(path, bytes);
}

std::vector<FatbinScan> scan_image_binaries(const image::ImageFs& fs, const Prescanned* pre) {
  std::vector<std::string> paths;
  std::vector<FatbinScan> out;
  for (const auto& [path, f] : fs.files()) {
    if (!is_file(f) || f.size < kMinElfSize) continue;
    // Scanned while the layers were first read: the result of the member
    // the final filesystem names (a hidden or overwritten one is never asked for).
    if (pre) {
      const auto r = fs.resolve(path);
      const image::FileEntry* e = r ? fs.find(*r) : nullptr;
      if (auto it = e ? pre->find({e->layer, e->member}) : pre->end(); it != pre->end()) {
        if (it->second) {
          out.push_back(*it->second);
          out.back().path = path;
        }
        continue;
      }
    }
    paths.push_back(path);
  }
  fs.stream_files(paths, [&](const std::vector<std::string>& names, std::uint64_t size, image::ByteStream& in) {
    const std::optional<FatbinScan> s = scan_file_stream(names.front(), size, in);
    if (!s) return;
    for (const auto& p : names) {
      out.push_back(*s);
      out.back().path = p;
    }
  });
  std::sort(out.begin(), out.end(), [](const FatbinScan& a, const FatbinScan& b) { return a.path < b.path; });
  return out;
}

}  // namespace kiln::audit
