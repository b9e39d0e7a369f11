#include "util/toml_reader.h"

#include <algorithm>
#include <fmt/format.h>
#include "util/text.h"

namespace kiln {

namespace {

Location location_of_source(const toml::source_region& src, const std::string& file) {
  return {file, src.begin.line, src.begin.column};
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
  }
}

}  // namespace

toml::table parse_toml_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    Location at = location_of_source(e.source(), path);
    if (e.source().begin.line == 0) at.line = at.column = 0;  // unreadable file
    throw InputError(at, std::string(e.description()));
  }
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

toml::table parse_toml_string(std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw InputError(location_of_source(e.source(), name), std::string(e.description()));
  }
}

Location location_of(const toml::node& node, const std::string& file) {
  return location_of_source(node.source(), file);
}

TomlFields::TomlFields(const toml::table& table, std::string file, std::vector<Diagnostic>& diags)
    : table_(table), file_(std::move(file)), diags_(diags) {}

void TomlFields::error(const Location& at, std::string message) {
  diags_.push_back({at, std::move(message)});
}

Location TomlFields::where(std::string_view key) const {
  if (const toml::node* node = table_.get(key)) return location_of(*node, file_);
  return where();
}

const toml::node* TomlFields::get(std::string_view key, bool required) {
  const toml::node* node = table_.get(key);
  if (!node && required) error(where(), fmt::format("missing required key '{}'", key));
  return node;
}

void TomlFields::wrong_type(std::string_view key, const toml::node& node, std::string_view want) {
  error(location_of(node, file_), fmt::format("'{}' must be {}, not {}", key, want, type_name(node)));
}

std::optional<std::string> TomlFields::str(std::string_view key, bool required) {
  const toml::node* node = get(key, required);
  if (!node) return std::nullopt;
  if (auto s = node->value<std::string>(); s && node->is_string()) return *s;
  wrong_type(key, *node, "a string");
  return std::nullopt;
}

std::vector<std::string> TomlFields::strings(std::string_view key, bool required, bool allow_empty) {
  std::vector<std::string> out;
  const toml::node* node = get(key, required);
  if (!node) return out;
  if (node->is_string()) return {*node->value<std::string>()};
  const toml::array* arr = node->as_array();
  if (!arr) {
    wrong_type(key, *node, "a string or an array of strings");
    return out;
  }
  for (const toml::node& item : *arr) {
    if (!item.is_string()) {
      error(location_of(item, file_), fmt::format("'{}' must hold strings, not {}", key, type_name(item)));
      continue;
    }
    out.push_back(*item.value<std::string>());
  }
  if (arr->empty() && !allow_empty) error(location_of(*node, file_), fmt::format("'{}' must not be empty", key));
  return out;
}

std::optional<int64_t> TomlFields::integer(std::string_view key) {
  const toml::node* node = get(key, false);
  if (!node) return std::nullopt;
  if (node->is_integer()) return *node->value<int64_t>();
  wrong_type(key, *node, "an integer");
  return std::nullopt;
}

std::vector<int64_t> TomlFields::integers(std::string_view key) {
  std::vector<int64_t> out;
  const toml::node* node = get(key, false);
  if (!node) return out;
  const toml::array* arr = node->as_array();
  if (!arr) {
    wrong_type(key, *node, "an array of integers");
    return out;
  }
  for (const toml::node& item : *arr) {
    if (item.is_integer()) out.push_back(*item.value<int64_t>());
    else error(location_of(item, file_), fmt::format("'{}' must hold integers, not {}", key, type_name(item)));
  }
  return out;
}

std::optional<bool> TomlFields::boolean(std::string_view key) {
  const toml::node* node = get(key, false);
  if (!node) return std::nullopt;
  if (node->is_boolean()) return *node->value<bool>();
  wrong_type(key, *node, "true or false");
  return std::nullopt;
}

const toml::table* TomlFields::table(std::string_view key, bool required) {
  const toml::node* node = get(key, required);
  if (!node) return nullptr;
  if (const toml::table* t = node->as_table()) return t;
  wrong_type(key, *node, "a table");
  return nullptr;
}

std::vector<const toml::table*> TomlFields::tables(std::string_view key, bool required) {
  std::vector<const toml::table*> out;
  const toml::node* node = get(key, required);
  if (!node) return out;
  const toml::array* arr = node->as_array();
  if (!arr) {
    wrong_type(key, *node, fmt::format("an array of tables ([[{}]])", key));
    return out;
  }
  for (const toml::node& item : *arr) {
    if (const toml::table* t = item.as_table()) out.push_back(t);
    else error(location_of(item, file_), fmt::format("'{}' entries must be tables, not {}", key, type_name(item)));
  }
  return out;
}

void TomlFields::only(std::initializer_list<std::string_view> known) {
  for (const auto& [key, node] : table_) {
    std::string_view name = key.str();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string hint;
    size_t best = 3;
    for (std::string_view k : known) {
      size_t d = edit_distance(name, k);
      if (d < best) {
        best = d;
        hint = fmt::format(" (did you mean '{}'?)", k);
      }
    }
    error(location_of_source(key.source(), file_), fmt::format("unknown key '{}'{}", name, hint));
  }
}

}  // namespace kiln
