// The audit layer cache (audit/layer_cache.h): an image read through it gives
// the same final filesystem, components and scans as one read whole, while
// layers it holds are not read; damaged entries are misses, never errors;
// the size bound evicts the least recently used.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "audit/audit.h"
#include "audit/layer_cache.h"
#include "image_builder.h"

using namespace kiln;
using namespace kiln::audit;
using namespace kiln::testing;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kiln-layer-cache-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  ~TempDir() { fs::remove_all(path); }
};

// An ELF header (little-endian ELF64) and nothing else: chosen by its magic
// whatever its name, and read; a cached layer must give the same result.
std::string tiny_elf() {
  std::string elf(64, '\0');
  elf.replace(0, 4, "\x7f" "ELF");
  elf[4] = 2;  // ELFCLASS64
  elf[5] = 1;  // ELFDATA2LSB
  elf[6] = 1;  // EV_CURRENT
  return elf;
}

std::string base_layer() {
  return make_tar({
      file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n"),
      file("usr/local/cuda-12.4/version.json", R"({"cuda":{"version":"12.4.1"},"cuda_cudart":{"version":"12.4.127"}})"),
      file("usr/lib/libold_cuda.so", "not an ELF, whatever its name says: no scan at all, and the cache says so"),
      file("usr/bin/tool", tiny_elf()),
      file("opt/data/a.txt", "a"),
      file("opt/data/b.txt", "b"),
      file("opt/gone/x.txt", "x"),
      file("usr/lib/libreal.so", "real"),
      hard("usr/lib/libreal.so.1", "usr/lib/libreal.so"),
      sym("usr/lib/libreal.so.0", "libreal.so.1"),
  });
}

// An upper layer: whiteouts and an opaque directory hide lower files.
std::string upper_layer(const std::string& marker) {
  return make_tar({
      file("opt/data/.wh..wh..opq", ""),
      file("opt/data/c.txt", marker),
      file("opt/.wh.gone", ""),
      file("usr/lib/.wh.libold_cuda.so", ""),
      file("usr/lib/libnew_cuda.so", "also not an ELF, of a length an ELF file could have: " + marker),
      file("opt/app/ext.so", tiny_elf() + marker),
  });
}

std::string image_tar(const std::string& marker) {
  TestImage img;
  img.layers = {base_layer(), upper_layer(marker)};
  img.config["config"] = {{"Env", {"CUDA_VERSION=12.4.1"}}};
  return tar_of(img.oci());
}

ScannedImage read(const std::string& tar, LayerCache* cache) {
  return read_scanned(image::tar_source(std::string(tar)), {}, cache);
}

void same_view(const ScannedImage& a, const ScannedImage& b) {
  REQUIRE(a.fs.files().size() == b.fs.files().size());
  for (const auto& [path, f] : a.fs.files()) {
    const image::FileEntry* g = b.fs.find(path);
    REQUIRE(g);
    CHECK(int(g->type) == int(f.type));
    CHECK(g->size == f.size);
    CHECK(g->link_target == f.link_target);
    CHECK(g->layer == f.layer);
    CHECK(g->member == f.member);
  }
  const Components ca = detect_components(a.fs), cb = detect_components(b.fs);
  CHECK(ca.cuda_runtime == cb.cuda_runtime);
  CHECK(ca.cuda_toolkit == cb.cuda_toolkit);
  REQUIRE(ca.os);
  REQUIRE(cb.os);
  CHECK(ca.os->pretty_name == cb.os->pretty_name);
  // Every member the ELF scanner looked at has an answer (a scan, or null:
  // not ELF), whether read or cached: nothing is read again from the image.
  CHECK(a.pre.size() == b.pre.size());
  std::size_t elves = 0;
  for (const auto& [at, scan] : a.pre) {
    const auto it = b.pre.find(at);
    REQUIRE(it != b.pre.end());
    CHECK(bool(it->second) == bool(scan));
    elves += bool(scan);
  }
  CHECK(elves == 2);
  const auto sa = scan_image_binaries(a.fs, &a.pre);
  const auto sb = scan_image_binaries(b.fs, &b.pre);
  REQUIRE(sa.size() == 2);  // usr/bin/tool, opt/app/ext.so
  REQUIRE(sa.size() == sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].path == sb[i].path);
    CHECK(sa[i].error == sb[i].error);
    CHECK(sa[i].info.has_value() == sb[i].info.has_value());
  }
}

}  // namespace

