#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <functional>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>

#include "image/image.h"
#include "image_builder.h"

using namespace kiln::image;
using namespace kiln::testing;

namespace {

// Three layers exercising every rule: opaque dir, whiteouts (file and dir),
// overwrite, symlinks (relative, absolute, chained), a hardlink, and three
// compressions.
TestImage layered_image() {
  TestImage img;
  img.layers.push_back(make_tar({
      dir("etc/"), dir("usr/"), dir("usr/lib/"),
      file("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
      sym("etc/os-release", "../usr/lib/os-release"),
      file("./opt/old/a.txt", "a"), file("opt/old/b.txt", "b"), file("opt/keep/x", "x0"),
      file("tmp/gone.txt", "bye"), file("var/cache/one", "1"), file("var/cache/sub/two", "2"),
      file("usr/local/cuda-13.0/lib64/libcudart.so.13.0.96", "CUDART"),
      sym("usr/local/cuda-13.0/lib64/libcudart.so.13", "libcudart.so.13.0.96"),
      sym("usr/local/cuda", "/usr/local/cuda-13.0"),
      file("dirbecomesfile/inner", "i"),
  }));
  img.layers.push_back(make_tar({
      file("opt/old/c.txt", "c"),  // before the opaque marker: order must not matter
      file("opt/old/.wh..wh..opq", ""),
      file("tmp/.wh.gone.txt", ""),
      file("usr/bin/python3.11", "PYTHON"),
      hard("usr/bin/python3", "usr/bin/python3.11"),
      file("opt/keep/x", "x1"),
  }, ARCHIVE_FILTER_GZIP));
  img.layers.push_back(make_tar({
      file("var/.wh.cache", ""),
      file("dirbecomesfile", "now a file"),
  }, ARCHIVE_FILTER_ZSTD));
  img.config["config"] = {{"Env", {"PATH=/usr/bin", "CUDA_VERSION=13.0.1", "NVIDIA_REQUIRE_CUDA=cuda>=13.0 brand=tesla,driver>=535"}},
                          {"Labels", {{"org.opencontainers.image.version", "1.2"}}}};
  return img;
}

void check_layered(const ImageFs& fs) {
  const auto& f = fs.files();
  CHECK(fs.layers().size() == 3);
  CHECK(f.count("opt/old/c.txt"));
  CHECK_FALSE(f.count("opt/old/a.txt"));
  CHECK_FALSE(f.count("opt/old/b.txt"));
  CHECK(f.count("opt/old") == 0);  // only implied by c.txt (no dir member)
  CHECK_FALSE(f.count("tmp/gone.txt"));
  CHECK_FALSE(f.count("var/cache"));
  CHECK_FALSE(f.count("var/cache/one"));
  CHECK_FALSE(f.count("var/cache/sub/two"));
  CHECK_FALSE(f.count("dirbecomesfile/inner"));
  REQUIRE(f.count("dirbecomesfile"));
  CHECK(f.at("dirbecomesfile").layer == 2);
  REQUIRE(f.count("opt/keep/x"));
  CHECK(f.at("opt/keep/x").layer == 1);
  CHECK(f.at("opt/keep/x").size == 2);
  CHECK(f.at("etc/os-release").type == FileType::symlink);
  CHECK(f.at("etc/os-release").link_target == "../usr/lib/os-release");
  CHECK(f.at("usr/bin/python3").type == FileType::hardlink);
  CHECK(f.at("usr/bin/python3").size == 6);
  CHECK(f.at("etc").type == FileType::directory);

  CHECK(fs.resolve("/etc/os-release") == std::optional<std::string>("usr/lib/os-release"));
  CHECK(fs.resolve("usr/local/cuda/lib64/libcudart.so.13") ==
        std::optional<std::string>("usr/local/cuda-13.0/lib64/libcudart.so.13.0.96"));
  CHECK(fs.resolve("usr/local/cuda/lib64/nothing") == std::nullopt);

  CHECK(fs.read_file("etc/os-release") == std::optional<std::string>("ID=debian\nVERSION_ID=\"12\"\n"));
  CHECK(fs.read_file("usr/local/cuda/lib64/libcudart.so.13") == std::optional<std::string>("CUDART"));
  CHECK(fs.read_file("opt/keep/x") == std::optional<std::string>("x1"));
  CHECK(fs.read_file("usr/bin/python3") == std::optional<std::string>("PYTHON"));
  CHECK(fs.read_file("tmp/gone.txt") == std::nullopt);

  std::map<std::string, std::string> got;
  fs.read_files({"opt/old/c.txt", "dirbecomesfile", "usr/lib/os-release", "missing"},
                [&](const std::string& p, std::span<const std::byte> b) { got[p] = std::string(reinterpret_cast<const char*>(b.data()), b.size()); });
  CHECK(got == std::map<std::string, std::string>{{"dirbecomesfile", "now a file"}, {"opt/old/c.txt", "c"}, {"usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n"}});

  const auto& c = fs.config();
  CHECK(c.env.at("CUDA_VERSION") == "13.0.1");
  CHECK(c.env.at("NVIDIA_REQUIRE_CUDA") == "cuda>=13.0 brand=tesla,driver>=535");
  CHECK(c.labels.at("org.opencontainers.image.version") == "1.2");
  CHECK(c.os == "linux");
  CHECK(c.architecture == "amd64");
  CHECK(c.diff_ids.size() == 3);
}

std::string temp_path(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("kiln-test-image-" + std::to_string(::getpid())) / name;
  std::filesystem::create_directories(p.parent_path());
  return p;
}

}  // namespace

TEST_CASE("normalize_path", "[image]") {
  CHECK(normalize_path("./a//b/./c/") == std::optional<std::string>("a/b/c"));
  CHECK(normalize_path("/") == std::optional<std::string>(""));
  CHECK(normalize_path("a/../b") == std::nullopt);
  CHECK(normalize_path("../../etc/passwd") == std::nullopt);
  CHECK(normalize_path("a/..b/c") == std::optional<std::string>("a/..b/c"));
}

TEST_CASE("docker save archive, blobs/sha256 layout (moby >= 25)", "[image]") {
  const std::string tar = tar_of(layered_image().docker_save(true));
  auto fs = read_image(tar_source(bytes_of(tar)));
  check_layered(fs);
  for (const auto& l : fs.layers()) CHECK(l.verified);
  CHECK(fs.config().repo_tags == std::vector<std::string>{"kiln/test:1"});
}

TEST_CASE("docker save archive, classic <id>/layer.tar names, gzip outer", "[image]") {
  TestImage img = layered_image();
  // Classic saves hold plain layer tars; their digests are the config's diff_ids.
  img.layers[1] = make_tar({file("opt/old/c.txt", "c"), file("opt/old/.wh..wh..opq", ""), file("tmp/.wh.gone.txt", ""),
                            file("usr/bin/python3.11", "PYTHON"), hard("usr/bin/python3", "usr/bin/python3.11"), file("opt/keep/x", "x1")});
  const std::string path = temp_path("classic.tar.gz");
  std::ofstream(path, std::ios::binary) << tar_of(img.docker_save(false), ARCHIVE_FILTER_GZIP);
  auto fs = read_image_archive(path);
  check_layered(fs);
  CHECK(fs.layers()[0].verified);  // plain: checked against diff_id
  CHECK(fs.layers()[1].verified);
  CHECK_FALSE(fs.layers()[2].verified);  // zstd layer, no digest in its name
}

TEST_CASE("OCI layout as a tar file and as a directory", "[image]") {
  const auto blobs = layered_image().oci({"application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
                                          "application/vnd.oci.image.layer.v1.tar+zstd"});
  SECTION("tar on disk") {
    const std::string path = temp_path("oci.tar");
    std::ofstream(path, std::ios::binary) << tar_of(blobs);
    auto fs = read_image_archive(path);
    check_layered(fs);
    for (const auto& l : fs.layers()) CHECK(l.verified);
    CHECK(fs.config().repo_tags == std::vector<std::string>{"1"});
  }
  SECTION("directory") {
    const std::string path = temp_path("oci-dir");
    std::filesystem::remove_all(path);
    write_dir(path, blobs);
    auto fs = read_image_archive(path);
    check_layered(fs);
    CHECK(fs.layers()[2].media_type == "application/vnd.oci.image.layer.v1.tar+zstd");
  }
}

TEST_CASE("hostile ../ entry is refused, or skipped on request", "[image]") {
  TestImage img;
  img.layers.push_back(make_tar({file("ok.txt", "ok"), file("../../etc/passwd", "root::0:0")}));
  const std::string tar = tar_of(img.oci());
  try {
    read_image(tar_source(bytes_of(tar)));
    FAIL("expected ImageError");
  } catch (const ImageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("../../etc/passwd") && Catch::Contains("layer 0"));
  }
  ReadOptions lax;
  lax.skip_unsafe_entries = true;
  auto fs = read_image(tar_source(bytes_of(tar)), lax);
  CHECK(fs.files().size() == 1);
  CHECK(fs.files().count("ok.txt"));
  REQUIRE(fs.warnings().size() == 1);
  CHECK_THAT(fs.warnings()[0], Catch::Contains("etc/passwd"));
}

