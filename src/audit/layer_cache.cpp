// Layer cache entries: a header line (format, scanner revision, sha256 of
// the body) and a CBOR body. LRU by file mtime, touched on every hit.
#include "audit/layer_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/sha256.h"

namespace kiln::audit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kMagic = "kiln-audit-layer";
// Bump when what a layer's audit records changes: the fat-binary reader's
// results (fatbin.h), which members are scanned, which files are kept for
// detect_components (is_component_file), or this serialisation. Entries of
// another revision are misses and are rewritten.
// 2: every ELF member by its magic (audit/scan.h), non-ELF members recorded
//    as such ("not_elf"); the pread fat-binary reader; big-endian ELF = no device code.
constexpr int kRevision = 2;
// What is serialised below, field by field: a field added to one of these
// (or to image::LayerRecord) must be written and read here and kRevision
// bumped, or a cached layer would silently lose it. These sizes (x86_64,
// libstdc++) make that a compile error rather than a stale answer.
static_assert(sizeof(FatbinInfo) == 184 && sizeof(FatbinEntry) == 48 && sizeof(FatbinScan) == 256,
              "audit::FatbinInfo/FatbinEntry/FatbinScan changed: update layer_cache.cpp's (de)serialisation and bump kRevision");
static_assert(sizeof(image::FileEntry) == 72 && sizeof(image::LayerRecord) == 144,
              "image::FileEntry/LayerRecord changed: update layer_cache.cpp's (de)serialisation and bump kRevision");
constexpr std::uint64_t kMaxEntryBytes = std::uint64_t(64) << 20;  // a damaged size field cannot make us hold more

json arch_list(const std::vector<Arch>& v) {
  json out = json::array();
  for (const auto& a : v) out.push_back({a.major, a.minor, a.variant});
  return out;
}
std::vector<Arch> arch_list(const json& j) {
  std::vector<Arch> out;
  for (const auto& a : j) out.push_back({a.at(0).get<unsigned>(), a.at(1).get<unsigned>(), a.at(2).get<char>()});
  return out;
}

json to_cbor_json(const FatbinInfo& i) {
  json entries = json::array();
  for (const auto& e : i.entries)
    entries.push_back({int(e.kind), e.arch.major, e.arch.minor, e.arch.variant, int(e.compression), e.header_size, e.payload_size,
                       e.uncompressed_size, e.version_major, e.version_minor, e.relocatable, e.counted});
  return {{"sections", i.sections},          {"containers", i.containers}, {"entries", std::move(entries)},
          {"unknown", i.unknown_entries},    {"wrappers", i.wrappers},     {"unresolved", i.wrappers_unresolved},
          {"found_by", int(i.found_by)},     {"linked", i.linked},         {"sass", arch_list(i.sass)},
          {"ptx", arch_list(i.ptx)},         {"ignored_sass", arch_list(i.ignored_sass)},
          {"ignored_ptx", arch_list(i.ignored_ptx)}};
}

FatbinInfo fatbin_info(const json& j) {
  FatbinInfo i;
  i.sections = j.at("sections").get<std::vector<std::string>>();
  i.containers = j.at("containers").get<std::size_t>();
  for (const auto& e : j.at("entries")) {
    FatbinEntry f;
    f.kind = EntryKind(e.at(0).get<int>());
    f.arch = {e.at(1).get<unsigned>(), e.at(2).get<unsigned>(), e.at(3).get<char>()};
    f.compression = Compression(e.at(4).get<int>());
    f.header_size = e.at(5).get<std::uint32_t>();
    f.payload_size = e.at(6).get<std::uint64_t>();
    f.uncompressed_size = e.at(7).get<std::uint64_t>();
    f.version_major = e.at(8).get<std::uint16_t>();
    f.version_minor = e.at(9).get<std::uint16_t>();
    f.relocatable = e.at(10).get<bool>();
    f.counted = e.at(11).get<bool>();
    i.entries.push_back(f);
  }
  i.unknown_entries = j.at("unknown").get<std::size_t>();
  i.wrappers = j.at("wrappers").get<std::size_t>();
  i.wrappers_unresolved = j.at("unresolved").get<std::size_t>();
  i.found_by = FoundBy(j.at("found_by").get<int>());
  i.linked = j.at("linked").get<bool>();
  i.sass = arch_list(j.at("sass"));
  i.ptx = arch_list(j.at("ptx"));
  i.ignored_sass = arch_list(j.at("ignored_sass"));
  i.ignored_ptx = arch_list(j.at("ignored_ptx"));
  return i;
}

json body_of(const LayerEntry& e) {
  const auto& r = e.record;
  json adds = json::array();
  for (const auto& [path, f] : r.adds)
    adds.push_back({path, int(f.type), f.size, f.mode, f.link_target, f.member});
  json kept = json::array();
  for (const auto& [m, bytes] : r.kept)
    kept.push_back({m, json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()))});
  json scans = json::array(), not_elf = json::array();
  for (const auto& [m, s] : e.scans) {
    if (!s) {
      not_elf.push_back(m);
      continue;
    }
    scans.push_back({m, s->path, s->error, s->info ? to_cbor_json(*s->info) : json()});
  }
  return {{"opaque", r.opaque_dirs}, {"whiteouts", r.whiteouts}, {"adds", std::move(adds)},
          {"kept", std::move(kept)}, {"warnings", r.warnings},   {"scans", std::move(scans)},
          {"not_elf", std::move(not_elf)}};
}

