// A small ordered JSON value and writer.
//
// Why not nlohmann-json: kiln-smoke is compiled inside devel images, which
// carry the CUDA stack but rarely a JSON library; a self-contained writer keeps
// the suite buildable wherever nvcc is. It only writes JSON (the suite never
// parses), keeps keys in insertion order (the report reads top-down) and
// writes non-finite numbers as null, which JSON cannot represent otherwise.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace kiln::smoke {

class Json {
 public:
  enum class Kind { Null, Bool, Int, Double, String, Array, Object };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : kind_(Kind::Bool), b_(b) {}
  Json(int v) : kind_(Kind::Int), i_(v) {}
  Json(long v) : kind_(Kind::Int), i_(v) {}
  Json(long long v) : kind_(Kind::Int), i_(v) {}
  Json(unsigned v) : kind_(Kind::Int), i_(v) {}
  Json(unsigned long v) : kind_(Kind::Int), i_(static_cast<std::int64_t>(v)) {}
  Json(unsigned long long v) : kind_(Kind::Int), i_(static_cast<std::int64_t>(v)) {}
  Json(double v) : kind_(Kind::Double), d_(v) {}
  Json(float v) : kind_(Kind::Double), d_(v) {}
  Json(const char* s) : kind_(Kind::String), s_(s) {}
  Json(std::string s) : kind_(Kind::String), s_(std::move(s)) {}

  static Json array() { Json j; j.kind_ = Kind::Array; return j; }
  static Json object() { Json j; j.kind_ = Kind::Object; return j; }
  template <class T>
  static Json array(const std::vector<T>& items) {
    Json j = array();
    for (const auto& x : items) j.push_back(Json(x));
    return j;
  }

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }

  // Object access: inserts a null member when absent (a null value becomes an object).
  Json& operator[](const std::string& key);
  // Object lookup without inserting; nullptr when absent or not an object.
  const Json* find(const std::string& key) const;
  // Array append (a null value becomes an array).
  void push_back(Json v);
  std::size_t size() const;

  const std::string& str() const { return s_; }
  bool boolean() const { return b_; }
  double number() const { return kind_ == Kind::Int ? static_cast<double>(i_) : d_; }
  const std::vector<Json>& items() const { return arr_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return obj_; }

  // indent < 0: one line; otherwise pretty-printed with that many spaces.
  std::string dump(int indent = 2) const;

 private:
  void write(std::string& out, int indent, int depth) const;

  Kind kind_ = Kind::Null;
  bool b_ = false;
  std::int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

// JSON string escaping (quotes included).
std::string json_quote(const std::string& s);

}  // namespace kiln::smoke