TEST_CASE("symlinks resolve inside the root only", "[image]") {
  TestImage img;
  img.layers.push_back(make_tar({sym("up", "../../../etc/shadow"), sym("abs", "/../../etc/shadow"),
                                 sym("loop1", "loop2"), sym("loop2", "loop1"), sym("lib", "usr/lib"),
                                 file("usr/lib/libx.so.1", "X"), sym("usr/lib/libx.so", "/lib/libx.so.1")}));
  auto fs = read_image(tar_source(tar_of(img.oci())));  // owning: read_file streams it again
  CHECK_THROWS_WITH(fs.resolve("up"), Catch::Contains("climbs out of the image root"));
  CHECK_THROWS_WITH(fs.resolve("abs"), Catch::Contains("climbs out of the image root"));
  CHECK_THROWS_WITH(fs.resolve("loop1"), Catch::Contains("too many symlinks"));
  CHECK_THROWS_AS(fs.read_file("up"), ImageError);
  CHECK(fs.resolve("usr/lib/libx.so") == std::optional<std::string>("usr/lib/libx.so.1"));
  CHECK(fs.read_file("lib/libx.so") == std::optional<std::string>("X"));
}

TEST_CASE("truncated layer and digest mismatch name the layer", "[image]") {
  TestImage img;
  std::string big;
  for (int i = 0; i < 4000; ++i) big += std::to_string(i * 7919) + "\n";
  img.layers.push_back(make_tar({file("a", "a")}));
  img.layers.push_back(make_tar({file("big", big), file("after", "z")}, ARCHIVE_FILTER_GZIP));
  SECTION("truncated, with a digest that matches the truncated bytes") {
    img.layers[1].resize(img.layers[1].size() / 2);
    CHECK_THROWS_WITH(read_image(tar_source(bytes_of(tar_of(img.oci())))), Catch::Contains("layer 1"));
  }
  SECTION("bytes changed after the manifest was written") {
    auto blobs = img.oci();
    for (auto& b : blobs)
      if (b.data == img.layers[0]) b.data = make_tar({file("a", "b")});
    CHECK_THROWS_WITH(read_image(tar_source(bytes_of(tar_of(blobs)))), Catch::Contains("digest mismatch"));
  }
  SECTION("a truncated outer archive") {
    std::string t = tar_of(img.docker_save(true));
    t.resize(t.size() * 3 / 4);
    CHECK_THROWS_AS(read_image(tar_source(bytes_of(t))), ImageError);
  }
}

