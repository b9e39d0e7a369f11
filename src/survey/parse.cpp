// Parsers for what the artifacts say: Python packaging text (METADATA,
// version.py, wheel names), package index pages, NVIDIA's redistrib JSON,
// nvidia/cuda Dockerfiles and PyPI's release list. Liberal in what they take:
// these formats grew over a decade of torch, CUDA and pip releases.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "survey/internal.h"
#include "util/diag.h"
#include "util/text.h"

namespace kiln::survey::detail {

namespace {

// A quoted Python string literal ('x' or "x"), else "" (None, or anything else).
std::string python_string(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front())
    return std::string(v.substr(1, v.size() - 2));
  return "";
}

nlohmann::json parse_json(std::string_view body, const std::string& source, std::string_view what) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw InputError(Location{source, 0, 0}, fmt::format("not {} (not a JSON object)", what));
  return j;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string html_unescape(std::string_view s) {
  static const std::pair<std::string_view, char> entities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}, {"&#43;", '+'}, {"&#x2B;", '+'}};
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool done = false;
    if (s[i] == '&')
      for (const auto& [name, c] : entities)
        if (s.substr(i).starts_with(name)) {
          out += c;
          i += name.size() - 1;
          done = true;
          break;
        }
    if (!done) out += s[i];
  }
  return out;
}

void add_index_file(IndexPage& page, std::string filename, bool yanked) {
  auto wheel = parse_wheel_name(filename);
  if (!wheel || wheel->name != "torch") {
    ++page.skipped;
    return;
  }
  page.files.push_back({std::move(filename), *wheel, yanked});
}

// The HTML simple API: one <a href="...">filename</a> per file.
void parse_index_html(std::string_view body, IndexPage& page) {
  size_t pos = 0;
  while ((pos = body.find("<a", pos)) != std::string_view::npos) {
    size_t tag_end = body.find('>', pos);
    size_t close = body.find("</a>", tag_end);
    if (tag_end == std::string_view::npos || close == std::string_view::npos) break;
    std::string_view tag = body.substr(pos, tag_end - pos);
    std::string text(trim(html_unescape(body.substr(tag_end + 1, close - tag_end - 1))));
    if (text.empty()) {  // no link text: the last segment of href
      size_t h = tag.find("href=");
      if (h != std::string_view::npos && h + 6 < tag.size()) {
        char q = tag[h + 5];
        size_t end = tag.find(q, h + 6);
        std::string href = html_unescape(tag.substr(h + 6, end - h - 6));
        href = href.substr(0, href.find('#'));
        text = href.substr(href.rfind('/') + 1);
      }
    }
    add_index_file(page, percent_decode(text), tag.find("data-yanked") != std::string_view::npos);
    pos = close + 4;
  }
}

}  // namespace

std::string normalize_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (out.empty() || out.back() != '-') out += '-';
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

std::optional<Requirement> parse_requirement(std::string_view text) {
  Requirement r;
  text = trim(text);
  if (auto semi = text.find(';'); semi != std::string_view::npos) {
    r.marker = std::string(trim(text.substr(semi + 1)));
    text = trim(text.substr(0, semi));
  }
  size_t i = 0;
  while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '-' || text[i] == '_' || text[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  r.name = normalize_name(text.substr(0, i));
  std::string_view rest = trim(text.substr(i));
  if (rest.starts_with('[')) {
    size_t end = rest.find(']');
    if (end == std::string_view::npos) return std::nullopt;
    for (auto e : split(rest.substr(1, end - 1), ','))
      if (!trim(e).empty()) r.extras.push_back(normalize_name(trim(e)));
    rest = trim(rest.substr(end + 1));
  }
  if (rest.starts_with('(') && rest.ends_with(')')) rest = trim(rest.substr(1, rest.size() - 2));
  r.spec = std::string(rest);
  // A pin is a lone == (or ===) clause: "==9.1.0.70", not ">=2,==3" nor "==2.*".
  if (rest.find(',') == std::string_view::npos) {
    std::string_view v = rest;
    if (v.starts_with("===")) v.remove_prefix(3);
    else if (v.starts_with("==")) v.remove_prefix(2);
    else v = {};
    v = trim(v);
    if (!v.empty() && v.find('*') == std::string_view::npos) r.pin = std::string(v);
  }
  return r;
}

Metadata parse_metadata(std::string_view text) {
  Metadata m;
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the body (the long description) follows
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || line.front() == ' ' || line.front() == '\t') continue;
    std::string key = lower(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "name") m.name = std::string(value);
    else if (key == "version") m.version = std::string(value);
    else if (key == "requires-dist")
      if (auto r = parse_requirement(value); r && r->marker.find("extra ==") == std::string::npos &&
                                             r->marker.find("extra==") == std::string::npos)
        m.requires_dist.push_back(std::move(*r));
  }
  return m;
}

