#include "audit/audit.h"

#include <algorithm>

namespace kiln::audit {

namespace {

std::string_view base_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool in_stubs_dir(std::string_view path) { return path.starts_with("stubs/") || path.find("/stubs/") != std::string_view::npos; }

bool is_driver_library(std::string_view path) {
  const std::string_view b = base_name(path);
  return b.starts_with("libcuda.so") || b.starts_with("libnvidia-ml.so") || b.starts_with("libnvidia-ptxjitcompiler.so");
}

}  // namespace

std::vector<std::string> driver_libraries(const image::ImageFs& fs) {
  std::vector<std::string> out;
  for (const auto& [path, f] : fs.files())
    if (f.type != image::FileType::directory && is_driver_library(path) && !in_stubs_dir(path)) out.push_back(path);
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
  a.libraries = scan_image_binaries(fs, looks_like_cuda_library, pre);
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
    if (looks_like_cuda_library(path)) pre.emplace(std::pair(layer, member), scan_library_stream(path, size, in));
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
