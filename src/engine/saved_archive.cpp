#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fstream>

#include "engine/engine.h"

namespace kiln::engine {

namespace fs = std::filesystem;

SavedArchive::SavedArchive(Client& client, const std::string& image, const fs::path& dir) {
  fs::create_directories(dir);
  std::string tmpl = (dir / "kiln-image-XXXXXX.tar").string();
  int fd = ::mkstemps(tmpl.data(), 4);
  if (fd < 0) throw std::runtime_error("cannot create a temporary file in " + dir.string());
  ::close(fd);
  path_ = tmpl;
  try {
    std::ofstream out(path_, std::ios::binary);
    int write_errno = 0;  // ofstream forgets why; errno right after the failed write says it (ENOSPC, EDQUOT)
    client.save_image(image, [&](std::string_view chunk) {
      if (out.write(chunk.data(), chunk.size())) return true;
      write_errno = errno;
      return false;
    });
    out.close();
    if (!out && write_errno == 0) write_errno = errno;
    if (!out)
      throw std::runtime_error("cannot write " + path_.string() + (write_errno ? ": " + std::string(std::strerror(write_errno)) : "") +
                               " (the whole image is saved there before it is read; point TMPDIR or the state directory at a larger disk)");
  } catch (...) {
    std::error_code ec;
    fs::remove(path_, ec);
    throw;
  }
}

SavedArchive::~SavedArchive() {
  std::error_code ec;
  fs::remove(path_, ec);
}

}  // namespace kiln::engine
