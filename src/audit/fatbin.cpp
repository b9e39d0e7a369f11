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
#include <map>
#include <mutex>
#include <string.h>

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
  info.ignored_sass.clear();
  info.ignored_ptx.clear();
  for (const auto& e : info.entries) {
    const bool sass = e.kind == EntryKind::sass;
    if (e.counted) (sass ? info.sass : info.ptx).push_back(e.arch);
    else (sass ? info.ignored_sass : info.ignored_ptx).push_back(e.arch);
  }
  for (auto* v : {&info.sass, &info.ptx, &info.ignored_sass, &info.ignored_ptx}) sort_unique(*v);
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

bool is_fatbin_section(std::string_view name) { return name == ".nv_fatbin" || name == "__nv_relfatbin"; }

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
void check_section_table(Elf* elf, const GElf_Ehdr& eh, std::size_t file_size) {
  if (eh.e_shoff == 0) return;  // no section table at all (stripped of it)
  const std::uint64_t count = eh.e_shnum ? eh.e_shnum : 1;  // 0: extended count in section 0
  if (eh.e_shoff > file_size || count * eh.e_shentsize > file_size - eh.e_shoff)
    throw FatbinError("ELF section header table at " + hex(eh.e_shoff) + " extends past the end of the file (" +
                      hex(file_size) + " bytes; truncated?)");
  (void)elf;
}

// .nvFatBinSegment holds one wrapper per registered fat binary (what
// __cudaRegisterFatBinary gets): u32 magic, u32 version, u64 pointer to the
// fat-binary data (a virtual address), u64 filename list or 0.
constexpr std::uint32_t kWrapperMagic = 0x466243B1;
constexpr std::size_t kWrapperSize = 24, kWrapperSize32 = 16;
// Scanning for the magic tries candidates that may walk many entry headers
// before failing; bound the total so a crafted file stays linear.
constexpr std::size_t kMaxScanSteps = std::size_t(4) << 20;
constexpr std::size_t kScanWindow = std::size_t(16) << 20;

struct Section {
  std::string name;
  GElf_Shdr sh;
};

// A file range [begin, end) holding the bytes of a mapped address range.
struct Region {
  std::size_t begin = 0, end = 0;
  const std::string* section = nullptr;  // nullptr: a PT_LOAD segment
};

class ElfReader {
 public:
  ElfReader(std::span<const std::byte> file, FatbinInfo& info) : b_(file), info_(info) {}

