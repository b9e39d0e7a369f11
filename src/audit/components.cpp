#include "audit/components.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>

namespace kiln::audit {
namespace {

using image::FileType;

std::string base_of(std::string_view p) {
  const auto s = p.rfind('/');
  return std::string(s == std::string_view::npos ? p : p.substr(s + 1));
}

std::string unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
  return v;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

void add(std::vector<Found>& v, std::string version, std::string path) {
  for (const auto& f : v)
    if (f.version == version) return;  // one per version; the first path names it
  v.push_back({std::move(version), std::move(path)});
  std::sort(v.begin(), v.end());
}

bool is_file(const image::FileEntry& f) { return f.type == FileType::regular || f.type == FileType::hardlink; }

// pip wheels ship libcudnn.so.9 with no minor version; the dist-info
// directory name carries the full one: nvidia_cudnn_cu12-9.1.0.70.dist-info.
// The same holds for cu13's nvidia_cublas-13.1.0.3.dist-info (no _cuXX).
std::vector<Found>* wheel_slot(Components& c, const std::string& name) {
  static const std::regex re(R"(nvidia[-_](cuda[-_]runtime|cublas|cudnn|nccl)([-_]cu\d+)?)");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return nullptr;
  const std::string what = m[1];
  if (what.starts_with("cuda")) return &c.cuda_runtime;
  return what == "cublas" ? &c.cublas : what == "cudnn" ? &c.cudnn : &c.nccl;
}

void from_wheel(Components& c, const std::string& path) {
  static const std::regex torch_re(R"(torch-([0-9][0-9A-Za-z.+]*)\.dist-info)");
  std::smatch tm;
  const std::string tbase = base_of(path);
  if (path.find("-packages/") != std::string::npos && std::regex_match(tbase, tm, torch_re)) add(c.torch_dist, tm[1], path);
  static const std::regex re(R"(nvidia_(cuda_runtime|cublas|cudnn|nccl)(_cu\d+)?-([0-9][0-9A-Za-z.+]*)\.dist-info)");
  std::smatch m;
  const std::string base = base_of(path);
  if (!std::regex_match(base, m, re)) return;
  const std::string what = m[1];
  auto& v = what == "cuda_runtime" ? c.cuda_runtime : what == "cublas" ? c.cublas : what == "cudnn" ? c.cudnn : c.nccl;
  add(v, m[3], path);
}

void from_library_name(Components& c, const std::string& path) {
  const std::string base = base_of(path);
  const std::pair<const char*, std::vector<Found>*> libs[] = {
      {"libcudart", &c.cuda_runtime}, {"libcublas", &c.cublas}, {"libcudnn", &c.cudnn}, {"libnccl", &c.nccl}};
  for (const auto& [stem, out] : libs)
    if (auto v = soname_version(base, stem)) add(*out, *v, path);
}

void from_python_binary(Components& c, const std::string& path) {
  static const std::regex re(R"((^|/)bin/python(3\.\d+)$)");
  std::smatch m;
  if (std::regex_search(path, m, re)) add(c.python, m[2], path);
}

bool is_torch_version_py(const std::string& p) {
  return p.ends_with("-packages/torch/version.py");
}
// site-packages/<dist>.dist-info/METADATA of torch and the nvidia-* wheels.
bool is_pip_metadata(const std::string& p) {
  static const std::regex re(R"(.*-packages/(torch|nvidia_[A-Za-z0-9_]+)-[^/]+\.dist-info/METADATA)");
  return std::regex_match(p, re);
}
bool is_cudnn_header(const std::string& p) {
  const std::string b = base_of(p);
  return b == "cudnn_version.h" || std::regex_match(b, std::regex(R"(cudnn_version_v\d+\.h)"));
}
bool is_cuda_version_file(const std::string& p) {
  return std::regex_match(p, std::regex(R"(usr/local/cuda(-[0-9.]+)?/version\.(json|txt))"));
}

void read_small_file(Components& c, const std::string& path, std::string_view text) {
  if (path == "etc/os-release" || path == "usr/lib/os-release") {
    if (c.os) return;
    auto kv = parse_os_release(text);
    c.os = OsInfo{kv["ID"], kv["VERSION_ID"], kv["PRETTY_NAME"], path};
  } else if (is_torch_version_py(path)) {
    if (auto t = parse_torch_version_py(text); t && !c.torch) {
      c.torch = std::move(*t);
      c.torch->path = path;
    }
  } else if (is_pip_metadata(path)) {
    const auto [name, version] = parse_metadata_name_version(text);
    const std::string dir = path.substr(0, path.rfind('/'));
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (version.empty()) return;
    if (lower == "torch") add(c.torch_dist, version, dir);
    else if (auto* slot = wheel_slot(c, lower)) add(*slot, version, dir);
  } else if (is_cudnn_header(path)) {
    if (auto v = parse_cudnn_version_h(text)) add(c.cudnn, *v, path);
  } else if (path.ends_with("version.txt")) {  // CUDA <= 11.0: "CUDA Version 10.2.89"
    static const std::regex re(R"(CUDA Version (\d+\.\d+(\.\d+)?))");
    std::cmatch m;
    if (std::regex_search(text.data(), text.data() + text.size(), m, re)) add(c.cuda_toolkit, m[1], path);
  } else {
    auto v = parse_cuda_version_json(text);
    if (v.count("cuda")) add(c.cuda_toolkit, v["cuda"], path);
    if (v.count("cuda_cudart")) add(c.cuda_runtime, v["cuda_cudart"], path);
  }
}

}  // namespace

std::optional<std::string> soname_version(std::string_view name, std::string_view stem) {
  const std::string prefix = std::string(stem) + ".so.";
  if (!name.starts_with(prefix)) return std::nullopt;
  const std::string v(name.substr(prefix.size()));
  static const std::regex re(R"(\d+\.\d+(\.\d+)*)");
  if (!std::regex_match(v, re)) return std::nullopt;  // "libcudart.so.13" names no minor
  return v;
}

std::map<std::string, std::string> parse_os_release(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    const std::string line = trim(text.substr(i, j - i));
    i = j + 1;
    const auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    out[line.substr(0, eq)] = unquote(line.substr(eq + 1));
  }
  return out;
}

