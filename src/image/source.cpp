// Blob sources: a tar (file or memory) or an OCI layout directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "image/internal.h"

namespace kiln::image {
namespace detail {
namespace {

// A blob read straight out of the outer tar: the archive stays open,
// positioned at the member, and archive_read_data drains it. A compressed
// outer archive is held to its expansion limit as it is read.
class TarMemberStream : public ByteStream {
 public:
  TarMemberStream(ArchivePtr a, std::string what, std::unique_ptr<Budget> budget)
      : a_(std::move(a)), what_(std::move(what)), budget_(std::move(budget)) {}
  std::size_t read(std::byte* buf, std::size_t n) override {
    const la_ssize_t r = archive_read_data(a_.get(), buf, n);
    if (r < 0) throw ImageError(what_ + ": " + err());
    budget_->check_expansion(a_.get());
    return static_cast<std::size_t>(r);
  }

 private:
  std::string err() { const char* s = archive_error_string(a_.get()); return s ? s : "read error"; }
  ArchivePtr a_;
  std::string what_;
  std::unique_ptr<Budget> budget_;
};

std::shared_ptr<const FileHandle> open_file(const std::filesystem::path& path) { return open_regular(path); }

class FileStream : public ByteStream {
 public:
  FileStream(std::shared_ptr<const FileHandle> file, std::string what) : file_(std::move(file)), what_(std::move(what)) {}
  std::size_t read(std::byte* buf, std::size_t n) override {
    for (;;) {
      const ssize_t r = ::read(file_->fd(), buf, n);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) throw ImageError(what_ + ": " + std::strerror(errno));
    }
  }

 private:
  std::shared_ptr<const FileHandle> file_;
  std::string what_;
};

std::string strip_dot_slash(std::string_view name) {
  auto n = normalize_path(name);
  return n ? *n : std::string(name);
}

// Opening a member rescans the outer tar's headers; libarchive skips member
// bodies with seeks on a plain tar file, so this costs a header walk.
class TarSource : public BlobSource {
 public:
  TarSource(std::filesystem::path path, const Limits& limits) : path_(std::move(path)), limits_(limits) {}
  TarSource(std::span<const std::byte> bytes) : bytes_(bytes), in_memory_(true) {}
  TarSource(std::string owned)
      : owned_(std::make_shared<const std::string>(std::move(owned))),
        bytes_(reinterpret_cast<const std::byte*>(owned_->data()), owned_->size()),
        in_memory_(true) {}

  std::string describe() const override { return in_memory_ ? "<tar in memory>" : path_.string(); }

  bool exists(const std::string& name) override {
    if (!names_) scan_names();
    return names_->count(name) > 0;
  }

  std::optional<FileRegion> region(const std::string& name) override {
    if (in_memory_) return std::nullopt;
    if (!names_) scan_names();
    auto it = names_->find(name);
    if (it == names_->end() || !it->second) return std::nullopt;
    if (!file_) file_ = open_file(path_);
    return FileRegion{file_, it->second->first, it->second->second};
  }

  std::unique_ptr<ByteStream> open(const std::string& name) override {
    ArchivePtr a = open_archive();
    auto budget = std::make_unique<Budget>(limits_, describe());
    archive_entry* e = nullptr;
    int r;
    while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
      budget->check_expansion(a.get());  // names the member whose body was just skipped
      budget->next_member(e);
      const char* p = archive_entry_pathname(e);
      if (!p || strip_dot_slash(p) != name) continue;
      if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
        throw ImageError(describe() + ": member " + name + " is " + member_kind(e) + ", not a regular file: refused");
      // A blob is never sparse; its holes would be hashed and parsed as zeros.
      if (archive_entry_sparse_count(e) > 0) throw ImageError(describe() + ": member " + name + " is a sparse file: refused");
      return std::make_unique<TarMemberStream>(std::move(a), describe() + ": " + name, std::move(budget));
    }
    if (r != ARCHIVE_EOF) fail(a.get());
    throw ImageError(describe() + ": no member named " + name);
  }

 private:
  static const char* member_kind(archive_entry* e) {
    if (archive_entry_hardlink(e)) return "a hardlink";
    return file_kind(archive_entry_filetype(e));
  }

  ArchivePtr open_archive() {
    ArchivePtr a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (!in_memory_) (void)open_regular(path_);  // a FIFO swapped in would block libarchive's open
    const int r = in_memory_ ? archive_read_open_memory(a.get(), bytes_.data(), bytes_.size())
                             : archive_read_open_filename(a.get(), path_.c_str(), 1 << 16);
    if (r != ARCHIVE_OK) fail(a.get());
    return a;
  }