  void read() {
    // libelf converts non-native byte order in place; CUDA hosts are all
    // little-endian, so refuse the rest rather than let it write to our input.
    if (b_.size() < EI_NIDENT || b_[EI_DATA] != std::byte{ELFDATA2LSB}) throw FatbinError("not a little-endian ELF file");
    init_libelf();
    // elf_memory takes char*; with native byte order it only reads.
    h_.elf = elf_memory(const_cast<char*>(reinterpret_cast<const char*>(b_.data())), b_.size());
    if (!h_.elf || elf_kind(h_.elf) != ELF_K_ELF) throw FatbinError(std::string("bad ELF: ") + elf_errmsg(-1));
    GElf_Ehdr eh;
    if (!gelf_getehdr(h_.elf, &eh)) throw FatbinError(std::string("bad ELF header: ") + elf_errmsg(-1));
    check_section_table(h_.elf, eh, b_.size());
    info_.linked = eh.e_type == ET_DYN || eh.e_type == ET_EXEC;
    is64_ = gelf_getclass(h_.elf) == ELFCLASS64;
    load_sections();
    // 1. The fat-binary sections, whole: every container in them is strict.
    for (const auto& s : sections_) {
      if (!is_fatbin_section(s.name)) continue;
      info_.sections.push_back(s.name);
      const auto bytes = section_bytes(b_, s.sh, s.name);
      const std::size_t base = static_cast<std::size_t>(bytes.data() - b_.data());
      fat_.push_back({base, base + bytes.size(), &s.name});
      try {
        walk_section(base, base + bytes.size(), s.name == "__nv_relfatbin");
      } catch (const FatbinError& e) {
        throw FatbinError("section " + s.name + ": " + e.what());
      }
    }
    if (!info_.linked) return;  // objects: addresses are not final, sections say it all
    const std::size_t from_sections = info_.entries.size();
    for (auto& e : info_.entries) e.counted = !e.relocatable;
    // 2. What the runtime registers: follow the wrappers.
    for (const auto& s : sections_)
      if (s.name == ".nvFatBinSegment") follow_wrappers(s);
    if (info_.wrappers == 0)  // nothing registers the fat-binary sections
      for (std::size_t i = 0; i < from_sections; ++i) info_.entries[i].counted = false;
    // 3. Libraries that load their own fat binaries (libcufft keeps ~24,000
    //    containers in .ldata, registered by nothing): scan for the magic
    //    where no wrapper says where to look, and in large-data sections.
    const bool resolved_any = info_.wrappers > info_.wrappers_unresolved;
    for (const auto& s : sections_) {
      if (is_fatbin_section(s.name) || s.name == ".nvFatBinSegment" || s.sh.sh_type != SHT_PROGBITS ||
          !(s.sh.sh_flags & SHF_ALLOC) || (s.sh.sh_flags & SHF_EXECINSTR) || (s.sh.sh_flags & SHF_COMPRESSED))
        continue;
      const bool large = s.name.starts_with(".ldata") || s.name.starts_with(".lrodata");
      if (resolved_any && !large) continue;
      scan(s);
    }
  }