TorchVersionPy parse_version_py(std::string_view text) {
  TorchVersionPy v;
  for (std::string_view line : split(text, '\n')) {
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || line.starts_with(' ') || line.starts_with('#')) continue;
    std::string_view name = trim(line.substr(0, eq));
    if (auto colon = name.find(':'); colon != std::string_view::npos) name = trim(name.substr(0, colon));  // annotated
    if (name == "__version__") v.version = python_string(line.substr(eq + 1));
    else if (name == "cuda") v.cuda = python_string(line.substr(eq + 1));
  }
  return v;
}

std::optional<TorchVersion> parse_torch_version(std::string_view text) {
  TorchVersion t;
  std::string_view public_part = text;
  if (auto plus = text.find('+'); plus != std::string_view::npos) {
    t.local = std::string(text.substr(plus + 1));
    public_part = text.substr(0, plus);
  }
  auto v = Version::parse(public_part);  // "2.12.0rc1" and ".dev2026..." do not parse: pre-releases
  if (!v) return std::nullopt;
  t.version = *v;
  return t;
}

std::optional<Version> cuda_of_local(std::string_view local) {
  if (!local.starts_with("cu") || local.size() < 4) return std::nullopt;
  std::string_view digits = local.substr(2);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  return Version::parse(fmt::format("{}.{}", digits.substr(0, digits.size() - 1), digits.back()));
}

std::optional<WheelName> parse_wheel_name(std::string_view filename) {
  if (!filename.ends_with(".whl")) return std::nullopt;
  filename.remove_suffix(4);
  auto parts = split(filename, '-');
  if (parts.size() != 5 && parts.size() != 6) return std::nullopt;  // 6: with a build tag
  WheelName w;
  w.name = normalize_name(parts[0]);
  w.version = std::string(parts[1]);
  w.python_tag = std::string(parts[parts.size() - 3]);
  w.abi_tag = std::string(parts[parts.size() - 2]);
  w.platform = std::string(parts.back());
  return w;
}

std::string WheelName::python() const {
  if (!python_tag.starts_with("cp") || python_tag.size() < 4) return "";
  std::string digits = python_tag.substr(2);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return "";
  std::string v = digits.substr(0, 1) + "." + digits.substr(1);
  if (abi_tag.ends_with('t')) v += 't';  // free-threaded build (cp313t)
  return v;
}

IndexPage parse_index(std::string_view body, const std::string& source) {
  IndexPage page;
  page.source = source;
  std::string_view start = trim(body);
  if (start.starts_with('{')) {
    auto j = parse_json(body, source, "a PEP 691 index page");
    if (!j.contains("files") || !j["files"].is_array())
      throw InputError(Location{source, 0, 0}, "not a PEP 691 index page: no \"files\" array");
    for (const auto& f : j["files"]) {
      if (!f.is_object() || !f.contains("filename") || !f["filename"].is_string()) continue;
      bool yanked = f.contains("yanked") && ((f["yanked"].is_boolean() && f["yanked"].get<bool>()) || f["yanked"].is_string());
      add_index_file(page, f["filename"].get<std::string>(), yanked);
    }
  } else if (lower(body.substr(0, 4096)).find("<a") != std::string::npos || lower(body.substr(0, 4096)).find("<html") != std::string::npos ||
             lower(body.substr(0, 4096)).find("<!doctype") != std::string::npos) {
    parse_index_html(body, page);
  } else {
    throw InputError(Location{source, 0, 0}, "not a package index page (neither PEP 691 JSON nor the HTML simple API)");
  }
  return page;
}

Redistrib parse_redistrib(std::string_view body, const std::string& source) {
  auto j = parse_json(body, source, "a redistrib JSON");
  Redistrib r;
  if (j.contains("release_date") && j["release_date"].is_string()) r.release_date = j["release_date"];
  if (j.contains("release_label") && j["release_label"].is_string()) r.release_label = j["release_label"];
  for (const auto& [key, value] : j.items())
    if (value.is_object() && value.contains("version") && value["version"].is_string())
      r.components[key] = value["version"].get<std::string>();
  if (r.release_label.empty()) {  // older files lack the label: the name says it (redistrib_12.4.1.json)
    std::string name = source.substr(source.find_last_of('/') + 1);
    if (name.starts_with("redistrib_") && name.ends_with(".json")) r.release_label = name.substr(10, name.size() - 15);
  }
  if (r.components.empty() || !Version::parse(r.release_label))
    throw InputError(Location{source, 0, 0},
                     "not a CUDA redistrib JSON: needs component objects with a \"version\" and a release_label "
                     "(or a name redistrib_X.Y.Z.json)");
  return r;
}

