#include "audit/torch_arch.h"

#include <algorithm>
#include <map>

namespace kiln::audit {

TorchArchList torch_arch_list(const std::vector<FatbinEntry>& entries) {
  std::map<std::pair<EntryKind, Arch>, size_t> count;
  size_t most = 0;
  for (const auto& e : entries)
    if (e.counted) most = std::max(most, ++count[{e.kind, e.arch}]);
  TorchArchList out;
  for (const auto& [key, n] : count) {
    const auto& [kind, arch] = key;
    const bool ptx = kind == EntryKind::ptx;
    if (2 * n < most) out.specific.push_back(ptx ? arch.compute() : arch.sm());
    else (ptx ? out.list.ptx : out.list.sass).push_back(arch);
  }
  std::sort(out.list.sass.begin(), out.list.sass.end());
  std::sort(out.list.ptx.begin(), out.list.ptx.end());
  return out;
}

}  // namespace kiln::audit