 private:
  void load_sections() {
    std::size_t shstrndx = 0;
    if (elf_getshdrstrndx(h_.elf, &shstrndx) != 0) throw FatbinError(std::string("bad ELF section table: ") + elf_errmsg(-1));
    for (Elf_Scn* scn = elf_nextscn(h_.elf, nullptr); scn; scn = elf_nextscn(h_.elf, scn)) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) throw FatbinError(std::string("bad ELF section header: ") + elf_errmsg(-1));
      const char* name = elf_strptr(h_.elf, shstrndx, sh.sh_name);
      sections_.push_back({name ? name : "", sh});
    }
  }

  // One container at `at`, strict, within [at, limit). Returns its end.
  std::size_t container(std::size_t at, std::size_t limit, bool relocatable, FatbinInfo& into) {
    const auto b = b_.subspan(0, limit);
    if (limit - at < kContainerHeader) fail("truncated fat-binary container header", at);
    const std::uint16_t header_size = u16(b, at + 6);
    const std::uint64_t body = u64(b, at + 8);
    if (header_size < kContainerHeader || header_size > limit - at)
      fail("fat-binary container header size " + std::to_string(header_size) + " out of range", at);
    if (body > limit - at - header_size)
      fail("fat-binary container size " + std::to_string(body) + " exceeds its section (truncated?)", at);
    const std::size_t end = at + header_size + body;
    const std::size_t first = into.entries.size();
    // Each step moves forward by at least kEntryMinHeader: no endless loop.
    for (std::size_t e = at + header_size; e < end; ++steps_) e += parse_entry(b, e, end, into);
    for (std::size_t i = first; i < into.entries.size(); ++i) into.entries[i].relocatable = relocatable;
    return end;
  }

  // Adds a trial container's entries; false when it has none.
  // (libcufft: ~12,700 containers hold only entries of kind 8, arch 75,
  // flags 0x12011, probably LTO-IR for its callbacks; counted as unknown.)
  bool merge(const FatbinInfo& trial, std::size_t at) {
    if (trial.entries.empty() && trial.unknown_entries == 0) return false;
    if (info_.entries.size() + trial.entries.size() > kMaxEntries) fail("too many fat-binary entries", at);
    info_.entries.insert(info_.entries.end(), trial.entries.begin(), trial.entries.end());
    info_.unknown_entries += trial.unknown_entries;
    return true;
  }

  void mark(std::size_t at, std::size_t end) {
    seen_[at] = end;
    ++info_.containers;
  }

  void walk_section(std::size_t begin, std::size_t end, bool relocatable) {
    std::size_t at = begin;
    while (at < end) {
      // Sections are 8-aligned; zero padding after the last container is fine.
      if (end - at < kContainerHeader || u32(b_, at) != kContainerMagic) {
        if (all_zero(b_.subspan(at, end - at))) break;
        fail(end - at < kContainerHeader ? "truncated fat-binary container header" : "bad fat-binary magic " + hex(u32(b_, at)),
             at);
      }
      const std::size_t next = container(at, end, relocatable, info_);
      mark(at, next);
      at = next;
    }
  }

  // The file bytes behind virtual address `va`: the allocated section that
  // holds it, else the PT_LOAD segment; nullopt when neither does.
  std::optional<Region> region_of(std::uint64_t va) const {
    for (const auto& s : sections_) {
      const auto& sh = s.sh;
      if (!(sh.sh_flags & SHF_ALLOC) || sh.sh_type == SHT_NOBITS || (sh.sh_flags & SHF_COMPRESSED)) continue;
      if (va < sh.sh_addr || va - sh.sh_addr >= sh.sh_size) continue;
      if (sh.sh_offset > b_.size()) return std::nullopt;
      const std::size_t end = sh.sh_offset + std::min<std::uint64_t>(sh.sh_size, b_.size() - sh.sh_offset);
      const std::uint64_t at = sh.sh_offset + (va - sh.sh_addr);
      if (at >= end) return std::nullopt;
      return Region{std::size_t(at), end, &s.name};
    }
    std::size_t n = 0;
    if (elf_getphdrnum(h_.elf, &n) != 0) return std::nullopt;
    for (std::size_t i = 0; i < n && i < 4096; ++i) {
      GElf_Phdr ph;
      if (!gelf_getphdr(h_.elf, int(i), &ph) || ph.p_type != PT_LOAD) continue;
      if (va < ph.p_vaddr || va - ph.p_vaddr >= ph.p_filesz || ph.p_offset > b_.size()) continue;
      const std::size_t end = ph.p_offset + std::min<std::uint64_t>(ph.p_filesz, b_.size() - ph.p_offset);
      const std::uint64_t at = ph.p_offset + (va - ph.p_vaddr);
      if (at >= end) return std::nullopt;
      return Region{std::size_t(at), end, nullptr};
    }
    return std::nullopt;
  }

  bool in_fat_section(std::size_t at) const {
    return std::any_of(fat_.begin(), fat_.end(), [&](const Region& r) { return at >= r.begin && at < r.end; });
  }

  void note_section(const std::string* name, FoundBy how) {
    const std::string n = name ? *name : std::string("(PT_LOAD)");
    if (std::find(info_.sections.begin(), info_.sections.end(), n) == info_.sections.end()) info_.sections.push_back(n);
    info_.found_by = std::max(info_.found_by, how);
  }

  void follow_wrappers(const Section& s) {
    if (s.sh.sh_type == SHT_NOBITS) return;
    const auto seg = section_bytes(b_, s.sh, s.name);
    const std::size_t base = static_cast<std::size_t>(seg.data() - b_.data());
    // ELF64: u32 magic, u32 version, u64 data, u64 filelist; ELF32: all u32.
    const std::size_t size = is64_ ? kWrapperSize : kWrapperSize32;
    for (std::size_t w = 0; w + size <= seg.size(); w += size) {
      if (u32(seg, w) != kWrapperMagic) continue;  // not a wrapper (padding)
      ++info_.wrappers;
      const std::uint64_t va = is64_ ? u64(seg, w + 8) : u32(seg, w + 8);
      const auto r = va ? region_of(va) : std::nullopt;
      if (!r || r->end - r->begin < kContainerHeader || u32(b_, r->begin) != kContainerMagic) {
        ++info_.wrappers_unresolved;
        continue;
      }
      if (in_fat_section(r->begin)) continue;  // read whole already
      // The chain at the target: containers follow each other until the
      // magic stops or one already read is reached.
      if (seen_.count(r->begin)) continue;
      std::size_t at = r->begin;
      try {  // the container the wrapper names must be sound
        const std::size_t next = container(at, r->end, false, info_);
        mark(at, next);
        at = next;
      } catch (const FatbinError& e) {
        throw FatbinError("fat binary of wrapper " + std::to_string(w / size) + " in " + s.name + " (at " +
                          hex(base + w) + "): " + e.what());
      }
      note_section(r->section, FoundBy::wrappers);
      // Containers that follow it directly belong to the same image: read
      // them until the magic stops, one does not parse, or one was read.
      while (r->end - at >= kContainerHeader && u32(b_, at) == kContainerMagic && !seen_.count(at)) {
        FatbinInfo trial;
        std::size_t next = 0;
        try {
          next = container(at, r->end, false, trial);
        } catch (const FatbinError&) {
          break;
        }
        if (!merge(trial, at)) break;
        mark(at, next);
        at = next;
      }
    }
  }

  // Every offset in the section where the container magic parses as a
  // whole container (version 1, header 16, entries within bounds) counts.
  void scan(const Section& s) {
    const auto& sh = s.sh;
    if (sh.sh_offset >= b_.size()) return;
    const std::size_t begin = sh.sh_offset, end = sh.sh_offset + std::min<std::uint64_t>(sh.sh_size, b_.size() - sh.sh_offset);
    static constexpr unsigned char magic[4] = {0x50, 0xED, 0x55, 0xBA};
    const auto* base = reinterpret_cast<const unsigned char*>(b_.data());
    std::size_t at = begin;
    while (end - at >= kContainerHeader) {
      // A window at a time, so pages already passed can be given back.
      const std::size_t window_end = end - at > kScanWindow ? at + kScanWindow : end;
      const void* hit = ::memmem(base + at, window_end - at, magic, sizeof magic);
      if (!hit) {
        if (window_end == end) break;
        at = window_end - (sizeof magic - 1);  // a magic may straddle the window edge
        release(at);
        continue;
      }
      at = static_cast<std::size_t>(static_cast<const unsigned char*>(hit) - base);
      release(at);
      if (end - at < kContainerHeader) break;
      if (auto it = seen_.find(at); it != seen_.end()) {
        at = it->second;
        continue;
      }
      if (u16(b_, at + 4) != 1 || u16(b_, at + 6) != kContainerHeader || u64(b_, at + 8) == 0) {
        ++at;
        continue;
      }
      FatbinInfo trial;
      std::size_t next = 0;
      try {
        next = container(at, end, false, trial);
      } catch (const FatbinError&) {
        if (steps_ > kMaxScanSteps) fail("too many fat-binary look-alikes while scanning " + s.name, at);
        ++at;
        continue;
      }
      if (!merge(trial, at)) {  // no entry at all: not evidence of device code
        ++at;
        continue;
      }
      mark(at, next);
      note_section(&s.name, FoundBy::scan);
      at = next;
    }
  }

  // Drops the pages before `upto` from a read-only file mapping (they are
  // not written; a later touch reads them again), so scanning a 300 MB
  // section does not keep 300 MB resident. Only for read_fatbin_file's map.
  void release(std::size_t upto) {
    if (!release_pages_) return;
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const auto addr = reinterpret_cast<std::uintptr_t>(b_.data());
    const std::uintptr_t from = (addr + released_ + page - 1) / page * page, to = (addr + upto) / page * page;
    if (to < from + kScanWindow) return;
    ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
    released_ = to - addr;
  }

 public:
  bool release_pages_ = false;

 private:
  std::size_t released_ = 0;
  std::span<const std::byte> b_;
  FatbinInfo& info_;
  ElfHandle h_;
  bool is64_ = true;
  std::vector<Section> sections_;
  std::vector<Region> fat_;
  std::map<std::size_t, std::size_t> seen_;  // container offset -> its end
  std::size_t steps_ = 0;
};

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
    if (e.kind == EntryKind::ptx && e.arch == arch && e.version_major != 0 && e.counted)
      isa = std::max(isa.value_or(std::pair(0u, 0u)), std::pair<unsigned, unsigned>(e.version_major, e.version_minor));
  return isa;
}

