// base64 for registry auth values and BuildKit's rawjson logs.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace kiln {

std::string base64_encode(std::string_view in, bool url = false);  // padded
// Standard or URL alphabet, padding optional, line breaks ignored;
// nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace kiln
