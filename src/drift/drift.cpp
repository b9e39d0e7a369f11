#include "drift/drift.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include <fmt/format.h>

namespace kiln::drift {

std::string PackageChange::str() const {
  if (before.empty()) return fmt::format("+ {} {} {}", kind, name, after);
  if (after.empty()) return fmt::format("- {} {} {}", kind, name, before);
  return fmt::format("~ {} {} {} -> {}", kind, name, before, after);
}

namespace {

// kind/name -> "v1, v2" (a name can be installed twice: a deb for two
// architectures, a dist-info in two environments).
std::map<std::pair<std::string, std::string>, std::string> versions(const sbom::Inventory& inv) {
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> all;
  for (const auto& p : inv.packages) all[{std::string(sbom::to_string(p.kind)), p.name}].push_back(p.version);
  std::map<std::pair<std::string, std::string>, std::string> out;
  for (auto& [key, list] : all) {
    std::sort(list.begin(), list.end());
    out[key] = fmt::format("{}", fmt::join(list, ", "));
  }
  return out;
}

}  // namespace

std::vector<PackageChange> compare_packages(const sbom::Inventory& before, const sbom::Inventory& after) {
  auto a = versions(before), b = versions(after);
  std::vector<PackageChange> out;
  for (const auto& [key, v] : a) {
    auto it = b.find(key);
    if (it == b.end()) out.push_back({key.first, key.second, v, ""});
    else if (it->second != v) out.push_back({key.first, key.second, v, it->second});
  }
  for (const auto& [key, v] : b)
    if (!a.count(key)) out.push_back({key.first, key.second, "", v});
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return std::tie(x.kind, x.name) < std::tie(y.kind, y.name); });
  return out;
}

LayerDiff compare_layers(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  LayerDiff d{before.size(), after.size(), 0};
  while (d.common_prefix < before.size() && d.common_prefix < after.size() && before[d.common_prefix] == after[d.common_prefix])
    ++d.common_prefix;
  return d;
}

std::string Comparison::verdict() const {
  if (!error.empty()) return "unknown";
  if (before.image_id.empty()) return "single";
  if (before.image_id == after.image_id) return "identical";
  return packages.empty() ? "same-packages" : "drifted";
}

std::string Comparison::cause() const {
  const std::string v = verdict();
  if (v == "unknown") return error;
  if (v == "single") return "fewer than two builds in the ledger: rebuild it (kiln build --no-cache) to compare";
  if (v == "identical") return "both builds made the same image";
  const bool same_inputs = !before.input_hash.empty() && before.input_hash == after.input_hash;
  const bool base_changed = layers.common_prefix == 0;
  std::string layers_words =
      layers.identical() ? "the same layers"
                         : fmt::format("{} of {} layers the same, then different (not bit-for-bit reproducible: "
                                       "file times in apt's and dpkg's records differ between runs)",
                                       layers.common_prefix, std::max(layers.before, layers.after));
  if (v == "same-packages")
    return fmt::format("{}; the same package versions, {}", same_inputs ? "same inputs" : "inputs changed", layers_words);
  if (base_changed)
    return fmt::format("the base image's layers differ ({}): the base changed under its name; pin it by digest (kiln lock)",
                       same_inputs ? "same inputs" : "and the inputs changed");
  if (same_inputs)
    return "same inputs (input hash " + after.input_hash.substr(0, 12) +
           "), different packages: the package sources moved under the same Dockerfile (an unpinned apt mirror or pip "
           "index); pin them with kiln lock";
  return "the inputs changed (input hash " + before.input_hash.substr(0, 12) + " -> " + after.input_hash.substr(0, 12) +
         ": Dockerfile, lock, base or catalog) and with them the packages";
}

}  // namespace kiln::drift
