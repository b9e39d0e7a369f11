// `--write`: the catalog's TOML edited as text, in place. toml++ parses each
// file once and says where every value starts and ends (line, column in code
// points); the edits replace or insert text at those places, so comments,
// order and layout survive (re-serialising the document would drop them).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "survey/internal.h"
#include "util/diag.h"
#include "util/text.h"
#include "util/toml_reader.h"

namespace kiln::survey {

namespace detail {
namespace {

// One file's text, its parse, and the edits against the original offsets.
class TextEdits {
 public:
  explicit TextEdits(std::string path) : path_(std::move(path)), text_(read_file(path_)), doc_(parse_toml_string(text_, path_)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }

  const std::string& path() const { return path_; }
  const toml::table& doc() const { return doc_; }
  bool changed() const { return !edits_.empty(); }

  // Byte offset of a toml++ position (1-based line, column in code points).
  size_t offset(const toml::source_position& p) const {
    size_t b = line_start(p.line);
    for (unsigned col = 1; col < p.column && b < text_.size() && text_[b] != '\n'; ++col) {
      const unsigned char c = static_cast<unsigned char>(text_[b]);
      b += c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    }
    return std::min(b, text_.size());
  }
  size_t line_start(unsigned line) const { return line_starts_[std::clamp<size_t>(line, 1, line_starts_.size()) - 1]; }
  // The offset just past the line's newline (or the end of the text).
  size_t after_line(unsigned line) const { return line < line_starts_.size() ? line_starts_[line] : text_.size(); }
  std::string indent_of(unsigned line) const {
    size_t b = line_start(line), e = b;
    while (e < text_.size() && (text_[e] == ' ' || text_[e] == '\t')) ++e;
    return text_.substr(b, e - b);
  }
  char at(size_t i) const { return i < text_.size() ? text_[i] : '\0'; }
  // Where a comment starts on the line that holds `pos` (before `pos`), outside strings; npos if none.
  size_t comment_start(size_t pos) const {
    size_t b = pos;
    while (b > 0 && text_[b - 1] != '\n') --b;
    char quote = 0;
    for (size_t i = b; i < pos; ++i) {
      const char c = text_[i];
      if (quote) {
        if (c == '\\' && quote == '"') ++i;
        else if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#') {
        return i;
      }
    }
    return std::string::npos;
  }
  size_t size() const { return text_.size(); }

  void replace(size_t begin, size_t end, std::string with) {
    // The same value set twice (two artifacts): the last one wins.
    for (auto& e : edits_)
      if (e.begin == begin && e.end == end && end > begin) {
        e.text = std::move(with);
        return;
      }
    edits_.push_back({begin, end, std::move(with), edits_.size()});
  }
  void insert(size_t at, std::string text) {
    for (const auto& e : edits_)  // the same source appended twice (the same artifact given twice)
      if (e.begin == at && e.end == at && e.text == text) return;
    replace(at, at, std::move(text));
  }

  std::string result() const {
    auto sorted = edits_;
    // From the end backwards, so earlier offsets stay valid; inserts at one
    // place keep the order they were made in.
    std::sort(sorted.begin(), sorted.end(), [](const Edit& a, const Edit& b) {
      return a.begin != b.begin ? a.begin > b.begin : a.seq > b.seq;
    });
    std::string out = text_;
    for (const auto& e : sorted) out.replace(e.begin, e.end - e.begin, e.text);
    return out;
  }
  const std::string& original() const { return text_; }