TEST_CASE("layout errors are clear", "[image]") {
  CHECK_THROWS_WITH(read_image(tar_source(bytes_of(make_tar({file("hello", "x")})))), Catch::Contains("neither a docker-save"));
  const std::string path = temp_path("evil-dir");
  std::filesystem::remove_all(path);
  write_dir(path, {{"manifest.json", R"([{"Config":"../../../etc/passwd","Layers":[]}])"}});
  CHECK_THROWS_WITH(read_image_archive(path), Catch::Contains("outside the layout"));
  write_dir(path, {{"manifest.json", R"([{"Config":"c.json","Layers":["../x"]}])"}, {"c.json", "{}"}});
  CHECK_THROWS_WITH(read_image_archive(path), Catch::Contains("outside the layout"));
  CHECK_THROWS_AS(read_image_archive(temp_path("does-not-exist")), ImageError);
}

TEST_CASE("docker save with several images picks by tag", "[image]") {
  TestImage a, b;
  a.layers.push_back(make_tar({file("which", "a")}));
  b.layers.push_back(make_tar({file("which", "b")}));
  b.tag = "kiln/other:2";
  auto blobs = a.docker_save(true), more = b.docker_save(true);
  auto m = nlohmann::json::parse(blobs.back().data);
  m.push_back(nlohmann::json::parse(more.back().data)[0]);
  blobs.pop_back();
  more.pop_back();
  blobs.insert(blobs.end(), more.begin(), more.end());
  blobs.push_back({"manifest.json", m.dump()});
  const std::string tar = tar_of(blobs);
  ReadOptions o;
  o.ref = "kiln/other:2";
  CHECK(read_image(tar_source(bytes_of(tar)), o).read_file("which") == std::optional<std::string>("b"));
  auto first = read_image(tar_source(bytes_of(tar)));
  CHECK(first.read_file("which") == std::optional<std::string>("a"));
  CHECK(first.warnings().size() == 1);
  o.ref = "nope:1";
  CHECK_THROWS_WITH(read_image(tar_source(bytes_of(tar)), o), Catch::Contains("nope:1"));
}

