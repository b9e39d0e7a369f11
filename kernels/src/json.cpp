#include "json.h"

#include <cmath>
#include <cstdio>

namespace kiln::smoke {

Json& Json::operator[](const std::string& key) {
  if (kind_ == Kind::Null) kind_ = Kind::Object;
  for (auto& [k, v] : obj_)
    if (k == key) return v;
  obj_.emplace_back(key, Json());
  return obj_.back().second;
}

const Json* Json::find(const std::string& key) const {
  if (kind_ != Kind::Object) return nullptr;
  for (const auto& [k, v] : obj_)
    if (k == key) return &v;
  return nullptr;
}

void Json::push_back(Json v) {
  if (kind_ == Kind::Null) kind_ = Kind::Array;
  arr_.push_back(std::move(v));
}

std::size_t Json::size() const {
  if (kind_ == Kind::Array) return arr_.size();
  if (kind_ == Kind::Object) return obj_.size();
  return 0;
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

static void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<std::size_t>(indent * depth), ' ');
}

void Json::write(std::string& out, int indent, int depth) const {
  switch (kind_) {
    case Kind::Null: out += "null"; return;
    case Kind::Bool: out += b_ ? "true" : "false"; return;
    case Kind::Int: out += std::to_string(i_); return;
    case Kind::Double: {
      if (!std::isfinite(d_)) { out += "null"; return; }
      char buf[32];
      // 10 significant digits: more than any measurement here deserves,
      // and round-trips the versions and sizes exactly.
      std::snprintf(buf, sizeof buf, "%.10g", d_);
      out += buf;
      return;
    }
    case Kind::String: out += json_quote(s_); return;
    case Kind::Array: {
      if (arr_.empty()) { out += "[]"; return; }
      out += '[';
      for (std::size_t i = 0; i < arr_.size(); ++i) {
        if (i) out += ',';
        newline(out, indent, depth + 1);
        arr_[i].write(out, indent, depth + 1);
      }
      newline(out, indent, depth);
      out += ']';
      return;
    }
    case Kind::Object: {
      if (obj_.empty()) { out += "{}"; return; }
      out += '{';
      for (std::size_t i = 0; i < obj_.size(); ++i) {
        if (i) out += ',';
        newline(out, indent, depth + 1);
        out += json_quote(obj_[i].first);
        out += indent < 0 ? ":" : ": ";
        obj_[i].second.write(out, indent, depth + 1);
      }
      newline(out, indent, depth);
      out += '}';
      return;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

}  // namespace kiln::smoke
