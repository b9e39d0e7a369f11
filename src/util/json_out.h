// JSON as text for anything kiln writes out (stdout, reports, the ledger):
// nlohmann::json::dump throws on a string that is not valid UTF-8 (one bad
// byte in a path or an engine's message), which would lose the whole
// document. These never throw for that: bad bytes become U+FFFD.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln {

// indent < 0: one line; else pretty-printed with that many spaces.
std::string json_text(const nlohmann::json& j, int indent = -1);

// The value of "reason", the one key every verb's document uses for why a
// combination, image or tag is not what was asked (docs/json.md): a string,
// several reasons joined with "; " in the order the table prints them, or
// null when there is none.
nlohmann::json reason_json(const std::string& reason);
nlohmann::json reason_json(const std::vector<std::string>& reasons);

}  // namespace kiln
