#include "audit/audit.h"

#include <algorithm>

#include "audit/layer_cache.h"

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

ScannedImage read_scanned(std::shared_ptr<image::BlobSource> source, image::ReadOptions options, LayerCache* cache,
                          const ReadProgress& progress) {
  ScannedImage out;
  std::uint64_t bytes = 0;   // of the files walked in the layers read (uncompressed)
  std::size_t layers = 0;    // in the image, once the layout is read
  options.keep = [](std::string_view path, std::uint64_t size) { return is_component_file(path, size); };
  options.on_file = [&](const std::string& path, std::size_t layer, std::size_t member, std::uint64_t size,
                        image::ByteStream& in) {
    bytes += size;
    if (progress) progress(layer, layers, bytes, out.layers_cached);  // within a big layer too (the caller throttles)
    if (size < kMinElfSize) return;
    // Every member is asked (by its magic, not its name); a non-ELF one is
    // recorded as null, so a cached layer answers for all of its members.
    auto s = scan_file_stream(path, size, in);
    out.pre.emplace(std::pair(layer, member), s ? std::make_unique<const FatbinScan>(std::move(*s)) : nullptr);
  };
  if (progress)
    options.layer_start = [&](std::size_t i, std::size_t total, const image::LayerInfo&) {
      layers = total;
      progress(i, total, bytes, out.layers_cached);
    };
  if (cache)
    options.cached_layer = [&](std::size_t i, const image::LayerInfo& layer, const std::string& diff_id)
        -> std::optional<image::LayerRecord> {
      const std::string key = cache_key(layer, diff_id);
      if (key.empty()) return std::nullopt;
      auto entry = cache->get(key);
      if (!entry) return std::nullopt;
      for (auto& [member, scan] : entry->scans)
        out.pre.insert_or_assign(std::pair(i, member), scan ? std::make_unique<const FatbinScan>(std::move(*scan)) : nullptr);
      ++out.layers_cached;
      return std::move(entry->record);
    };
  options.layer_read = [&](std::size_t i, const image::LayerInfo& layer, const std::string& diff_id,
                           const image::LayerRecord& record) {
    ++out.layers_read;
    // Only bytes whose digest was checked are cached under that digest.
    const std::string key = cache_key(layer, diff_id);
    if (!cache || !layer.verified || key.empty()) return;
    LayerEntry entry{record, {}};
    for (auto it = out.pre.lower_bound({i, 0}); it != out.pre.end() && it->first.first == i; ++it)
      entry.scans.emplace_back(it->first.second, it->second ? std::optional<FatbinScan>(*it->second) : std::nullopt);
    cache->put(key, entry);
  };
  out.fs = image::read_image(std::move(source), options);
  if (progress) progress(out.fs.layers().size(), out.fs.layers().size(), bytes, out.layers_cached);
  return out;
}

ImageAudit audit_image_source(std::shared_ptr<image::BlobSource> source, std::string input,
                              const std::vector<GpuTarget>& gpus, const catalog::Catalog& c, image::ReadOptions options,
                              LayerCache* cache, const ReadProgress& progress) {
  const std::size_t warned = cache ? cache->warnings().size() : 0;  // a cache serves several images
  ScannedImage s = read_scanned(std::move(source), std::move(options), cache, progress);
  ImageAudit a = audit_with(s.fs, std::move(input), gpus, c, &s.pre);
  a.layers_read = s.layers_read;
  a.layers_cached = s.layers_cached;
  if (cache) a.warnings.insert(a.warnings.end(), cache->warnings().begin() + warned, cache->warnings().end());
  return a;
}

ImageAudit audit_image_archive(const std::filesystem::path& path, std::string input, const std::vector<GpuTarget>& gpus,
                               const catalog::Catalog& c, image::ReadOptions options, LayerCache* cache,
                               const ReadProgress& progress) {
  auto source = image::archive_source(path, options.limits);  // a FIFO, socket or device: refused unopened
  return audit_image_source(std::move(source), std::move(input), gpus, c, std::move(options), cache, progress);
}

}  // namespace kiln::audit
