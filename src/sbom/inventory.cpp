// The inventory: what the image's own package databases say it holds.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "sbom/sbom.h"
#include "util/text.h"

namespace kiln::sbom {

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::deb: return "deb";
    case Kind::python: return "python";
    case Kind::cuda: return "cuda";
  }
  return "deb";
}

namespace {

constexpr std::uint64_t kMaxDatabase = 64u << 20;  // a dpkg status of 5000 packages is ~5 MB

bool is_dpkg_status(std::string_view path) {
  if (path == "var/lib/dpkg/status") return true;
  // distroless: one file per package, plus its .md5sums
  return path.starts_with("var/lib/dpkg/status.d/") && !path.ends_with(".md5sums") &&
         path.find('/', std::string_view("var/lib/dpkg/status.d/").size()) == std::string_view::npos;
}

bool is_dist_info_metadata(std::string_view path) {
  constexpr std::string_view suffix = ".dist-info/METADATA";
  return path.ends_with(suffix);
}

bool is_sbom_file(std::string_view path, std::uint64_t size) {
  return size <= kMaxDatabase && (is_dpkg_status(path) || is_dist_info_metadata(path));
}

// RFC 822 style headers: one paragraph's single-line fields (continuation
// lines, which start with a blank, belong to the field before: skipped).
using Fields = std::multimap<std::string, std::string>;
std::vector<Fields> paragraphs(std::string_view text, bool stop_at_first) {
  std::vector<Fields> out(1);
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) {
      if (stop_at_first) break;
      if (!out.back().empty()) out.emplace_back();
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.back().emplace(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

std::string field(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? "" : it->second;
}

// "Debian CUDA Maintainers <x@debian.org>" -> "Debian CUDA Maintainers (x@debian.org)": SPDX's supplier form.
std::string supplier_from(std::string_view maintainer) {
  std::string s(trim(maintainer));
  auto lt = s.find('<');
  auto gt = s.rfind('>');
  if (lt != std::string::npos && gt != std::string::npos && gt > lt)
    s = std::string(trim(s.substr(0, lt))) + " (" + s.substr(lt + 1, gt - lt - 1) + ")";
  return s;
}

// Trove classifiers that name exactly one SPDX license. "BSD License" and
// "Apache Software License" name no version: left as words.
const std::map<std::string, std::string, std::less<>>& classifier_ids() {
  static const std::map<std::string, std::string, std::less<>> m = {
      {"MIT License", "MIT"},
      {"MIT No Attribution License (MIT-0)", "MIT-0"},
      {"ISC License (ISCL)", "ISC"},
      {"Python Software Foundation License", "PSF-2.0"},
      {"Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"},
      {"GNU General Public License v2 (GPLv2)", "GPL-2.0-only"},
      {"GNU General Public License v3 (GPLv3)", "GPL-3.0-only"},
      {"GNU Lesser General Public License v2 (LGPLv2)", "LGPL-2.0-only"},
      {"GNU Lesser General Public License v3 (LGPLv3)", "LGPL-3.0-only"},
      {"GNU Affero General Public License v3", "AGPL-3.0-only"},
      {"The Unlicense (Unlicense)", "Unlicense"},
      {"Zope Public License", "ZPL-2.1"},
      {"Eclipse Public License 2.0 (EPL-2.0)", "EPL-2.0"},
      {"Boost Software License 1.0 (BSL-1.0)", "BSL-1.0"},
      {"Apache Software License 2.0 (Apache-2.0)", "Apache-2.0"},
  };
  return m;
}

// The SPDX license list ids kiln accepts as written (common in Python and
// Debian metadata); anything else stays words, never a guessed id.
const std::set<std::string, std::less<>>& known_ids() {
  static const std::set<std::string, std::less<>> s = {
      "0BSD", "AFL-2.1", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0", "Artistic-2.0",
      "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "BSD-4-Clause", "BSL-1.0", "CC0-1.0",
      "CC-BY-4.0", "CC-BY-SA-4.0", "CDDL-1.0", "CNRI-Python", "EPL-1.0", "EPL-2.0", "GPL-2.0-only",
      "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "HPND", "ISC", "LGPL-2.0-only", "LGPL-2.0-or-later",
      "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "MIT", "MIT-0", "MIT-CMU",
      "MPL-1.1", "MPL-2.0", "NCSA", "OpenSSL", "PSF-2.0", "Python-2.0", "Unicode-3.0", "Unicode-DFS-2016",
      "Unlicense", "UPL-1.0", "W3C", "WTFPL", "X11", "Zlib", "ZPL-2.1",
  };
  return s;
}
const std::set<std::string, std::less<>>& known_exceptions() {
  static const std::set<std::string, std::less<>> s = {"LLVM-exception", "Classpath-exception-2.0", "GCC-exception-3.1",
                                                       "OpenSSL-exception", "Autoconf-exception-3.0"};
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// purl-spec percent-encoding of a version or qualifier value.
std::string purl_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// PEP 503: "Foo_Bar.baz" -> "foo-bar-baz", the name purl's pypi type wants.
std::string pep503(std::string_view name) {
  std::string out;
  bool dash = false;
  for (unsigned char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      dash = true;
      continue;
    }
    if (dash && !out.empty()) out += '-';
    dash = false;
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

void add_cuda(std::vector<Package>& out, const std::vector<audit::Found>& found, const std::string& name) {
  for (const auto& f : found) {
    Package p;
    p.kind = Kind::cuda;
    p.name = name;
    p.version = f.version;
    p.supplier = "NVIDIA Corporation";
    p.path = f.path;
    p.purl = "pkg:generic/nvidia/" + name + "@" + purl_escape(f.version);
    out.push_back(std::move(p));
  }
}

}  // namespace

bool is_spdx_expression(std::string_view s) {
  // Tokens: ids, AND/OR/WITH, parentheses. After WITH an exception id.
  std::string text;
  for (char c : s) {
    if (c == '(' || c == ')') (text += ' ') += c, text += ' ';
    else text += c;
  }
  int depth = 0;
  bool want_operand = true, after_with = false;
  std::size_t operands = 0;
  for (std::string_view tok : split(text, ' ')) {
    if (tok.empty()) continue;
    if (tok == "(") {
      if (!want_operand) return false;
      ++depth;
    } else if (tok == ")") {
      if (want_operand || --depth < 0) return false;
    } else if (tok == "AND" || tok == "OR" || tok == "WITH") {
      if (want_operand) return false;
      want_operand = true;
      after_with = tok == "WITH";
    } else {
      if (!want_operand) return false;
      if (after_with ? !known_exceptions().contains(tok) : !known_ids().contains(tok)) return false;
      want_operand = after_with = false;
      ++operands;
    }
  }
  return operands > 0 && !want_operand && depth == 0;
}

std::vector<Package> parse_dpkg_status(std::string_view text, const std::string& path) {
  std::vector<Package> out;
  for (const Fields& f : paragraphs(text, false)) {
    const std::string status = field(f, "Status");
    // "install ok installed"; config-files, half-installed, not-installed are not in the image's contents
    if (!status.empty() && !status.ends_with(" installed")) continue;
    Package p;
    p.kind = Kind::deb;
    p.name = field(f, "Package");
    p.version = field(f, "Version");
    if (p.name.empty() || p.version.empty()) continue;
    p.architecture = field(f, "Architecture");
    p.supplier = supplier_from(field(f, "Maintainer"));
    p.homepage = field(f, "Homepage");
    // "Source: nvidia-cuda-toolkit (12.4.131~12.4.1-1)": the name before a version
    std::string source = field(f, "Source");
    if (auto sp = source.find(' '); sp != std::string::npos) source.resize(sp);
    if (source != p.name) p.source = source;
    p.path = path;
    out.push_back(std::move(p));
  }
  return out;
}

Package parse_python_metadata(std::string_view text, const std::string& path) {
  Package p;
  p.kind = Kind::python;
  p.path = path;
  auto heads = paragraphs(text, true);
  if (heads.empty()) return p;
  const Fields& f = heads.front();
  p.name = field(f, "Name");
  p.version = field(f, "Version");
  p.homepage = field(f, "Home-page");
  std::vector<std::string> words;
  if (std::string e = field(f, "License-Expression"); !e.empty()) {
    if (is_spdx_expression(e)) p.license = e;
    else words.push_back(e);
  }
  if (std::string l = field(f, "License"); !l.empty()) {
    if (p.license.empty() && is_spdx_expression(l)) p.license = l;
    else if (p.license.empty()) words.push_back(l.substr(0, 200));
  }
  std::vector<std::string> from_classifiers;
  auto [lo, hi] = f.equal_range("Classifier");
  for (auto it = lo; it != hi; ++it) {
    const std::string& c = it->second;
    if (!c.starts_with("License ::")) continue;
    const std::string leaf = std::string(trim(c.substr(c.rfind("::") + 2)));
    if (auto id = classifier_ids().find(leaf); id != classifier_ids().end()) from_classifiers.push_back(id->second);
    else words.push_back(leaf);
  }
  if (p.license.empty() && from_classifiers.size() == 1) p.license = from_classifiers.front();
  else if (p.license.empty() && from_classifiers.size() > 1) p.license = "(" + join(from_classifiers, " OR ") + ")";
  if (p.license.empty()) p.license_text = join(words, "; ");
  if (!p.name.empty()) p.purl = "pkg:pypi/" + pep503(p.name) + "@" + purl_escape(p.version);
  return p;
}

Inventory inventory(const image::ImageFs& fs, const audit::Components& components) {
  Inventory inv;
  inv.config = fs.config();
  if (components.os) {
    inv.os_id = components.os->id;
    inv.os_version_id = components.os->version_id;
    inv.os_pretty_name = components.os->pretty_name;
  }
  std::vector<std::string> paths;
  for (const auto& [path, f] : fs.files())
    if (f.type == image::FileType::regular && is_sbom_file(path, f.size)) paths.push_back(path);
  std::vector<Package> debs, python;
  fs.read_files(paths, [&](const std::string& path, std::span<const std::byte> b) {
    std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
    if (is_dpkg_status(path)) {
      for (auto& p : parse_dpkg_status(text, path)) debs.push_back(std::move(p));
      return;
    }
    Package p = parse_python_metadata(text, path.substr(0, path.rfind('/')));
    if (p.name.empty() || p.version.empty()) inv.warnings.push_back(path + ": no Name or Version; not listed");
    else python.push_back(std::move(p));
  }, kMaxDatabase);
  // The purl's namespace is the vendor: debian, ubuntu (os-release ID).
  const std::string vendor = inv.os_id.empty() ? "debian" : lower(inv.os_id);
  const std::string distro = inv.os_version_id.empty() ? "" : vendor + "-" + inv.os_version_id;
  for (auto& p : debs) {
    p.purl = "pkg:deb/" + vendor + "/" + purl_escape(p.name) + "@" + purl_escape(p.version);
    std::string q;
    if (!p.architecture.empty()) q += "arch=" + purl_escape(p.architecture);
    if (!distro.empty()) q += (q.empty() ? "" : "&") + std::string("distro=") + purl_escape(distro);
    if (!q.empty()) p.purl += "?" + q;
  }
  auto by_name = [](const Package& a, const Package& b) {
    return std::tie(a.name, a.version, a.path) < std::tie(b.name, b.version, b.path);
  };
  std::sort(debs.begin(), debs.end(), by_name);
  std::sort(python.begin(), python.end(), by_name);
  std::vector<Package> cuda;
  add_cuda(cuda, components.cuda_toolkit, "cuda-toolkit");
  add_cuda(cuda, components.cuda_runtime, "cuda-runtime");
  add_cuda(cuda, components.cublas, "cublas");
  add_cuda(cuda, components.cudnn, "cudnn");
  add_cuda(cuda, components.nccl, "nccl");
  std::sort(cuda.begin(), cuda.end(), by_name);
  for (auto* group : {&debs, &python, &cuda})
    for (auto& p : *group) inv.packages.push_back(std::move(p));
  if (paths.empty()) inv.warnings.push_back("no dpkg database and no Python dist-info: only CUDA components are listed");
  for (const auto& w : fs.warnings()) inv.warnings.push_back(w);
  return inv;
}

Inventory read_inventory(std::shared_ptr<image::BlobSource> source, image::ReadOptions options) {
  options.keep = [](std::string_view path, std::uint64_t size) {
    return is_sbom_file(path, size) || audit::is_component_file(path, size);
  };
  const image::ImageFs fs = image::read_image(std::move(source), options);
  return inventory(fs, audit::detect_components(fs));
}

}  // namespace kiln::sbom
