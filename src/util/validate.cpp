#include "util/validate.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "util/text.h"
#include "util/toml_reader.h"

namespace kiln::grammar {

namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool word(char c) { return alnum(c) || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool all_of(std::string_view s, bool (*pred)(char)) { return std::all_of(s.begin(), s.end(), pred); }

Problem fail(std::string why) { return why; }

// [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*: distribution/reference's path-component.
bool path_component(std::string_view s) {
  size_t i = 0;
  auto run = [&] {
    size_t start = i;
    while (i < s.size() && lower_alnum(s[i])) ++i;
    return i > start;
  };
  if (!run()) return false;
  while (i < s.size()) {
    if (s[i] == '.' || s[i] == '_') {
      ++i;
      if (s[i - 1] == '_' && i < s.size() && s[i] == '_') ++i;  // "__"
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!run()) return false;
  }
  return true;
}

// domain-component ('.' domain-component)* (':' port)?
bool domain(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !all_of(port, digit)) return false;
    s = s.substr(0, colon);
  }
  if (s.empty() || s.size() > 253) return false;
  for (std::string_view part : split(s, '.')) {
    if (part.empty() || part.size() > 63 || part.front() == '-' || part.back() == '-') return false;
    if (!all_of(part, [](char c) { return alnum(c) || c == '-'; })) return false;
  }
  return true;
}

Problem path_components(std::string_view s, std::string_view what) {
  if (s.empty()) return fail(fmt::format("an empty {}", what));
  for (std::string_view part : split(s, '/'))
    if (!path_component(part))
      return fail(fmt::format("'{}' is not a repository path component (lower-case letters and digits, "
                              "joined by '.', '_', '__' or '-')", part));
  return std::nullopt;
}

// The first '/'-separated component names a registry when it looks like a
// host: a '.', a ':' or "localhost" (distribution/reference's rule).
bool looks_like_host(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
         std::any_of(first.begin(), first.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

Problem digest(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return fail("a digest is ALGORITHM:HEX");
  std::string_view algo = s.substr(0, colon), hexpart = s.substr(colon + 1);
  if (algo.empty() || !lower_alnum(algo.front()) || !lower_alnum(algo.back()) ||
      !all_of(algo, [](char c) { return lower_alnum(c) || c == '+' || c == '.' || c == '_' || c == '-'; }))
    return fail(fmt::format("bad digest algorithm '{}'", algo));
  if (hexpart.size() < 32 || !all_of(hexpart, hex)) return fail("a digest's hex part has at least 32 hex digits");
  return std::nullopt;
}

Problem control_chars(std::string_view text) {
  for (unsigned char c : text) {
    if (c == '\n') return fail("holds a newline");
    if (c == '\r') return fail("holds a carriage return");
    if (c < 0x20 || c == 0x7f) return fail(fmt::format("holds the control character 0x{:02x}", c));
  }
  return std::nullopt;
}

// "{name}" placeholders of catalog recipes, filled with a plain value so the
// grammar of the finished string can be checked at load time.
std::string fill_placeholders(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    size_t close = text[i] == '{' ? text.find('}', i) : std::string_view::npos;
    if (close != std::string_view::npos && close > i + 1 &&
        all_of(text.substr(i + 1, close - i - 1), [](char c) { return word(c); })) {
      out += '0';
      i = close;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

Problem single_line(std::string_view text) { return control_chars(text); }

Problem name(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty()) return fail("is empty");
  if (text.size() > 128) return fail("is longer than 128 characters");
  if (text == "." || text == "..") return fail(fmt::format("'{}' is not a name", text));
  if (!path_component(text))
    return fail("must be lower-case letters and digits, joined by '.', '_', '__' or '-' "
                "(it names a directory and an image repository)");
  return std::nullopt;
}

Problem tag(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty()) return fail("is empty");
  if (text.size() > 128) return fail("is longer than 128 characters");
  if (!word(text.front())) return fail("must begin with a letter, digit or '_'");
  if (!all_of(text, [](char c) { return word(c) || c == '.' || c == '-'; }))
    return fail("may hold only letters, digits, '_', '.' and '-'");
  return std::nullopt;
}

Problem registry(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty()) return fail("is empty: release tags would go to Docker Hub; give a host[:port] such as \"127.0.0.1:5000\"");
  if (text.find("://") != std::string_view::npos)
    return fail("must be a host[:port] such as \"127.0.0.1:5000\", without a scheme");
  size_t slash = text.find('/');
  if (!domain(text.substr(0, slash))) return fail(fmt::format("'{}' is not a host[:port]", text.substr(0, slash)));
  if (slash != std::string_view::npos) return path_components(text.substr(slash + 1), "path after the host");
  return std::nullopt;
}

Problem repository(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.size() > 255) return fail("is longer than 255 characters");
  return path_components(text, "repository");
}

