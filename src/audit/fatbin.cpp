// Fat-binary layout (verified on nvcc 13.0 output and CUDA 13 libraries, see
// docs/audit.md): containers of a 16-byte header + entries, each entry a
// header (size in its own field) + payload. All little-endian.
#include "audit/fatbin.h"

#include "util/cc.h"

#include <fcntl.h>
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
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

bool is_elf_magic(const std::byte* p, std::uint64_t n) { return n >= 4 && std::memcmp(p, "\x7f" "ELF", 4) == 0; }

// Random access to one file's bytes: in memory (tests, fuzzers, small
// members), or read with pread through one bounded window. A library of any
// size then costs a fixed buffer: nothing is mapped, so no touched page of
// a 600 MB library counts against the process, and page-cache reads of the
// headers are all it takes.
class Bytes {
 public:
  static constexpr std::size_t kWindow = std::size_t(256) << 10;
  static constexpr std::size_t kHeaderRead = std::size_t(4) << 10;

  explicit Bytes(std::span<const std::byte> mem) : mem_(mem), size_(mem.size()) {}
  // A crafted file of look-alikes could make the window refill over and
  // over; real libraries read each byte about once, so the budget is loose.
  Bytes(int fd, std::uint64_t base, std::uint64_t size)
      : fd_(fd), base_(base), size_(size), budget_(size * 8 + (std::uint64_t(256) << 20)) {}

  std::uint64_t size() const { return size_; }

  // n bytes at `at`, valid until the next call. The caller keeps at + n
  // within size(); n above kWindow only for a one-off read.
  const std::byte* at(std::uint64_t at, std::size_t n) {
    if (fd_ < 0) return mem_.data() + at;
    if (at >= win_at_ && at - win_at_ + n <= win_.size()) return win_.data() + (at - win_at_);
    // Header reads jump over payloads: a small read each; walks (find,
    // all_zero) ask for whole windows.
    fill(at, std::max<std::uint64_t>(n, std::min<std::uint64_t>(kHeaderRead, size_ - at)));
    return win_.data();
  }
  std::uint64_t le(std::uint64_t off, std::size_t n) {
    const std::byte* p = at(off, n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(p[i]) << (8 * i);
    return v;
  }
  std::uint16_t u16(std::uint64_t off) { return std::uint16_t(le(off, 2)); }
  std::uint32_t u32(std::uint64_t off) { return std::uint32_t(le(off, 4)); }
  std::uint64_t u64(std::uint64_t off) { return le(off, 8); }

  // Up to `max` bytes at `at` (at < size()), as many as the window holds
  // without a refill when it holds enough: a forward walk reads each byte once.
  std::span<const std::byte> some(std::uint64_t at, std::uint64_t max) {
    const std::uint64_t want = std::min(max, size_ - at);
    if (fd_ >= 0 && at >= win_at_ && at - win_at_ < win_.size()) {
      const std::uint64_t held = std::min<std::uint64_t>(win_.size() - (at - win_at_), want);
      if (held == want || held >= kWindow / 4) return {win_.data() + (at - win_at_), std::size_t(held)};
    }
    const std::size_t n = std::size_t(std::min<std::uint64_t>(want, kWindow));
    return {this->at(at, n), n};
  }

  bool all_zero(std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t pos = from; pos < to;) {
      const auto b = some(pos, to - pos);
      if (!std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; })) return false;
      pos += b.size();
    }
    return true;
  }

  // The first offset in [from, to) where the n-byte `needle` starts; `to` if none.
  std::uint64_t find(std::uint64_t from, std::uint64_t to, const unsigned char* needle, std::size_t n) {
    for (std::uint64_t pos = from; pos < to && to - pos >= n;) {
      auto b = some(pos, to - pos);
      if (b.size() < n && b.size() < to - pos) b = {at(pos, n), n};  // the window's tail: read on from here
      const std::size_t len = b.size();
      const auto* p = reinterpret_cast<const unsigned char*>(b.data());
      if (const void* hit = ::memmem(p, len, needle, n)) return pos + std::uint64_t(static_cast<const unsigned char*>(hit) - p);
      if (pos + len == to) break;
      pos += len - (n - 1);  // a needle may straddle the window edge
    }
    return to;
  }

 private:
  void fill(std::uint64_t at, std::uint64_t n) {
    if (n > budget_) throw FatbinError("read the file over and over (fat-binary look-alikes?) at offset " + hex(at));
    budget_ -= n;
    win_.resize(std::size_t(n));
    for (std::size_t done = 0; done < n;) {
      const ssize_t r = ::pread(fd_, win_.data() + done, std::size_t(n) - done, off_t(base_ + at + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        win_.clear();
        throw FatbinError(r == 0 ? "the file ends early (truncated?) at offset " + hex(at + done)
                                 : std::string("cannot read: ") + std::strerror(errno));
      }
      done += std::size_t(r);
    }
    win_at_ = at;
  }

  std::span<const std::byte> mem_;
  int fd_ = -1;
  std::uint64_t base_ = 0, size_ = 0, budget_ = 0;
  std::vector<std::byte> win_;
  std::uint64_t win_at_ = 0;
};

