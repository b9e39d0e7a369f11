// Which files of an image hold device code: every regular file whose first
// bytes are the ELF magic is read for its fat binaries (fatbin.h), whatever
// its name or mode; any other file costs the few bytes that tell so.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "audit/fatbin.h"
#include "image/image.h"

namespace kiln::audit {

// One file's device code from a stream of its bytes; nullopt when the file
// is not ELF (decided from its first bytes; the rest is left unread). A
// file lying plainly in the archive is read where it is (pread, bounded
// buffer); a streamed one of up to a few MB is held, a bigger one spills to
// an unlinked temporary file that is read the same way: memory never grows
// with the size of a library.
std::optional<FatbinScan> scan_file_stream(const std::string& path, std::uint64_t size, image::ByteStream& in);

// Results scanned while the layers were first read, by (layer, member);
// null for a member that is not ELF (a pointer: an image of 100,000 files
// keeps 100,000 entries).
using Prescanned = std::map<std::pair<std::size_t, std::size_t>, std::unique_ptr<const FatbinScan>>;

// Every ELF regular file of the final filesystem, scanned; one result per
// ELF file (sorted by path), an error in one never stops the others. With
// `pre`, files found there are not read again.
std::vector<FatbinScan> scan_image_binaries(const image::ImageFs& fs, const Prescanned* pre = nullptr);

// Smaller files cannot be ELF files with sections (an ELF32 header alone is 52 bytes).
constexpr std::uint64_t kMinElfSize = 52;

}  // namespace kiln::audit