  [[noreturn]] void fail(archive* a) {
    const char* s = archive_error_string(a);
    throw ImageError(describe() + ": " + (s ? s : "cannot read archive"));
  }

  // Member names, and where each body lies in the file when the tar is not
  // compressed (the first member of a name wins, as in open()).
  void scan_names() {
    ArchivePtr a = open_archive();
    Budget budget(limits_, describe());
    Names names;
    archive_entry* e = nullptr;
    int r;
    while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
      budget.check_expansion(a.get());
      budget.next_member(e);
      const char* p = archive_entry_pathname(e);
      if (p && archive_entry_filetype(e) == AE_IFREG) names.emplace(strip_dot_slash(p), body_place(a.get(), e));
    }
    if (r != ARCHIVE_EOF) fail(a.get());
    names_ = std::move(names);
  }

  std::filesystem::path path_;
  Limits limits_;
  std::shared_ptr<const std::string> owned_;  // declared before bytes_, which points into it
  std::span<const std::byte> bytes_;
  bool in_memory_ = false;
  using Names = std::map<std::string, std::optional<std::pair<std::uint64_t, std::uint64_t>>>;  // -> (offset, size)
  std::optional<Names> names_;
  std::shared_ptr<const FileHandle> file_;
};

// Blob names come from JSON inside the image: refuse any that would leave
// the layout directory.
class DirSource : public BlobSource {
 public:
  DirSource(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::string describe() const override { return dir_.string(); }

  // Present whatever its type: open() then refuses a FIFO by name instead
  // of the layout being misread as missing it.
  bool exists(const std::string& name) override {
    struct stat st {};
    return ::stat(path_of(name).c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
  }

  std::unique_ptr<ByteStream> open(const std::string& name) override {
    const auto p = path_of(name);
    return std::make_unique<FileStream>(open_file(p), p.string());
  }

  std::optional<FileRegion> region(const std::string& name) override {
    auto file = open_file(path_of(name));
    struct stat st {};
    if (::fstat(file->fd(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return FileRegion{std::move(file), 0, static_cast<std::uint64_t>(st.st_size)};
  }

 private:
  std::filesystem::path path_of(const std::string& name) const {
    auto n = normalize_path(name);
    if (!n || n->empty() || name.starts_with('/'))
      throw ImageError(describe() + ": refusing blob name outside the layout: " + name);
    return dir_ / *n;
  }
  std::filesystem::path dir_;
};

}  // namespace

const char* file_kind(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symlink";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "not a regular file";
  }
}

std::shared_ptr<const FileHandle> open_regular(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ImageError(path.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    throw ImageError(path.string() + ": is " + file_kind(st.st_mode) + ", not a regular file: refused (not opened)");
  // O_NONBLOCK: should a FIFO be swapped in after the stat, open() does not
  // wait for a writer; the fstat below then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw ImageError(path.string() + ": " + std::strerror(errno));
  auto file = std::make_shared<const FileHandle>(fd);
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw ImageError(path.string() + ": is " + file_kind(st.st_mode) + ", not a regular file: refused");
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return file;
}

}  // namespace detail

std::shared_ptr<BlobSource> archive_source(const std::filesystem::path& path, const Limits& limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw ImageError(path.string() + ": no such file or directory");
    throw ImageError(path.string() + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return dir_source(path);
  if (!S_ISREG(st.st_mode))
    throw ImageError(path.string() + ": is " + std::string(detail::file_kind(st.st_mode)) +
                     ", not an image archive or layout directory: refused (not opened)");
  return tar_source(path, limits);
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<BlobSource> tar_source(const std::filesystem::path& path, const Limits& limits) {
  return std::make_shared<detail::TarSource>(path, limits);
}
std::shared_ptr<BlobSource> tar_source(std::span<const std::byte> bytes) {
  return std::make_shared<detail::TarSource>(bytes);
}
std::shared_ptr<BlobSource> tar_source(std::string bytes) {
  return std::make_shared<detail::TarSource>(std::move(bytes));
}
std::shared_ptr<BlobSource> dir_source(const std::filesystem::path& path) {
  return std::make_shared<detail::DirSource>(path);
}

std::optional<std::string> normalize_path(std::string_view path) {
  std::string out;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view c = path.substr(i, j - i);
    if (c == "..") return std::nullopt;
    if (!c.empty() && c != ".") {
      if (!out.empty()) out += '/';
      out += c;
    }
    i = j + 1;
  }
  return out;
}

}  // namespace kiln::image