// One entry at `at` inside a container body ending at `end`; returns its size.
std::uint64_t parse_entry(Bytes& b, std::uint64_t at, std::uint64_t end, FatbinInfo& info) {
  if (end - at < kEntryMinHeader) fail("truncated fat-binary entry header", at);
  const std::byte* h = b.at(at, kEntryMinHeader);
  auto f = [&](std::size_t o, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(h[o + i]) << (8 * i);
    return v;
  };
  const auto kind = std::uint16_t(f(0, 2));
  const auto header_size = std::uint32_t(f(4, 4));
  const std::uint64_t payload = f(8, 8);
  if (header_size < kEntryMinHeader || header_size > end - at)
    fail("fat-binary entry header size " + std::to_string(header_size) + " out of range", at);
  if (payload > end - at - header_size)
    fail("fat-binary entry payload size " + std::to_string(payload) + " exceeds its container", at);
  if (kind != 1 && kind != 2) {  // neither PTX nor ELF: count it, skip it
    ++info.unknown_entries;
    return header_size + payload;
  }
  const auto arch = std::uint32_t(f(0x1C, 4));
  if (arch == 0 || arch > 9999) fail("implausible architecture number " + std::to_string(arch), at);
  const std::uint64_t flags = f(0x28, 8);
  FatbinEntry e;
  e.kind = kind == 1 ? EntryKind::ptx : EntryKind::sass;
  e.arch = Arch{arch / 10, arch % 10, 0};
  if (flags & kFlagArchSpecific) e.arch.variant = 'a';
  else if (flags & kFlagFamilySpecific) e.arch.variant = 'f';
  e.compression = compression_of(flags);
  e.header_size = header_size;
  e.payload_size = payload;
  e.version_minor = std::uint16_t(f(0x18, 2));
  e.version_major = std::uint16_t(f(0x1A, 2));
  if (e.compression != Compression::none) e.uncompressed_size = f(0x38, 8);
  if (info.entries.size() >= kMaxEntries) fail("too many fat-binary entries", at);
  info.entries.push_back(e);
  return header_size + payload;
}

// One container at `at`, strict, within [at, limit). Returns its end.
std::uint64_t parse_container(Bytes& b, std::uint64_t at, std::uint64_t limit, bool relocatable, FatbinInfo& into,
                              std::size_t& steps) {
  if (limit - at < kContainerHeader) fail("truncated fat-binary container header", at);
  const std::uint16_t header_size = b.u16(at + 6);
  const std::uint64_t body = b.u64(at + 8);
  if (header_size < kContainerHeader || header_size > limit - at)
    fail("fat-binary container header size " + std::to_string(header_size) + " out of range", at);
  if (body > limit - at - header_size)
    fail("fat-binary container size " + std::to_string(body) + " exceeds its section (truncated?)", at);
  const std::uint64_t end = at + header_size + body;
  const std::size_t first = into.entries.size();
  // Each step moves forward by at least kEntryMinHeader: no endless loop.
  for (std::uint64_t e = at + header_size; e < end; ++steps) e += parse_entry(b, e, end, into);
  for (std::size_t i = first; i < into.entries.size(); ++i) into.entries[i].relocatable = relocatable;
  return end;
}

