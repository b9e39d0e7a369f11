#include <unistd.h>

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
    client.save_image(image, [&](std::string_view chunk) { return bool(out.write(chunk.data(), chunk.size())); });
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path_.string());
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
