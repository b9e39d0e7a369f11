// Drift: the same combination built twice -- with the same inputs, or
// before and after a change -- compared by what the images hold (issue 17
// item 5). Packages from each image's own bytes (sbom::Inventory: dpkg,
// Python dist-info, CUDA components) and the layers (rootfs diff_ids);
// "same inputs, different contents" is what a floating apt mirror or a
// re-pushed base tag does, and it must be caught before promotion.
// docs/sbom.md, "Drift".
#pragma once
#include <string>
#include <vector>

#include "sbom/sbom.h"

namespace kiln::drift {

struct PackageChange {
  std::string kind;    // "deb" | "python" | "cuda"
  std::string name;
  std::string before;  // "" when added
  std::string after;   // "" when removed
  std::string str() const;  // "deb kiln-drift-probe 1.0-1 -> 2.0-1", "+ python six 1.16.0"
};

// Every package whose version differs, or that is in one image only; by
// kind, then name. Two packages of one kind and name (a deb's two
// architectures) are compared as "v1, v2".
std::vector<PackageChange> compare_packages(const sbom::Inventory& before, const sbom::Inventory& after);

struct LayerDiff {
  size_t before = 0, after = 0;  // layer counts
  size_t common_prefix = 0;      // leading layers with the same diff_id (the base's, usually)
  bool identical() const { return before == after && common_prefix == before; }
};
LayerDiff compare_layers(const std::vector<std::string>& before, const std::vector<std::string>& after);

// One combination's two builds.
struct Build {
  std::string image_id;
  std::string input_hash;
  std::string when;  // the build's start, RFC 3339
  bool locked = false;  // unknown from the ledger: false
};

struct Comparison {
  std::string id;  // combination
  Build before, after;
  std::vector<PackageChange> packages;
  LayerDiff layers;
  std::string error;  // set when the two could not be compared (an image gone)
  // "identical" (same image), "same-packages" (rebuilt, packages the same,
  // layers not bit-for-bit), "drifted" (packages differ), "unknown" (error),
  // "single" (fewer than two builds).
  std::string verdict() const;
  // The likely cause, in words (same inputs vs changed inputs, base layers
  // changed, packages changed while the inputs did not).
  std::string cause() const;
};

}  // namespace kiln::drift