std::optional<TorchInfo> parse_torch_version_py(std::string_view text) {
  // Lines like: __version__ = '2.4.0+cu124'   cuda: Optional[str] = '12.4'
  static const std::regex re(R"(^\s*(__version__|cuda|git_version)\s*(:[^=]*)?=\s*(['"])([^'"]*)\3)");
  TorchInfo t;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    const std::string line(text.substr(i, j - i));
    i = j + 1;
    std::smatch m;
    if (!std::regex_search(line, m, re)) continue;
    (m[1] == "__version__" ? t.version : m[1] == "cuda" ? t.cuda : t.git_version) = m[4];
  }
  if (t.version.empty()) return std::nullopt;
  return t;
}

std::map<std::string, std::string> parse_cuda_version_json(std::string_view text) {
  std::map<std::string, std::string> out;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items())
    if (v.is_object() && v.contains("version") && v["version"].is_string()) out[k] = v["version"].get<std::string>();
  return out;
}

std::pair<std::string, std::string> parse_metadata_name_version(std::string_view text) {
  std::string name, version;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    const std::string_view line = text.substr(i, j - i);
    i = j + 1;
    if (trim(line).empty()) break;  // the headers end at the first blank line; the description follows
    if (line.starts_with("Name:") && name.empty()) name = trim(line.substr(5));
    else if (line.starts_with("Version:") && version.empty()) version = trim(line.substr(8));
  }
  return {name, version};
}

bool from_site_packages(const Found& f) { return f.path.find("-packages/") != std::string::npos; }

std::optional<std::string> parse_cudnn_version_h(std::string_view text) {
  std::map<std::string, std::string> d;
  static const std::regex re(R"(#define\s+CUDNN_(MAJOR|MINOR|PATCHLEVEL)\s+(\d+))");
  for (std::cregex_iterator it(text.data(), text.data() + text.size(), re), end; it != end; ++it) d[(*it)[1]] = (*it)[2];
  if (!d.count("MAJOR") || !d.count("MINOR")) return std::nullopt;
  return d["MAJOR"] + "." + d["MINOR"] + "." + (d.count("PATCHLEVEL") ? d["PATCHLEVEL"] : "0");
}

bool is_component_file(std::string_view p, std::uint64_t size) {
  const std::string path(p);
  return size < (1u << 20) && (path == "etc/os-release" || path == "usr/lib/os-release" || is_torch_version_py(path) || is_pip_metadata(path) ||
                               is_cudnn_header(path) || is_cuda_version_file(path));
}

Components detect_components(const image::ImageFs& fs) {
  Components c;
  std::vector<std::string> small;
  for (const auto& [path, f] : fs.files()) {
    if (f.type == FileType::directory) from_wheel(c, path);
    if (!is_file(f) && f.type != FileType::symlink) continue;
    from_library_name(c, path);
    from_python_binary(c, path);
    if (is_file(f) && is_component_file(path, f.size)) small.push_back(path);
  }
  // etc/os-release is usually a symlink to ../usr/lib/os-release.
  if (fs.find("etc/os-release") && fs.find("etc/os-release")->type == FileType::symlink) small.push_back("etc/os-release");
  fs.read_files(small, [&](const std::string& path, std::span<const std::byte> b) {
    read_small_file(c, path, {reinterpret_cast<const char*>(b.data()), b.size()});
  }, 1u << 20);
  const auto& env = fs.config().env;
  if (auto it = env.find("CUDA_VERSION"); it != env.end()) c.env_cuda_version = it->second;
  if (auto it = env.find("NVIDIA_REQUIRE_CUDA"); it != env.end()) c.env_require_cuda = it->second;
  c.architecture = fs.config().architecture;
  return c;
}

}  // namespace kiln::audit
