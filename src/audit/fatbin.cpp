// Fat-binary layout (verified on nvcc 13.0 output and CUDA 13 libraries, see
// docs/audit.md): containers of a 16-byte header + entries, each entry a
// header (size in its own field) + payload. All little-endian.
#include "audit/fatbin.h"

#include "util/cc.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace kiln::audit {
namespace {

constexpr std::uint32_t kContainerMagic = 0xBA55ED50;
constexpr std::size_t kContainerHeader = 16;
constexpr std::size_t kEntryMinHeader = 64;  // fields we read end at 0x40
// A 500 MB library holds ~6k entries; a million means the sizes are lying.
constexpr std::size_t kMaxEntries = 1u << 20;

// Entry flag bits (u64 at 0x28). 0x1/0x10 are set on every entry seen
// (64-bit, Linux host); the rest were mapped by compiling each -gencode.
constexpr std::uint64_t kFlagLz4 = 0x2000;
constexpr std::uint64_t kFlagZstd = 0x8000;
constexpr std::uint64_t kFlagArchSpecific = 0x100000;    // sm_90a, compute_120a
constexpr std::uint64_t kFlagFamilySpecific = 0x200000;  // sm_100f, compute_110f

std::uint64_t load_le(std::span<const std::byte> b, std::size_t at, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(b[at + i]) << (8 * i);
  return v;
}
std::uint16_t u16(std::span<const std::byte> b, std::size_t at) { return std::uint16_t(load_le(b, at, 2)); }
std::uint32_t u32(std::span<const std::byte> b, std::size_t at) { return std::uint32_t(load_le(b, at, 4)); }
std::uint64_t u64(std::span<const std::byte> b, std::size_t at) { return load_le(b, at, 8); }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

[[noreturn]] void fail(const std::string& what, std::size_t offset) {
  throw FatbinError(what + " at offset " + hex(offset));
}

Compression compression_of(std::uint64_t flags) {
  if (flags & kFlagZstd) return Compression::zstd;
  if (flags & kFlagLz4) return Compression::lz4;
  return Compression::none;
}

// One entry at `at` inside a container body ending at `end`; returns its size.
std::size_t parse_entry(std::span<const std::byte> b, std::size_t at, std::size_t end, FatbinInfo& info) {
  if (end - at < kEntryMinHeader) fail("truncated fat-binary entry header", at);
  const std::uint16_t kind = u16(b, at);
  const std::uint32_t header_size = u32(b, at + 4);
  const std::uint64_t payload = u64(b, at + 8);
  if (header_size < kEntryMinHeader || header_size > end - at)
    fail("fat-binary entry header size " + std::to_string(header_size) + " out of range", at);
  if (payload > end - at - header_size)
    fail("fat-binary entry payload size " + std::to_string(payload) + " exceeds its container", at);
  if (kind != 1 && kind != 2) {  // neither PTX nor ELF: count it, skip it
    ++info.unknown_entries;
    return header_size + payload;
  }
  const std::uint32_t arch = u32(b, at + 0x1C);
  if (arch == 0 || arch > 9999) fail("implausible architecture number " + std::to_string(arch), at);
  const std::uint64_t flags = u64(b, at + 0x28);
  FatbinEntry e;
  e.kind = kind == 1 ? EntryKind::ptx : EntryKind::sass;
  e.arch = Arch{arch / 10, arch % 10, 0};
  if (flags & kFlagArchSpecific) e.arch.variant = 'a';
  else if (flags & kFlagFamilySpecific) e.arch.variant = 'f';
  e.compression = compression_of(flags);
  e.header_size = header_size;
  e.payload_size = payload;
  e.version_minor = u16(b, at + 0x18);
  e.version_major = u16(b, at + 0x1A);
  if (e.compression != Compression::none) e.uncompressed_size = u64(b, at + 0x38);
  if (info.entries.size() >= kMaxEntries) fail("too many fat-binary entries", at);
  info.entries.push_back(e);
  return header_size + payload;
}

bool all_zero(std::span<const std::byte> b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

void sort_unique(std::vector<Arch>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

void finish(FatbinInfo& info) {
  info.sass.clear();
  info.ptx.clear();
  for (const auto& e : info.entries) (e.kind == EntryKind::sass ? info.sass : info.ptx).push_back(e.arch);
  sort_unique(info.sass);
  sort_unique(info.ptx);
}

bool is_elf(std::span<const std::byte> b) {
  return b.size() >= 4 && std::memcmp(b.data(), "\x7f" "ELF", 4) == 0;
}

// libelf parses only the headers; section bytes are sliced from `bytes`
// ourselves, bounds-checked, so a lying sh_offset/sh_size is an error.
struct ElfHandle {
  Elf* elf = nullptr;
  ~ElfHandle() { if (elf) elf_end(elf); }
};

void init_libelf() {
  static std::once_flag once;
  std::call_once(once, [] { elf_version(EV_CURRENT); });
}

bool is_fatbin_section(const char* name) {
  return name && (std::strcmp(name, ".nv_fatbin") == 0 || std::strcmp(name, "__nv_relfatbin") == 0);
}

std::span<const std::byte> section_bytes(std::span<const std::byte> file, const GElf_Shdr& sh,
                                         const std::string& name) {
  if (sh.sh_type == SHT_NOBITS) throw FatbinError("section " + name + " has no file bytes (NOBITS)");
  if (sh.sh_flags & SHF_COMPRESSED) throw FatbinError("section " + name + " is ELF-compressed (not supported)");
  if (sh.sh_offset > file.size() || sh.sh_size > file.size() - sh.sh_offset)
    throw FatbinError("section " + name + " (offset " + hex(sh.sh_offset) + ", size " + hex(sh.sh_size) +
                      ") extends past the end of the file (" + hex(file.size()) + " bytes; truncated?)");
  return file.subspan(sh.sh_offset, sh.sh_size);
}

// libelf quietly reports no sections when the section header table lies
// past the end of a truncated file; that must be an error, not "no GPU code".
void check_section_table(Elf* elf, std::size_t file_size) {
  GElf_Ehdr eh;
  if (!gelf_getehdr(elf, &eh)) throw FatbinError(std::string("bad ELF header: ") + elf_errmsg(-1));
  if (eh.e_shoff == 0) return;  // no section table at all (stripped of it)
  const std::uint64_t count = eh.e_shnum ? eh.e_shnum : 1;  // 0: extended count in section 0
  if (eh.e_shoff > file_size || count * eh.e_shentsize > file_size - eh.e_shoff)
    throw FatbinError("ELF section header table at " + hex(eh.e_shoff) + " extends past the end of the file (" +
                      hex(file_size) + " bytes; truncated?)");
}

void read_elf(std::span<const std::byte> file, FatbinInfo& info) {
  // libelf converts non-native byte order in place; CUDA hosts are all
  // little-endian, so refuse the rest rather than let it write to our input.
  if (file.size() < EI_NIDENT || file[EI_DATA] != std::byte{ELFDATA2LSB})
    throw FatbinError("not a little-endian ELF file");
  init_libelf();
  ElfHandle h;
  // elf_memory takes char*; with native byte order it only reads.
  h.elf = elf_memory(const_cast<char*>(reinterpret_cast<const char*>(file.data())), file.size());
  if (!h.elf || elf_kind(h.elf) != ELF_K_ELF) throw FatbinError(std::string("bad ELF: ") + elf_errmsg(-1));
  check_section_table(h.elf, file.size());
  std::size_t shstrndx = 0;
  if (elf_getshdrstrndx(h.elf, &shstrndx) != 0) throw FatbinError(std::string("bad ELF section table: ") + elf_errmsg(-1));
  for (Elf_Scn* scn = elf_nextscn(h.elf, nullptr); scn; scn = elf_nextscn(h.elf, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) throw FatbinError(std::string("bad ELF section header: ") + elf_errmsg(-1));
    const char* name = elf_strptr(h.elf, shstrndx, sh.sh_name);
    if (!is_fatbin_section(name)) continue;
    info.sections.emplace_back(name);
    try {
      parse_fatbin_containers(section_bytes(file, sh, name), info);
    } catch (const FatbinError& e) {
      throw FatbinError(std::string("section ") + name + ": " + e.what());
    }
  }
}

struct Mapping {
  void* addr = MAP_FAILED;
  std::size_t size = 0;
  ~Mapping() { if (addr != MAP_FAILED) munmap(addr, size); }
};

}  // namespace

std::string Arch::sass_name() const {
  std::string s = "sm_" + std::to_string(number());
  if (variant) s += variant;
  return s;
}

std::string Arch::ptx_name() const {
  std::string s = "compute_" + std::to_string(number());
  if (variant) s += variant;
  return s;
}

std::optional<Arch> parse_arch(std::string_view t) {
  for (std::string_view prefix : {"sm_", "compute_"})
    if (t.starts_with(prefix)) t.remove_prefix(prefix.size());
  Arch a;
  if (!t.empty() && (t.back() == 'a' || t.back() == 'f')) {
    a.variant = t.back();
    t.remove_suffix(1);
  }
  const auto dot = t.find('.');
  auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 3 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (dot != std::string_view::npos) {
    auto maj = t.substr(0, dot), min = t.substr(dot + 1);
    if (!digits(maj) || !digits(min) || min.size() != 1) return std::nullopt;
    a.major = std::stoul(std::string(maj));
    a.minor = std::stoul(std::string(min));
    return a;
  }
  if (!digits(t) || t.size() < 2) return std::nullopt;
  const unsigned n = std::stoul(std::string(t));
  a.major = n / 10;
  a.minor = n % 10;
  return a;
}

std::optional<std::pair<unsigned, unsigned>> FatbinInfo::ptx_isa(const Arch& arch) const {
  std::optional<std::pair<unsigned, unsigned>> isa;
  for (const auto& e : entries)
    if (e.kind == EntryKind::ptx && e.arch == arch && e.version_major != 0)
      isa = std::max(isa.value_or(std::pair(0u, 0u)), std::pair<unsigned, unsigned>(e.version_major, e.version_minor));
  return isa;
}

bool FatbinInfo::any_compressed() const {
  return std::any_of(entries.begin(), entries.end(), [](const FatbinEntry& e) { return e.compression != Compression::none; });
}

void parse_fatbin_containers(std::span<const std::byte> b, FatbinInfo& info) {
  std::size_t at = 0;
  while (at < b.size()) {
    // Sections are 8-aligned; zero padding after the last container is fine.
    if (b.size() - at < kContainerHeader || u32(b, at) != kContainerMagic) {
      if (all_zero(b.subspan(at))) break;
      fail(b.size() - at < kContainerHeader ? "truncated fat-binary container header" : "bad fat-binary magic " + hex(u32(b, at)), at);
    }
    const std::uint16_t header_size = u16(b, at + 6);
    const std::uint64_t body = u64(b, at + 8);
    if (header_size < kContainerHeader || header_size > b.size() - at)
      fail("fat-binary container header size " + std::to_string(header_size) + " out of range", at);
    if (body > b.size() - at - header_size)
      fail("fat-binary container size " + std::to_string(body) + " exceeds its section (truncated?)", at);
    const std::size_t end = at + header_size + body;
    // Each step moves forward by at least kEntryMinHeader: no endless loop.
    for (std::size_t e = at + header_size; e < end;) e += parse_entry(b, e, end, info);
    ++info.containers;
    at = end;
  }
  finish(info);
}

FatbinInfo read_fatbin(std::span<const std::byte> bytes) {
  FatbinInfo info;
  if (is_elf(bytes)) {
    read_elf(bytes, info);
  } else if (bytes.size() >= 4 && u32(bytes, 0) == kContainerMagic) {
    info.sections.emplace_back("(bare fatbin)");
    parse_fatbin_containers(bytes, info);
  } else {
    throw FatbinError("neither an ELF file nor a fat binary");
  }
  finish(info);
  return info;
}

FatbinInfo read_fatbin_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FatbinError(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  Mapping m;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    m.size = static_cast<std::size_t>(st.st_size);
    m.addr = ::mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  const int err = errno;
  ::close(fd);
  if (m.addr == MAP_FAILED) throw FatbinError(path.string() + ": cannot map: " + (st.st_size == 0 ? "empty file" : std::strerror(err)));
  try {
    return read_fatbin({static_cast<const std::byte*>(m.addr), m.size});
  } catch (const FatbinError& e) {
    throw FatbinError(path.string() + ": " + e.what());
  }
}

FatbinScan scan_fatbin(std::string path, std::span<const std::byte> bytes) {
  FatbinScan s{std::move(path), std::nullopt, {}};
  try {
    s.info = read_fatbin(bytes);
  } catch (const FatbinError& e) {
    s.error = e.what();
  }
  return s;
}

namespace {

ComputeCapability to_cc(const Arch& a) { return {a.major, a.minor, a.variant}; }
Arch to_arch(const ComputeCapability& c) { return {c.major, c.minor, c.variant}; }

ArchList to_arch_list(const std::vector<Arch>& sass, const std::vector<Arch>& ptx) {
  ArchList list;
  for (const auto& a : sass) list.sass.push_back(to_cc(a));
  for (const auto& a : ptx) list.ptx.push_back(to_cc(a));
  return list;
}

}  // namespace

// The rule itself lives in util/cc (support_for), shared with the plan, so
// a fat binary and a planned arch list are judged the same way.
ArchSupport arch_support(const std::vector<Arch>& sass, const std::vector<Arch>& ptx, unsigned major, unsigned minor) {
  const SupportVerdict v = support_for(to_arch_list(sass, ptx), ComputeCapability{major, minor, 0});
  if (v.support == Support::unsupported) return {};
  const Arch via = to_arch(*v.via);
  if (v.support == Support::ptx_jit) return {ArchMatch::ptx_jit, via};
  return {via.major == major && via.minor == minor ? ArchMatch::sass_exact : ArchMatch::sass_compatible, via};
}

const char* to_string(ArchMatch m) {
  switch (m) {
    case ArchMatch::sass_exact: return "sass-exact";
    case ArchMatch::sass_compatible: return "sass-compatible";
    case ArchMatch::ptx_jit: return "ptx-jit";
    case ArchMatch::none: return "none";
  }
  return "?";
}

const char* to_string(Compression c) {
  switch (c) {
    case Compression::none: return "none";
    case Compression::lz4: return "lz4";
    case Compression::zstd: return "zstd";
  }
  return "?";
}

}  // namespace kiln::audit
