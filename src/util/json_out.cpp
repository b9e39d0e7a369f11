#include "util/json_out.h"

#include "util/text.h"

namespace kiln {

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json reason_json(const std::string& reason) {
  return reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(reason);
}

nlohmann::json reason_json(const std::vector<std::string>& reasons) { return reason_json(join(reasons, "; ")); }

}  // namespace kiln