TEST_CASE("layer cache: a shared base layer is read once, the merged view is the same", "[audit][cache]") {
  TempDir dir;
  LayerCache cache(dir.path);
  const std::string first = image_tar("first"), second = image_tar("second");

  const ScannedImage a = read(first, &cache);
  CHECK(a.layers_read == 2);
  CHECK(a.layers_cached == 0);

  const ScannedImage b = read(second, &cache);
  CHECK(b.layers_read == 1);  // only the upper layer, which differs
  CHECK(b.layers_cached == 1);
  CHECK(b.fs.layers()[0].from_cache);
  CHECK_FALSE(b.fs.layers()[1].from_cache);
  same_view(b, read(second, nullptr));

  // The whiteouts of the (read) upper layer hid files of the (cached) base.
  CHECK_FALSE(b.fs.find("opt/data/a.txt"));
  CHECK_FALSE(b.fs.find("opt/gone/x.txt"));
  CHECK_FALSE(b.fs.find("usr/lib/libold_cuda.so"));
  CHECK(b.fs.find("opt/data/c.txt"));
  // A file of a cached layer is still read from the image when asked for.
  CHECK(b.fs.read_file("usr/lib/libreal.so.0") == std::optional<std::string>("real"));

  // Everything from the cache: the same again.
  const ScannedImage c = read(second, &cache);
  CHECK(c.layers_read == 0);
  CHECK(c.layers_cached == 2);
  same_view(c, read(second, nullptr));
  CHECK(cache.warnings().empty());
}

TEST_CASE("layer cache: damaged entries are misses and are rewritten", "[audit][cache]") {
  TempDir dir;
  const std::string tar = image_tar("x");
  {
    LayerCache cache(dir.path);
    read(tar, &cache);
  }
  std::vector<fs::path> entries;
  for (const auto& e : fs::recursive_directory_iterator(dir.path))
    if (e.path().extension() == ".layer") entries.push_back(e.path());
  REQUIRE(entries.size() == 2);
  std::ofstream(entries[0], std::ios::trunc) << "garbage";
  {  // a flipped byte in the body: the checksum catches it
    std::fstream f(entries[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-2, std::ios::end);
    char ch = 0;
    f.get(ch);
    f.seekp(-2, std::ios::end);
    f.put(char(ch ^ 0x5a));
  }
  LayerCache cache(dir.path);
  const ScannedImage a = read(tar, &cache);
  CHECK(a.layers_read == 2);
  CHECK(a.layers_cached == 0);
  CHECK(cache.warnings().size() == 2);
  same_view(a, read(tar, nullptr));
  LayerCache again(dir.path);
  CHECK(read(tar, &again).layers_cached == 2);  // rewritten
  CHECK(again.warnings().empty());
}

TEST_CASE("layer cache: unverified layers are not stored; the size bound evicts the oldest", "[audit][cache]") {
  TempDir dir;
  LayerCache cache(dir.path);
  image::ReadOptions trusting;
  trusting.verify_digests = false;
  read_scanned(image::tar_source(image_tar("u")), trusting, &cache);
  CHECK_FALSE(fs::exists(dir.path / "v1"));

  LayerCache small(dir.path, 1);  // any entry is over the bound: each write evicts what it can
  read(image_tar("s"), &small);
  std::size_t left = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) left += e.path().extension() == ".layer";
  CHECK(left == 0);
}
