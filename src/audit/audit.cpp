#include "audit/audit.h"

#include <algorithm>

namespace kiln::audit {

namespace {

std::string_view base_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool in_stubs_dir(std::string_view path) { return path.starts_with("stubs/") || path.find("/stubs/") != std::string_view::npos; }

// The compute libraries of the driver package, which the container runtime
// mounts from the host (libnvidia-container's "compute" list, the CDI specs
// of nvidia-ctk: TECH-NOTES "CDI specs"); the only definition, used by
// audit's warning and verify's static check alike.
constexpr std::string_view kDriverLibraries[] = {"libcuda.so", "libcudadebugger.so", "libnvidia-ml.so",
                                                 "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so"};

}  // namespace

bool is_driver_library(std::string_view path) {
  const std::string_view b = base_name(path);
  if (in_stubs_dir(path)) return false;  // for linking only, never on the loader's path
  return std::any_of(std::begin(kDriverLibraries), std::end(kDriverLibraries),
                     [&](std::string_view lib) { return b.starts_with(lib); });
}

std::vector<std::string> driver_libraries(const image::ImageFs& fs) {
  std::vector<std::string> out;
  for (const auto& [path, f] : fs.files())
    if (f.type != image::FileType::directory && is_driver_library(path)) out.push_back(path);
  return out;
}

namespace {

ImageAudit audit_with(const image::ImageFs& fs, std::string input, const std::vector<GpuTarget>& gpus,
                      const catalog::Catalog& c, const Prescanned* pre) {
  ImageAudit a;
  a.input = std::move(input);
  a.config = fs.config();
  a.layers = fs.layers().size();
  a.components = detect_components(fs);
  std::vector<FatbinScan> elf = scan_image_binaries(fs, pre);
  a.elf_files = elf.size();
  for (auto& s : elf)  // listed: device code (counted or not) or an error
    if (!s.info || !s.error.empty() || !s.info->entries.empty() || s.info->unknown_entries) a.libraries.push_back(std::move(s));
  a.verdict = judge(a.components, a.libraries, gpus, c);
  a.warnings = fs.warnings();
  for (const auto& lib : driver_libraries(fs))
    a.warnings.push_back(lib + ": a CUDA driver library inside the image shadows the host's driver (mounted by the "
                               "container runtime) and fails with driver/library version mismatches; remove it");
  a.warnings.insert(a.warnings.end(), a.verdict.warnings.begin(), a.verdict.warnings.end());
  return a;
}

}  // namespace

ImageAudit audit_image(const image::ImageFs& fs, std::string input, const std::vector<GpuTarget>& gpus,
                       const catalog::Catalog& c) {
  return audit_with(fs, std::move(input), gpus, c, nullptr);
}

ImageAudit audit_image_source(std::shared_ptr<image::BlobSource> source, std::string input,
                              const std::vector<GpuTarget>& gpus, const catalog::Catalog& c, image::ReadOptions options) {
  Prescanned pre;
  options.keep = [](std::string_view path, std::uint64_t size) { return is_component_file(path, size); };
  options.on_file = [&](const std::string& path, std::size_t layer, std::size_t member, std::uint64_t size,
                        image::ByteStream& in) {
    if (size < kMinElfSize) return;
    auto s = scan_file_stream(path, size, in);
    pre.emplace(std::pair(layer, member), s ? std::make_unique<const FatbinScan>(std::move(*s)) : nullptr);
  };
  const image::ImageFs fs = image::read_image(std::move(source), options);
  return audit_with(fs, std::move(input), gpus, c, &pre);
}

ImageAudit audit_image_archive(const std::filesystem::path& path, std::string input, const std::vector<GpuTarget>& gpus,
                               const catalog::Catalog& c, image::ReadOptions options) {
  auto source = image::archive_source(path, options.limits);  // a FIFO, socket or device: refused unopened
  return audit_image_source(std::move(source), std::move(input), gpus, c, std::move(options));
}

}  // namespace kiln::audit
