#include <catch2/catch.hpp>
#include <elf.h>

#include "skip.h"

#include <cstring>
#include <fstream>

#include "audit/fatbin.h"

using namespace kiln::audit;
using kiln::ComputeCapability;

namespace {

std::string arch_names(const std::vector<Arch>& v, bool sass) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + (sass ? a.sm() : a.compute());
  return s;
}

void put(std::string& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + i] = char((v >> (8 * i)) & 0xff);
}

// An entry as nvcc writes it: kind, header size, payload size, arch, flags.
// A `header` under 64 or past the data is a lie: the bytes written stay 64.
std::string entry(int kind, unsigned arch, std::uint64_t flags = 0x11, std::uint32_t header = 64, std::string payload = std::string(16, 'p')) {
  std::string b(std::max<std::uint32_t>(header, 64) > 4096 ? 64 : std::max<std::uint32_t>(header, 64), '\0');
  put(b, 0, kind, 2);
  put(b, 2, 0x0101, 2);
  put(b, 4, header, 4);
  put(b, 8, payload.size(), 8);
  put(b, 0x1C, arch, 4);
  put(b, 0x28, flags, 8);
  put(b, 0x38, payload.size() * 3, 8);
  return b + payload;
}

std::string container(const std::string& body, std::uint64_t lie = ~0ull) {
  std::string h(16, '\0');
  put(h, 0, 0xBA55ED50, 4);
  put(h, 4, 1, 2);
  put(h, 6, 16, 2);
  put(h, 8, lie == ~0ull ? body.size() : lie, 8);
  return h + body;
}

std::span<const std::byte> bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}


// A minimal little-endian ELF64 (ET_DYN unless told) with the given
// sections, each placed at file offset == virtual address.
struct Sec {
  std::string name;
  std::string bytes;
  std::uint32_t type = SHT_PROGBITS;
  std::uint64_t flags = SHF_ALLOC;
};
std::string make_elf(const std::vector<Sec>& secs, std::uint16_t type = ET_DYN, std::vector<std::uint64_t>* addrs = nullptr) {
  std::string shstr(1, '\0');
  std::vector<std::size_t> names;
  for (const auto& s : secs) {
    names.push_back(shstr.size());
    shstr += s.name + '\0';
  }
  names.push_back(shstr.size());
  shstr += std::string(".shstrtab") + '\0';
  std::string out(sizeof(Elf64_Ehdr), '\0');
  std::vector<std::uint64_t> offs;
  for (const auto& s : secs) {
    out.resize((out.size() + 15) / 16 * 16, '\0');
    offs.push_back(out.size());
    out += s.bytes;
  }
  const std::uint64_t stroff = out.size();
  out += shstr;
  out.resize((out.size() + 7) / 8 * 8, '\0');
  const std::uint64_t shoff = out.size();
  std::vector<Elf64_Shdr> sh(secs.size() + 2);
  std::memset(sh.data(), 0, sh.size() * sizeof(Elf64_Shdr));
  for (std::size_t i = 0; i < secs.size(); ++i) {
    sh[i + 1].sh_name = names[i];
    sh[i + 1].sh_type = secs[i].type;
    sh[i + 1].sh_flags = secs[i].flags;
    sh[i + 1].sh_addr = (secs[i].flags & SHF_ALLOC) ? offs[i] : 0;
    sh[i + 1].sh_offset = offs[i];
    sh[i + 1].sh_size = secs[i].bytes.size();
  }
  auto& st = sh.back();
  st.sh_name = names.back();
  st.sh_type = SHT_STRTAB;
  st.sh_offset = stroff;
  st.sh_size = shstr.size();
  out.append(reinterpret_cast<const char*>(sh.data()), sh.size() * sizeof(Elf64_Shdr));
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = type;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_shoff = shoff;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = sh.size();
  eh.e_shstrndx = sh.size() - 1;
  std::memcpy(out.data(), &eh, sizeof eh);
  if (addrs) *addrs = offs;
  return out;
}

// A .nvFatBinSegment wrapper pointing at virtual address `va`.
std::string wrapper(std::uint64_t va, std::uint32_t magic = 0x466243B1) {
  std::string w(24, '\0');
  put(w, 0, magic, 4);
  put(w, 4, 1, 4);
  put(w, 8, va, 8);
  return w;
}

