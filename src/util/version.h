// Dotted version numbers ("525.60.13", "12.4", "9.1.0.70") and ranges.
#pragma once
#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// A dotted numeric version. Comparison pads the shorter one with zeros,
// so 12.4 == 12.4.0 and 525.60.13 > 525.60.
class Version {
 public:
  Version() = default;
  static std::optional<Version> parse(std::string_view text);
  // Throws std::invalid_argument; for data already validated.
  static Version must(std::string_view text);

  const std::vector<unsigned>& parts() const { return parts_; }
  unsigned major() const { return parts_.empty() ? 0 : parts_[0]; }
  unsigned minor() const { return parts_.size() < 2 ? 0 : parts_[1]; }
  bool empty() const { return parts_.empty(); }
  std::string str() const;  // as written when parsed from text
  // First n components ("12.4.1".prefix(2) == "12.4").
  Version prefix(size_t n) const;
  // True when every component written in `pattern` equals ours:
  // "2.6" matches 2.6.0 and 2.6.1, "2.6.1" matches only 2.6.1.
  bool matches(const Version& pattern) const;

  friend std::strong_ordering operator<=>(const Version& a, const Version& b);
  friend bool operator==(const Version& a, const Version& b) {
    return (a <=> b) == std::strong_ordering::equal;
  }

 private:
  std::vector<unsigned> parts_;
  std::string text_;  // as written: driver versions keep "450.80.02"
};

// An inclusive range "12.0..12.9" or a single version "11.8" (== "11.8..11.8",
// compared on the components written, so "12.0..12.9" holds 12.4.1).
struct VersionRange {
  Version low, high;
  static std::optional<VersionRange> parse(std::string_view text);
  bool contains(const Version& v) const;
  std::string str() const;
};

}  // namespace kiln
