// libFuzzer: any bytes as an ELF file or bare fat binary. Expected outcome
// is a FatbinInfo or a FatbinError; anything else (crash, sanitizer report,
// hang, write to the const input) is a bug.
// A second round wraps the input in a linked ELF (ET_DYN) whose
// .nvFatBinSegment wrappers point into it, so mutations reach the wrapper
// chains and the magic scan, which a mutated real ELF seldom does.
#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "audit/fatbin.h"

namespace {

void read_any(std::span<const std::byte> bytes) {
  using namespace kiln::audit;
  try {
    const FatbinInfo info = read_fatbin(bytes);
    for (unsigned cc : {75u, 90u, 121u}) (void)arch_support(info, cc / 10, cc % 10);
  } catch (const FatbinError&) {
  }
}

// ELF64 ET_DYN: [ehdr][.ldata = data][.nvFatBinSegment = wrappers][.shstrtab][shdrs].
// The first input byte picks how many wrappers (0..7); each takes 4 more
// bytes as an offset into .ldata (or, top bit set, anywhere).
std::string wrap_in_elf(const std::uint8_t* p, std::size_t n) {
  if (n == 0) return {};
  std::size_t count = p[0] % 8, at = 1;
  std::string data;
  std::vector<std::uint32_t> targets;
  for (std::size_t i = 0; i < count && at + 4 <= n; ++i, at += 4) {
    std::uint32_t t;
    std::memcpy(&t, p + at, 4);
    targets.push_back(t);
  }
  data.assign(reinterpret_cast<const char*>(p + at), n - at);
  const char shstr[] = "\0.ldata\0.nvFatBinSegment\0.shstrtab";
  const std::uint64_t ldata = sizeof(Elf64_Ehdr), seg = ldata + data.size();
  std::string wrappers;
  for (std::uint32_t t : targets) {
    std::uint8_t w[24] = {};
    const std::uint32_t magic = 0x466243B1, version = 1;
    const std::uint64_t va = (t & 0x80000000u) ? (t & 0x7fffffffu) : ldata + t;
    std::memcpy(w, &magic, 4);
    std::memcpy(w + 4, &version, 4);
    std::memcpy(w + 8, &va, 8);
    wrappers.append(reinterpret_cast<const char*>(w), 24);
  }
  std::string out(sizeof(Elf64_Ehdr), '\0');
  out += data + wrappers;
  const std::uint64_t stroff = out.size();
  out.append(shstr, sizeof shstr);
  const std::uint64_t shoff = out.size();
  Elf64_Shdr sh[4] = {};
  sh[1] = {1, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, ldata, ldata, data.size(), 0, 0, 8, 0};
  sh[2] = {8, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, seg, seg, wrappers.size(), 0, 0, 8, 0};
  sh[3] = {25, SHT_STRTAB, 0, 0, stroff, sizeof shstr, 0, 0, 1, 0};
  out.append(reinterpret_cast<const char*>(sh), sizeof sh);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_DYN;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof eh;
  eh.e_shoff = shoff;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 4;
  eh.e_shstrndx = 3;
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kiln::audit;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  read_any(bytes);
  const std::string elf = wrap_in_elf(data, size);
  read_any({reinterpret_cast<const std::byte*>(elf.data()), elf.size()});
  // The container walker on its own, without the ELF wrapper in front.
  FatbinInfo raw;
  try {
    parse_fatbin_containers(bytes, raw);
  } catch (const FatbinError&) {
  }
  return 0;
}
