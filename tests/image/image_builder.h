// Builds real image archives in memory for tests: layer tars with libarchive's
// writer (plain, gzip, zstd), wrapped in docker-save or OCI layouts.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::testing {

struct TarItem {
  std::string name;
  std::string data;      // regular file contents
  char type = 'f';       // f file, d dir, l symlink, h hardlink
  std::string target;    // link target
};

inline TarItem file(std::string name, std::string data) { return {std::move(name), std::move(data), 'f', {}}; }
inline TarItem dir(std::string name) { return {std::move(name), {}, 'd', {}}; }
inline TarItem sym(std::string name, std::string target) { return {std::move(name), {}, 'l', std::move(target)}; }
inline TarItem hard(std::string name, std::string target) { return {std::move(name), {}, 'h', std::move(target)}; }

inline la_ssize_t append_cb(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

// filter: ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD
inline std::string make_tar(const std::vector<TarItem>& items, int filter = ARCHIVE_FILTER_NONE) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (filter != ARCHIVE_FILTER_NONE && archive_write_add_filter(a, filter) != ARCHIVE_OK)
    throw std::runtime_error(std::string("filter: ") + archive_error_string(a));
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, append_cb, nullptr);
  for (const auto& it : items) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, it.name.c_str());
    archive_entry_set_perm(e, it.type == 'd' ? 0755 : 0644);
    switch (it.type) {
      case 'd': archive_entry_set_filetype(e, AE_IFDIR); break;
      case 'l': archive_entry_set_filetype(e, AE_IFLNK); archive_entry_set_symlink(e, it.target.c_str()); break;
      case 'h': archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_hardlink(e, it.target.c_str()); break;
      default: archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_size(e, it.data.size());
    }
    archive_write_header(a, e);
    if (it.type == 'f' && !it.data.empty()) archive_write_data(a, it.data.data(), it.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// A layer tar of one sparse member: `size` bytes claimed, only `runs`
// (offset, bytes) stored (pax, GNU sparse 1.0, as libarchive writes it).
inline std::string make_sparse_tar(const std::string& name, std::int64_t size,
                                   const std::vector<std::pair<std::int64_t, std::string>>& runs) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, append_cb, nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, size);
  for (const auto& [at, data] : runs) archive_entry_sparse_add_entry(e, at, static_cast<std::int64_t>(data.size()));
  if (archive_write_header(a, e) != ARCHIVE_OK) throw std::runtime_error(std::string("sparse: ") + archive_error_string(a));
  for (const auto& [at, data] : runs) archive_write_data(a, data.data(), data.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

inline std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  std::string h;
  for (unsigned i = 0; i < len; ++i) {
    static const char* x = "0123456789abcdef";
    h += x[md[i] >> 4];
    h += x[md[i] & 15];
  }
  return h;
}

struct Blob {
  std::string name, data;
};

struct TestImage {
  std::vector<std::string> layers;  // tar bytes, lowest first
  nlohmann::json config = {{"architecture", "amd64"}, {"os", "linux"}, {"config", nlohmann::json::object()}};
  std::string tag = "kiln/test:1";

  std::string config_bytes() const {
    nlohmann::json c = config;
    c["rootfs"] = {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}};
    for (const auto& l : layers) c["rootfs"]["diff_ids"].push_back("sha256:" + sha256_hex(l));  // right for plain tars
    return c.dump();
  }

  // docker save: classic "<id>/layer.tar" names (moby < 25) or blobs/sha256 (moby >= 25).
  std::vector<Blob> docker_save(bool blob_names) const {
    std::vector<Blob> out;
    const std::string cfg = config_bytes();
    const std::string cfg_name = blob_names ? "blobs/sha256/" + sha256_hex(cfg) : sha256_hex(cfg) + ".json";
    out.push_back({cfg_name, cfg});
    nlohmann::json m = {{"Config", cfg_name}, {"RepoTags", {tag}}, {"Layers", nlohmann::json::array()}};
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string name = blob_names ? "blobs/sha256/" + sha256_hex(layers[i]) : "layer" + std::to_string(i) + "/layer.tar";
      out.push_back({name, layers[i]});
      m["Layers"].push_back(name);
    }
    out.push_back({"manifest.json", nlohmann::json::array({m}).dump()});
    return out;
  }

  std::vector<Blob> oci(const std::vector<std::string>& media_types = {}) const {
    std::vector<Blob> out;
    auto blob = [&](const std::string& data) {
      const std::string h = sha256_hex(data);
      out.push_back({"blobs/sha256/" + h, data});
      return "sha256:" + h;
    };
    const std::string cfg = config_bytes();
    nlohmann::json man = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                          {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", blob(cfg)}, {"size", cfg.size()}}},
                          {"layers", nlohmann::json::array()}};
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string mt = i < media_types.size() ? media_types[i] : "application/vnd.oci.image.layer.v1.tar";
      man["layers"].push_back({{"mediaType", mt}, {"digest", blob(layers[i])}, {"size", layers[i].size()}});
    }
    const std::string mb = man.dump();
    const std::string md = blob(mb);
    nlohmann::json index = {{"schemaVersion", 2}, {"manifests", {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                            {"digest", md}, {"size", mb.size()}, {"annotations", {{"org.opencontainers.image.ref.name", "1"}}}}}}};
    out.push_back({"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"});
    out.push_back({"index.json", index.dump()});
    return out;
  }
};

inline std::string tar_of(const std::vector<Blob>& blobs, int filter = ARCHIVE_FILTER_NONE) {
  std::vector<TarItem> items;
  for (const auto& b : blobs) items.push_back(file(b.name, b.data));
  return make_tar(items, filter);
}

inline void write_dir(const std::filesystem::path& root, const std::vector<Blob>& blobs) {
  for (const auto& b : blobs) {
    const auto p = root / b.name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << b.data;
  }
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace kiln::testing
