// `kiln audit`: one image read offline -> components, per-library SASS/PTX,
// the GPU x verdict grid, the minimum driver and warnings; as JSON
// (schema kiln.audit/v2, docs/audit.md), a table or Markdown.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/components.h"
#include "audit/fatbin.h"
#include "audit/scan.h"
#include "audit/verdict.h"
#include "catalog/catalog.h"
#include "image/image.h"
#include "util/version.h"

namespace kiln::audit {

struct ImageAudit {
  std::string input;  // as the user named it
  std::string source; // what was read ("docker save", "OCI layout", "engine")
  image::ImageConfig config;
  std::size_t layers = 0;
  Components components;
  // ELF files (chosen by their magic, whatever their names) that carry
  // device code, counted or not, or whose fat binaries could not be read.
  std::vector<FatbinScan> libraries;
  std::size_t elf_files = 0;  // ELF files examined, with or without device code
  ImageVerdict verdict;
  std::vector<std::string> warnings;  // image reading, pitfalls, and the verdict's
  // Layers whose blob was read, and layers taken from the layer cache
  // (layer_cache.h); both 0 when the image was given already read (audit_image).
  std::size_t layers_read = 0, layers_cached = 0;
};

class LayerCache;  // audit/layer_cache.h

// Progress of one image's read: layer `done` of `total` (0-based; `total`
// when finished) being read or taken from the cache (`cached` so far),
// `bytes` of files walked in the layers read (uncompressed). Called at each
// layer and each file: the callee throttles.
using ReadProgress = std::function<void(std::size_t done, std::size_t total, std::uint64_t bytes, std::size_t cached)>;

// An image read once, its libraries scanned as they passed (by layer and
// member), layers taken from `cache` where it has them and stored there when
// read and verified. Shared by audit_image_source and verify's static check.
struct ScannedImage {
  image::ImageFs fs;
  Prescanned pre;
  std::size_t layers_read = 0, layers_cached = 0;
};
ScannedImage read_scanned(std::shared_ptr<image::BlobSource> source, image::ReadOptions options,
                          LayerCache* cache = nullptr, const ReadProgress& progress = {});

// Reads components and fat binaries from `fs` and judges `gpus`.
ImageAudit audit_image(const image::ImageFs& fs, std::string input, const std::vector<GpuTarget>& gpus,
                       const catalog::Catalog& c);

// The same in one pass over the archive: the layers are read once, hashing
// them, building the final filesystem, keeping the small component files and
// scanning every ELF member (by its magic) as it passes; results for members
// that the final filesystem hides are dropped. Files that could not be
// matched that way (a library reached through a tar hardlink of another
// name) are read in a second, partial pass. `source` is set by the caller.
// With `cache`, layers read before are not read again (layer_cache.h).
ImageAudit audit_image_source(std::shared_ptr<image::BlobSource> source, std::string input,
                              const std::vector<GpuTarget>& gpus, const catalog::Catalog& c,
                              image::ReadOptions options = {}, LayerCache* cache = nullptr,
                              const ReadProgress& progress = {});
ImageAudit audit_image_archive(const std::filesystem::path& path, std::string input, const std::vector<GpuTarget>& gpus,
                               const catalog::Catalog& c, image::ReadOptions options = {}, LayerCache* cache = nullptr,
                               const ReadProgress& progress = {});

// A driver library (libcuda.so*, libnvidia-ml.so*, libnvidia-ptxjitcompiler.so*,
// libcudadebugger.so*, libnvidia-nvvm.so*) outside a stubs/ directory: it
// shadows the host's driver library that the container runtime mounts, and
// fails with driver/library mismatches. One definition for audit and verify.
bool is_driver_library(std::string_view path);
// Every non-directory entry of the final filesystem that is one.
std::vector<std::string> driver_libraries(const image::ImageFs& fs);

nlohmann::json to_json(const ImageAudit& a);
// {"schema": "kiln.audit/v2", "catalog_version", "gpus", "images": [...]}.
nlohmann::json to_json(const std::vector<ImageAudit>& audits, const std::vector<GpuTarget>& gpus,
                       const catalog::Catalog& c);
std::string to_table(const ImageAudit& a, const catalog::Catalog& c);

// `kiln audit docker://HOST/REPO`: every tag of a repository, each distinct
// manifest audited once. Answers "which tags serve these GPUs (on this
// driver)?" in one table.
struct RepositoryTag {
  std::string tag;
  std::string digest;          // of the manifest the tag names
  std::size_t image = SIZE_MAX;  // index into RepositoryAudit::images; SIZE_MAX: skipped or failed
  std::string skipped;         // why it was not audited (kiln's own record and staging tags)
  std::string error;           // why it could not be read
};
struct RepositoryAudit {
  std::string repository;            // "HOST/REPO" as given
  std::vector<RepositoryTag> tags;   // sorted by tag
  std::vector<ImageAudit> images;    // one per distinct manifest digest
  std::optional<Version> driver;     // --driver: judge each tag on it
};
// {"name", "driver", "tags": [{"tag", "digest", "image" (index into
// `first_image` + the document's images), "skipped", "error", "gpus":
// {NAME: {"support", "min_driver", "driver_ok", "reason"}}}]}
nlohmann::json to_json(const RepositoryAudit& r, std::size_t first_image);
std::string to_table(const RepositoryAudit& r, const catalog::Catalog& c);
std::string to_markdown(const RepositoryAudit& r, const catalog::Catalog& c);
std::string to_markdown(const ImageAudit& a, const catalog::Catalog& c);

}  // namespace kiln::audit
