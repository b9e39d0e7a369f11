// Time limits a user sets in the environment (KILN_ENGINE_TIMEOUT=30): one
// parser, so every limit takes the same form and fails the same way.
#pragma once
#include <chrono>
#include <string>

namespace kiln {

// The variable's value in seconds (decimals allowed: "0.5"), else `dflt`.
// "0" means no limit and comes back as 0 ms. Anything else (a word, a
// negative number, a unit) throws std::invalid_argument naming the variable.
std::chrono::milliseconds env_seconds(const char* name, std::chrono::milliseconds dflt);

// "2 s", "0.5 s", "15 min": a limit as a person reads it in a message.
std::string describe_seconds(std::chrono::milliseconds limit);

}  // namespace kiln
