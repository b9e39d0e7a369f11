// Incremental parsers for what the engine streams back. Every one keeps only
// the unfinished tail between calls: a message or frame may be split across
// any number of libcurl callbacks (or pipe reads) at any byte.
#include "engine/internal.h"

#include <charconv>

namespace kiln::engine::detail {

JsonSplitter::JsonSplitter(ObjectFn on_object, TextFn on_text)
    : on_object_(std::move(on_object)), on_text_(std::move(on_text)) {}

void JsonSplitter::emit_object() {
  auto j = nlohmann::json::parse(cur_, nullptr, false);
  if (j.is_discarded()) {
    if (on_text_) on_text_(cur_);
  } else {
    on_object_(j);
  }
  cur_.clear();
}

void JsonSplitter::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (depth_ == 0) {
      // Between values: whitespace, or a line of plain text.
      if (c == '{' && cur_.find_first_not_of(" \t\r") == std::string::npos) {
        cur_.assign(1, c);
        depth_ = 1;
      } else if (c == '\n') {
        if (on_text_ && cur_.find_first_not_of(" \t\r") != std::string::npos) on_text_(cur_);
        cur_.clear();
      } else {
        cur_ += c;
      }
      continue;
    }
    cur_ += c;
    if (in_string_) {
      if (escape_) escape_ = false;
      else if (c == '\\') escape_ = true;
      else if (c == '"') in_string_ = false;
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if ((c == '}' || c == ']') && --depth_ == 0) {
      emit_object();
    }
  }
}

void JsonSplitter::finish() {
  if (on_text_ && cur_.find_first_not_of(" \t\r\n") != std::string::npos) on_text_(cur_);
  cur_.clear();
  depth_ = 0;
  in_string_ = escape_ = false;
}

LineAssembler::LineAssembler(std::function<void(std::string_view)> on_line)
    : on_line_(std::move(on_line)) {}

void LineAssembler::feed(std::string_view text) {
  for (;;) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    partial_.append(text.substr(0, nl));
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    on_line_(partial_);
    partial_.clear();
    text.remove_prefix(nl + 1);
  }
  partial_.append(text);
}

void LineAssembler::finish() {
  if (!partial_.empty()) on_line_(partial_);
  partial_.clear();
}

void FrameDemux::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    if (left_ == 0 && have_ < header_.size()) {
      size_t take = std::min(header_.size() - have_, bytes.size());
      for (size_t i = 0; i < take; ++i) header_[have_ + i] = static_cast<unsigned char>(bytes[i]);
      have_ += take;
      bytes.remove_prefix(take);
      if (have_ < header_.size()) return;
      stream_ = header_[0];
      left_ = (std::uint32_t(header_[4]) << 24) | (std::uint32_t(header_[5]) << 16) |
              (std::uint32_t(header_[6]) << 8) | std::uint32_t(header_[7]);
      if (left_ == 0) have_ = 0;
      continue;
    }
    size_t take = std::min<size_t>(left_, bytes.size());
    // stream 0 is stdin (never sent back); anything but stderr counts as stdout.
    (stream_ == 2 ? logs_.err : logs_.out).append(bytes.substr(0, take));
    left_ -= static_cast<std::uint32_t>(take);
    bytes.remove_prefix(take);
    if (left_ == 0) have_ = 0;
  }
}

namespace {
bool parse_int(std::string_view s, int& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

bool parse_fraction(std::string_view s, int& step, int& total) {
  auto slash = s.find('/');
  return slash != std::string_view::npos && parse_int(s.substr(0, slash), step) &&
         parse_int(s.substr(slash + 1), total);
}
}  // namespace

bool parse_step(std::string_view line, int& step, int& total) {
  if (line.starts_with("Step ")) {  // classic builder: "Step 3/7 : RUN ..."
    auto end = line.find(" : ");
    return end != std::string_view::npos && parse_fraction(line.substr(5, end - 5), step, total);
  }
  if (line.starts_with("STEP ")) {  // Buildah (Podman): "STEP 3/7: RUN ..."
    auto end = line.find(": ");
    return end != std::string_view::npos && parse_fraction(line.substr(5, end - 5), step, total);
  }
  if (line.starts_with("[")) {  // BuildKit vertex: "[2/5] RUN", "[build 2/5] RUN"
    auto end = line.find(']');
    if (end == std::string_view::npos) return false;
    auto inner = line.substr(1, end - 1);
    auto sp = inner.rfind(' ');
    if (sp != std::string_view::npos) inner.remove_prefix(sp + 1);
    return parse_fraction(inner, step, total);
  }
  return false;
}

std::string strip_ansi(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

}  // namespace kiln::engine::detail
