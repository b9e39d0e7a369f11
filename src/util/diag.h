// Diagnostics for bad input: every message points at file:line:col, and a
// whole batch is reported at once so a user fixes a matrix in one pass.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln {

struct Location {
  std::string file;
  unsigned line = 0;    // 1-based; 0 when unknown
  unsigned column = 0;  // 1-based; 0 when unknown
  std::string str() const;  // "file:line:col", "file:line" or "file"
};

struct Diagnostic {
  Location where;
  std::string message;
  std::string str() const { return where.str() + ": error: " + message; }
};

// Thrown for user input that cannot be used (matrix, catalog, flags). The
// CLI prints every diagnostic and exits 2 without writing output.
class InputError : public std::runtime_error {
 public:
  explicit InputError(std::vector<Diagnostic> diags);
  InputError(Location where, std::string message);
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }

 private:
  std::vector<Diagnostic> diags_;
};

}  // namespace kiln
