#include <algorithm>
#include <filesystem>

#include "build/internal.h"
#include "util/sha256.h"
#include "util/text.h"

namespace kiln::build::detail {

std::string directory_listing(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> lines;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    auto mtime = it->last_write_time().time_since_epoch().count();
    lines.push_back(it->path().lexically_relative(dir).generic_string() + " " + std::to_string(it->file_size()) + " " +
                    std::to_string(mtime));
  }
  std::sort(lines.begin(), lines.end());
  return join(lines, "\n");
}

std::string input_hash(const Node& n, const std::string& from_image_id, const std::string& catalog_version) {
  Sha256 h;
  auto field = [&](std::string_view name, std::string_view value) {
    // Length-prefixed, so no two different inputs hash the same bytes.
    h.update(std::string(name) + ":" + std::to_string(value.size()) + "\n");
    h.update(value);
  };
  field("kiln-build", "v1");
  field("catalog", catalog_version);
  field("from", from_image_id);
  field("Dockerfile", n.rendered.dockerfile);
  for (const auto& [name, bytes] : n.rendered.context) field("context/" + name, bytes);  // std::map: sorted
  // A directory linked into the context (a wheelhouse, gigabytes): its
  // listing with sizes and modification times, not its bytes.
  for (const auto& [name, dir] : n.rendered.context_dirs) field("context-dir/" + name, directory_listing(dir));
  // MATRIX.lock's entry (base digest, apt snapshot): only when locked, so
  // the hashes of unlocked builds stay what they were.
  if (!n.rendered.lock.empty()) field("lock", n.rendered.lock);
  return h.hex();
}

}  // namespace kiln::build::detail