namespace {

std::string read_region(const FileRegion& r) {
  std::string out(r.size, '\0');
  REQUIRE(::pread(r.file->fd(), out.data(), out.size(), static_cast<off_t>(r.offset)) == static_cast<ssize_t>(r.size));
  return out;
}

std::string drain(ByteStream& in) {
  std::string out;
  std::array<std::byte, 4096> buf;
  while (std::size_t n = in.read(buf.data(), buf.size())) out.append(reinterpret_cast<const char*>(buf.data()), n);
  return out;
}

// Plain layers with what moves a body's offset: a pax header (long name),
// an empty member, bodies larger than one read, a directory.
TestImage plain_image() {
  TestImage img;
  std::string big(300'000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  img.layers.push_back(make_tar({file("small", "s"), file("usr/lib/" + std::string(150, 'n') + "/libcublas.so.13", big),
                                 file("empty", ""), dir("etc/"), file("after", "tail")}));
  img.layers.push_back(make_tar({file("small", "s2"), file("big2", big + "2")}));
  return img;
}

// Every regular member: where the walk says its body lies, and what the stream gives.
std::map<std::string, std::pair<std::string, std::string>> region_and_stream(const std::filesystem::path& p) {
  std::map<std::string, std::pair<std::string, std::string>> seen;
  ReadOptions o;
  o.on_file = [&](const std::string& path, std::size_t layer, std::size_t, std::uint64_t, ByteStream& in) {
    const auto r = in.region();
    seen[std::to_string(layer) + ":" + path] = {r ? read_region(*r) : "<no region>", drain(in)};
  };
  auto fs = read_image_archive(p, o);
  for (const auto& l : fs.layers()) CHECK(l.verified);
  return seen;
}

}  // namespace