LayerEntry entry_of(const json& j) {
  LayerEntry e;
  e.record.opaque_dirs = j.at("opaque").get<std::vector<std::string>>();
  e.record.whiteouts = j.at("whiteouts").get<std::vector<std::string>>();
  for (const auto& a : j.at("adds")) {
    image::FileEntry f;
    f.type = image::FileType(a.at(1).get<int>());
    f.size = a.at(2).get<std::uint64_t>();
    f.mode = a.at(3).get<std::uint32_t>();
    f.link_target = a.at(4).get<std::string>();
    f.member = a.at(5).get<std::size_t>();
    e.record.adds.emplace_back(a.at(0).get<std::string>(), std::move(f));
  }
  for (const auto& k : j.at("kept")) {
    const auto& bin = k.at(1).get_binary();
    e.record.kept.emplace(k.at(0).get<std::size_t>(), std::string(bin.begin(), bin.end()));
  }
  e.record.warnings = j.at("warnings").get<std::vector<std::string>>();
  for (const auto& s : j.at("scans")) {
    FatbinScan scan;
    scan.path = s.at(1).get<std::string>();
    scan.error = s.at(2).get<std::string>();
    if (!s.at(3).is_null()) scan.info = fatbin_info(s.at(3));
    e.scans.emplace_back(s.at(0).get<std::size_t>(), std::move(scan));
  }
  for (const auto& m : j.at("not_elf")) e.scans.emplace_back(m.get<std::size_t>(), std::nullopt);
  return e;
}

std::string header_line(std::string_view body_sha) {
  return std::string(kMagic) + " " + std::to_string(kRevision) + " " + std::string(body_sha) + "\n";
}

std::optional<std::uint64_t> parse_size(const char* text) {
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text, &end, 10);
  std::uint64_t unit = 1;
  switch (*end) {
    case 'K': case 'k': unit = 1ull << 10; ++end; break;
    case 'M': case 'm': unit = 1ull << 20; ++end; break;
    case 'G': case 'g': unit = 1ull << 30; ++end; break;
    default: break;
  }
  if (end == text || (*end && std::string_view(end) != "B" && std::string_view(end) != "iB")) return std::nullopt;
  return n * unit;
}

}  // namespace

LayerCache::LayerCache(fs::path dir, std::uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}

fs::path LayerCache::default_dir() {
  if (const char* d = std::getenv("KILN_AUDIT_CACHE"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "kiln" / "audit";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "kiln" / "audit";
  return fs::temp_directory_path() / "kiln-audit-cache";
}

std::uint64_t LayerCache::default_max_bytes() {
  return parse_size(std::getenv("KILN_AUDIT_CACHE_SIZE")).value_or(kDefaultMaxBytes);
}

std::string cache_key(const image::LayerInfo& layer, const std::string& diff_id) {
  const std::string& d = !layer.digest.empty() ? layer.digest : diff_id;
  return is_sha256_digest(d) ? d : std::string();
}

fs::path LayerCache::path_of(const std::string& digest) const {
  const std::string hex = digest.substr(7);
  return dir_ / ("v" + std::to_string(kRevision)) / hex.substr(0, 2) / (hex + ".layer");
}

std::optional<LayerEntry> LayerCache::get(const std::string& digest) {
  if (cache_key({.digest = digest}, {}).empty()) return std::nullopt;
  const fs::path p = path_of(digest);
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec || size > kMaxEntryBytes) return std::nullopt;  // absent (or not ours to hold)
  try {
    std::ifstream in(p, std::ios::binary);
    std::string header, body;
    if (!std::getline(in, header)) throw std::runtime_error("no header");
    header += '\n';
    body.assign(std::istreambuf_iterator<char>(in), {});
    if (header != header_line(sha256_hex(body))) throw std::runtime_error("header or checksum does not match");
    LayerEntry e = entry_of(json::from_cbor(body));
    fs::last_write_time(p, fs::file_time_type::clock::now(), ec);  // most recently used
    return e;
  } catch (const std::exception& ex) {
    warnings_.push_back("audit cache: ignored the damaged entry " + p.string() + " (" + ex.what() + "); rewriting it");
    return std::nullopt;
  }
}

void LayerCache::put(const std::string& digest, const LayerEntry& entry) {
  if (write_failed_ || cache_key({.digest = digest}, {}).empty()) return;
  const fs::path p = path_of(digest);
  try {
    std::vector<std::uint8_t> cbor = json::to_cbor(body_of(entry));
    const std::string body(cbor.begin(), cbor.end());
    if (body.size() > kMaxEntryBytes) return;  // a layer of millions of files: not worth keeping
    fs::create_directories(p.parent_path());
    const fs::path tmp = p.string() + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << header_line(sha256_hex(body)) << body;
      out.close();
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    fs::rename(tmp, p);
  } catch (const std::exception& ex) {
    write_failed_ = true;
    warnings_.push_back("audit cache: cannot write to " + dir_.string() + " (" + ex.what() + "); layers are not cached");
    return;
  }
  evict();
}

// Least recently used first, down to 90% of the bound (so a full cache is
// not trimmed again at every write).
void LayerCache::evict() {
  std::vector<std::pair<fs::file_time_type, std::pair<fs::path, std::uint64_t>>> entries;
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_ / ("v" + std::to_string(kRevision)), ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().extension() != ".layer") continue;
    const auto size = it->file_size(ec);
    const auto when = it->last_write_time(ec);
    if (ec) continue;
    total += size;
    entries.push_back({when, {it->path(), size}});
  }
  if (total <= max_bytes_) return;
  std::sort(entries.begin(), entries.end());
  for (const auto& [when, e] : entries) {
    if (total <= max_bytes_ / 10 * 9) break;
    if (fs::remove(e.first, ec)) total -= e.second;
  }
}

}  // namespace kiln::audit
