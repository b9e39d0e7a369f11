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
    targets[name] = {{"context", "./" + c.id}, {"dockerfile", "Dockerfile"}, {"tags", c.tags}};
  }
  return {{"group", {{"default", {{"targets", names}}}}}, {"target", targets}};
}

}  // namespace kiln::render
