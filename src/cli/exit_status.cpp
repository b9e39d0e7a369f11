#include "cli/exit_status.h"

#include <optional>
#include <typeinfo>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/errors.h"
#include "util/json_out.h"

namespace kiln::cli {

int fail(bool json, int code, const std::string& kind, const std::string& message, const std::vector<Diagnostic>& diags,
         std::ostream& out, std::ostream& err) {
  if (!diags.empty())
    for (const auto& d : diags) err << d.str() << '\n';
  else
    err << message << '\n';
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : diags)
      list.push_back({{"file", d.where.file}, {"line", d.where.line}, {"column", d.where.column}, {"message", d.message},
                      {"text", d.str()}});
    nlohmann::json doc = {{"schema", "kiln.error/v1"}, {"exit_code", code}, {"kind", kind}, {"message", message},
                          {"diagnostics", list}};
    out << json_text(doc, 2) << '\n';
  }
  return code;
}

bool is_bug(const std::exception& e) {
  if (dynamic_cast<const std::invalid_argument*>(&e)) return false;
  return dynamic_cast<const std::logic_error*>(&e) || dynamic_cast<const std::bad_optional_access*>(&e) ||
         dynamic_cast<const std::bad_variant_access*>(&e) || dynamic_cast<const std::bad_cast*>(&e) ||
         dynamic_cast<const nlohmann::json::type_error*>(&e) || dynamic_cast<const nlohmann::json::invalid_iterator*>(&e) ||
         dynamic_cast<const nlohmann::json::out_of_range*>(&e);
}

int guarded(bool json, const std::function<int()>& body, std::ostream& out, std::ostream& err) {
  try {
    return body();
  } catch (const InputError& e) {
    return fail(json, 2, "input", e.what(), e.diagnostics(), out, err);
  } catch (const std::exception& e) {
    if (is_bug(e))
      return fail(json, kExitBug, "bug",
                  fmt::format("kiln: internal error ({}): {} -- a bug in kiln, please report it", typeid(e).name(), e.what()),
                  {}, out, err);
    const bool environment = dynamic_cast<const EnvironmentError*>(&e) != nullptr;
    const bool input = dynamic_cast<const std::invalid_argument*>(&e) != nullptr;
    return fail(json, 2, environment ? "environment" : input ? "input" : "error", fmt::format("kiln: error: {}", e.what()), {},
                out, err);
  } catch (...) {
    return fail(json, kExitBug, "bug", "kiln: internal error: an unknown exception -- a bug in kiln, please report it", {}, out,
                err);
  }
}

}  // namespace kiln::cli