// The containers that follow each other in [begin, end) -- a fat-binary
// section, or a bare .fatbin -- each strict and whole; zero padding after
// the last one is fine (sections are 8-aligned). `each(at, next)` hears of
// every container read.
template <typename Each>
void walk_containers(Bytes& b, std::uint64_t begin, std::uint64_t end, bool relocatable, FatbinInfo& into,
                     std::size_t& steps, Each each) {
  for (std::uint64_t at = begin; at < end;) {
    if (end - at < kContainerHeader || b.u32(at) != kContainerMagic) {
      if (b.all_zero(at, end)) break;
      fail(end - at < kContainerHeader ? "truncated fat-binary container header" : "bad fat-binary magic " + hex(b.u32(at)), at);
    }
    const std::uint64_t next = parse_container(b, at, end, relocatable, into, steps);
    each(at, next);
    at = next;
  }
}

bool is_fatbin_section(std::string_view name) { return name == ".nv_fatbin" || name == "__nv_relfatbin"; }

// .nvFatBinSegment holds one wrapper per registered fat binary (what
// __cudaRegisterFatBinary gets): u32 magic, u32 version, u64 pointer to the
// fat-binary data (a virtual address), u64 filename list or 0.
constexpr std::uint32_t kWrapperMagic = 0x466243B1;
constexpr std::size_t kWrapperSize = 24, kWrapperSize32 = 16;
// Scanning for the magic tries candidates that may walk many entry headers
// before failing; bound the total so a crafted file stays linear.
constexpr std::size_t kMaxScanSteps = std::size_t(4) << 20;
// Section names live in .shstrtab: a few KB in real files.
constexpr std::uint64_t kMaxNameTable = std::uint64_t(16) << 20;
constexpr std::uint64_t kMaxSections = std::uint64_t(1) << 20;

// What the reader needs of a section header (both ELF classes).
struct Section {
  std::string name;
  std::uint32_t type = 0;
  std::uint64_t flags = 0, addr = 0, offset = 0, size = 0;
  std::uint32_t link = 0, info = 0;
};
struct Segment {  // PT_LOAD
  std::uint64_t offset = 0, vaddr = 0, filesz = 0;
};

// A file range [begin, end) holding the bytes of a mapped address range.
struct Region {
  std::uint64_t begin = 0, end = 0;
  const std::string* section = nullptr;  // nullptr: a PT_LOAD segment
};

// The ELF header, section table and PT_LOAD segments, parsed here (both
// classes, little-endian only) from a few small reads: only the headers
// and the fat-binary bytes are ever read, never the whole file.
class ElfReader {
 public:
  ElfReader(Bytes& file, FatbinInfo& info) : b_(file), info_(info) {}

