#include <fstream>
#include <unistd.h>

#include "verify/internal.h"

namespace kiln::verify::detail {

namespace fs = std::filesystem;

SavedImage::~SavedImage() {
  std::error_code ec;
  fs::remove(archive, ec);
}

std::unique_ptr<SavedImage> save_and_read(engine::Client& client, const std::string& name, const fs::path& tmp_dir) {
  fs::create_directories(tmp_dir);
  std::string tmpl = (tmp_dir / "image-XXXXXX.tar").string();
  int fd = ::mkstemps(tmpl.data(), 4);
  if (fd < 0) throw std::runtime_error("cannot create a temporary file in " + tmp_dir.string());
  ::close(fd);
  auto saved = std::make_unique<SavedImage>();
  saved->archive = tmpl;
  {
    std::ofstream out(saved->archive, std::ios::binary);
    client.save_image(name, [&](std::string_view chunk) { return bool(out.write(chunk.data(), chunk.size())); });
    if (!out) throw std::runtime_error("cannot write " + saved->archive.string());
  }
  saved->fs = image::read_image_archive(saved->archive);
  return saved;
}

}  // namespace kiln::verify::detail
