// Reads TOML tables with exact errors: every wrong type, missing key or
// unknown key becomes a Diagnostic with file:line:col, collected rather than
// thrown so the user sees all of them at once. Used by the catalog and the
// matrix readers.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "util/diag.h"

namespace kiln {

// Parses a whole file or string; a syntax error throws InputError at the
// exact position toml++ reports.
toml::table parse_toml_file(const std::string& path);
toml::table parse_toml_string(std::string_view text, const std::string& name);

Location location_of(const toml::node& node, const std::string& file);

// A TOML basic string for the values kiln writes back (references, digests,
// versions, URLs, notes): quote and backslash are all that need escaping.
std::string toml_string(std::string_view s);

class TomlFields {
 public:
  TomlFields(const toml::table& table, std::string file, std::vector<Diagnostic>& diags);

  std::optional<std::string> str(std::string_view key, bool required = false);
  // A string or an array of strings; `allow_empty` false reports [].
  std::vector<std::string> strings(std::string_view key, bool required = false, bool allow_empty = false);
  std::optional<int64_t> integer(std::string_view key);
  std::vector<int64_t> integers(std::string_view key);
  std::optional<bool> boolean(std::string_view key);
  const toml::table* table(std::string_view key, bool required = false);
  // [[key]] entries; each must be a table.
  std::vector<const toml::table*> tables(std::string_view key, bool required = false);

  // Reports every key not in `known`, with the closest known name as a hint.
  void only(std::initializer_list<std::string_view> known);

  Location where(std::string_view key) const;
  Location where() const { return location_of(table_, file_); }
  void error(const Location& at, std::string message);
  const std::string& file() const { return file_; }
  const toml::table& raw() const { return table_; }

 private:
  const toml::node* get(std::string_view key, bool required);
  void wrong_type(std::string_view key, const toml::node& node, std::string_view want);

  const toml::table& table_;
  std::string file_;
  std::vector<Diagnostic>& diags_;
};

}  // namespace kiln
