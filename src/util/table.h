// The one text table every verb prints: columns as wide as their widest
// cell (measured in characters, not bytes, and not counting colour codes),
// no trailing spaces, indented note lines under a row ("    excluded: ..."),
// and colour only where a person reads a terminal that wants it.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add_row(std::vector<std::string> cells);
  // An indented line under the last row (why not, measurements).
  void add_note(std::string text);
  // Right-aligns a column (numbers).
  void align_right(size_t column);
  bool empty() const { return rows_.empty(); }
  // Every line starts with `indent` (a table nested under a heading).
  std::string str(std::string_view indent = "") const;

 private:
  struct Row {
    std::vector<std::string> cells;
    std::vector<std::string> notes;
  };
  std::vector<std::string> headers_;
  std::vector<Row> rows_;
  std::vector<bool> right_;
};

// Characters a terminal shows: UTF-8 code points, escape sequences skipped.
size_t display_width(std::string_view text);

// Colour on stdout: only a terminal, and only when NO_COLOR is unset
// (https://no-color.org). KILN_COLOR=always forces it (tests, `less -R`).
bool colour_stdout();
enum class Colour { green, red, yellow, dim };
std::string paint(std::string_view text, Colour c, bool on);

}  // namespace kiln