  void read() {
    if (!read_headers()) return;  // big-endian: no CUDA host loads it, so no device code
    info_.linked = type_ == ET_DYN || type_ == ET_EXEC;
    // 1. The fat-binary sections, whole: every container in them is strict.
    for (const auto& s : sections_) {
      if (!is_fatbin_section(s.name)) continue;
      info_.sections.push_back(s.name);
      const auto [begin, end] = section_range(s);
      fat_.push_back({begin, end, &s.name});
      try {
        walk_section(begin, end, s.name == "__nv_relfatbin");
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
      if (is_fatbin_section(s.name) || s.name == ".nvFatBinSegment" || s.type != SHT_PROGBITS || !(s.flags & SHF_ALLOC) ||
          (s.flags & SHF_EXECINSTR) || (s.flags & SHF_COMPRESSED))
        continue;
      const bool large = s.name.starts_with(".ldata") || s.name.starts_with(".lrodata");
      if (resolved_any && !large) continue;
      scan(s);
    }
  }

 private:
  std::uint64_t word(std::uint64_t at) { return is64_ ? b_.u64(at) : b_.u32(at); }

  // False for a big-endian ELF: CUDA hosts are all little-endian, so such
  // a file (test data of some package, another platform's binary) can hold
  // nothing a CUDA runtime registers.
  bool read_headers() {
    if (b_.size() < EI_NIDENT) throw FatbinError("truncated ELF header");
    const std::byte* id = b_.at(0, EI_NIDENT);
    if (id[EI_DATA] == std::byte{ELFDATA2MSB}) return false;
    if (id[EI_DATA] != std::byte{ELFDATA2LSB}) throw FatbinError("bad ELF data encoding");
    if (id[EI_CLASS] != std::byte{ELFCLASS64} && id[EI_CLASS] != std::byte{ELFCLASS32}) throw FatbinError("bad ELF class");
    is64_ = id[EI_CLASS] == std::byte{ELFCLASS64};
    if (b_.size() < (is64_ ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr))) throw FatbinError("truncated ELF header");
    type_ = b_.u16(16);
    const std::uint64_t phoff = word(is64_ ? 32 : 28), shoff = word(is64_ ? 40 : 32);
    const std::uint64_t o = is64_ ? 54 : 42;  // e_phentsize, then e_phnum, e_shentsize, e_shnum, e_shstrndx
    const std::uint16_t phentsize = b_.u16(o), shentsize = b_.u16(o + 4);
    std::uint64_t phnum = b_.u16(o + 2), shnum = b_.u16(o + 6), shstrndx = b_.u16(o + 8);
    if (shoff != 0) {  // 0: no section table at all (stripped of it)
      if (shentsize < (is64_ ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr)))
        throw FatbinError("bad ELF section header size " + std::to_string(shentsize));
      if (shoff > b_.size() || b_.size() - shoff < shentsize) past_the_end(shoff);
      const Section zero = section_at(shoff);  // extended numbering lives in section 0
      if (shnum == 0) shnum = zero.size;
      if (shstrndx == SHN_XINDEX) shstrndx = zero.link;
      if (phnum == PN_XNUM) phnum = zero.info;
      if (shnum > kMaxSections || shnum * shentsize > b_.size() - shoff) past_the_end(shoff);
      for (std::uint64_t i = 0; i < shnum; ++i) sections_.push_back(section_at(shoff + i * shentsize));
      name_sections(shstrndx);
    }
    if (phentsize >= (is64_ ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) && phoff < b_.size())
      for (std::uint64_t i = 0; i < phnum && i < 4096 && phentsize <= (b_.size() - phoff) / (i + 1); ++i) {
        const std::uint64_t at = phoff + i * phentsize;
        if (b_.u32(at) != PT_LOAD) continue;
        if (is64_) loads_.push_back({b_.u64(at + 8), b_.u64(at + 16), b_.u64(at + 32)});
        else loads_.push_back({b_.u32(at + 4), b_.u32(at + 8), b_.u32(at + 16)});
      }
    return true;
  }

  [[noreturn]] void past_the_end(std::uint64_t shoff) {
    throw FatbinError("ELF section header table at " + hex(shoff) + " extends past the end of the file (" + hex(b_.size()) +
                      " bytes; truncated?)");
  }

  Section section_at(std::uint64_t at) {
    Section s;
    s.type = b_.u32(at + 4);
    if (is64_) {
      s.flags = b_.u64(at + 8), s.addr = b_.u64(at + 16), s.offset = b_.u64(at + 24), s.size = b_.u64(at + 32);
      s.link = b_.u32(at + 40), s.info = b_.u32(at + 44);
    } else {
      s.flags = b_.u32(at + 8), s.addr = b_.u32(at + 12), s.offset = b_.u32(at + 16), s.size = b_.u32(at + 20);
      s.link = b_.u32(at + 24), s.info = b_.u32(at + 28);
    }
    s.name = std::to_string(b_.u32(at));  // the name's offset, resolved by name_sections
    return s;
  }

  // Names from the section-name table; a name that cannot be read is empty
  // (such a section is then neither a fat-binary section nor scanned by name).
  void name_sections(std::uint64_t shstrndx) {
    std::string table;
    if (shstrndx < sections_.size()) {
      const Section& t = sections_[shstrndx];
      if (t.type != SHT_NOBITS && t.offset <= b_.size() && t.size <= b_.size() - t.offset && t.size <= kMaxNameTable) {
        table.resize(t.size);
        for (std::uint64_t done = 0; done < t.size;) {
          const std::size_t n = std::size_t(std::min<std::uint64_t>(Bytes::kWindow, t.size - done));
          std::memcpy(table.data() + done, b_.at(t.offset + done, n), n);
          done += n;
        }
      }
    }
    for (auto& s : sections_) {
      const std::uint64_t off = std::stoull(s.name);
      s.name = off < table.size() ? std::string(table.c_str() + off) : std::string();
    }
  }

  // The file bytes of a fat-binary or wrapper section, checked.
  std::pair<std::uint64_t, std::uint64_t> section_range(const Section& s) {
    if (s.type == SHT_NOBITS) throw FatbinError("section " + s.name + " has no file bytes (NOBITS)");
    if (s.flags & SHF_COMPRESSED) throw FatbinError("section " + s.name + " is ELF-compressed (not supported)");
    if (s.offset > b_.size() || s.size > b_.size() - s.offset)
      throw FatbinError("section " + s.name + " (offset " + hex(s.offset) + ", size " + hex(s.size) +
                        ") extends past the end of the file (" + hex(b_.size()) + " bytes; truncated?)");
    return {s.offset, s.offset + s.size};
  }

  std::uint64_t container(std::uint64_t at, std::uint64_t limit, bool relocatable, FatbinInfo& into) {
    return parse_container(b_, at, limit, relocatable, into, steps_);
  }

  // Adds a trial container's entries; false when it has none.
  // (libcufft: ~12,700 containers hold only entries of kind 8, arch 75,
  // flags 0x12011, probably LTO-IR for its callbacks; counted as unknown.)
  bool merge(const FatbinInfo& trial, std::uint64_t at) {
    if (trial.entries.empty() && trial.unknown_entries == 0) return false;
    if (info_.entries.size() + trial.entries.size() > kMaxEntries) fail("too many fat-binary entries", at);
    info_.entries.insert(info_.entries.end(), trial.entries.begin(), trial.entries.end());
    info_.unknown_entries += trial.unknown_entries;
    return true;
  }

  void mark(std::uint64_t at, std::uint64_t end) {
    seen_[at] = end;
    ++info_.containers;
  }

  void walk_section(std::uint64_t begin, std::uint64_t end, bool relocatable) {
    walk_containers(b_, begin, end, relocatable, info_, steps_, [&](std::uint64_t at, std::uint64_t next) { mark(at, next); });
  }

  // The file bytes behind virtual address `va`: the allocated section that
  // holds it, else the PT_LOAD segment; nullopt when neither does.
  std::optional<Region> region_of(std::uint64_t va) const {
    for (const auto& s : sections_) {
      if (!(s.flags & SHF_ALLOC) || s.type == SHT_NOBITS || (s.flags & SHF_COMPRESSED)) continue;
      if (va < s.addr || va - s.addr >= s.size) continue;
      if (s.offset > b_.size()) return std::nullopt;
      const std::uint64_t end = s.offset + std::min<std::uint64_t>(s.size, b_.size() - s.offset);
      const std::uint64_t at = s.offset + (va - s.addr);
      if (at >= end) return std::nullopt;
      return Region{at, end, &s.name};
    }
    for (const auto& l : loads_) {
      if (va < l.vaddr || va - l.vaddr >= l.filesz || l.offset > b_.size()) continue;
      const std::uint64_t end = l.offset + std::min<std::uint64_t>(l.filesz, b_.size() - l.offset);
      const std::uint64_t at = l.offset + (va - l.vaddr);
      if (at >= end) return std::nullopt;
      return Region{at, end, nullptr};
    }
    return std::nullopt;
  }

  bool in_fat_section(std::uint64_t at) const {
    return std::any_of(fat_.begin(), fat_.end(), [&](const Region& r) { return at >= r.begin && at < r.end; });
  }

  void note_section(const std::string* name, FoundBy how) {
    const std::string n = name ? *name : std::string("(PT_LOAD)");
    if (std::find(info_.sections.begin(), info_.sections.end(), n) == info_.sections.end()) info_.sections.push_back(n);
    info_.found_by = std::max(info_.found_by, how);
  }

  void follow_wrappers(const Section& s) {
    if (s.type == SHT_NOBITS) return;
    const auto [base, seg_end] = section_range(s);
    // ELF64: u32 magic, u32 version, u64 data, u64 filelist; ELF32: all u32.
    const std::size_t size = is64_ ? kWrapperSize : kWrapperSize32;
    for (std::uint64_t w = 0; w + size <= seg_end - base; w += size) {
      if (b_.u32(base + w) != kWrapperMagic) continue;  // not a wrapper (padding)
      ++info_.wrappers;
      const std::uint64_t va = word(base + w + 8);
      const auto r = va ? region_of(va) : std::nullopt;
      if (!r || r->end - r->begin < kContainerHeader || b_.u32(r->begin) != kContainerMagic) {
        ++info_.wrappers_unresolved;
        continue;
      }
      if (in_fat_section(r->begin)) continue;  // read whole already
      // The chain at the target: containers follow each other until the
      // magic stops or one already read is reached.
      if (seen_.count(r->begin)) continue;
      std::uint64_t at = r->begin;
      try {  // the container the wrapper names must be sound
        const std::uint64_t next = container(at, r->end, false, info_);
        mark(at, next);
        at = next;
      } catch (const FatbinError& e) {
        throw FatbinError("fat binary of wrapper " + std::to_string(w / size) + " in " + s.name + " (at " + hex(base + w) +
                          "): " + e.what());
      }
      note_section(r->section, FoundBy::wrappers);
      // Containers that follow it directly belong to the same image: read
      // them until the magic stops, one does not parse, or one was read.
      while (r->end - at >= kContainerHeader && b_.u32(at) == kContainerMagic && !seen_.count(at)) {
        FatbinInfo trial;
        std::uint64_t next = 0;
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
    if (s.offset >= b_.size()) return;
    const std::uint64_t end = s.offset + std::min<std::uint64_t>(s.size, b_.size() - s.offset);
    static constexpr unsigned char magic[4] = {0x50, 0xED, 0x55, 0xBA};
    std::uint64_t at = s.offset;
    while (at < end && end - at >= kContainerHeader) {  // a container read before may end past this section
      at = b_.find(at, end, magic, sizeof magic);
      if (end - at < kContainerHeader) break;
      if (auto it = seen_.find(at); it != seen_.end()) {
        at = it->second;
        continue;
      }
      if (b_.u16(at + 4) != 1 || b_.u16(at + 6) != kContainerHeader || b_.u64(at + 8) == 0) {
        ++at;
        continue;
      }
      FatbinInfo trial;
      std::uint64_t next = 0;
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

  Bytes& b_;
  FatbinInfo& info_;
  bool is64_ = true;
  std::uint16_t type_ = 0;
  std::vector<Section> sections_;
  std::vector<Segment> loads_;
  std::vector<Region> fat_;
  std::map<std::uint64_t, std::uint64_t> seen_;  // container offset -> its end
  std::size_t steps_ = 0;
};

}  // namespace

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

namespace {

void parse_containers(Bytes& b, FatbinInfo& info) {
  std::size_t steps = 0;
  walk_containers(b, 0, b.size(), false, info, steps, [&](std::uint64_t, std::uint64_t) { ++info.containers; });
  finish(info);
}

FatbinInfo read_fatbin_impl(Bytes& bytes) {
  FatbinInfo info;
  const std::byte* head = bytes.at(0, std::size_t(std::min<std::uint64_t>(4, bytes.size())));
  if (is_elf_magic(head, bytes.size())) {
    ElfReader(bytes, info).read();
  } else if (bytes.size() >= 4 && bytes.u32(0) == kContainerMagic) {
    info.sections.emplace_back("(bare fatbin)");
    parse_containers(bytes, info);
  } else {
    throw NotElfError("neither an ELF file nor a fat binary");
  }
  finish(info);
  return info;
}

}  // namespace

void parse_fatbin_containers(std::span<const std::byte> bytes, FatbinInfo& info) {
  Bytes b(bytes);
  parse_containers(b, info);
}

bool is_elf(std::span<const std::byte> head) { return is_elf_magic(head.data(), head.size()); }

FatbinInfo read_fatbin(std::span<const std::byte> bytes) {
  Bytes b(bytes);
  return read_fatbin_impl(b);
}

FatbinInfo read_fatbin_region(int fd, std::uint64_t offset, std::uint64_t size) {
  if (size == 0) throw NotElfError("empty file");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || offset > static_cast<std::uint64_t>(st.st_size) ||
      size > static_cast<std::uint64_t>(st.st_size) - offset)
    throw FatbinError("truncated: " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                      " run past the end of the file");
  Bytes b(fd, offset, size);
  return read_fatbin_impl(b);
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

// The rule itself lives in util/cc (support_for), shared with the plan, so
// a fat binary and a planned arch list are judged the same way.
ArchSupport arch_support(const std::vector<Arch>& sass, const std::vector<Arch>& ptx, unsigned major, unsigned minor) {
  const SupportVerdict v = support_for(ArchList{sass, ptx}, ComputeCapability{major, minor, 0});
  if (v.support == Support::unsupported) return {};
  const Arch via = *v.via;
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
