#include "util/version.h"

#include <charconv>
#include <stdexcept>

namespace kiln {

std::optional<Version> Version::parse(std::string_view text) {
  Version v;
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t dot = text.find('.', pos);
    if (dot == std::string_view::npos) dot = text.size();
    std::string_view part = text.substr(pos, dot - pos);
    if (part.empty() || part.size() > 9) return std::nullopt;
    unsigned value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec != std::errc() || end != part.data() + part.size()) return std::nullopt;
    v.parts_.push_back(value);
    pos = dot + 1;
    if (dot == text.size()) break;
  }
  v.text_ = std::string(text);
  return v;
}

Version Version::must(std::string_view text) {
  auto v = parse(text);
  if (!v) throw std::invalid_argument("not a version: " + std::string(text));
  return *v;
}

std::string Version::str() const {
  if (!text_.empty()) return text_;
  std::string out;
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (i) out += '.';
    out += std::to_string(parts_[i]);
  }
  return out;
}

Version Version::prefix(size_t n) const {
  Version v;
  for (size_t i = 0; i < n; ++i) v.parts_.push_back(i < parts_.size() ? parts_[i] : 0);
  return v;
}

bool Version::matches(const Version& pattern) const {
  if (pattern.parts_.size() > parts_.size()) {
    // "12.4.0" matches 12.4 only if the extra components are zero.
    for (size_t i = parts_.size(); i < pattern.parts_.size(); ++i)
      if (pattern.parts_[i] != 0) return false;
  }
  size_t n = std::min(pattern.parts_.size(), parts_.size());
  for (size_t i = 0; i < n; ++i)
    if (pattern.parts_[i] != parts_[i]) return false;
  return true;
}

std::strong_ordering operator<=>(const Version& a, const Version& b) {
  size_t n = std::max(a.parts_.size(), b.parts_.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned x = i < a.parts_.size() ? a.parts_[i] : 0;
    unsigned y = i < b.parts_.size() ? b.parts_[i] : 0;
    if (x != y) return x <=> y;
  }
  return std::strong_ordering::equal;
}

std::optional<VersionRange> VersionRange::parse(std::string_view text) {
  size_t sep = text.find("..");
  auto low = Version::parse(text.substr(0, sep));
  auto high = sep == std::string_view::npos ? low : Version::parse(text.substr(sep + 2));
  if (!low || !high || *high < *low) return std::nullopt;
  return VersionRange{*low, *high};
}

bool VersionRange::contains(const Version& v) const {
  Version lo = v.prefix(low.parts().size());
  Version hi = v.prefix(high.parts().size());
  return lo >= low && hi <= high;
}

std::string VersionRange::str() const {
  return low == high ? low.str() : low.str() + "–" + high.str();
}

}  // namespace kiln
