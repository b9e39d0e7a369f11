// generate(): the rendered tree under an output directory, and the list of
// what kiln wrote there (OUT/.kiln-generated). Only listed paths are ever
// overwritten or deleted. Before, any subdirectory holding a kiln.json was
// taken for a stale combination and deleted -- a user's project with its
// own kiln.json was lost that way.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "render/render.h"
#include "util/diag.h"
#include "util/text.h"
#include "util/json_out.h"
#include "util/validate.h"

namespace kiln::render {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = ".kiln-generated";
constexpr const char* kHeader =
    "# Written by kiln generate: the files and directories (ending in '/') kiln\n"
    "# wrote here. kiln overwrites and deletes only these; everything else is yours.\n";

struct Manifest {
  std::set<std::string> files;  // relative, '/'-separated
  std::set<std::string> dirs;   // likewise, without the trailing '/'
};

// A relative path kiln could have written: no absolute path, no "." or
// ".." component, no control characters.
bool safe_relative(std::string_view path) {
  if (path.empty() || path.front() == '/' || grammar::single_line(path)) return false;
  for (std::string_view part : split(path, '/'))
    if (part.empty() || part == "." || part == "..") return false;
  return true;
}

std::optional<Manifest> read_manifest(const fs::path& dir) {
  fs::path file = dir / kManifest;
  fs::file_status st = fs::symlink_status(file);
  if (!fs::exists(st)) return std::nullopt;
  if (!fs::is_regular_file(st)) throw InputError({file.string()}, "is not a regular file; kiln will not trust it");
  Manifest m;
  std::istringstream in(read_file(file.string()));
  std::string line;
  for (unsigned n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line.front() == '#') continue;
    bool is_dir = line.back() == '/';
    std::string path = is_dir ? line.substr(0, line.size() - 1) : line;
    if (!safe_relative(path))
      throw InputError({file.string(), n, 1}, fmt::format("{} is not a path kiln writes; the list was edited or is damaged "
                                                          "(fix or delete the line)", grammar::quoted(line)));
    (is_dir ? m.dirs : m.files).insert(path);
  }
  return m;
}

// A tree an older kiln generated, before .kiln-generated existed (a state
// dir's contexts/, a committed generated/): its plan.json (kiln.plan/v1, v2)
// names the combinations it wrote. Their directories' Dockerfile, kiln.json
// and context files, plan.json and docker-bake.json are taken as kiln's;
// nothing else is (a user's directory stays the user's).
std::optional<Manifest> legacy_manifest(const fs::path& out, const std::set<std::string>& names_in_combo) {
  fs::path plan = out / "plan.json";
  if (!fs::is_regular_file(fs::symlink_status(plan))) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(read_file(plan.string()), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.value("schema", "").starts_with("kiln.plan/v") || !j["combos"].is_array())
    return std::nullopt;
  Manifest m;
  m.files.insert("plan.json");
  if (fs::is_regular_file(fs::symlink_status(out / "docker-bake.json"))) m.files.insert("docker-bake.json");
  for (const auto& c : j["combos"]) {
    std::string id = c.is_object() ? c.value("id", "") : "";
    if (grammar::tag(id) || !fs::is_directory(fs::symlink_status(out / id))) continue;
    m.dirs.insert(id);
    for (const auto& name : names_in_combo)
      if (fs::is_regular_file(fs::symlink_status(out / id / name))) m.files.insert(id + "/" + name);
  }
  return m;
}

void write_manifest(const fs::path& dir, const Manifest& m) {
  std::string text = kHeader;
  std::set<std::string> lines(m.files.begin(), m.files.end());
  for (const auto& d : m.dirs) lines.insert(d + "/");
  for (const auto& l : lines) text += l + "\n";
  write_file_atomic((dir / kManifest).string(), text);
}

// True when every directory on the way from `out` to `rel` is a real
// directory: a component replaced by a symlink must not lead kiln elsewhere.
bool through_real_dirs(const fs::path& out, std::string_view rel) {
  fs::path at = out;
  std::vector<std::string_view> parts = split(rel, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    at /= std::string(parts[i]);
    fs::file_status st = fs::symlink_status(at);
    if (!fs::exists(st)) return true;  // kiln creates it
    if (!fs::is_directory(st)) return false;
  }
  return true;
}

bool is_empty_dir(const fs::path& dir) { return fs::directory_iterator(dir) == fs::directory_iterator(); }