// Section i of make_elf's layout starts at this offset (== address).
std::uint64_t addr_of(const std::vector<Sec>& secs, std::size_t i) {
  std::vector<std::uint64_t> a;
  make_elf(secs, ET_DYN, &a);
  return a[i];
}

#ifdef KILN_CUDA_FIXTURES
std::string fixture(const char* name) { return std::string(KILN_CUDA_FIXTURES) + "/" + name; }
#endif

}  // namespace

TEST_CASE("entry targets parse and print as compute capabilities", "[audit][fatbin]") {
  CHECK(ComputeCapability::parse("sm_90a") == Arch{9, 0, 'a'});
  CHECK(ComputeCapability::parse("compute_100f") == Arch{10, 0, 'f'});
  CHECK(ComputeCapability::parse("12.1") == Arch{12, 1, 0});
  CHECK(ComputeCapability::parse("75") == Arch{7, 5, 0});
  CHECK_FALSE(ComputeCapability::parse("sm_"));
  CHECK_FALSE(ComputeCapability::parse("sm_9x"));
  CHECK_FALSE(ComputeCapability::parse("1.23"));
  CHECK(Arch{12, 1, 'a'}.sm() == "sm_121a");
  CHECK(Arch{8, 6, 0}.compute() == "compute_86");
}

TEST_CASE("synthetic containers: layout and flags", "[audit][fatbin]") {
  const std::string fb = container(entry(2, 75) + entry(2, 90, 0x100011) + entry(1, 90, 0x8011, 80)) +
                         container("") +  // nvcc writes empty containers too
                         container(entry(2, 100, 0x1200011, 112) + entry(1, 120, 0x2011) + entry(7, 80)) + std::string(8, '\0');
  const FatbinInfo info = read_fatbin(bytes(fb));
  CHECK(info.containers == 3);
  CHECK(info.entries.size() == 5);
  CHECK(info.unknown_entries == 1);
  CHECK(arch_names(info.sass, true) == "sm_75 sm_90a sm_100f");
  CHECK(arch_names(info.ptx, false) == "compute_90 compute_120");
  CHECK(info.entries[2].compression == Compression::zstd);
  CHECK(info.entries[2].uncompressed_size == 48);
  CHECK(info.entries[4].compression == Compression::lz4);
  CHECK(info.entries[0].compression == Compression::none);
  CHECK(info.any_compressed());
}

