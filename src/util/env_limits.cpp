#include "util/env_limits.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

namespace kiln {

std::chrono::milliseconds env_seconds(const char* name, std::chrono::milliseconds dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  double s = std::strtod(v, &end);
  // At most a year: a larger number is a typo, and the milliseconds must fit a long.
  if (end == v || *end != '\0' || !std::isfinite(s) || s < 0 || s > 365.0 * 24 * 3600)
    throw std::invalid_argument(fmt::format("{}={}: want a number of seconds (0 for no limit)", name, v));
  return std::chrono::milliseconds(static_cast<long long>(std::llround(s * 1000)));
}

std::string describe_seconds(std::chrono::milliseconds limit) {
  auto ms = limit.count();
  if (ms % 60'000 == 0 && ms >= 120'000) return fmt::format("{} min", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{} s", ms / 1000);
  return fmt::format("{:g} s", static_cast<double>(ms) / 1000);
}

}  // namespace kiln