Problem image_reference(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty()) return fail("is empty");
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    if (auto p = digest(rest.substr(at + 1))) return p;
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    if (auto p = tag(rest.substr(colon + 1))) return fail("its tag " + *p);
    rest = rest.substr(0, colon);
  }
  if (rest.size() > 255) return fail("its name is longer than 255 characters");
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos && looks_like_host(rest.substr(0, slash))) {
    if (!domain(rest.substr(0, slash))) return fail(fmt::format("'{}' is not a host[:port]", rest.substr(0, slash)));
    rest = rest.substr(slash + 1);
  }
  return path_components(rest, "image name");
}

Problem debian_package(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  std::string_view pkg = text, version, arch;
  if (size_t eq = pkg.find('='); eq != std::string_view::npos) {
    version = pkg.substr(eq + 1);
    pkg = pkg.substr(0, eq);
    if (version.empty() || !alnum(version.front()) ||
        !all_of(version, [](char c) { return alnum(c) || c == '.' || c == '+' || c == '~' || c == ':' || c == '-'; }))
      return fail(fmt::format("'{}' is not a Debian version", version));
  }
  if (size_t colon = pkg.find(':'); colon != std::string_view::npos) {
    arch = pkg.substr(colon + 1);
    pkg = pkg.substr(0, colon);
    if (arch.empty() || !all_of(arch, [](char c) { return lower_alnum(c) || c == '-'; }))
      return fail(fmt::format("'{}' is not a Debian architecture", arch));
  }
  if (pkg.size() < 2 || !lower_alnum(pkg.front()) ||
      !all_of(pkg, [](char c) { return lower_alnum(c) || c == '+' || c == '-' || c == '.'; }))
    return fail("is not a Debian package name (lower-case letters, digits, '+', '-', '.'; at least two, "
                "beginning with a letter or digit)");
  return std::nullopt;
}

Problem apt_component(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty() || !lower_alnum(text.front()) || !all_of(text, [](char c) { return lower_alnum(c) || c == '-'; }))
    return fail("is not an apt component such as \"contrib\" or \"non-free\"");
  return std::nullopt;
}

Problem env_assignment(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) return fail("is not NAME=VALUE");
  std::string_view key = text.substr(0, eq), value = text.substr(eq + 1);
  if (key.empty() || digit(key.front()) || !all_of(key, word))
    return fail(fmt::format("'{}' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", key));
  for (char c : value)
    if (c == ' ' || c == '\t' || c == '"' || c == '\'' || c == '\\' || c == '`')
      return fail("its value may not hold blanks, quotes, backquotes or backslashes");
  return std::nullopt;
}

Problem pip_requirement(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  size_t i = 0;
  while (i < text.size() && (alnum(text[i]) || text[i] == '.' || text[i] == '_' || text[i] == '-')) ++i;
  std::string_view project = text.substr(0, i);
  if (project.empty() || !alnum(project.front()) || !alnum(project.back()))
    return fail("does not begin with a project name (letters, digits, '.', '_', '-')");
  std::string_view rest = text.substr(i);
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos ||
        !all_of(rest.substr(1, close - 1), [](char c) { return alnum(c) || c == ',' || c == '-' || c == '_' || c == '.'; }))
      return fail("has malformed [extras]");
    rest = rest.substr(close + 1);
  }
  // Version specifiers: ("==" | "!=" | "<=" | ">=" | "<" | ">" | "~=" | "===") VERSION, comma-separated.
  while (!rest.empty()) {
    size_t op = 0;
    while (op < rest.size() && (rest[op] == '=' || rest[op] == '!' || rest[op] == '<' || rest[op] == '>' || rest[op] == '~')) ++op;
    std::string_view oper = rest.substr(0, op);
    static const char* kOps[] = {"==", "!=", "<=", ">=", "<", ">", "~=", "==="};
    if (std::none_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return oper == o; }))
      return fail(fmt::format("'{}' is not a version specifier", rest));
    rest = rest.substr(op);
    size_t end = 0;
    while (end < rest.size() && (alnum(rest[end]) || rest[end] == '.' || rest[end] == '*' || rest[end] == '+' ||
                                 rest[end] == '!' || rest[end] == '_' || rest[end] == '-'))
      ++end;
    if (end == 0) return fail("a version specifier lacks its version");
    rest = rest.substr(end);
    if (!rest.empty()) {
      if (rest.front() != ',') return fail(fmt::format("unexpected '{}'", rest.substr(0, 1)));
      rest = rest.substr(1);
    }
  }
  return std::nullopt;
}

Problem url(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  std::string_view rest;
  if (text.substr(0, 8) == "https://") rest = text.substr(8);
  else if (text.substr(0, 7) == "http://") rest = text.substr(7);
  else return fail("is not an http:// or https:// URL");
  size_t slash = rest.find('/');
  std::string_view host = rest.substr(0, slash);
  if (size_t at = host.rfind('@'); at != std::string_view::npos) host = host.substr(at + 1);
  if (!domain(host)) return fail(fmt::format("'{}' is not a host[:port]", host));
  for (char c : text)
    if (!(alnum(c) || std::string_view("._~:/@!+,=%-").find(c) != std::string_view::npos))
      return fail(fmt::format("holds '{}', which a Dockerfile's shell would interpret", c));
  return std::nullopt;
}

