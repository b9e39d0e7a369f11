#include "util/diag.h"

namespace kiln {

std::string Location::str() const {
  std::string out = file.empty() ? "<input>" : file;
  if (line) out += ":" + std::to_string(line);
  if (line && column) out += ":" + std::to_string(column);
  return out;
}

namespace {
std::string summary(const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) {
    if (!out.empty()) out += '\n';
    out += d.str();
  }
  return out;
}
}  // namespace

InputError::InputError(std::vector<Diagnostic> diags)
    : std::runtime_error(summary(diags)), diags_(std::move(diags)) {}

InputError::InputError(Location where, std::string message)
    : InputError(std::vector<Diagnostic>{{std::move(where), std::move(message)}}) {}

}  // namespace kiln