// Writes through a temporary file and rename. The temporary is created
// O_EXCL|O_NOFOLLOW, so a planted link at NAME.tmp cannot redirect it.
void write_file(const fs::path& path, const std::string& content) {
  fs::file_status st = fs::symlink_status(path);
  if (fs::is_regular_file(st)) {
    std::error_code ec;
    if (fs::file_size(path, ec) == content.size() && !ec && read_file(path.string()) == content) return;
  }
  fs::path tmp = path;
  tmp += ".kiln-tmp";
  fs::remove(tmp);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(tmp.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      throw std::runtime_error(tmp.string() + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  fs::rename(tmp, path);
}

// Refuses, before anything is written, every path kiln would write that it
// did not write before and that already exists -- or that would go through
// something other than a real directory.
void check_ours(const fs::path& out, const Manifest& old, const std::map<std::string, std::string>& files,
                const std::set<std::string>& dirs) {
  for (const auto& d : dirs) {
    fs::file_status st = fs::symlink_status(out / d);
    if (!fs::exists(st)) continue;
    if (!fs::is_directory(st))
      throw InputError({(out / d).string()}, "exists and is not a directory (a symlink?); kiln will not write through it");
    if (!old.dirs.count(d))
      throw InputError({(out / d).string()}, fmt::format("exists, and kiln did not create it (not in {}); move it away", kManifest));
  }
  for (const auto& [f, _] : files) {
    if (!through_real_dirs(out, f))
      throw InputError({(out / f).string()}, "lies under something that is not a directory (a symlink?); kiln will not write through it");
    fs::file_status st = fs::symlink_status(out / f);
    if (!fs::exists(st)) continue;
    if (!old.files.count(f))
      throw InputError({(out / f).string()}, fmt::format("exists, and kiln did not write it (not in {}); move it away", kManifest));
    if (!fs::is_regular_file(st))
      throw InputError({(out / f).string()}, "was replaced by something that is not a regular file; remove it");
  }
}

}  // namespace

std::vector<std::string> generate(const plan::Plan& p, const Renderer& r, const std::string& out_dir) {
  // Render everything first: a template error must leave out_dir untouched.
  std::vector<Rendered> all;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid) all.push_back(r.render(c, p));

  std::map<std::string, std::string> files;  // relative path -> bytes
  std::set<std::string> dirs;
  for (const auto& x : all) {
    if (auto problem = grammar::tag(x.id))  // ids name directories
      throw InputError({p.matrix_path}, fmt::format("combination id {} {}", grammar::quoted(x.id), *problem));
    dirs.insert(x.id);
    files[x.id + "/Dockerfile"] = x.dockerfile;
    files[x.id + "/kiln.json"] = json_text(x.inputs, 2) + "\n";
    for (const auto& [name, bytes] : x.context) {
      if (!safe_relative(name) || name.find('/') != std::string::npos || name == kManifest || name == "Dockerfile" ||
          name == "kiln.json")
        throw InputError({name}, "is not a plain file name for a build context");
      files[x.id + "/" + name] = bytes;
    }
  }
  files["plan.json"] = json_text(plan::to_json(p), 2) + "\n";
  files["docker-bake.json"] = json_text(bake_file(p), 2) + "\n";

  fs::path out(out_dir);
  Manifest old;
  if (fs::exists(out)) {
    if (!fs::is_directory(out)) throw InputError({out_dir}, "is not a directory");
    std::set<std::string> names_in_combo{"Dockerfile", "kiln.json"};
    for (const auto& x : all)
      for (const auto& [name, _] : x.context) names_in_combo.insert(name);
    if (auto m = read_manifest(out)) old = std::move(*m);
    else if (auto legacy = legacy_manifest(out, names_in_combo)) old = std::move(*legacy);
    else if (!is_empty_dir(out))
      throw InputError({out_dir}, fmt::format("is not empty and holds no {} (the list of files kiln wrote there); kiln "
                                              "generates only into an empty directory or one it generated. Choose "
                                              "another -o, or empty it", kManifest));
  }
  check_ours(out, old, files, dirs);
  fs::create_directories(out);

  // Listed before written, so an interrupted run still owns what it wrote.
  Manifest next{{}, dirs};
  for (const auto& [f, _] : files) next.files.insert(f);
  Manifest both = next;
  both.files.insert(old.files.begin(), old.files.end());
  both.dirs.insert(old.dirs.begin(), old.dirs.end());
  write_manifest(out, both);

  for (const auto& d : dirs) fs::create_directory(out / d);
  for (const auto& [f, bytes] : files) write_file(out / f, bytes);

  // What left the plan: kiln's own files only; a directory only when empty
  // (a file the user added keeps it, and it stays listed as kiln's).
  for (const auto& f : old.files) {
    if (next.files.count(f) || !through_real_dirs(out, f)) continue;
    fs::file_status st = fs::symlink_status(out / f);
    if (fs::is_regular_file(st) || fs::is_symlink(st)) fs::remove(out / f);
  }
  for (const auto& d : old.dirs) {
    if (next.dirs.count(d) || !through_real_dirs(out, d)) continue;
    std::error_code ec;
    fs::file_status st = fs::symlink_status(out / d);
    if (fs::is_directory(st) && is_empty_dir(out / d)) fs::remove(out / d, ec);
    if (fs::exists(fs::symlink_status(out / d))) next.dirs.insert(d);
  }
  write_manifest(out, next);

  std::vector<std::string> written;
  for (const auto& x : all) written.push_back((out / x.id).string());
  return written;
}

}  // namespace kiln::render