Problem absolute_path(std::string_view text) {
  if (auto p = control_chars(text)) return p;
  if (text.empty() || text.front() != '/') return fail("is not an absolute path");
  for (std::string_view part : split(text.substr(1), '/')) {
    if (part == "." || part == "..") return fail(fmt::format("holds a '{}' component", part));
    if (!all_of(part, [](char c) { return alnum(c) || c == '.' || c == '_' || c == '-' || c == '+'; }))
      return fail("may hold only letters, digits, '.', '_', '-', '+' and '/'");
  }
  return std::nullopt;
}

std::string quoted(std::string_view text) {
  std::string out = "\"";
  size_t shown = 0;
  for (unsigned char c : text) {
    if (++shown > 80) {
      out += "...";
      break;
    }
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '"' || c == '\\') out += std::string("\\") + static_cast<char>(c);
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

namespace {

// Walks every key and string value of a TOML document.
template <typename Visit>
void walk(const toml::node& node, std::string_view key, const std::string& file, Visit&& visit) {
  if (const toml::table* t = node.as_table()) {
    for (const auto& [k, v] : *t) {
      visit(k.str(), nullptr, toml::source_region{k.source()});
      walk(v, k.str(), file, visit);
    }
  } else if (const toml::array* a = node.as_array()) {
    for (const toml::node& item : *a) walk(item, key, file, visit);
  } else if (const auto* s = node.as_string()) {
    visit(key, &s->get(), node.source());
  }
}

Location at(const toml::source_region& src, const std::string& file) { return {file, src.begin.line, src.begin.column}; }

Problem catalog_image_reference(std::string_view t) { return image_reference(t); }
// nvidia's repository may name its registry ("nvcr.io/nvidia/cuda"), but
// not a tag or digest: kiln appends the tag.
Problem catalog_repository(std::string_view t) {
  size_t colon = t.rfind(':'), slash = t.rfind('/');
  bool has_tag = colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  if (auto p = image_reference(t)) return p;
  if (has_tag || t.find('@') != std::string_view::npos) return fail("is an image repository: no tag or digest");
  return std::nullopt;
}
Problem filled_url(std::string_view t) { return url(fill_placeholders(t)); }
Problem filled_pip(std::string_view t) { return pip_requirement(fill_placeholders(t)); }

}  // namespace

void check_single_line(const toml::table& doc, const std::string& file, std::vector<Diagnostic>& diags,
                       const std::vector<std::string_view>& multiline_keys) {
  walk(doc, "", file, [&](std::string_view key, const std::string* value, const toml::source_region& src) {
    if (!value) {
      if (auto p = control_chars(key)) diags.push_back({at(src, file), fmt::format("key {} {}", quoted(key), *p)});
      return;
    }
    if (std::find(multiline_keys.begin(), multiline_keys.end(), key) != multiline_keys.end()) return;
    if (auto p = control_chars(*value)) diags.push_back({at(src, file), fmt::format("'{}' = {} {}", key, quoted(*value), *p)});
  });
}

void check_catalog_strings(const toml::table& doc, const std::string& file, std::vector<Diagnostic>& diags) {
  // Keys whose values reach Dockerfiles, image names or directory names.
  // Free text (note, source titles) may span lines; everything else may not.
  static const std::map<std::string_view, Check> kByKey{
      {"runtime", debian_package},        {"devel", debian_package},
      {"python_packages", debian_package}, {"components", apt_component},
      {"devel_env", env_assignment},      {"image", catalog_image_reference},
      {"repository", catalog_repository}, {"cudnn_variant", tag},
      {"name", tag},                      {"os", tag},
      {"family", tag},                    {"os_family", tag},
      {"index_url", filled_url},          {"packages", filled_pip},
      {"extra_index_urls", filled_url},   {"find_links", filled_url},
      {"constraints", filled_pip},
      {"venv", absolute_path}};
  auto checker = [&](bool name_is_label) {
    return [&, name_is_label](std::string_view key, const std::string* value, const toml::source_region& src) {
      if (!value) {
        if (auto p = control_chars(key)) diags.push_back({at(src, file), fmt::format("key {} {}", quoted(key), *p)});
        return;
      }
      if (key == "note") return;
      auto it = name_is_label && key == "name" ? kByKey.end() : kByKey.find(key);
      Problem p = it != kByKey.end() ? it->second(*value) : control_chars(*value);
      if (p) diags.push_back({at(src, file), fmt::format("'{}' = {} {}", key, quoted(*value), *p)});
    };
  };
  for (const auto& [k, v] : doc) {
    checker(false)(k.str(), nullptr, toml::source_region{k.source()});
    // An [[architecture]]'s name ("Ada Lovelace") labels messages; it never
    // reaches an image, so only control characters are refused there.
    walk(v, k.str(), file, checker(k.str() == "architecture"));
  }
}

}  // namespace kiln::grammar
