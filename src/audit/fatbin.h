// Which GPU architectures a binary carries code for, read from the bytes of
// its CUDA fat binaries (.nv_fatbin / __nv_relfatbin ELF sections, or a bare
// .fatbin file). No GPU, driver or CUDA toolkit is needed. See docs/audit.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "util/cc.h"

namespace kiln::audit {

// A compute capability as the fat binary names it: arch 90 = 9.0, 121 = 12.1.
// variant: 0 (portable), 'a' (arch-specific, sm_90a: runs only on exactly
// that CC) or 'f' (family-specific, sm_100f: runs on the same major, >= minor).
// The one compute-capability type (util/cc.h), whose
// sm() and compute() name its SASS and PTX ("sm_90a", "compute_90a").
using Arch = ComputeCapability;

enum class Compression { none, lz4, zstd };
enum class EntryKind { ptx, sass };

struct FatbinEntry {
  EntryKind kind = EntryKind::sass;
  Arch arch;
  Compression compression = Compression::none;
  std::uint32_t header_size = 0;
  std::uint64_t payload_size = 0;       // as stored (padded, maybe compressed)
  std::uint64_t uncompressed_size = 0;  // 0 when not compressed
  // Header +0x1A/+0x18. On PTX entries the PTX ISA version (9.0 from nvcc
  // 13.0), which names the toolkit that made it; on SASS 1.x (ELF ABI).
  std::uint16_t version_major = 0, version_minor = 0;
  // From __nv_relfatbin: relocatable (-rdc) device code, input to nvlink.
  bool relocatable = false;
  // Whether it counts for what the runtime can load (sass/ptx below). Not:
  // relocatable code of a linked ELF (the runtime loads the device-linked
  // image in .nv_fatbin), and the fat-binary sections of a linked ELF that
  // registers none (no .nvFatBinSegment wrapper: libcufftw's sm_75 image
  // is an empty device link that nothing loads).
  bool counted = true;
};

// Where device code was found, besides the fat-binary sections.
enum class FoundBy {
  sections,  // .nv_fatbin / __nv_relfatbin only (or a bare .fatbin)
  wrappers,  // also containers that .nvFatBinSegment wrappers point at outside them
  scan,      // also containers found by scanning other allocated sections for the
             // container magic (libraries that load their own modules: libcufft)
};

struct FatbinInfo {
  std::vector<std::string> sections;  // sections device code was found in, in the order read
  std::size_t containers = 0;         // distinct containers (each read once)
  std::vector<FatbinEntry> entries;   // every SASS/PTX entry, in the order read
  std::size_t unknown_entries = 0;    // entries of another kind (skipped)
  std::size_t wrappers = 0;           // .nvFatBinSegment wrappers (registered fat binaries)
  std::size_t wrappers_unresolved = 0;  // wrappers whose pointer leads to no container
  FoundBy found_by = FoundBy::sections;
  bool linked = false;                // ET_DYN / ET_EXEC (else an object or a bare fatbin)
  // What the runtime can load: the entries that are `counted`.
  std::vector<Arch> sass;             // sorted, unique
  std::vector<Arch> ptx;              // sorted, unique
  // The entries that are not counted, for information.
  std::vector<Arch> ignored_sass, ignored_ptx;

  bool has_device_code() const { return !sass.empty() || !ptx.empty(); }
  // The newest PTX ISA version among the PTX entries for `arch`; nullopt
  // when there is none or its header leaves the field zero.
  std::optional<std::pair<unsigned, unsigned>> ptx_isa(const Arch& arch) const;
  bool any_compressed() const;
};

// Thrown for malformed input: what is wrong, and at which offset.
struct FatbinError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The bytes are neither an ELF file nor a fat binary (an empty file, a text
// placeholder, a linker script): nothing the loader could load, so nothing
// the CUDA runtime could register. Unlike a damaged ELF or fat binary (a
// FatbinError: its device code is unknown), scans count it as no device code.
struct NotElfError : FatbinError {
  using FatbinError::FatbinError;
};

// An ELF file (any class, little-endian) or a bare fat binary (starts with the
// container magic). An ELF without device code gives an empty info.
// Reads .nv_fatbin and __nv_relfatbin; follows the .nvFatBinSegment wrappers
// (what the CUDA runtime registers) to containers outside them; and, in a
// linked ELF without wrappers or with large-data sections (.ldata, .lrodata),
// scans the other allocated non-code sections for the container magic,
// keeping only candidates that parse whole (libraries that load their own
// modules: libcufft). Each container is read once. See FatbinEntry::counted.
// Throws FatbinError; never reads outside `bytes`.
FatbinInfo read_fatbin(std::span<const std::byte> bytes);

// Whether these first bytes of a file start an ELF file (the magic).
bool is_elf(std::span<const std::byte> head);

// Same, for a file on disk, read with pread through one bounded buffer
// (never mapped, never held whole: memory does not grow with the file).
FatbinInfo read_fatbin_file(const std::filesystem::path& path);
// Same, for `size` bytes at `offset` of an open file: a library that lies
// inside an uncompressed image archive, read where it is.
FatbinInfo read_fatbin_region(int fd, std::uint64_t offset, std::uint64_t size);

// Walks containers laid end to end (a section's bytes, or a .fatbin file),
// appending to `info`. Exposed for tests and fuzzing.
void parse_fatbin_containers(std::span<const std::byte> bytes, FatbinInfo& info);

// Per-file outcome for batch scans: an error never stops the others.
struct FatbinScan {
  std::string path;
  std::optional<FatbinInfo> info;
  // Why info is empty: the fat binary could not be read, so what the
  // library needs is unknown (verdicts fail closed). Also set, with an
  // empty info, for a file that is not ELF at all (NotElfError).
  std::string error;
};
FatbinScan scan_fatbin(std::string path, std::span<const std::byte> bytes);
// A scan's failure: FatbinScan::error; a NotElfError also gives an empty info.
void record_scan_error(FatbinScan& s, const std::exception& e);

// How a GPU of compute capability major.minor can run this code.
enum class ArchMatch {
  sass_exact,       // SASS built for exactly this CC
  sass_compatible,  // SASS of the same major, lower minor (binary compatible)
  ptx_jit,          // only PTX of a lower-or-equal CC: the driver JIT-compiles
  none,             // "no kernel image is available for execution"
};
struct ArchSupport {
  ArchMatch match = ArchMatch::none;
  std::optional<Arch> via;  // the entry that serves it
};
ArchSupport arch_support(const std::vector<Arch>& sass, const std::vector<Arch>& ptx,
                         unsigned major, unsigned minor);
inline ArchSupport arch_support(const FatbinInfo& info, unsigned major, unsigned minor) {
  return arch_support(info.sass, info.ptx, major, minor);
}
const char* to_string(ArchMatch match);
const char* to_string(Compression compression);
const char* to_string(FoundBy found_by);

}  // namespace kiln::audit