TEST_CASE("hostile fat binaries fail cleanly", "[audit][fatbin]") {
  const std::string good = container(entry(2, 80));
  auto err = [](const std::string& b) {
    try {
      read_fatbin(bytes(b));
    } catch (const FatbinError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(err(container(entry(2, 80), 1ull << 62)), Catch::Contains("exceeds its section"));
  CHECK_THAT(err(container(entry(2, 80), ~1ull)), Catch::Contains("exceeds its section"));
  CHECK_THAT(err(good.substr(0, good.size() - 1)), Catch::Contains("exceeds its section"));
  CHECK_THAT(err(good.substr(0, 10)), Catch::Contains("truncated fat-binary container header"));
  CHECK_THAT(err(container(entry(2, 80, 0x11, 8))), Catch::Contains("header size 8 out of range"));
  CHECK_THAT(err(container(entry(2, 80, 0x11, 0))), Catch::Contains("out of range"));
  CHECK_THAT(err(container(entry(2, 80, 0x11, 0xFFFFFFF0u))), Catch::Contains("out of range"));
  CHECK_THAT(err(container(std::string(40, 'x'))), Catch::Contains("truncated fat-binary entry header"));
  CHECK_THAT(err(container(entry(2, 0))), Catch::Contains("implausible architecture"));
  CHECK_THAT(err(good + "garbage!!garbage!!"), Catch::Contains("bad fat-binary magic"));
  std::string lying_payload = container(entry(2, 80));
  put(lying_payload, 16 + 8, 1ull << 40, 8);
  CHECK_THAT(err(lying_payload), Catch::Contains("payload size"));
  std::string zero_header = good;
  put(zero_header, 6, 0, 2);
  CHECK_THAT(err(zero_header), Catch::Contains("container header size 0"));
  CHECK_THAT(err("not a binary"), Catch::Contains("neither an ELF"));
  CHECK_THAT(err("\x7f" "ELF"), Catch::Contains("ELF"));
}


TEST_CASE("wrappers lead to fat binaries outside .nv_fatbin", "[audit][fatbin][wrappers]") {
  const std::string chain = container(entry(2, 90)) + container(entry(2, 100, 0x1000011, 112)) + "tail that is not a container";
  std::vector<Sec> secs = {{".nv_fatbin", container(entry(2, 75))}, {".ldata", std::string(40, 'x') + chain}, {".nvFatBinSegment", ""}};
  const std::uint64_t ldata = addr_of(secs, 1);
  secs[2].bytes = wrapper(addr_of(secs, 0)) + wrapper(ldata + 40) + wrapper(ldata + 40) + wrapper(0) + wrapper(1ull << 50) +
                  wrapper(ldata, 0x12345678) + "short";
  secs[2].flags = SHF_ALLOC | SHF_WRITE;
  const FatbinInfo info = read_fatbin(bytes(make_elf(secs)));
  CHECK(arch_names(info.sass, true) == "sm_75 sm_90 sm_100");
  CHECK(info.containers == 3);         // the shared target read once
  CHECK(info.wrappers == 5);           // the one with a bad magic is not a wrapper
  CHECK(info.wrappers_unresolved == 2);  // null and unmapped pointers
  CHECK(info.found_by == FoundBy::wrappers);
  CHECK(info.sections == std::vector<std::string>{".nv_fatbin", ".ldata"});

  // A wrapper's own container must be sound; what follows it may be anything.
  std::vector<Sec> bad = {{".ldata", container(entry(2, 90), 1ull << 40)}, {".nvFatBinSegment", ""}};
  bad[1].bytes = wrapper(addr_of(bad, 0));
  CHECK_THROWS_WITH(read_fatbin(bytes(make_elf(bad))), Catch::Contains("wrapper 0"));
  bad[0].bytes = container(entry(2, 90)) + container(entry(2, 0));  // second: arch 0, not parsed
  CHECK(arch_names(read_fatbin(bytes(make_elf(bad))).sass, true) == "sm_90");
  // A chain that runs to the end of its section stops there.
  bad[0].bytes = container(entry(2, 90)) + container(entry(2, 80)).substr(0, 20);
  CHECK(arch_names(read_fatbin(bytes(make_elf(bad))).sass, true) == "sm_90");
}

TEST_CASE("relocatable and unregistered code does not count in a linked ELF", "[audit][fatbin][wrappers]") {
  std::vector<Sec> secs = {{"__nv_relfatbin", container(entry(2, 89) + entry(1, 120))}, {".nv_fatbin", container(entry(2, 90))},
                           {".nvFatBinSegment", ""}};
  secs[2].bytes = wrapper(addr_of(secs, 1));
  FatbinInfo info = read_fatbin(bytes(make_elf(secs)));
  CHECK(arch_names(info.sass, true) == "sm_90");
  CHECK(info.ptx.empty());
  CHECK(arch_names(info.ignored_sass, true) == "sm_89");
  CHECK(arch_names(info.ignored_ptx, false) == "compute_120");
  // The same sections in an object file: that is its device code.
  info = read_fatbin(bytes(make_elf(secs, ET_REL)));
  CHECK(arch_names(info.sass, true) == "sm_89 sm_90");
  // A linked ELF that registers nothing (libcufftw: an empty sm_75 device link).
  info = read_fatbin(bytes(make_elf({{".nv_fatbin", container(entry(2, 75))}})));
  CHECK_FALSE(info.has_device_code());
  CHECK(arch_names(info.ignored_sass, true) == "sm_75");
}

TEST_CASE("scan for containers where no wrapper says where", "[audit][fatbin][scan]") {
  std::string magic(4, '\0');
  put(magic, 0, 0xBA55ED50, 4);
  std::string version2 = container(entry(2, 61));
  put(version2, 4, 2, 2);
  std::string lying = container(entry(2, 62));
  put(lying, 8, 1ull << 40, 8);
  const std::string data = "xx" + magic + "junk" + version2 + lying + container(entry(2, 0)) + container(entry(7, 75)) +
                           container(entry(2, 90) + entry(1, 90, 0x8011, 80)) + "yy" + container(entry(2, 120)) + magic;
  std::vector<Sec> secs = {{".nv_fatbin", container(entry(2, 75))}, {".rodata", data},
                           {".text", container(entry(2, 50)), SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR},
                           {".comment", container(entry(2, 52)), SHT_PROGBITS, 0}};
  FatbinInfo info = read_fatbin(bytes(make_elf(secs)));
  CHECK(info.found_by == FoundBy::scan);
  CHECK(arch_names(info.sass, true) == "sm_90 sm_120");  // look-alikes, code and non-alloc sections skipped
  CHECK(arch_names(info.ptx, false) == "compute_90");
  CHECK(info.unknown_entries == 1);
  CHECK(arch_names(info.ignored_sass, true) == "sm_75");
  // With wrappers, only large-data sections are scanned.
  secs.push_back({".nvFatBinSegment", ""});
  secs.push_back({".ldata", container(entry(2, 86))});
  secs[4].bytes = wrapper(addr_of(secs, 0));
  info = read_fatbin(bytes(make_elf(secs)));
  CHECK(arch_names(info.sass, true) == "sm_75 sm_86");
  // Many look-alikes whose entry chains fail late stay bounded, not quadratic.
  std::string body;
  for (int i = 0; i < 2000; ++i) body += entry(2, 80);
  std::string nested;
  for (int i = 0; i < 64; ++i) nested += container(body + std::string(40, 'x'));
  CHECK_NOTHROW(read_fatbin(bytes(make_elf({{".rodata", nested}}))));
}

TEST_CASE("arch_support: exact, compatible, PTX JIT, none", "[audit][fatbin]") {
  const std::vector<Arch> sass = {{7, 5, 0}, {8, 0, 0}, {8, 6, 0}, {9, 0, 'a'}, {10, 0, 'f'}, {12, 0, 0}};
  const std::vector<Arch> ptx = {{9, 0, 0}, {12, 1, 'a'}};
  auto m = [&](unsigned maj, unsigned min) { return arch_support(sass, ptx, maj, min); };
  CHECK(m(8, 6).match == ArchMatch::sass_exact);
  CHECK(m(8, 9).match == ArchMatch::sass_compatible);
  CHECK(m(8, 9).via == Arch{8, 6, 0});
  CHECK(m(8, 7).via == Arch{8, 6, 0});
  CHECK(m(9, 0).match == ArchMatch::sass_exact);  // sm_90a runs on 9.0 only
  CHECK(m(10, 3).match == ArchMatch::sass_compatible);  // sm_100f: family
  CHECK(m(10, 3).via == Arch{10, 0, 'f'});
  CHECK(m(12, 1).match == ArchMatch::sass_compatible);
  CHECK(m(6, 0).match == ArchMatch::none);
  CHECK(m(7, 0).match == ArchMatch::none);
  const std::vector<Arch> only_a = {{9, 0, 'a'}};
  CHECK(arch_support(only_a, {}, 9, 1).match == ArchMatch::none);  // 'a' is not forward-compatible
  CHECK(arch_support({}, ptx, 10, 0).match == ArchMatch::ptx_jit);
  CHECK(arch_support({}, ptx, 10, 0).via == Arch{9, 0, 0});
  CHECK(arch_support({}, ptx, 8, 9).match == ArchMatch::none);
  CHECK(arch_support({}, {{12, 1, 'a'}}, 12, 1).match == ArchMatch::ptx_jit);
  CHECK(arch_support({}, {{12, 1, 'a'}}, 12, 2).match == ArchMatch::none);
  CHECK(arch_support({}, {{10, 0, 'f'}}, 10, 3).match == ArchMatch::ptx_jit);
  CHECK(arch_support({}, {{10, 0, 'f'}}, 12, 0).match == ArchMatch::none);
  CHECK(std::string(to_string(ArchMatch::ptx_jit)) == "ptx-jit");
}

#ifdef KILN_CUDA_FIXTURES
TEST_CASE("real nvcc output: lists equal the -gencode sets", "[audit][fatbin][nvcc]") {
  struct Case {
    const char* file;
    const char* sass;
    const char* ptx;
  };
  const Case cases[] = {
      {"sass75_90.o", "sm_75 sm_90", ""},
      {"ptx75.o", "", "compute_75"},
      {"sm80_ptx90", "sm_80", "compute_90"},
      {"variants.o", "sm_90a sm_100f sm_103a sm_120", "compute_100f compute_121a"},
      {"rdc.o", "sm_80", "compute_86"},
      {"bare.fatbin", "sm_86", "compute_89"},
      {"lz4.o", "sm_80", "compute_80"},
      {"zstd_all.o", "sm_80", "compute_80"},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const FatbinInfo info = read_fatbin_file(fixture(c.file));
    CHECK(arch_names(info.sass, true) == c.sass);
    CHECK(arch_names(info.ptx, false) == c.ptx);
  }
  CHECK(read_fatbin_file(fixture("rdc.o")).sections == std::vector<std::string>{"__nv_relfatbin"});
  CHECK(read_fatbin_file(fixture("sm80_ptx90")).sections == std::vector<std::string>{".nv_fatbin"});
  // Compression as nvcc 13 chose it: PTX zstd by default, LZ4 with
  // -compress-mode=speed, SASS plain unless -compress-all.
  for (const auto& e : read_fatbin_file(fixture("sm80_ptx90")).entries)
    CHECK(e.compression == (e.kind == EntryKind::ptx ? Compression::zstd : Compression::none));
  for (const auto& e : read_fatbin_file(fixture("lz4.o")).entries)
    CHECK(e.compression == (e.kind == EntryKind::ptx ? Compression::lz4 : Compression::none));
  for (const auto& e : read_fatbin_file(fixture("zstd_all.o")).entries) CHECK(e.compression == Compression::zstd);
  const auto v = read_fatbin_file(fixture("variants.o"));
  CHECK(arch_support(v, 9, 0).match == ArchMatch::sass_exact);
  CHECK(arch_support(v, 10, 3).match == ArchMatch::sass_exact);
  CHECK(arch_support(v, 11, 0).match == ArchMatch::none);
  CHECK(arch_support(v, 12, 1).match == ArchMatch::sass_compatible);
}

TEST_CASE("real ELF with lying section headers or truncation", "[audit][fatbin][nvcc]") {
  const std::string elf = slurp(fixture("sass75_90.o"));
  REQUIRE(elf.size() > sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof eh);
  auto shdr_at = [&](unsigned i) { return eh.e_shoff + std::size_t(i) * eh.e_shentsize; };
  Elf64_Shdr strtab;
  std::memcpy(&strtab, elf.data() + shdr_at(eh.e_shstrndx), sizeof strtab);
  std::size_t fat = 0;
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, elf.data() + shdr_at(i), sizeof sh);
    if (std::strcmp(elf.data() + strtab.sh_offset + sh.sh_name, ".nv_fatbin") == 0) fat = shdr_at(i);
  }
  REQUIRE(fat != 0);
  auto patched = [&](std::size_t field, std::uint64_t v) {
    std::string b = elf;
    std::memcpy(b.data() + fat + field, &v, 8);
    return b;
  };
  CHECK_THROWS_WITH(read_fatbin(bytes(patched(offsetof(Elf64_Shdr, sh_size), 1ull << 40))), Catch::Contains("past the end"));
  CHECK_THROWS_WITH(read_fatbin(bytes(patched(offsetof(Elf64_Shdr, sh_offset), ~0ull - 4))), Catch::Contains("past the end"));
  CHECK_THROWS_WITH(read_fatbin(bytes(patched(offsetof(Elf64_Shdr, sh_size), 24))), Catch::Contains(".nv_fatbin"));
  for (std::size_t cut : {elf.size() / 2, elf.size() - 1, std::size_t(100), std::size_t(5)}) {
    INFO(cut);
    const auto scan = scan_fatbin("cut", bytes(elf.substr(0, cut)));
    CHECK_FALSE(scan.info);
    CHECK_FALSE(scan.error.empty());
  }
}
#else
TEST_CASE("real nvcc output", "[audit][fatbin][nvcc]") { KILN_SKIP("nvcc not found at configure time"); }
#endif

