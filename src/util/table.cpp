#include "util/table.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace kiln {

size_t display_width(std::string_view text) {
  size_t w = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char ch = text[i];
    if (ch == 0x1b && i + 1 < text.size() && text[i + 1] == '[') {  // CSI ... final byte
      i += 2;
      while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7e)) ++i;
      continue;
    }
    if ((ch & 0xc0) != 0x80) ++w;  // not a UTF-8 continuation byte
  }
  return w;
}

void Table::add_row(std::vector<std::string> cells) { rows_.push_back({std::move(cells), {}}); }

void Table::add_note(std::string text) {
  if (rows_.empty()) rows_.push_back({});
  rows_.back().notes.push_back(std::move(text));
}

void Table::align_right(size_t column) {
  if (right_.size() <= column) right_.resize(column + 1, false);
  right_[column] = true;
}

std::string Table::str(std::string_view indent) const {
  std::vector<size_t> width(headers_.size(), 0);
  auto widen = [&](const std::vector<std::string>& cells) {
    if (width.size() < cells.size()) width.resize(cells.size(), 0);
    for (size_t i = 0; i < cells.size(); ++i) width[i] = std::max(width[i], display_width(cells[i]));
  };
  widen(headers_);
  for (const auto& r : rows_) widen(r.cells);
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out(indent);
    size_t last = cells.size();
    while (last > 0 && cells[last - 1].empty()) --last;  // empty trailing cells leave no spaces
    for (size_t i = 0; i < last; ++i) {
      size_t pad = width[i] - display_width(cells[i]);
      bool right = i < right_.size() && right_[i];
      if (i > 0) out += "  ";
      if (right) out.append(pad, ' ');
      out += cells[i];
      if (!right && i + 1 < last) out.append(pad, ' ');
    }
    return out + '\n';
  };
  std::string out = line(headers_);
  for (const auto& r : rows_) {
    out += line(r.cells);
    for (const auto& n : r.notes) out += std::string(indent) + "    " + n + '\n';
  }
  return out;
}

bool colour_stdout() {
  if (const char* force = std::getenv("KILN_COLOR"); force && std::string_view(force) == "always") return true;
  if (const char* no = std::getenv("NO_COLOR"); no && *no) return false;
  return isatty(STDOUT_FILENO) == 1;
}

std::string paint(std::string_view text, Colour c, bool on) {
  if (!on) return std::string(text);
  const char* code = c == Colour::green ? "32" : c == Colour::red ? "31" : c == Colour::yellow ? "33" : "2";
  return "\x1b[" + std::string(code) + "m" + std::string(text) + "\x1b[0m";
}

}  // namespace kiln
