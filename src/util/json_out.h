// JSON as text for anything kiln writes out (stdout, reports, the ledger):
// nlohmann::json::dump throws on a string that is not valid UTF-8 (one bad
// byte in a path or an engine's message), which would lose the whole
// document. These never throw for that: bad bytes become U+FFFD.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace kiln {

// indent < 0: one line; else pretty-printed with that many spaces.
std::string json_text(const nlohmann::json& j, int indent = -1);

}  // namespace kiln
