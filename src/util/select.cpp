#include "util/select.h"

#include <fnmatch.h>

#include <algorithm>

namespace kiln {

bool matches_glob(const std::string& pattern, const std::string& id) { return fnmatch(pattern.c_str(), id.c_str(), 0) == 0; }

bool selected(const std::string& id, const std::vector<std::string>& only) {
  return only.empty() || std::any_of(only.begin(), only.end(), [&](const std::string& p) { return matches_glob(p, id); });
}

std::vector<std::string> unmatched_patterns(const std::vector<std::string>& only, const std::vector<std::string>& ids) {
  std::vector<std::string> out;
  for (const auto& p : only)
    if (std::none_of(ids.begin(), ids.end(), [&](const std::string& id) { return matches_glob(p, id); })) out.push_back(p);
  return out;
}

}  // namespace kiln
