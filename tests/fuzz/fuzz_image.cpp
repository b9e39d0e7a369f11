// libFuzzer for the image reader. The first byte picks what the rest is:
//   0   -> the outer archive itself (docker save / OCI tar);
//   odd -> one layer tar, wrapped in a valid OCI layout with correct digests,
//          so mutations reach layer application (whiteouts, links, paths);
//   even-> two layers (the rest split in half), same wrapping;
//   bit 2 set -> the same, read from a file (seeks, regions, hash threads).
// Then every path is resolved and read back. ImageError is the only allowed
// failure.
#include <archive.h>
#include <archive_entry.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/evp.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "image/image.h"

namespace {

la_ssize_t append(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string sha256(const std::string& s) {
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

std::string oci_tar(const std::vector<std::string>& layers) {
  std::vector<std::pair<std::string, std::string>> blobs;
  auto blob = [&](const std::string& d) {
    blobs.emplace_back("blobs/sha256/" + sha256(d), d);
    return "sha256:" + sha256(d);
  };
  const std::string cfg = R"({"os":"linux","architecture":"amd64","config":{"Env":["A=1"]}})";
  nlohmann::json man = {{"schemaVersion", 2}, {"config", {{"digest", blob(cfg)}, {"size", cfg.size()}}}, {"layers", nlohmann::json::array()}};
  for (const auto& l : layers) man["layers"].push_back({{"digest", blob(l)}, {"size", l.size()}});
  const std::string m = man.dump();
  nlohmann::json index = {{"schemaVersion", 2}, {"manifests", {{{"digest", blob(m)}, {"size", m.size()}}}}};
  blobs.emplace_back("index.json", index.dump());
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(a, &out, nullptr, append, nullptr);
  for (const auto& [name, data] : blobs) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, data.size());
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

void exercise(const kiln::image::ImageFs& fs) {
  std::vector<std::string> paths;
  for (const auto& [path, entry] : fs.files()) {
    paths.push_back(path);
    try {
      (void)fs.resolve(path);
    } catch (const kiln::image::ImageError&) {
    }
  }
  try {
    fs.read_files(paths, [](const std::string&, std::span<const std::byte>) {}, 1u << 20);
  } catch (const kiln::image::ImageError&) {
  }
}

// A member that lies in the file must have the bytes its stream gives. A
// sparse one is read as a library scan reads it: its stored runs only.
void check_region(kiln::image::ByteStream& in) {
  const auto r = in.region();
  std::string streamed, direct;
  std::array<std::byte, 4096> buf;
  if (in.sparse()) {
    std::uint64_t at = 0, last = 0;
    while (std::size_t n = in.read_run(buf.data(), buf.size(), at)) {
      if (at < last) __builtin_trap();  // runs come in order
      last = at + n;
    }
    if (r) __builtin_trap();  // a sparse member never lies plainly in a file
    return;
  }
  while (std::size_t n = in.read(buf.data(), buf.size())) streamed.append(reinterpret_cast<const char*>(buf.data()), n);
  if (!r) return;
  direct.resize(r->size);
  const ssize_t got = ::pread(r->file->fd(), direct.data(), direct.size(), static_cast<off_t>(r->offset));
  if (got != static_cast<ssize_t>(direct.size()) || direct != streamed) __builtin_trap();
}

}  // namespace

// The first byte's bit 2 (4) reads the archive from a file (a memfd), where
// layers are walked with seeks and hashed on another thread.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string tar;
  if ((data[0] & ~4) == 0) tar = rest;
  else if (data[0] & 1) tar = oci_tar({rest});
  else tar = oci_tar({rest.substr(0, rest.size() / 2), rest.substr(rest.size() / 2)});
  kiln::image::ReadOptions opt;
  opt.max_entries = 100000;
  // Small bounds: a bomb or a sparse member among the mutations
  // ends as an ImageError well under the fuzzer's memory limit.
  opt.limits.expansion_floor = 16u << 20;
  opt.limits.max_member_size = 64u << 20;
  opt.limits.max_total_size = 256u << 20;
  opt.skip_unsafe_entries = data[0] & 2;
  opt.on_file = [](const std::string&, std::size_t, std::size_t, std::uint64_t, kiln::image::ByteStream& in) {
    check_region(in);
  };
  int fd = -1;
  try {
    std::shared_ptr<kiln::image::BlobSource> src;
    if (data[0] & 4) {
      fd = ::memfd_create("kiln-fuzz", MFD_CLOEXEC);
      if (fd < 0 || ::write(fd, tar.data(), tar.size()) != static_cast<ssize_t>(tar.size())) __builtin_trap();
      src = kiln::image::tar_source("/proc/self/fd/" + std::to_string(fd), opt.limits);
    } else {
      src = kiln::image::tar_source(std::span<const std::byte>(reinterpret_cast<const std::byte*>(tar.data()), tar.size()));
    }
    const auto fs = kiln::image::read_image(src, opt);
    exercise(fs);
  } catch (const kiln::image::ImageError&) {
  }
  if (fd >= 0) ::close(fd);
  return 0;
}