bool FatbinInfo::any_compressed() const {
  return std::any_of(entries.begin(), entries.end(),
                     [](const FatbinEntry& e) { return e.counted && e.compression != Compression::none; });
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

namespace {

FatbinInfo read_fatbin_impl(std::span<const std::byte> bytes, bool release_pages) {
  FatbinInfo info;
  if (is_elf(bytes)) {
    ElfReader r(bytes, info);
    r.release_pages_ = release_pages;
    r.read();
  } else if (bytes.size() >= 4 && u32(bytes, 0) == kContainerMagic) {
    info.sections.emplace_back("(bare fatbin)");
    parse_fatbin_containers(bytes, info);
  } else {
    throw NotElfError("neither an ELF file nor a fat binary");
  }
  finish(info);
  return info;
}

}  // namespace

FatbinInfo read_fatbin(std::span<const std::byte> bytes) { return read_fatbin_impl(bytes, false); }


FatbinInfo read_fatbin_region(int fd, std::uint64_t offset, std::uint64_t size) {
  if (size == 0) throw NotElfError("empty file");
  // A mapped page past the end of the file faults (SIGBUS): a truncated
  // archive must be an error here, not a crash later.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || offset > static_cast<std::uint64_t>(st.st_size) ||
      size > static_cast<std::uint64_t>(st.st_size) - offset)
    throw FatbinError("truncated: " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                      " run past the end of the file");
  static const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = offset / page * page, lead = offset - start;
  Mapping m;
  m.size = static_cast<std::size_t>(lead + size);
  m.addr = ::mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(start));
  if (m.addr == MAP_FAILED) throw FatbinError(std::string("cannot map: ") + std::strerror(errno));
  // Only headers are read, scattered over hundreds of MB: no read-ahead
  // around each of them (it would stay resident until the unmap).
  ::madvise(m.addr, m.size, MADV_RANDOM);
  return read_fatbin_impl({static_cast<const std::byte*>(m.addr) + lead, static_cast<std::size_t>(size)}, true);
}

