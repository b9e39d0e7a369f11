#include "render/render.h"

namespace kiln::render {

std::string bake_target(const std::string& id) {
  std::string out = id;
  for (char& ch : out)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
  return out;
}

nlohmann::json bake_file(const plan::Plan& p) {
  nlohmann::json targets = nlohmann::json::object();
  nlohmann::json names = nlohmann::json::array();
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid) continue;
    std::string name = bake_target(c.id);
    names.push_back(name);
    // Local names only: release tags are pushed after verification.
    nlohmann::json t{{"context", "./" + c.id}, {"dockerfile", "Dockerfile"}, {"tags", {local_image(p, c.id)}}};
    // A devel image FROM its runtime sibling: bake builds the sibling first
    // and hands it over as the KILN_PARENT build context.
    if (const plan::Combo* parent = parent_of(c, p))
      t["contexts"] = {{local_image(p, parent->id), "target:" + bake_target(parent->id)}};
    targets[name] = t;
  }
  return {{"group", {{"default", {{"targets", names}}}}}, {"target", targets}};
}

}  // namespace kiln::render
