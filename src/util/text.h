// Small string helpers shared by every room.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

std::vector<std::string_view> split(std::string_view text, char sep);
std::string_view trim(std::string_view text);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// ASCII lower case (header names, hosts, hex digits, TOML words): no locale.
std::string lower(std::string_view text);
// Replaces "{name}" placeholders; an unknown name is left as is and reported
// through `unknown` so callers can name it in an error.
std::string expand_braces(std::string_view pattern, const std::map<std::string, std::string>& vars,
                          std::vector<std::string>* unknown = nullptr);
// Levenshtein distance: "did you mean" for a mistyped key or verb.
size_t edit_distance(std::string_view a, std::string_view b);
std::string read_file(const std::string& path);          // throws std::runtime_error
// Writes through a temporary file and rename, so a crash never leaves half a file.
void write_file_atomic(const std::string& path, std::string_view content);
// The current UTC time written with strftime's `format` ("%Y-%m-%d",
// "%Y-%m-%dT%H:%M:%SZ"): the one clock for stamps in locks, plans and reports.
std::string utc_now(const char* format);
// A unix time in milliseconds written the same way ("%Y-%m-%dT%H:%M:%SZ": RFC 3339).
std::string utc_time(std::int64_t unix_ms, const char* format);

}  // namespace kiln
