// Which combinations a command works on: --only patterns (ids or fnmatch
// globs such as "cuda12.4-*"), shared by build, verify, promote, run, plan.
#pragma once
#include <string>
#include <vector>

namespace kiln {

bool matches_glob(const std::string& pattern, const std::string& id);
// True when `only` is empty (everything) or one of its patterns matches.
bool selected(const std::string& id, const std::vector<std::string>& only);
// The patterns that match none of `ids`: a typo would otherwise select
// nothing and report success over zero combinations.
std::vector<std::string> unmatched_patterns(const std::vector<std::string>& only, const std::vector<std::string>& ids);

}  // namespace kiln
