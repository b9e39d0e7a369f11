// JSON documents as block-style YAML: what `kubectl apply -f` and people
// read. Strings are written as JSON writes them (double-quoted, escaped),
// which YAML 1.2 reads the same; keys stay plain where YAML allows.
#include <string>

#include "export/export.h"

namespace kiln::exporter {

namespace {

bool plain_key(const std::string& k) {
  if (k.empty() || !(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  for (unsigned char c : k)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '/')) return false;
  return true;
}

std::string scalar(const nlohmann::json& j) {
  if (j.is_object()) return "{}";
  if (j.is_array()) return "[]";
  return j.dump();
}

bool nested(const nlohmann::json& j) { return (j.is_object() || j.is_array()) && !j.empty(); }

void emit(const nlohmann::json& j, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      out += pad + (plain_key(k) ? k : nlohmann::json(k).dump()) + ":";
      if (nested(v)) {
        out += "\n";
        emit(v, indent + 2, out);
      } else {
        out += " " + scalar(v) + "\n";
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (v.is_object() && !v.empty()) {
        // "- key: value" with the other keys under it.
        std::string item;
        emit(v, indent + 2, item);
        out += pad + "- " + item.substr(static_cast<size_t>(indent) + 2);
      } else if (nested(v)) {
        out += pad + "-\n";
        emit(v, indent + 2, out);
      } else {
        out += pad + "- " + scalar(v) + "\n";
      }
    }
  }
}

}  // namespace

std::string yaml_documents(const std::vector<nlohmann::json>& docs) {
  std::string out;
  for (const auto& d : docs) {
    out += "---\n";
    emit(d, 0, out);
  }
  return out;
}

}  // namespace kiln::exporter