 private:
  struct Edit {
    size_t begin, end;
    std::string text;
    size_t seq;
  };
  std::string path_, text_;
  toml::table doc_;
  std::vector<size_t> line_starts_;
  std::vector<Edit> edits_;
};

// The line holding the end of the table's last key/value (sub-tables and
// arrays of tables, which live under their own headers, do not count).
struct LastKey {
  unsigned line = 0;
  std::string indent;
};
LastKey last_key(const TextEdits& t, const toml::table& table, std::string_view anchor = "") {
  LastKey out{table.source().begin.line, t.indent_of(table.source().begin.line)};
  bool first = true;
  for (const auto& [k, v] : table) {
    if (v.is_table() && !v.as_table()->is_inline()) continue;
    if (v.is_array_of_tables() && !v.as_array()->empty() && !v.as_array()->front().as_table()->is_inline()) continue;
    if (!anchor.empty() && k.str() != anchor) continue;
    if (first || v.source().end.line > out.line) {
      out = {v.source().end.line, t.indent_of(k.source().begin.line)};
      first = false;
    }
  }
  if (first && !anchor.empty()) return last_key(t, table);
  return out;
}

void insert_key(TextEdits& t, const toml::table& table, std::string_view key, const std::string& literal,
                std::string_view anchor = "") {
  LastKey at = last_key(t, table, anchor);
  std::string text = fmt::format("{}{} = {}\n", at.indent, key, literal);
  size_t where = t.after_line(at.line);
  if (where == t.size() && t.size() > 0 && t.at(t.size() - 1) != '\n') text = "\n" + text;
  t.insert(where, std::move(text));
}

void set_key(TextEdits& t, const toml::table& table, std::string_view key, const std::string& literal,
             std::string_view anchor = "") {
  if (const toml::node* v = table.get(key)) t.replace(t.offset(v->source().begin), t.offset(v->source().end), literal);
  else insert_key(t, table, key, literal, anchor);
}

bool array_holds(const toml::array& a, std::string_view s) {
  for (const auto& e : a)
    if (e.value<std::string>() == s) return true;
  return false;
}

// Appends a string to an array value (before its closing bracket), or makes
// a lone string an array of two; adds the key when absent.
void append_string(TextEdits& t, const toml::table& table, std::string_view key, const std::string& item,
                   std::string_view anchor = "") {
  const toml::node* v = table.get(key);
  if (!v) return insert_key(t, table, key, toml_strings({item}), anchor);
  if (auto s = v->value<std::string>()) {
    if (*s != item) t.replace(t.offset(v->source().begin), t.offset(v->source().end), toml_strings({*s, item}));
    return;
  }
  const toml::array* a = v->as_array();
  if (!a || array_holds(*a, item)) return;
  size_t close = t.offset(v->source().end);
  while (close > 0 && t.at(close - 1) != ']') --close;
  if (close == 0) return;
  --close;  // at ']'
  size_t prev = close;
  auto skip_space = [&] {
    while (prev > 0 && (t.at(prev - 1) == ' ' || t.at(prev - 1) == '\n' || t.at(prev - 1) == '\r' || t.at(prev - 1) == '\t')) --prev;
  };
  skip_space();
  // A multi-line array whose last element carries a comment ("S6",  # why):
  // the new element goes before the comment, not into it.
  if (size_t comment = t.comment_start(prev); comment != std::string::npos) {
    prev = comment;
    skip_space();
  }
  if (a->empty()) t.insert(close, toml_string(item));
  else if (t.at(prev - 1) == ',') t.insert(prev, " " + toml_string(item) + ",");  // a trailing comma stays trailing
  else t.insert(prev, ", " + toml_string(item));
}

std::optional<Version> version_of(const toml::table& t, std::string_view key) {
  if (auto s = t[key].value<std::string>()) return Version::parse(*s);
  return std::nullopt;
}

const toml::table* find_entry(const toml::table& doc, std::string_view array, std::string_view key, const Version& v) {
  const toml::array* a = doc[array].as_array();
  if (!a) return nullptr;
  for (const auto& n : *a)
    if (const toml::table* t = n.as_table(); t && version_of(*t, key) == v) return t;
  return nullptr;
}

const toml::table* find_build(const toml::table& release, const Version& cuda) {
  const toml::array* a = release["build"].as_array();
  if (!a) return nullptr;
  for (const auto& n : *a)
    if (const toml::table* t = n.as_table()) {
      auto c = version_of(*t, "cuda");
      if (c && c->matches(cuda.prefix(2)) && cuda.matches(*c)) return t;
    }
  return nullptr;
}

std::string literal_of(const Change& ch, std::string_view key) {
  for (const auto& [k, v] : ch.set)
    if (k == key) return v;
  return "";
}

// The keys of a new [[pytorch.build]], in the catalog's order.
std::string build_block(const Change& ch, const std::string& indent) {
  std::string out = fmt::format("{}[[pytorch.build]]\n{}cuda = {}\n", indent, indent, toml_string(ch.cuda.str()));
  for (const char* key : {"cudnn", "nccl", "cublas", "arch_list"})
    if (auto v = literal_of(ch, key); !v.empty()) out += fmt::format("{}{} = {}\n", indent, key, v);
  out += fmt::format("{}source = {}\n", indent, toml_strings({ch.source_key}));
  return out;
}

std::string missing_for_new_build(const Change& ch) {
  std::vector<std::string> missing;
  for (const char* key : {"cudnn", "nccl", "arch_list"})
    if (literal_of(ch, key).empty()) missing.push_back(key);
  return join(missing, ", ");
}

// Applies one torch change to pytorch.toml; returns what it did, or "" with
// `why` set when it cannot.
std::string apply_torch(TextEdits& t, const Change& ch, std::string& why) {
  const toml::table* rel = find_entry(t.doc(), "pytorch", "version", ch.release);
  const toml::table* build = rel ? find_build(*rel, ch.cuda) : nullptr;
  const std::string src = ch.source_key;
  if (!build) {
    if (auto missing = missing_for_new_build(ch); !missing.empty()) {
      why = fmt::format("not written: a new build needs {}, which the artifact does not state", missing);
      return "";
    }
  }
  if (!rel) {
    std::vector<std::string> python = ch.add_python;
    if (python.empty()) {
      why = "not written: a new release needs its Python versions, which the artifact does not state";
      return "";
    }
    std::string block = fmt::format(
        "\n[[pytorch]]\nversion = {}\npython = {}\nconfidence = \"inferred\"\ninferred = [\"python\"]\n"
        "note = \"added by kiln catalog check --write: Python versions are only those of the artifact read\"\n"
        "source = {}\n{}",
        toml_string(ch.release.str()), toml_strings(python), toml_strings({src}), build_block(ch, "  "));
    std::string lead = t.size() > 0 && t.at(t.size() - 1) != '\n' ? "\n" : "";
    t.insert(t.size(), lead + block);
    return fmt::format("pytorch.toml: new release {} with a CUDA {} build", ch.release.str(), ch.cuda.str());
  }
  std::vector<std::string> did;
  for (const auto& py : ch.add_python) append_string(t, *rel, "python", py);
  if (!ch.add_python.empty()) {
    append_string(t, *rel, "source", src);
    did.push_back("python += " + join(ch.add_python, ", "));
  }
  if (!build) {
    // After the release's last build (or its last key when it has none).
    const toml::array* builds = (*rel)["build"].as_array();
    const toml::table* last = builds && !builds->empty() ? builds->back().as_table() : nullptr;
    LastKey at = last ? last_key(t, *last) : last_key(t, *rel);
    std::string indent = last ? t.indent_of(last->source().begin.line) : "  ";
    t.insert(t.after_line(at.line), build_block(ch, indent));
    did.push_back(fmt::format("new CUDA {} build", ch.cuda.str()));
  } else {
    for (const auto& [key, literal] : ch.set) {
      set_key(t, *build, key, literal, key == "cublas" ? "nccl" : "");
      did.push_back(fmt::format("{} = {}", key, literal));
    }
    if (!ch.set.empty()) append_string(t, *build, "source", src);
  }
  return fmt::format("pytorch.toml {} CUDA {}: {}", ch.release.str(), ch.cuda.str(), join(did, "; "));
}

std::string apply_cuda(TextEdits& t, const Change& ch, std::string& why) {
  const toml::table* rel = find_entry(t.doc(), "cuda", "version", ch.release);
  if (!rel) {
    why = "not written: CUDA " + ch.release.str() + " is not in cuda.toml";
    return "";
  }
  std::vector<std::string> did;
  for (const auto& [key, literal] : ch.set) {
    set_key(t, *rel, key, literal, key == "require_cuda" ? "require_branches" : "");
    did.push_back(fmt::format("{} = {}", key, literal.size() > 60 ? literal.substr(0, 57) + "...\"" : literal));
  }
  append_string(t, *rel, "source", ch.source_key);
  return fmt::format("cuda.toml {}: {}", ch.release.str(), join(did, "; "));
}

void add_source(TextEdits& t, const std::string& key, const std::string& text) {
  const toml::table* sources = t.doc()["sources"].as_table();
  if (!sources) throw InputError(Location{t.path(), 0, 0}, "no [sources] table to record the artifact in");
  if (sources->contains(key)) return;
  LastKey at = last_key(t, *sources);
  // The day it was read: a catalog's facts age.
  const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  const std::chrono::year_month_day ymd{today};
  const std::string dated = fmt::format("{}; read by kiln catalog check on {:04}-{:02}-{:02}", text, static_cast<int>(ymd.year()),
                                        static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  t.insert(t.after_line(at.line), fmt::format("{}{} = {}\n", at.indent, toml_string(key), toml_string(dated)));
}

}  // namespace
}  // namespace detail

std::size_t Report::differences() const {
  return static_cast<std::size_t>(std::count_if(rows.begin(), rows.end(), [](const Row& r) { return r.differs && !r.updated; }));
}

std::vector<std::string> write(const catalog::Catalog& cat, Report& report) {
  using detail::TextEdits;
  const std::string dir = cat.root + "/catalog/";
  const std::vector<std::string> paths = {dir + "sources.toml", dir + "cuda.toml", dir + "pytorch.toml"};
  std::map<std::string, std::string> originals;
  for (const auto& p : paths) originals[p] = read_file(p);
  auto restore = [&] {
    for (const auto& [p, text] : originals) write_file_atomic(p, text);
  };

  // Edits are made against one parse of each file. Two changes that would
  // both create the same release or build (two wheels of a new release) can
  // not share one: the second waits for a pass over the files as the first
  // left them.
  std::vector<size_t> pending(report.changes.size()), updated;
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  std::set<std::string> written;
  try {
    while (!pending.empty()) {
      TextEdits sources(paths[0]), cuda(paths[1]), pytorch(paths[2]);
      std::set<std::string> creating;
      std::vector<size_t> later;
      for (size_t c : pending) {
        const Change& ch = report.changes[c];
        if (ch.target == Change::Target::torch_build) {
          const toml::table* rel = detail::find_entry(pytorch.doc(), "pytorch", "version", ch.release);
          std::string creates = !rel ? ch.release.str() : !detail::find_build(*rel, ch.cuda) ? ch.release.str() + "/" + ch.cuda.str() : "";
          if (!creates.empty() && !creating.insert(creates).second) {
            later.push_back(c);
            continue;
          }
        }
        std::string why;
        std::string did = ch.target == Change::Target::torch_build ? detail::apply_torch(pytorch, ch, why)
                                                                   : detail::apply_cuda(cuda, ch, why);
        for (size_t i : ch.rows) report.rows[i].written = did.empty() ? why : did;
        if (did.empty()) continue;
        updated.insert(updated.end(), ch.rows.begin(), ch.rows.end());
        detail::add_source(sources, ch.source_key, ch.source_text);
      }
      for (TextEdits* f : {&sources, &cuda, &pytorch})
        if (f->changed()) parse_toml_string(f->result(), f->path());  // never write a file toml++ cannot read back
      for (TextEdits* f : {&sources, &cuda, &pytorch})
        if (f->changed()) {
          write_file_atomic(f->path(), f->result());
          written.insert(f->path());
        }
      if (later.size() == pending.size()) break;  // no progress (cannot happen: the first always applies)
      pending = std::move(later);
    }
    // The catalog must still load (known sources, valid versions): else put
    // the files back as they were.
    if (!written.empty()) catalog::Catalog::load(cat.root);
  } catch (const InputError& e) {
    restore();
    std::vector<Diagnostic> diags = e.diagnostics();
    diags.insert(diags.begin(), Diagnostic{Location{cat.root, 0, 0}, "--write would leave the catalog unloadable; nothing was changed"});
    throw InputError(std::move(diags));
  } catch (...) {
    restore();
    throw;
  }
  for (auto& r : report.rows)
    if (r.differs && r.written.empty()) r.written = "not written";
  for (size_t i : updated) report.rows[i].updated = true;
  return {written.begin(), written.end()};
}

}  // namespace kiln::survey