TEST_CASE("CUDA 13 libraries on this machine", "[audit][fatbin][cuda-libs]") {
  const std::filesystem::path lib = "/usr/local/cuda/lib64";
  if (!std::filesystem::exists(lib / "libcublasLt.so.13")) {
    KILN_SKIP("no /usr/local/cuda/lib64/libcublasLt.so.13");
  }
  // How long reading it takes is bench/audit.sh's question, not this test's.
  const FatbinInfo lt = read_fatbin_file(lib / "libcublasLt.so.13");
  INFO("libcublasLt: " << lt.containers << " containers, " << lt.entries.size() << " entries; sass "
                       << arch_names(lt.sass, true) << "; ptx " << arch_names(lt.ptx, false));
  CHECK(lt.containers > 1000);
  for (unsigned cc : {75u, 80u, 86u, 89u, 90u, 100u, 103u, 120u})
    CHECK(std::count(lt.sass.begin(), lt.sass.end(), Arch{cc / 10, cc % 10, 0}) == 1);
  CHECK(lt.sass.front() == Arch{7, 5, 0});
  CHECK(std::count(lt.sass.begin(), lt.sass.end(), Arch{9, 0, 'a'}) == 1);
  CHECK_FALSE(lt.ptx.empty());
  for (const auto& e : lt.entries) CHECK(e.compression == Compression::zstd);
  for (unsigned cc : {75u, 80u, 86u, 89u, 90u, 100u, 103u, 120u, 121u})
    CHECK(arch_support(lt, cc / 10, cc % 10).match != ArchMatch::none);
  CHECK(arch_support(lt, 7, 0).match == ArchMatch::none);  // Volta left CUDA 13

  // libcudart holds no device code at all: an empty answer, not an error.
  const FatbinInfo rt = read_fatbin_file(lib / "libcudart.so.13");
  CHECK(rt.sections.empty());
  CHECK_FALSE(rt.has_device_code());

  // Every shared library of the toolkit parses without error.
  std::size_t scanned = 0;
  for (const auto& de : std::filesystem::directory_iterator(lib)) {
    const std::string name = de.path().filename();
    if (de.is_symlink() || !de.is_regular_file() || name.find(".so") == std::string::npos) continue;
    INFO(name);
    CHECK_NOTHROW(read_fatbin_file(de.path()));
    ++scanned;
  }
  CHECK(scanned > 10);
}

