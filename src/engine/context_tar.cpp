// A build context streamed as a tar, pulled by libcurl's read callback: the
// archive is written entry by entry, a file's data in 64 KiB pieces, only
// when the caller needs more bytes — never the whole tar in memory.
// Deterministic (sorted members, mtime/uid/gid 0, no names) so the same
// directory always gives the same bytes, whatever the checkout's mtimes.
#include "engine/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace fs = std::filesystem;

namespace kiln::engine::detail {

struct ContextTar::Impl {
  struct Member {
    std::string name;  // relative, '/'-separated
    fs::path path;
  };
  fs::path dir;
  std::vector<Member> members;
  size_t next = 0;
  archive* ar = nullptr;
  std::string out;  // archive bytes written but not yet handed out
  size_t out_pos = 0;
  int fd = -1;  // the member whose data is being written
  std::int64_t fd_left = 0;
  std::string fd_name;
  bool closed = false;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (ar) archive_write_free(ar);
  }

  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("build context " + dir.string() + ": " + what);
  }
  void check(int rc, const std::string& what) {
    if (rc < ARCHIVE_WARN) fail(what + ": " + archive_error_string(ar));
  }

  static la_ssize_t on_write(archive*, void* self, const void* buf, size_t n) {
    static_cast<Impl*>(self)->out.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }

  void list() {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail("not a directory");
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      std::string name = it->path().lexically_relative(dir).generic_string();
      // Refused before a byte is sent (write_header checks again: a race).
      if (it->is_symlink()) fail(name + ": is a symbolic link; a build context holds only regular files and directories");
      members.push_back({std::move(name), it->path()});
    }
    if (ec) fail(ec.message());
    std::sort(members.begin(), members.end(),
              [](const Member& a, const Member& b) { return a.name < b.name; });
  }

  void open() {
    ar = archive_write_new();
    archive_write_set_format_pax_restricted(ar);
    check(archive_write_open2(ar, this, nullptr, on_write, nullptr, nullptr), "tar");
  }

  void write_header(const Member& m) {
    struct stat st {};
    if (::lstat(m.path.c_str(), &st) != 0) fail(m.name + ": " + std::strerror(errno));
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.name.c_str());
    archive_entry_set_perm(e, st.st_mode & 07777);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(e, AE_IFDIR);
    } else if (S_ISLNK(st.st_mode)) {
      // A link in a context is either a mistake or an attempt to ship a
      // file from outside it (one to /etc/shadow was); kiln writes only
      // regular files into contexts, so refuse rather than archive it.
      archive_entry_free(e);
      fail(m.name + ": is a symbolic link; a build context holds only regular files and directories");
    } else if (S_ISREG(st.st_mode)) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_size(e, st.st_size);
      fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail(m.name + ": " + std::strerror(errno));
      fd_left = st.st_size;
      fd_name = m.name;
    } else {  // sockets, fifos, devices have no place in a build context
      archive_entry_free(e);
      return;
    }
    int rc = archive_write_header(ar, e);
    archive_entry_free(e);
    check(rc, m.name);
  }

  void write_data() {
    char buf[65536];
    ssize_t n = ::read(fd, buf, static_cast<size_t>(std::min<std::int64_t>(fd_left, sizeof buf)));
    if (n < 0) fail(fd_name + ": " + std::strerror(errno));
    if (n == 0 && fd_left > 0) fail(fd_name + ": file shrank while being read");
    if (n > 0 && archive_write_data(ar, buf, static_cast<size_t>(n)) != n)
      fail(fd_name + ": " + archive_error_string(ar));
    fd_left -= n;
    if (fd_left == 0) {
      ::close(fd);
      fd = -1;
    }
  }

  // Writes the next piece of the archive; false once everything is out.
  bool produce() {
    if (fd >= 0) write_data();
    else if (next < members.size()) write_header(members[next++]);
    else if (!closed) {
      check(archive_write_close(ar), "tar");
      closed = true;
    } else
      return false;
    return true;
  }
};

ContextTar::ContextTar(const fs::path& dir) : impl_(std::make_unique<Impl>()) {
  impl_->dir = dir;
  impl_->list();
  impl_->open();
}

ContextTar::~ContextTar() = default;

std::size_t ContextTar::read(char* buf, std::size_t n) {
  Impl& s = *impl_;
  while (s.out_pos == s.out.size()) {
    s.out.clear();
    s.out_pos = 0;
    if (!s.produce()) return 0;
  }
  size_t take = std::min(n, s.out.size() - s.out_pos);
  std::memcpy(buf, s.out.data() + s.out_pos, take);
  s.out_pos += take;
  return take;
}

}  // namespace kiln::engine::detail
