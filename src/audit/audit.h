// `kiln audit`: one image read offline -> components, per-library SASS/PTX,
// the GPU x verdict grid, the minimum driver and warnings; as JSON
// (schema kiln.audit/v1, docs/audit.md), a table or Markdown.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/components.h"
#include "audit/fatbin.h"
#include "audit/scan.h"
#include "audit/verdict.h"
#include "catalog/catalog.h"
#include "image/image.h"

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
};

// Reads components and fat binaries from `fs` and judges `gpus`.
ImageAudit audit_image(const image::ImageFs& fs, std::string input, const std::vector<GpuTarget>& gpus,
                       const catalog::Catalog& c);

// The same in one pass over the archive: the layers are read once, hashing
// them, building the final filesystem, keeping the small component files and
// scanning every ELF member (by its magic) as it passes; results for members
// that the final filesystem hides are dropped. Files that could not be
// matched that way (a library reached through a tar hardlink of another
// name) are read in a second, partial pass. `source` is set by the caller.
ImageAudit audit_image_source(std::shared_ptr<image::BlobSource> source, std::string input,
                              const std::vector<GpuTarget>& gpus, const catalog::Catalog& c,
                              image::ReadOptions options = {});
ImageAudit audit_image_archive(const std::filesystem::path& path, std::string input, const std::vector<GpuTarget>& gpus,
                               const catalog::Catalog& c, image::ReadOptions options = {});

// A driver library (libcuda.so*, libnvidia-ml.so*, libnvidia-ptxjitcompiler.so*,
// libcudadebugger.so*, libnvidia-nvvm.so*) outside a stubs/ directory: it
// shadows the host's driver library that the container runtime mounts, and
// fails with driver/library mismatches. One definition for audit and verify.
bool is_driver_library(std::string_view path);
// Every non-directory entry of the final filesystem that is one.
std::vector<std::string> driver_libraries(const image::ImageFs& fs);

nlohmann::json to_json(const ImageAudit& a);
// {"schema": "kiln.audit/v1", "catalog_version", "gpus", "images": [...]}.
nlohmann::json to_json(const std::vector<ImageAudit>& audits, const std::vector<GpuTarget>& gpus,
                       const catalog::Catalog& c);
std::string to_table(const ImageAudit& a, const catalog::Catalog& c);
std::string to_markdown(const ImageAudit& a, const catalog::Catalog& c);

}  // namespace kiln::audit