FatbinInfo read_fatbin_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FatbinError(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0;
  const int err = errno;
  try {
    if (!sized) throw FatbinError(std::string("cannot stat: ") + std::strerror(err));
    FatbinInfo info = read_fatbin_region(fd, 0, static_cast<std::uint64_t>(st.st_size));
    ::close(fd);
    return info;
  } catch (const NotElfError& e) {
    ::close(fd);
    throw NotElfError(path.string() + ": " + e.what());
  } catch (const FatbinError& e) {
    ::close(fd);
    throw FatbinError(path.string() + ": " + e.what());
  }
}

void record_scan_error(FatbinScan& s, const std::exception& e) {
  s.error = e.what();
  if (dynamic_cast<const NotElfError*>(&e)) {  // nothing loadable: no device code, said so
    s.info = FatbinInfo{};
    s.error += ": not a loadable library, counted as no device code";
  }
}

FatbinScan scan_fatbin(std::string path, std::span<const std::byte> bytes) {
  FatbinScan s{std::move(path), std::nullopt, {}};
  try {
    s.info = read_fatbin(bytes);
  } catch (const FatbinError& e) {
    record_scan_error(s, e);
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

const char* to_string(FoundBy f) {
  switch (f) {
    case FoundBy::sections: return "sections";
    case FoundBy::wrappers: return "wrappers";
    case FoundBy::scan: return "scan";
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