// Docker's word processing removes quotes from ENV values in the legacy
// form too (ENV K "V" sets V, as nvidia/cuda <= 12.6 Dockerfiles write it);
// a backslash escapes the next character outside single quotes.
static std::string unquote_env_value(std::string_view v) {
  std::string out;
  char quote = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      else out += c;
    } else if (c == '\\' && i + 1 < v.size()) {
      out += v[++i];
    } else if (quote == '"') {
      if (c == '"') quote = 0;
      else out += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else {
      out += c;
    }
  }
  return out;
}

DockerfileFacts parse_dockerfile(std::string_view text, const std::string& source) {
  // Join continuation lines, then read ENV instructions stage by stage.
  std::vector<std::string> lines;
  std::string cur;
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (t.starts_with('#') && cur.empty()) continue;
    if (t.ends_with('\\')) {
      cur += std::string(t.substr(0, t.size() - 1)) + " ";
      continue;
    }
    lines.push_back(cur + std::string(t));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(cur);

  DockerfileFacts d;
  std::string stage;
  std::string require_any, require_amd64;
  for (const std::string& l : lines) {
    std::string_view line = trim(l);
    std::string head = lower(line.substr(0, line.find(' ')));
    if (head == "from") {
      stage = lower(line);
      continue;
    }
    if (head != "env") continue;
    std::string_view rest = trim(line.substr(3));
    // ENV K=V K2="V 2" ... or the legacy ENV K V.
    std::map<std::string, std::string> env;
    size_t eq = rest.find('='), sp = rest.find(' ');
    if (eq == std::string_view::npos || (sp != std::string_view::npos && sp < eq)) {
      env[std::string(rest.substr(0, sp))] = sp == std::string_view::npos ? "" : unquote_env_value(trim(rest.substr(sp)));
    } else {
      size_t i = 0;
      while (i < rest.size()) {
        while (i < rest.size() && rest[i] == ' ') ++i;
        size_t e = rest.find('=', i);
        if (e == std::string_view::npos) break;
        std::string key(rest.substr(i, e - i));
        std::string value;
        i = e + 1;
        if (i < rest.size() && (rest[i] == '"' || rest[i] == '\'')) {
          char q = rest[i++];
          while (i < rest.size() && rest[i] != q) {
            if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
            value += rest[i++];
          }
          ++i;
        } else {
          while (i < rest.size() && rest[i] != ' ') value += rest[i++];
        }
        env[key] = value;
      }
    }
    for (const auto& [k, v] : env) {
      if (k == "CUDA_VERSION") d.cuda_version = v;
      if (k == "NVIDIA_REQUIRE_CUDA") {
        require_any = v;
        // nvidia/cuda Dockerfiles set it per architecture stage; arm64 (sbsa)
        // lists no driver branches. kiln's images are x86_64.
        if (stage.find("amd64") != std::string::npos || stage.find("x86_64") != std::string::npos) require_amd64 = v;
      }
    }
  }
  d.require_cuda = !require_amd64.empty() ? require_amd64 : require_any;
  if (d.require_cuda.empty() && d.cuda_version.empty())
    throw InputError(Location{source, 0, 0}, "not an nvidia/cuda Dockerfile: no ENV NVIDIA_REQUIRE_CUDA nor CUDA_VERSION");
  return d;
}

std::vector<PypiRelease> parse_pypi(std::string_view body, const std::string& source) {
  auto j = parse_json(body, source, "PyPI's project JSON");
  if (!j.contains("releases") || !j["releases"].is_object())
    throw InputError(Location{source, 0, 0}, "not PyPI's project JSON: no \"releases\" object");
  std::vector<PypiRelease> out;
  for (const auto& [version, files] : j["releases"].items()) {
    PypiRelease r{version, "", false};
    if (files.is_array() && !files.empty()) {
      r.yanked = true;
      for (const auto& f : files) {
        if (!f.is_object()) continue;
        if (!(f.contains("yanked") && f["yanked"].is_boolean() && f["yanked"].get<bool>())) r.yanked = false;
        std::string t;
        for (const char* key : {"upload_time_iso_8601", "upload_time"})
          if (t.empty() && f.contains(key) && f[key].is_string()) t = f[key].get<std::string>();
        if (!t.empty() && (r.uploaded.empty() || t < r.uploaded)) r.uploaded = t;
      }
    }
    r.uploaded = r.uploaded.substr(0, 10);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kiln::survey::detail