TEST_CASE("an archive on disk is walked with seeks: same bodies, digests still checked", "[image]") {
  const TestImage img = plain_image();
  SECTION("docker save and OCI tars, an OCI directory") {
    std::vector<std::filesystem::path> inputs;
    for (bool blob_names : {true, false}) {
      inputs.push_back(temp_path(blob_names ? "save-blobs.tar" : "save-classic.tar"));
      std::ofstream(inputs.back(), std::ios::binary) << tar_of(img.docker_save(blob_names));
    }
    inputs.push_back(temp_path("oci-plain.tar"));
    std::ofstream(inputs.back(), std::ios::binary) << tar_of(img.oci());
    inputs.push_back(temp_path("oci-plain-dir"));
    std::filesystem::remove_all(inputs.back());
    write_dir(inputs.back(), img.oci());
    for (const auto& p : inputs) {
      INFO(p);
      const auto seen = region_and_stream(p);
      CHECK(seen.size() == 6);
      for (const auto& [name, bodies] : seen) {
        INFO(name);
        CHECK(bodies.first == bodies.second);
      }
      CHECK(seen.at("1:big2").second.size() == 300'001);
    }
  }
  SECTION("a changed byte in a skipped body fails the digest") {
    std::string tar = tar_of(img.docker_save(true));
    const auto at = tar.find(std::string(6, 'x') + "h", tar.find("big2"));  // inside layer 1's big2, never read by the walk
    REQUIRE(at != std::string::npos);
    tar[at] = 'X';
    const auto p = temp_path("save-corrupt.tar");
    std::ofstream(p, std::ios::binary) << tar;
    CHECK_THROWS_WITH(read_image_archive(p), Catch::Contains("layer 1") && Catch::Contains("digest mismatch"));
  }
  SECTION("a file cut inside a layer is an error, never a read past its end") {
    std::string tar = tar_of(img.docker_save(true));
    tar.resize(tar.find("big2") + 100'000);
    const auto p = temp_path("save-cut.tar");
    std::ofstream(p, std::ios::binary) << tar;
    CHECK_THROWS_AS(read_image_archive(p), ImageError);
  }
}

// What a hostile image can make the reader expand, hold
// or write is bounded; every breach names the image, layer digest and member.
namespace {

// Reads every regular member whole (what a library scan does), through
// read() or, for a sparse member, read_run(); returns the bytes handed out.
std::uint64_t read_everything(std::shared_ptr<BlobSource> src, const Limits& limits) {
  ReadOptions opt;
  opt.limits = limits;
  std::uint64_t got = 0;
  opt.on_file = [&](const std::string&, std::size_t, std::size_t, std::uint64_t, ByteStream& in) {
    std::array<std::byte, 1 << 16> buf;
    std::uint64_t at = 0;
    while (std::size_t n = in.sparse() ? in.read_run(buf.data(), buf.size(), at) : in.read(buf.data(), buf.size())) got += n;
  };
  (void)read_image(std::move(src), opt);
  return got;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ImageError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("a member claiming more than --max-member-size is refused before it is read", "[image][limits]") {
  TestImage img;
  img.layers.push_back(make_tar({file("usr/lib/libcudart.so.12", std::string(3 << 20, 'x')), file("small", "s")}));
  const std::string digest = sha256_hex(img.layers[0]);
  const std::string tar = tar_of(img.oci());
  Limits small;
  small.max_member_size = 1 << 20;
  const std::string e = error_of([&] { read_everything(tar_source(bytes_of(tar)), small); });
  CHECK_THAT(e, Catch::Contains("<tar in memory>: layer 0 (blobs/sha256/" + digest + ")"));
  CHECK_THAT(e, Catch::Contains("member 'usr/lib/libcudart.so.12': claims 3145728 bytes (3.0 MiB), over the limit of 1048576"));
  CHECK_THAT(e, Catch::Contains("--max-member-size") && Catch::Contains("refused before reading"));
  // Nobody reads it: no limit applies (the walk skips its body).
  ReadOptions opt;
  opt.limits = small;
  CHECK(read_image(tar_source(bytes_of(tar)), opt).files().count("usr/lib/libcudart.so.12"));
  CHECK(read_everything(tar_source(bytes_of(tar)), {}) == (3u << 20) + 1);
  // All members together: --max-total-size.
  Limits total;
  total.max_total_size = 2 << 20;
  CHECK_THAT(error_of([&] { read_everything(tar_source(bytes_of(tar)), total); }), Catch::Contains("--max-total-size"));
}

TEST_CASE("a layer that expands past --max-expansion is refused as a bomb", "[image][limits]") {
  Limits l;
  l.expansion_floor = 1 << 20;
  l.max_expansion = 10;
  TestImage img;  // 24 MiB of zeros gzip to ~24 KB: ~1000x
  img.layers.push_back(make_tar({file("etc/os-release", "ID=debian\n"),
                                 file("usr/lib/x86_64-linux-gnu/libcudart.so.12", std::string(24 << 20, '\0'))},
                                ARCHIVE_FILTER_GZIP));
  const std::string digest = sha256_hex(img.layers[0]);
  for (bool from_file : {false, true}) {
    INFO((from_file ? "from a file" : "from memory"));
    const std::string tar = tar_of(img.oci());
    const auto path = std::filesystem::temp_directory_path() / ("kiln-bomb-" + std::to_string(::getpid()) + ".tar");
    if (from_file) std::ofstream(path, std::ios::binary) << tar;
    auto src = [&] { return from_file ? tar_source(path, l) : tar_source(bytes_of(tar)); };
    const std::string e = error_of([&] { read_everything(src(), l); });
    CHECK_THAT(e, Catch::Contains("layer 0 (blobs/sha256/" + digest + ")"));
    CHECK_THAT(e, Catch::Contains("member 'usr/lib/x86_64-linux-gnu/libcudart.so.12'"));
    CHECK_THAT(e, Catch::Contains("over 10x + 1048576 bytes (1.0 MiB)") && Catch::Contains("decompression bomb"));
    // Skipping the body decompresses it too: refused even when nobody reads it.
    ReadOptions opt;
    opt.limits = l;
    CHECK_THAT(error_of([&] { (void)read_image(src(), opt); }), Catch::Contains("decompression bomb"));
    // The default limits let it through (24 MiB is under the 256 MiB floor).
    CHECK(read_everything(from_file ? tar_source(path) : tar_source(bytes_of(tar)), {}) == (24u << 20) + 10);
    std::filesystem::remove(path);
  }
  // A compressed outer archive is held to the same rule.
  TestImage plain;
  plain.layers.push_back(make_tar({file("zeros", std::string(24 << 20, '\0'))}));
  const auto path = std::filesystem::temp_directory_path() / ("kiln-outer-bomb-" + std::to_string(::getpid()) + ".tar.gz");
  std::ofstream(path, std::ios::binary) << tar_of(plain.docker_save(true), ARCHIVE_FILTER_GZIP);
  CHECK_THAT(error_of([&] { (void)read_image(tar_source(path, l)); }), Catch::Contains(path.string() + ": member 'blobs/sha256/") &&
                                                                       Catch::Contains("decompression bomb"));
  CHECK(read_image(tar_source(path)).files().count("zeros"));
  std::filesystem::remove(path);
}

TEST_CASE("a sparse member's holes are never materialised, and count as expansion", "[image][limits]") {
  // 64 MiB claimed, 8 KiB stored, in a ~10 KB layer.
  const std::string elf = "\x7f" "ELF" + std::string(4092, 'e');
  TestImage img;
  img.layers.push_back(make_sparse_tar("usr/lib/libcudart.so.12", 64 << 20, {{0, elf}, {(64 << 20) - 4096, std::string(4096, 't')}}));
  REQUIRE(img.layers[0].size() < 16384);
  const std::string tar = tar_of(img.oci());
  // Within the limits: read_run hands out only the stored runs, where they lie.
  std::vector<std::pair<std::uint64_t, std::size_t>> runs;
  ReadOptions opt;
  opt.on_file = [&](const std::string&, std::size_t, std::size_t, std::uint64_t size, ByteStream& in) {
    CHECK(size == (64u << 20));
    CHECK(in.sparse());
    std::array<std::byte, 1 << 16> buf;
    std::uint64_t at = 0;
    while (std::size_t n = in.read_run(buf.data(), buf.size(), at)) {
      if (!runs.empty() && runs.back().first + runs.back().second == at) runs.back().second += n;
      else runs.emplace_back(at, n);
    }
  };
  (void)read_image(tar_source(bytes_of(tar)), opt);
  CHECK(runs == std::vector<std::pair<std::uint64_t, std::size_t>>{{0, 4096}, {(64u << 20) - 4096, 4096}});
  // The holes count as expansion once the member is read: 64 MiB from ~10 KB.
  Limits l;
  l.expansion_floor = 16 << 20;
  const std::string e = error_of([&] { read_everything(tar_source(bytes_of(tar)), l); });
  CHECK_THAT(e, Catch::Contains("member 'usr/lib/libcudart.so.12'") && Catch::Contains("sparse holes included"));
  // A blob of the outer archive is never sparse.
  const std::string outer = make_sparse_tar("index.json", 1 << 20, {{0, "{}"}});
  CHECK_THAT(error_of([&] { (void)read_image(tar_source(bytes_of(outer))); }), Catch::Contains("index.json is a sparse file: refused"));
}

TEST_CASE("FIFOs, sockets and devices are refused without being opened", "[image][limits]") {
  // Each would block (a FIFO's open waits for a writer) or never end
  // (/dev/zero); ctest's timeout is the outer guard.
  TestImage img;
  img.layers.push_back(make_tar({file("etc/os-release", "ID=debian\n")}));
  const auto root = std::filesystem::temp_directory_path() / ("kiln-fifo-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  write_dir(root, img.oci());
  const auto blob = root / "blobs/sha256" / sha256_hex(img.layers[0]);
  CHECK(read_image_archive(root).files().count("etc/os-release"));

  std::filesystem::remove(blob);
  REQUIRE(::mkfifo(blob.c_str(), 0644) == 0);
  CHECK_THAT(error_of([&] { (void)read_image_archive(root); }), Catch::Contains(blob.string() + ": is a FIFO, not a regular file"));

  std::filesystem::remove(blob);
  std::filesystem::create_symlink("/dev/zero", blob);
  CHECK_THAT(error_of([&] { (void)read_image_archive(root); }), Catch::Contains("is a character device, not a regular file"));

  std::filesystem::remove(blob);
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Bound by its relative name: an absolute one may pass sun_path's 108 bytes.
  std::strncpy(addr.sun_path, blob.filename().c_str(), sizeof addr.sun_path - 1);
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(blob.parent_path());
  const int bound = ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  std::filesystem::current_path(cwd);
  REQUIRE(bound == 0);
  CHECK_THAT(error_of([&] { (void)read_image_archive(root); }), Catch::Contains("is a socket, not a regular file"));
  ::close(s);

  // index.json itself, and the archive path.
  std::filesystem::remove(blob);
  std::filesystem::remove(root / "index.json");
  REQUIRE(::mkfifo((root / "index.json").c_str(), 0644) == 0);
  CHECK_THAT(error_of([&] { (void)read_image_archive(root); }), Catch::Contains("index.json: is a FIFO"));
  CHECK_THAT(error_of([&] { (void)read_image_archive(root / "index.json"); }),
             Catch::Contains("is a FIFO, not an image archive or layout directory"));
  CHECK_THAT(error_of([&] { (void)read_image(tar_source(root / "index.json")); }), Catch::Contains("is a FIFO"));
  std::filesystem::remove_all(root);

  // In a tar: a FIFO or a device member where a blob should be.
  for (auto type : {AE_IFIFO, AE_IFCHR}) {
    std::string out;
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open(a, &out, nullptr, append_cb, nullptr);
    for (const auto& b : img.oci()) {
      archive_entry* e = archive_entry_new();
      archive_entry_set_pathname(e, b.name.c_str());
      const bool odd = b.name == "blobs/sha256/" + sha256_hex(img.layers[0]);
      archive_entry_set_filetype(e, odd ? type : AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, odd ? 0 : b.data.size());
      archive_write_header(a, e);
      if (!odd) archive_write_data(a, b.data.data(), b.data.size());
      archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    CHECK_THAT(error_of([&] { (void)read_image(tar_source(bytes_of(out))); }),
               Catch::Contains(type == AE_IFIFO ? "is a FIFO, not a regular file: refused" : "is a character device, not a regular file"));
  }
}
