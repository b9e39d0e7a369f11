#include "lock/lock.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "util/diag.h"
#include "util/sha256.h"
#include "util/text.h"
#include "util/toml_reader.h"

namespace kiln::lock {

namespace fs = std::filesystem;

std::string BasePin::pinned() const {
  if (digest.empty() || reference.find('@') != std::string::npos) return reference;
  // "name@sha256:...": the tag goes (the engine's image store looks a
  // digested reference up by repository and digest alone); the lock keeps it.
  std::string repo = reference;
  if (auto colon = repo.rfind(':'); colon != std::string::npos && repo.find('/', colon) == std::string::npos) repo.resize(colon);
  return repo + "@" + digest;
}

const BasePin* Lock::base(std::string_view reference) const {
  for (const auto& b : bases)
    if (b.reference == reference) return &b;
  return nullptr;
}

const Snapshot* Lock::snapshot(std::string_view os) const {
  for (const auto& s : snapshots)
    if (s.os == os) return &s;
  return nullptr;
}

std::string lock_path(const std::string& matrix_path) {
  fs::path p(matrix_path);
  return p.replace_extension(".lock").string();
}

namespace {

bool is_timestamp(std::string_view t) {
  if (t.size() != 16 || t[8] != 'T' || t[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i)
    if (i != 8 && (t[i] < '0' || t[i] > '9')) return false;
  return true;
}

}  // namespace

std::string to_toml(const Lock& l, const std::string& matrix_path) {
  std::string out = fmt::format(
      "# MATRIX.lock of {} (matrix \"{}\"), written by `kiln lock`.\n"
      "# Each base image by digest, and per OS the package snapshot its apt steps\n"
      "# use instead of the live mirror. Builds use it while it is here; the input\n"
      "# hash covers it. `kiln lock --update` moves it and prints what changed.\n"
      "version = 1\nmatrix = {}\n",
      fs::path(matrix_path).filename().string(), l.matrix, toml_string(l.matrix));
  auto bases = l.bases;
  std::sort(bases.begin(), bases.end(), [](const auto& a, const auto& b) { return a.reference < b.reference; });
  for (const auto& b : bases) {
    out += "\n[[base]]\nreference = " + toml_string(b.reference) + "\n";
    if (!b.image_id.empty()) out += "image_id = " + toml_string(b.image_id) + "\n";
    if (!b.digest.empty()) out += "digest = " + toml_string(b.digest) + "\n";
    out += "source = " + toml_string(b.source) + "\n";
  }
  auto snaps = l.snapshots;
  std::sort(snaps.begin(), snaps.end(), [](const auto& a, const auto& b) { return a.os < b.os; });
  for (const auto& s : snaps)
    out += fmt::format("\n[[snapshot]]\nos = {}\nfamily = {}\ntimestamp = {}\nurl = {}\n", toml_string(s.os), toml_string(s.family),
                       toml_string(s.timestamp), toml_string(s.url));
  return out;
}

Lock parse(std::string_view text, const std::string& path) {
  toml::table t = parse_toml_string(text, path);
  std::vector<Diagnostic> diags;
  TomlFields top(t, path, diags);
  top.only({"version", "matrix", "base", "snapshot"});
  Lock l;
  if (auto v = top.integer("version"); v && *v != 1)
    top.error(top.where("version"), fmt::format("lock version {} is not one this kiln reads (1)", *v));
  l.matrix = top.str("matrix", true).value_or("");
  for (const toml::table* b : top.tables("base")) {
    TomlFields f(*b, path, diags);
    f.only({"reference", "image_id", "digest", "source"});
    BasePin pin{f.str("reference", true).value_or(""), f.str("image_id").value_or(""), f.str("digest").value_or(""),
                f.str("source", true).value_or("")};
    for (const auto* d : {&pin.image_id, &pin.digest})
      if (!d->empty() && !(d->starts_with("sha256:") && d->size() == 71))
        f.error(f.where(d == &pin.digest ? "digest" : "image_id"), fmt::format("\"{}\" is not a sha256 digest", *d));
    if (pin.image_id.empty() && pin.digest.empty()) f.error(f.where(), "a base needs image_id or digest");
    if (pin.source != "engine" && pin.source != "registry" && !pin.source.empty())
      f.error(f.where("source"), "source must be \"engine\" or \"registry\"");
    l.bases.push_back(std::move(pin));
  }
  for (const toml::table* s : top.tables("snapshot")) {
    TomlFields f(*s, path, diags);
    f.only({"os", "family", "timestamp", "url"});
    Snapshot snap{f.str("os", true).value_or(""), f.str("family", true).value_or(""), f.str("timestamp", true).value_or(""),
                  f.str("url", true).value_or("")};
    if (!snap.timestamp.empty() && !is_timestamp(snap.timestamp))
      f.error(f.where("timestamp"), "timestamp must be YYYYMMDDTHHMMSSZ");
    if (!snap.url.empty() && !(snap.url.starts_with("http://") || snap.url.starts_with("https://")))
      f.error(f.where("url"), "url must be http:// or https://");
    l.snapshots.push_back(std::move(snap));
  }
  if (!diags.empty()) throw InputError(std::move(diags));
  return l;
}

std::optional<Lock> read(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  return parse(read_file(path), path);
}

std::vector<std::string> diff(const Lock& before, const Lock& after) {
  std::vector<std::string> out;
  auto describe = [](const BasePin& b) {
    std::string s = b.digest.empty() ? b.image_id : b.digest;
    if (!b.digest.empty() && !b.image_id.empty()) s += " (image id " + b.image_id + ")";
    return s;
  };
  std::set<std::string> refs;
  for (const auto& b : before.bases) refs.insert(b.reference);
  for (const auto& b : after.bases) refs.insert(b.reference);
  for (const auto& r : refs) {
    const BasePin* a = before.base(r);
    const BasePin* b = after.base(r);
    if (!a) out.push_back(fmt::format("+ base {}: {}", r, describe(*b)));
    else if (!b) out.push_back(fmt::format("- base {}: {}", r, describe(*a)));
    else if (a->digest != b->digest || a->image_id != b->image_id)
      out.push_back(fmt::format("~ base {}: {} -> {}", r, describe(*a), describe(*b)));
  }
  std::set<std::string> oses;
  for (const auto& s : before.snapshots) oses.insert(s.os);
  for (const auto& s : after.snapshots) oses.insert(s.os);
  for (const auto& os : oses) {
    const Snapshot* a = before.snapshot(os);
    const Snapshot* b = after.snapshot(os);
    if (!a) out.push_back(fmt::format("+ snapshot {}: {}", os, b->url));
    else if (!b) out.push_back(fmt::format("- snapshot {}: {}", os, a->url));
    else if (a->url != b->url) out.push_back(fmt::format("~ snapshot {}: {} -> {}", os, a->url, b->url));
  }
  return out;
}

std::string snapshot_timestamp() {
  // KILN_NOW (RFC 3339, UTC) fixes the clock for tests and for relocking a
  // release at a known point in time.
  if (const char* env = std::getenv("KILN_NOW"); env && *env) {
    std::string t;
    for (char c : std::string_view(env))
      if (c != '-' && c != ':') t += c;
    if (!is_timestamp(t)) throw InputError({"KILN_NOW"}, fmt::format("\"{}\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ", env));
    return t;
  }
  return utc_now("%Y%m%dT%H%M%SZ");
}

std::string snapshot_url(const Services& s, std::string_view family, std::string_view timestamp) {
  std::string base = family == "ubuntu" ? s.ubuntu : s.debian;
  if (!base.ends_with('/')) base += '/';
  return base + std::string(timestamp) + "/";
}

Lock make_lock(const plan::Plan& p, const catalog::Catalog& c, const Resolver& resolve, const Services& s,
               const std::string& timestamp) {
  Lock l;
  l.matrix = p.matrix_name;
  std::set<std::string> refs, oses;
  for (const auto& combo : p.combos) {
    if (combo.status != plan::Status::valid) continue;
    if (!combo.base.empty()) refs.insert(combo.base);
    oses.insert(combo.versions.os);
  }
  std::vector<Diagnostic> errors;
  for (const auto& r : refs) {
    std::string why;
    if (auto pin = resolve(r, why)) l.bases.push_back(std::move(*pin));
    else errors.push_back({{p.matrix_path}, fmt::format("base image {} cannot be resolved to a digest: {}", r, why)});
  }
  if (!errors.empty()) throw InputError(std::move(errors));
  for (const auto& os : oses) {
    const catalog::OsInfo* info = c.find_os(os);
    std::string family = info ? info->family : "";
    if (family != "debian" && family != "ubuntu") continue;  // no snapshot service kiln knows
    l.snapshots.push_back({os, family, timestamp, snapshot_url(s, family, timestamp)});
  }
  return l;
}

void apply(const Lock& l, const std::string& lock_file, plan::Plan& p) {
  std::vector<Diagnostic> errors;
  for (auto& combo : p.combos) {
    if (combo.status != plan::Status::valid) continue;
    std::string entry;
    if (!combo.base.empty()) {
      const BasePin* pin = l.base(combo.base);
      if (!pin) {
        errors.push_back({{lock_file}, fmt::format("combination {}: base {} is not in the lock; run `kiln lock --update {}`",
                                                   combo.id, combo.base, p.matrix_path)});
        continue;
      }
      entry += fmt::format("base {} image_id {} digest {}\n", pin->reference, pin->image_id, pin->digest);
      combo.locked_image_id = pin->image_id;
      combo.base = pin->pinned();
    }
    if (const Snapshot* s = l.snapshot(combo.versions.os)) {
      combo.apt_snapshot = s->url;
      entry += fmt::format("snapshot {} {}\n", s->os, s->url);
    }
    combo.lock_entry = entry;
  }
  if (!errors.empty()) throw InputError(std::move(errors));
  p.lock_path = lock_file;
  p.lock_sha256 = sha256_hex(read_file(lock_file));
}

}  // namespace kiln::lock
