// libFuzzer: any bytes as an ELF file or bare fat binary. Expected outcome
// is a FatbinInfo or a FatbinError; anything else (crash, sanitizer report,
// hang, write to the const input) is a bug.
#include <cstddef>
#include <cstdint>

#include "audit/fatbin.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kiln::audit;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const FatbinInfo info = read_fatbin(bytes);
    for (unsigned cc : {75u, 90u, 121u}) (void)arch_support(info, cc / 10, cc % 10);
  } catch (const FatbinError&) {
  }
  // The container walker on its own, without the ELF wrapper in front.
  FatbinInfo raw;
  try {
    parse_fatbin_containers(bytes, raw);
  } catch (const FatbinError&) {
  }
  return 0;
}
