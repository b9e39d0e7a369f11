// What a torch wheel (a zip) or an installed torch says about itself:
// torch/version.py, the dist-info METADATA's Requires-Dist pins, and the
// arch list of libtorch_cuda.so read with kiln's own fat-binary reader.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "audit/fatbin.h"
#include "audit/torch_arch.h"
#include "survey/internal.h"
#include "util/diag.h"
#include "util/sha256.h"
#include "util/text.h"

namespace kiln::survey::detail {

namespace {

namespace fs = std::filesystem;

// libtorch_cuda.so since 1.13; 1.x before it split into _cu and _cpp.
bool is_torch_cuda_library(std::string_view path) {
  return path == "torch/lib/libtorch_cuda.so" || path == "torch/lib/libtorch_cuda_cu.so" ||
         path == "torch/lib/libtorch_cuda_cpp.so";
}

// A top-level "<name>-<version>.dist-info/METADATA" of the torch distribution.
bool is_torch_metadata(std::string_view path) {
  if (!path.ends_with(".dist-info/METADATA") || std::count(path.begin(), path.end(), '/') != 1) return false;
  return normalize_name(path.substr(0, path.find('-'))) == "torch";
}

// The rule (majority of fat binaries) is audit::torch_arch_list's, shared
// with verify's static check.
void add_arch(TorchArtifact& t, const std::vector<audit::FatbinEntry>& entries) {
  audit::TorchArchList read = audit::torch_arch_list(entries);
  t.arch = std::move(read.list);
  t.arch_specific = std::move(read.specific);
  t.arch_read = true;
}

void require_version_py(const TorchArtifact& t) {
  if (t.version_py.version.empty())
    throw InputError(Location{t.path, 0, 0}, "no torch/version.py with a __version__: not a torch wheel or installation");
  if (t.version_py.cuda.empty())
    throw InputError(Location{t.path, 0, 0},
                     fmt::format("torch {} is not a CUDA build (torch/version.py: cuda = None)", t.version_py.version));
}

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

std::string read_entry_text(archive* a, const std::string& wheel, std::string_view name) {
  std::string out;
  char buf[1 << 16];
  la_ssize_t n;
  while ((n = archive_read_data(a, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) throw InputError(Location{wheel, 0, 0}, fmt::format("{}: {}", name, archive_error_string(a)));
  return out;
}

// Deflated inside the zip, so it cannot be mapped where it lies: copied to an
// unlinked temporary file and mapped there (only the headers are then read).
audit::FatbinInfo read_entry_fatbin(archive* a, const std::string& wheel, std::string_view name) {
  std::string tmpl = (fs::temp_directory_path() / "kiln-survey-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create a temporary file: {}", std::strerror(errno)));
  ::unlink(tmpl.c_str());
  struct Fd {
    int fd;
    ~Fd() { ::close(fd); }
  } guard{fd};
  std::vector<char> buf(1 << 20);
  std::uint64_t size = 0;
  la_ssize_t n;
  while ((n = archive_read_data(a, buf.data(), buf.size())) > 0) {
    for (la_ssize_t done = 0; done < n;) {
      ssize_t w = ::write(fd, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0) throw std::runtime_error(fmt::format("cannot write a temporary file: {}", std::strerror(errno)));
      done += w;
    }
    size += static_cast<std::uint64_t>(n);
  }
  if (n < 0) throw InputError(Location{wheel, 0, 0}, fmt::format("{}: {}", name, archive_error_string(a)));
  try {
    return audit::read_fatbin_region(fd, 0, size);
  } catch (const audit::FatbinError& e) {
    throw InputError(Location{wheel, 0, 0}, fmt::format("{}: {}", name, e.what()));
  }
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
}

// lib/python3.12/site-packages -> "3.12".
std::string python_of_path(const fs::path& dir) {
  for (const auto& part : dir) {
    std::string s = part.string();
    if (s.starts_with("python3.")) return s.substr(6);
  }
  return "";
}

// The site-packages directory a user means: the directory itself, or a venv
// or prefix holding lib/python3.X/site-packages with torch in it.
fs::path find_site_packages(const fs::path& dir) {
  if (fs::exists(dir / "torch" / "version.py")) return dir;
  for (const char* lib : {"lib", "lib64"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir / lib, ec))
      if (e.path().filename().string().starts_with("python3") && fs::exists(e.path() / "site-packages" / "torch" / "version.py"))
        return e.path() / "site-packages";
  }
  throw InputError(Location{dir.string(), 0, 0},
                   "no torch/version.py here nor under lib/python3.*/site-packages: not an installed torch");
}

}  // namespace

TorchArtifact read_wheel(const std::string& path) {
  TorchArtifact t;
  t.kind = "wheel";
  t.path = path;
  const std::string filename = fs::path(path).filename().string();
  t.label = "wheel " + filename;
  if (!fs::is_regular_file(path)) throw InputError(Location{path, 0, 0}, "no such file");
  if (auto w = parse_wheel_name(filename); w && !w->python().empty()) t.python.push_back(w->python());

  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_format_zip_seekable(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    throw InputError(Location{path, 0, 0}, fmt::format("not a wheel (zip): {}", archive_error_string(a.get())));
  archive_entry* e = nullptr;
  std::vector<std::string> cuda_libs;
  std::vector<audit::FatbinEntry> entries;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    if (name == "torch/version.py") {
      t.version_py = parse_version_py(read_entry_text(a.get(), path, name));
    } else if (is_torch_metadata(name)) {
      t.metadata = parse_metadata(read_entry_text(a.get(), path, name));
    } else if (is_torch_cuda_library(name)) {
      audit::FatbinInfo info = read_entry_fatbin(a.get(), path, name);
      entries.insert(entries.end(), info.entries.begin(), info.entries.end());
      cuda_libs.push_back(name);
    }
  }
  if (r != ARCHIVE_EOF) throw InputError(Location{path, 0, 0}, fmt::format("not a wheel (zip): {}", archive_error_string(a.get())));
  require_version_py(t);
  if (!cuda_libs.empty()) {
    add_arch(t, entries);
    t.arch_file = join(cuda_libs, ", ");
  } else {
    t.arch_file = "no torch/lib/libtorch_cuda.so in the wheel";
  }
  const std::string sha = file_sha256(path);
  t.source_key = fmt::format("wheel:{} sha256:{}", filename, sha.substr(0, 16));
  t.source_text = fmt::format("torch wheel {} (sha256 {}): torch/version.py, METADATA Requires-Dist, the fat binaries of {}",
                              filename, sha, t.arch_file);
  return t;
}

TorchArtifact read_site_packages(const std::string& dir_text) {
  TorchArtifact t;
  t.kind = "site-packages";
  if (!fs::is_directory(dir_text)) throw InputError(Location{dir_text, 0, 0}, "no such directory");
  const fs::path dir = fs::canonical(find_site_packages(dir_text));
  t.path = dir.string();
  t.version_py = parse_version_py(read_file((dir / "torch" / "version.py").string()));
  require_version_py(t);
  t.label = fmt::format("site-packages {} (torch {})", t.path, t.version_py.version);
  if (auto py = python_of_path(dir); !py.empty()) t.python.push_back(py);

  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".dist-info") || !fs::exists(e.path() / "METADATA")) continue;
    const std::string dist = normalize_name(name.substr(0, name.find('-')));
    if (dist == "torch") {
      t.metadata = parse_metadata(read_file((e.path() / "METADATA").string()));
    } else if (dist.starts_with("nvidia-") || dist == "cuda-toolkit") {
      Metadata m = parse_metadata(read_file((e.path() / "METADATA").string()));
      if (!m.name.empty()) t.installed[normalize_name(m.name)] = m.version;
    }
  }
  std::vector<std::string> libs;
  std::vector<audit::FatbinEntry> entries;
  for (const char* lib : {"libtorch_cuda.so", "libtorch_cuda_cu.so", "libtorch_cuda_cpp.so"}) {
    fs::path p = dir / "torch" / "lib" / lib;
    if (!fs::exists(p)) continue;
    try {
      audit::FatbinInfo info = audit::read_fatbin_file(p);
      entries.insert(entries.end(), info.entries.begin(), info.entries.end());
    } catch (const audit::FatbinError& e) {
      throw InputError(Location{p.string(), 0, 0}, e.what());
    }
    libs.push_back(p.string());
  }
  if (!libs.empty()) {
    add_arch(t, entries);
    t.arch_file = join(libs, ", ");
  } else {
    t.arch_file = "no torch/lib/libtorch_cuda.so installed";
  }
  t.source_key = fmt::format("site-packages:{} (torch {})", t.path, t.version_py.version);
  t.source_text = fmt::format(
      "installed torch {} at {}: torch/version.py, the dist-info METADATA's Requires-Dist, the installed nvidia-* "
      "dist-infos, the fat binaries of torch/lib/libtorch_cuda.so",
      t.version_py.version, t.path);
  return t;
}

}  // namespace kiln::survey::detail
