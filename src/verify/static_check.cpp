// The static check: what the plan promised against what the image holds.
// Reads the image's config from the engine and its files from a saved
// archive (no container runs, no GPU needed).
#include <fmt/format.h>

#include "audit/audit.h"
#include "audit/components.h"
#include "audit/scan.h"
#include "audit/verdict.h"
#include "render/render.h"
#include "util/cc.h"
#include "util/version.h"
#include "verify/internal.h"

namespace kiln::verify::detail {

namespace {

struct Findings {
  std::vector<std::string> problems;
  nlohmann::json detail = nlohmann::json::object();
  void problem(std::string p) { problems.push_back(std::move(p)); }
};

std::string env_value(const engine::ImageInfo& info, const std::string& key) {
  for (const auto& kv : info.env)
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
  return "";
}

void check_config(const plan::Combo& c, const plan::Plan& p, const engine::ImageInfo& info, Findings& f) {
  std::string require = env_value(info, "NVIDIA_REQUIRE_CUDA");
  if (require != c.require_cuda)
    f.problem(fmt::format("NVIDIA_REQUIRE_CUDA is \"{}\", the plan says \"{}\"", require.substr(0, 80), c.require_cuda.substr(0, 80)));
  std::string arch = env_value(info, "NVIDIA_REQUIRE_ARCH");
  if (arch != require_arch(c.arch))
    f.problem(fmt::format("NVIDIA_REQUIRE_ARCH is \"{}\", the plan's arch list {} gives \"{}\"", arch, c.arch.str(), require_arch(c.arch)));
  const std::pair<const char*, const std::string*> labels[] = {
      {"io.kiln.combo", &c.id},          {"io.kiln.cuda.version", &c.versions.cuda},
      {"io.kiln.nccl.version", &c.versions.nccl}, {"io.kiln.cudnn.version", &c.versions.cudnn},
      {"io.kiln.pytorch.version", &c.versions.pytorch}};
  for (const auto& [key, want] : labels) {
    auto it = info.labels.find(key);
    std::string have = it == info.labels.end() ? "" : it->second;
    if (have != *want) f.problem(fmt::format("label {} is \"{}\", the plan says \"{}\"", key, have, *want));
  }
  auto arch_it = info.labels.find("io.kiln.arch_list");
  const std::string arch_label = arch_it == info.labels.end() ? "" : arch_it->second;
  if (arch_label != c.arch.str())
    f.problem(fmt::format("label io.kiln.arch_list is \"{}\", the plan says \"{}\"", arch_label, c.arch.str()));
  if (info.user != p.user) f.problem(fmt::format("the image runs as \"{}\", the plan says \"{}\"", info.user, p.user));
  f.detail["user"] = info.user;
}

// A planned version matches what was found when every component the plan
// names is equal ("12.4" plans match a 12.4.127 library).
bool same_version(const std::string& planned, const std::string& found, size_t components) {
  auto a = Version::parse(planned), b = Version::parse(found);
  return a && b && a->prefix(components) == b->prefix(components);
}

void expect(const char* what, const std::string& planned, const std::vector<audit::Found>& found, size_t components,
            Findings& f) {
  nlohmann::json seen = nlohmann::json::array();
  for (const auto& x : found) seen.push_back({{"version", x.version}, {"path", x.path}});
  f.detail["found"][what] = seen;
  if (planned.empty()) return;
  if (found.empty()) {
    f.problem(fmt::format("the plan promises {} {}, the image has none", what, planned));
    return;
  }
  for (const auto& x : found)
    if (same_version(planned, x.version, components)) return;
  f.problem(fmt::format("the plan promises {} {}, the image has {} ({})", what, planned, found[0].version, found[0].path));
}

// The device code the image carries, read from its fat binaries, against
// the arch list it promises (the label equals the plan's, checked above).
void check_device_code(const plan::Combo& c, const image::ImageFs& fs, Findings& f) {
  const auto scans = audit::scan_image_binaries(fs);
  nlohmann::json libs = nlohmann::json::array();
  for (const auto& s : scans) {
    if (!s.info || !s.info->has_device_code()) continue;
    nlohmann::json l = {{"path", s.path}, {"sass", nlohmann::json::array()}, {"ptx", nlohmann::json::array()}};
    for (const auto& a : s.info->sass) l["sass"].push_back(a.sass_name());
    for (const auto& a : s.info->ptx) l["ptx"].push_back(a.ptx_name());
    libs.push_back(std::move(l));
  }
  f.detail["device_code"] = {{"promised", c.arch.str()}, {"libraries", std::move(libs)}};
  for (auto& gap : audit::arch_promise_gaps(scans, c.arch)) f.problem(std::move(gap));
}

void check_contents(const plan::Combo& c, const image::ImageFs& fs, Findings& f) {
  check_device_code(c, fs, f);
  audit::Components comp = audit::detect_components(fs);
  expect("CUDA runtime", c.versions.cuda, comp.cuda_runtime, 2, f);
  expect("NCCL", c.versions.nccl, comp.nccl, 3, f);
  expect("cuDNN", c.versions.cudnn, comp.cudnn, 3, f);
  if (!c.versions.pytorch.empty()) {
    std::vector<audit::Found> torch;
    if (comp.torch) torch.push_back({comp.torch->version, comp.torch->path});
    expect("PyTorch", c.versions.pytorch, torch, 3, f);
  }
  // The host's driver must be the one that runs: a libcuda.so inside the
  // image can shadow it and fail with driver/library mismatches.
  for (const auto& path : audit::driver_libraries(fs))
    f.problem(fmt::format("the image ships the driver library /{}: it would shadow the host's", path));
  // /usr/local/cuda is a symlink to cuda-X.Y in nvidia/cuda images and in
  // toolkit installs: follow links, or a devel image "has no nvcc".
  auto exists = [&](std::string_view p) -> bool {
    if (fs.find(p)) return true;
    try {
      return fs.resolve(p).has_value();
    } catch (const image::ImageError&) {  // a link out of the root or a loop: not there
      return false;
    }
  };
  bool has_nvcc = exists("usr/bin/nvcc") || exists("usr/local/cuda/bin/nvcc");
  bool has_cc = fs.find("usr/bin/gcc") || fs.find("usr/bin/g++") || fs.find("usr/bin/cc");
  if (c.versions.flavor == "runtime" && (has_nvcc || has_cc))
    f.problem(fmt::format("the runtime image holds a compiler ({})", has_nvcc ? "nvcc" : "gcc"));
  if (c.versions.flavor == "devel" && !has_nvcc) f.problem("the devel image has no nvcc");
}

}  // namespace

CheckResult static_check(const plan::Combo& c, const plan::Plan& p, const std::string& image, engine::Client& client,
                         const Options& o) {
  CheckResult r{"static", "", "failed", {}, {}, false};
  Findings f;
  auto info = client.inspect_image(image);
  if (!info) {
    r.status = "error";
    r.problems.push_back("image " + image + " is not on the engine: run kiln build first");
    return r;
  }
  check_config(c, p, *info, f);
  engine::SavedArchive saved(client, image, o.state_dir + "/tmp");
  check_contents(c, image::read_image_archive(saved.path()), f);
  r.problems = std::move(f.problems);
  r.detail = std::move(f.detail);
  r.status = r.problems.empty() ? "passed" : "failed";
  return r;
}

}  // namespace kiln::verify::detail
