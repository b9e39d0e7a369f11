// Which blobs make up the image: docker-save manifest.json, or an OCI
// index.json -> (index ->) manifest -> config + layers.
#include <nlohmann/json.hpp>

#include "image/internal.h"

namespace kiln::image::detail {
namespace {

using nlohmann::json;
constexpr std::size_t kJsonLimit = 16u << 20;  // manifests and configs are small

json parse_json(BlobSource& src, const std::string& name, const std::string& digest = {}) {
  const std::string text = read_blob(src, name, kJsonLimit, digest);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw ImageError(src.describe() + ": " + name + ": bad JSON: " + e.what());
  }
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string blob_of(const BlobSource& src, const std::string& digest) {
  if (!is_sha256_digest(digest)) throw ImageError(src.describe() + ": unsupported or malformed digest '" + digest + "'");
  return "blobs/sha256/" + digest.substr(7);
}

// "blobs/sha256/<hex>" names its own digest; "<id>/layer.tar" does not. A
// legacy docker save (moby before 25) names the config "<hex>.json", <hex>
// being its digest: the image id, checked like any other (the SBOM and the
// audit name the image by it).
std::string digest_from_name(const std::string& name) {
  const std::string prefix = "blobs/sha256/";
  if (name.size() == 64 + 5 && name.ends_with(".json") && name.find('/') == std::string::npos) {
    std::string d = "sha256:" + name.substr(0, 64);
    return is_sha256_digest(d) ? d : std::string();
  }
  if (!name.starts_with(prefix)) return {};
  std::string d = "sha256:" + name.substr(prefix.size());
  return is_sha256_digest(d) ? d : std::string();
}

void read_config(BlobSource& src, const std::string& name, const std::string& digest, ImageConfig& c) {
  const json j = parse_json(src, name, digest);
  if (!j.is_object()) throw ImageError(src.describe() + ": " + name + ": config is not an object");
  c.digest = digest;
  c.os = str(j, "os");
  c.architecture = str(j, "architecture");
  if (auto cfg = j.find("config"); cfg != j.end() && cfg->is_object()) {
    if (auto env = cfg->find("Env"); env != cfg->end() && env->is_array())
      for (const auto& kv : *env) {
        if (!kv.is_string()) continue;
        const auto s = kv.get<std::string>();
        const auto eq = s.find('=');
        c.env[s.substr(0, eq)] = eq == std::string::npos ? "" : s.substr(eq + 1);
      }
    if (auto labels = cfg->find("Labels"); labels != cfg->end() && labels->is_object())
      for (const auto& [k, v] : labels->items())
        if (v.is_string()) c.labels[k] = v.get<std::string>();
  }
  if (auto rootfs = j.find("rootfs"); rootfs != j.end() && rootfs->is_object())
    if (auto ids = rootfs->find("diff_ids"); ids != rootfs->end() && ids->is_array())
      for (const auto& d : *ids)
        if (d.is_string()) c.diff_ids.push_back(d.get<std::string>());
}

Layout read_docker_save(BlobSource& src, const ReadOptions& opt) {
  const json m = parse_json(src, "manifest.json");
  if (!m.is_array() || m.empty()) throw ImageError(src.describe() + ": manifest.json lists no image");
  Layout out;
  const json* pick = nullptr;
  for (const auto& img : m) {
    if (!img.is_object()) continue;
    auto tags = img.find("RepoTags");
    bool match = opt.ref.empty();
    if (tags != img.end() && tags->is_array())
      for (const auto& t : *tags)
        if (t.is_string() && t.get<std::string>() == opt.ref) match = true;
    if (match && !pick) pick = &img;
  }
  if (!pick) throw ImageError(src.describe() + ": no image tagged '" + opt.ref + "' in manifest.json");
  if (m.size() > 1 && opt.ref.empty()) out.warnings.push_back("archive holds " + std::to_string(m.size()) + " images; reading the first");
  const std::string config = str(*pick, "Config");
  if (config.empty()) throw ImageError(src.describe() + ": manifest.json: image has no Config");
  read_config(src, config, digest_from_name(config), out.config);
  if (auto tags = pick->find("RepoTags"); tags != pick->end() && tags->is_array())
    for (const auto& t : *tags)
      if (t.is_string()) out.config.repo_tags.push_back(t.get<std::string>());
  auto layers = pick->find("Layers");
  if (layers == pick->end() || !layers->is_array()) throw ImageError(src.describe() + ": manifest.json: image has no Layers");
  for (const auto& l : *layers) {
    if (!l.is_string()) throw ImageError(src.describe() + ": manifest.json: layer name is not a string");
    LayerInfo li;
    li.blob = l.get<std::string>();
    li.digest = digest_from_name(li.blob);
    li.media_type = "application/vnd.docker.image.rootfs.diff.tar";
    out.layers.push_back(std::move(li));
  }
  return out;
}

bool is_index(const std::string& media_type) {
  return media_type == "application/vnd.oci.image.index.v1+json" ||
         media_type == "application/vnd.docker.distribution.manifest.list.v2+json";
}

bool platform_matches(const json& desc, const std::string& platform) {
  auto p = desc.find("platform");
  if (p == desc.end() || !p->is_object()) return true;  // unstated: take it
  return str(*p, "os") + "/" + str(*p, "architecture") == platform;
}

// Picks a manifest descriptor from an index: by ref name at the top level,
// by platform in nested (multi-platform) indexes.
const json& pick_descriptor(BlobSource& src, const json& index, const ReadOptions& opt, bool top, std::string& ref) {
  auto ms = index.find("manifests");
  if (ms == index.end() || !ms->is_array() || ms->empty()) throw ImageError(src.describe() + ": index lists no manifests");
  for (const auto& d : *ms) {
    if (!d.is_object()) continue;
    std::string name;
    if (auto a = d.find("annotations"); a != d.end() && a->is_object()) name = str(*a, "org.opencontainers.image.ref.name");
    const bool ref_ok = !top || opt.ref.empty() || name == opt.ref || name == opt.ref.substr(opt.ref.rfind(':') + 1);
    if (ref_ok && (top || platform_matches(d, opt.platform))) {
      if (!name.empty()) ref = name;
      return d;
    }
  }
  throw ImageError(src.describe() + ": no manifest for " + (top && !opt.ref.empty() ? "ref '" + opt.ref + "'" : "platform " + opt.platform));
}

Layout read_oci(BlobSource& src, const ReadOptions& opt) {
  json doc = parse_json(src, "index.json");
  std::string ref;
  for (int depth = 0;; ++depth) {
    if (depth > 4) throw ImageError(src.describe() + ": image indexes nested too deep");
    if (!doc.is_object()) throw ImageError(src.describe() + ": index is not an object");
    const json desc = pick_descriptor(src, doc, opt, depth == 0, ref);
    const std::string digest = str(desc, "digest");
    doc = parse_json(src, blob_of(src, digest), digest);
    const std::string mt = !str(desc, "mediaType").empty() ? str(desc, "mediaType") : str(doc, "mediaType");
    if (!is_index(mt) && !doc.contains("manifests")) break;
  }
  Layout out;
  auto cfg = doc.find("config");
  if (cfg == doc.end() || !cfg->is_object()) throw ImageError(src.describe() + ": manifest has no config");
  const std::string cdigest = str(*cfg, "digest");
  read_config(src, blob_of(src, cdigest), cdigest, out.config);
  if (!ref.empty()) out.config.repo_tags.push_back(ref);
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) throw ImageError(src.describe() + ": manifest has no layers");
  for (const auto& l : *layers) {
    if (!l.is_object()) throw ImageError(src.describe() + ": manifest: bad layer descriptor");
    LayerInfo li;
    li.digest = str(l, "digest");
    li.blob = blob_of(src, li.digest);
    li.media_type = str(l, "mediaType");
    if (auto s = l.find("size"); s != l.end() && s->is_number_unsigned()) li.size = s->get<std::uint64_t>();
    out.layers.push_back(std::move(li));
  }
  return out;
}

}  // namespace

Layout read_layout(BlobSource& src, const ReadOptions& opt) {
  // docker save (moby >= 25) writes both; manifest.json is the simpler path.
  if (src.exists("manifest.json")) return read_docker_save(src, opt);
  if (src.exists("index.json")) return read_oci(src, opt);
  throw ImageError(src.describe() + ": neither a docker-save archive (manifest.json) nor an OCI layout (index.json)");
}

}  // namespace kiln::image::detail
