#include <algorithm>
#include <filesystem>

#include "build/internal.h"
#include "util/sha256.h"
#include "util/text.h"

namespace kiln::build::detail {

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
  return h.hex();
}

}  // namespace kiln::build::detail