TEST_CASE("CUDA libraries that keep device code outside .nv_fatbin", "[audit][fatbin][cuda-libs]") {
  const std::filesystem::path lib = "/usr/local/cuda/lib64";
  std::size_t seen = 0;
  for (const char* name : {"libcufft.so.12", "libcufft.so.13", "libnppc.so.13", "libnppc.so.12"}) {
    if (!std::filesystem::exists(lib / name)) continue;
    ++seen;
    INFO(name);
    const FatbinInfo info = read_fatbin_file(lib / name);
    INFO("sass " << arch_names(info.sass, true) << "; ptx " << arch_names(info.ptx, false) << "; " << info.containers
                 << " containers, found by " << to_string(info.found_by));
    for (unsigned cc : {75u, 80u, 86u, 89u, 90u, 100u, 120u})
      CHECK(std::count(info.sass.begin(), info.sass.end(), Arch{cc / 10, cc % 10, 0}) == 1);
    for (unsigned cc : {75u, 80u, 86u, 89u, 90u, 100u, 103u, 120u, 121u})
      CHECK(arch_support(info, cc / 10, cc % 10).match != ArchMatch::none);
  }
  if (std::filesystem::exists(lib / "libcufftw.so.12")) {
    // Its only fat binary is an empty sm_75 device link that nothing registers.
    const FatbinInfo w = read_fatbin_file(lib / "libcufftw.so.12");
    CHECK_FALSE(w.has_device_code());
  }
  if (!seen) KILN_SKIP("no libcufft / libnppc in " << lib);
}
