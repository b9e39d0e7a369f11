// How kiln ends: what main() runs a verb through, mapping every outcome to
// an exit code that means one thing -- 0 ok, 1 some combination failed, 2
// bad input or environment, 70 (EX_SOFTWARE) a bug in kiln itself. A
// pipeline must not read kiln's own bug as the user's bad input, nor the
// reverse. Under --format json an error is also a kiln.error/v1 document on
// `out` (the human line goes to `err`), so stdout is always JSON.
#pragma once
#include <exception>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "util/diag.h"

namespace kiln::cli {

inline constexpr int kExitBug = 70;  // sysexits.h EX_SOFTWARE

// Writes the error (and its JSON document when `json`); returns `code`.
int fail(bool json, int code, const std::string& kind, const std::string& message,
         const std::vector<Diagnostic>& diags = {}, std::ostream& out = std::cout, std::ostream& err = std::cerr);

// Whether an exception escaping a verb is kiln's bug: a broken invariant
// (std::logic_error, an empty optional, a wrong variant or cast, JSON read
// as the wrong type) -- but not std::invalid_argument, which is how kiln's
// parsers refuse a value the user gave (DOCKER_HOST, an image reference, a
// timeout in the environment): that is bad input, exit 2.
bool is_bug(const std::exception& e);

// Runs a verb's body: its return value, or the exit code of what it threw.
int guarded(bool json, const std::function<int()>& body, std::ostream& out = std::cout, std::ostream& err = std::cerr);

}  // namespace kiln::cli
