// kiln audit's three outputs. JSON is the contract (docs/audit.md, fields
// only ever added); the table and Markdown are for people.
#include <set>

#include <fmt/format.h>

#include "audit/audit.h"
#include "catalog/compat.h"
#include "util/table.h"
#include "util/text.h"

namespace kiln::audit {

namespace {

using nlohmann::json;

json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json found_json(const std::vector<Found>& v) {
  json out = json::array();
  for (const auto& f : v) out.push_back({{"version", f.version}, {"path", f.path}});
  return out;
}

json components_json(const Components& c) {
  json j = {{"cuda_toolkit", found_json(c.cuda_toolkit)}, {"cuda_runtime", found_json(c.cuda_runtime)},
            {"cublas", found_json(c.cublas)},             {"cudnn", found_json(c.cudnn)},
            {"nccl", found_json(c.nccl)},                 {"python", found_json(c.python)},
            {"env", {{"CUDA_VERSION", or_null(c.env_cuda_version)}, {"NVIDIA_REQUIRE_CUDA", or_null(c.env_require_cuda)}}}};
  j["os"] = c.os ? json{{"id", c.os->id}, {"version_id", c.os->version_id}, {"pretty_name", c.os->pretty_name}, {"path", c.os->path}}
                 : json(nullptr);
  j["pytorch"] = c.torch ? json{{"version", c.torch->version}, {"cuda", or_null(c.torch->cuda)},
                                {"git_version", or_null(c.torch->git_version)}, {"path", c.torch->path}}
                         : json(nullptr);
  return j;
}

std::vector<std::string> sass_names(const FatbinInfo& i) {
  std::vector<std::string> out;
  for (const auto& a : i.sass) out.push_back(a.sm());
  return out;
}
std::vector<std::string> ptx_names(const FatbinInfo& i) {
  std::vector<std::string> out;
  for (const auto& a : i.ptx) out.push_back(a.compute());
  return out;
}

json library_json(const FatbinScan& s) {
  json j = {{"path", s.path}, {"error", or_null(s.error)}};
  if (!s.info) return j;
  j["sass"] = sass_names(*s.info);
  j["ptx"] = ptx_names(*s.info);
  j["ptx_isa"] = json::object();
  for (const auto& a : s.info->ptx)
    if (auto isa = s.info->ptx_isa(a)) j["ptx_isa"][a.compute()] = fmt::format("{}.{}", isa->first, isa->second);
  j["compressed"] = s.info->any_compressed();
  // Where the code was found, and what was found but does not count
  // (relocatable code of a linked ELF, unregistered fat-binary sections).
  j["found_by"] = to_string(s.info->found_by);
  j["ignored_sass"] = json::array();
  for (const auto& a : s.info->ignored_sass) j["ignored_sass"].push_back(a.sm());
  j["ignored_ptx"] = json::array();
  for (const auto& a : s.info->ignored_ptx) j["ignored_ptx"].push_back(a.compute());
  return j;
}

json gpu_json(const GpuVerdict& g) {
  json libs = json::object();
  for (const auto& l : g.libraries)
    libs[l.path] = {{"support", l.unknown ? "unknown" : to_string(l.support)}, {"via", or_null(l.via)}, {"reason", or_null(l.reason)},
                    {"min_driver", or_null(l.min_driver)}, {"optional", l.optional}, {"operations", or_null(l.operations)}};
  return {{"cc", g.gpu.cc.str()},           {"support", support_name(g)},   {"core_support", to_string(g.support)},   {"unsupported_libraries", g.unsupported},
          {"unknown_libraries", g.unknown}, {"ptx_jit_libraries", g.jit},     {"min_driver", or_null(g.min_driver)}, {"min_driver_reason", or_null(g.driver_why)},
          {"reason", or_null(g.reason)}, {"partial_libraries", g.partial}, {"failing_operations", g.failing_operations},
          {"libraries", libs}};
}

std::string versions(const std::vector<Found>& v) {
  std::string out;
  for (const auto& f : v) out += (out.empty() ? "" : ", ") + f.version;
  return out.empty() ? "-" : out;
}

std::vector<std::pair<std::string, std::string>> component_rows(const ImageAudit& a) {
  const Components& c = a.components;
  std::string runtime = a.verdict.runtime ? fmt::format("{} ({})", a.verdict.runtime->version.str(), a.verdict.runtime->source) : "-";
  std::string torch = c.torch ? c.torch->version + (c.torch->cuda.empty() ? "" : " (CUDA " + c.torch->cuda + ")") : "-";
  return {{"OS", c.os ? (c.os->pretty_name.empty() ? c.os->id + " " + c.os->version_id : c.os->pretty_name) : "-"},
          {"CUDA runtime", runtime},
          {"CUDA toolkit", versions(c.cuda_toolkit)},
          {"cuBLAS", versions(c.cublas)},
          {"cuDNN", versions(c.cudnn)},
          {"NCCL", versions(c.nccl)},
          {"PyTorch", torch},
          {"Python", versions(c.python)},
          {"NVIDIA_REQUIRE_CUDA", c.env_require_cuda.empty() ? "-" : c.env_require_cuda}};
}

std::string join_names(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out.empty() ? "-" : out;
}

std::string ptx_cell(const FatbinInfo& i) {
  std::string out;
  for (const auto& a : i.ptx) {
    out += (out.empty() ? "" : " ") + a.compute();
    if (auto isa = i.ptx_isa(a)) out += fmt::format(" (ISA {}.{})", isa->first, isa->second);
  }
  return out.empty() ? "-" : out;
}

// Why a GPU row reads as it does: the first library that blocks it, or
// the libraries that need the JIT.
std::string gpu_why(const GpuVerdict& g) {
  if (!g.reason.empty()) return g.reason;
  if (g.no_device_code) return "no ELF file of the image carries CUDA device code: nothing limits or proves a GPU";
  for (const auto& l : g.libraries)
    if (l.support == Support::unsupported && !l.unknown && !l.optional)
      return fmt::format("{}: {}{}", l.path, l.reason,
                         g.unsupported.size() > 1 ? fmt::format(" (+{} more libraries)", g.unsupported.size() - 1) : "");
  for (const auto& l : g.libraries)
    if (l.unknown)
      return fmt::format("{}: {}{}", l.path, l.reason, g.unknown.size() > 1 ? fmt::format(" (+{} more libraries)", g.unknown.size() - 1) : "");
  if (!g.partial.empty() && g.support != Support::unsupported) {
    std::string out;
    for (const auto& f : g.failing_operations) out += (out.empty() ? "" : "; ") + f;
    return out;
  }
  for (const auto& l : g.libraries)
    if (l.support == Support::ptx_jit)
      return fmt::format("{} via {}{}", l.path, l.via, g.jit.size() > 1 ? fmt::format(" (+{} more libraries)", g.jit.size() - 1) : "");
  return "";
}

// "unknown", and why when an unreadable library is the reason.
std::string unknown_floor(const ImageVerdict& v) { return v.unreadable.empty() ? "unknown" : v.driver_why; }

std::string short_digest(const std::string& d) { return d.size() > 19 ? d.substr(0, 19) : d; }

// "3 layers: 1 read, 2 from cache" when the cache was used.
std::string layers_cell(const ImageAudit& a) {
  if (a.layers_cached == 0) return fmt::format("{} layers", a.layers);
  return fmt::format("{} layers: {} read, {} from cache", a.layers, a.layers_read, a.layers_cached);
}

size_t without_code(const ImageAudit& a) {
  size_t n = 0;
  for (const auto& s : a.libraries) n += s.info && !s.info->has_device_code();
  return n;
}

}  // namespace

json to_json(const ImageAudit& a) {
  json j = {{"input", a.input}, {"source", a.source}, {"config_digest", or_null(a.config.digest)}, {"tags", a.config.repo_tags},
            {"layers", a.layers}, {"layers_read", a.layers_read}, {"layers_from_cache", a.layers_cached},
            {"components", components_json(a.components)}, {"warnings", a.warnings}, {"error", nullptr},
            {"elf_files", a.elf_files}};
  const ImageVerdict& v = a.verdict;
  j["cuda_runtime"] = v.runtime ? json{{"version", v.runtime->version.str()}, {"source", v.runtime->source},
                                       {"release", v.release ? json(v.release->version.str()) : json(nullptr)}}
                                : json(nullptr);
  j["libraries"] = json::array();
  for (const auto& s : a.libraries) j["libraries"].push_back(library_json(s));
  j["gpus"] = json::object();
  for (const auto& g : v.gpus) j["gpus"][g.gpu.name] = gpu_json(g);
  j["min_driver"] = or_null(v.min_driver);
  j["min_driver_reason"] = or_null(v.driver_why);
  j["platform"] = or_null(v.platform);  // "x86_64" | "aarch64" from the config (a multi-platform tag: --platform's)
  return j;
}

json to_json(const std::vector<ImageAudit>& audits, const std::vector<GpuTarget>& gpus, const catalog::Catalog& c) {
  json j = {{"schema", "kiln.audit/v2"}, {"catalog_version", c.version}, {"gpus", json::array()}, {"images", json::array()}};
  for (const auto& g : gpus) j["gpus"].push_back({{"name", g.name}, {"cc", g.cc.str()}});
  for (const auto& a : audits) j["images"].push_back(to_json(a));
  return j;
}

std::string to_table(const ImageAudit& a, const catalog::Catalog& c) {
  std::string out = fmt::format("IMAGE {}  ({}, {}, {})\n", a.input, a.source, layers_cell(a), short_digest(a.config.digest));
  for (const auto& [k, v] : component_rows(a)) out += fmt::format("  {:<20} {}\n", k, v);
  Table libs({"LIBRARY", "SASS", "PTX"});
  for (const auto& s : a.libraries) {
    if (!s.info) libs.add_row({s.path, "error: " + s.error});
    else if (s.info->has_device_code()) libs.add_row({s.path, join_names(sass_names(*s.info)), ptx_cell(*s.info)});
  }
  out += "\n" + libs.str("  ");
  if (size_t n = without_code(a)) out += fmt::format("  ({} more ELF files with only unregistered or relocatable device code)\n", n);
  out += fmt::format("  ({} ELF files examined, {} with device code)\n", a.elf_files, a.libraries.size() - without_code(a));
  Table gpus({"GPU", "CC", "VERDICT", "MIN DRIVER", "WHY"});
  std::set<std::string> verdicts;
  for (const auto& g : a.verdict.gpus) {
    verdicts.insert(support_name(g));
    gpus.add_row({catalog::gpu_label(g.gpu.name, g.gpu.cc, c), g.gpu.cc.str(), support_name(g), g.min_driver.empty() ? "-" : g.min_driver, gpu_why(g)});
  }
  out += "\n" + gpus.str("  ");
  // A legend for the verdict words that appear (the others explain themselves in WHY).
  std::vector<std::string> legend;
  if (verdicts.count("native")) legend.push_back("native: SASS for that GPU");
  if (verdicts.count("ptx-jit")) legend.push_back("ptx-jit: compiled from PTX by the driver at first launch");
  if (verdicts.count("partial")) legend.push_back("partial: only optional libraries miss it (WHY names what fails)");
  if (!legend.empty()) out += "  " + kiln::join(legend, "; ") + "\n";
  out += fmt::format("\n  minimum driver: {}\n", a.verdict.min_driver.empty() ? unknown_floor(a.verdict) : a.verdict.min_driver + " — " + a.verdict.driver_why);
  if (!a.warnings.empty()) out += "  warnings:\n";
  for (const auto& w : a.warnings) out += "    - " + w + "\n";
  return out;
}

std::string to_markdown(const ImageAudit& a, const catalog::Catalog& c) {
  std::string out = fmt::format("## `{}`\n\n{}, {}, `{}`\n\n| component | version |\n| --- | --- |\n", a.input, a.source,
                                layers_cell(a), a.config.digest);
  for (const auto& [k, v] : component_rows(a)) out += fmt::format("| {} | {} |\n", k, v);
  out += "\n| library | SASS | PTX |\n| --- | --- | --- |\n";
  for (const auto& s : a.libraries) {
    if (!s.info) out += fmt::format("| `{}` | error: {} | |\n", s.path, s.error);
    else if (s.info->has_device_code())
      out += fmt::format("| `{}` | {} | {} |\n", s.path, join_names(sass_names(*s.info)), ptx_cell(*s.info));
  }
  if (size_t n = without_code(a)) out += fmt::format("\n{} more ELF files carry only unregistered or relocatable device code.\n", n);
  out += fmt::format("\n{} ELF files examined.\n", a.elf_files);
  out += "\n| GPU | CC | verdict | min driver | why |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& g : a.verdict.gpus)
    out += fmt::format("| {} | {} | {} | {} | {} |\n", catalog::gpu_label(g.gpu.name, g.gpu.cc, c), g.gpu.cc.str(),
                       support_name(g), g.min_driver.empty() ? "-" : g.min_driver, gpu_why(g));
  out += fmt::format("\n**Minimum driver:** {}\n", a.verdict.min_driver.empty() ? unknown_floor(a.verdict) : a.verdict.min_driver + " — " + a.verdict.driver_why);
  if (!a.warnings.empty()) out += "\n**Warnings:**\n\n";
  for (const auto& w : a.warnings) out += "- " + w + "\n";
  return out;
}

namespace {

// One tag on one GPU: the verdict, the driver cell and why.
struct TagCell {
  std::string support, driver, why;
  bool driver_ok = true;
};

TagCell tag_cell(const RepositoryAudit& r, const ImageAudit& a, const GpuVerdict& g) {
  TagCell t{support_name(g), g.min_driver.empty() ? "-" : "needs " + g.min_driver, gpu_why(g), true};
  if (!r.driver) return t;
  // The driver question for this GPU alone: the image's verdict narrowed to it.
  ImageVerdict one = a.verdict;
  one.gpus = {g};
  const auto why = why_not_on_driver(one, *r.driver);
  t.driver_ok = why.empty();
  if (t.driver_ok) t.driver = "ok";
  else if (!g.min_driver.empty() && Version::must(g.min_driver) > *r.driver) t.driver = "needs " + g.min_driver;
  else t.driver = "no";
  if (!why.empty() && t.why.empty()) t.why = why.front();
  else if (!why.empty() && g.support != Support::unsupported) t.why = why.front();
  return t;
}

std::string tag_note(const RepositoryTag& t) {
  if (!t.skipped.empty()) return "skipped: " + t.skipped;
  return "error: " + t.error;
}

// The distinct images' cache use, once under the table.
std::string layers_summary(const RepositoryAudit& r) {
  std::size_t read = 0, cached = 0;
  for (const auto& a : r.images) {
    read += a.layers_read;
    cached += a.layers_cached;
  }
  return fmt::format("{} tags, {} distinct images; layers: {} read, {} from cache", r.tags.size(), r.images.size(), read, cached);
}

}  // namespace

json to_json(const RepositoryAudit& r, std::size_t first_image) {
  json j = {{"name", r.repository}, {"driver", r.driver ? json(r.driver->str()) : json(nullptr)}, {"tags", json::array()}};
  for (const auto& t : r.tags) {
    json row = {{"tag", t.tag}, {"digest", or_null(t.digest)}, {"skipped", or_null(t.skipped)}, {"error", or_null(t.error)},
                {"image", nullptr}, {"gpus", json::object()}};
    if (t.image < r.images.size()) {
      row["image"] = first_image + t.image;
      const ImageAudit& a = r.images[t.image];
      for (const auto& g : a.verdict.gpus) {
        const TagCell c = tag_cell(r, a, g);
        row["gpus"][g.gpu.name] = {{"support", c.support}, {"min_driver", or_null(g.min_driver)},
                                   {"driver_ok", r.driver ? json(c.driver_ok) : json(nullptr)}, {"reason", or_null(c.why)}};
      }
    }
    j["tags"].push_back(std::move(row));
  }
  return j;
}

std::string to_table(const RepositoryAudit& r, const catalog::Catalog& c) {
  std::string out = fmt::format("REPOSITORY {}{}\n\n", r.repository, r.driver ? " on driver " + r.driver->str() : "");
  Table t({"TAG", "DIGEST", "GPU", "VERDICT", "DRIVER", "WHY"});
  for (const auto& tag : r.tags) {
    if (tag.image >= r.images.size()) {
      t.add_row({tag.tag, short_digest(tag.digest), tag_note(tag)});
      continue;
    }
    const ImageAudit& a = r.images[tag.image];
    for (const auto& g : a.verdict.gpus) {
      const TagCell cell = tag_cell(r, a, g);
      t.add_row({tag.tag, short_digest(tag.digest), catalog::gpu_label(g.gpu.name, g.gpu.cc, c), cell.support, cell.driver, cell.why});
    }
  }
  out += t.str("  ");
  out += "\n  " + layers_summary(r) + "\n";
  return out;
}

std::string to_markdown(const RepositoryAudit& r, const catalog::Catalog& c) {
  std::string out = fmt::format("## `{}`{}\n\n| tag | digest | GPU | verdict | driver | why |\n| --- | --- | --- | --- | --- | --- |\n",
                                r.repository, r.driver ? " on driver " + r.driver->str() : "");
  for (const auto& t : r.tags) {
    if (t.image >= r.images.size()) {
      out += fmt::format("| `{}` | `{}` | | | | {} |\n", t.tag, short_digest(t.digest), tag_note(t));
      continue;
    }
    const ImageAudit& a = r.images[t.image];
    for (const auto& g : a.verdict.gpus) {
      const TagCell cell = tag_cell(r, a, g);
      out += fmt::format("| `{}` | `{}` | {} | {} | {} | {} |\n", t.tag, short_digest(t.digest),
                         catalog::gpu_label(g.gpu.name, g.gpu.cc, c), cell.support, cell.driver, cell.why);
    }
  }
  out += "\n" + layers_summary(r) + ".\n";
  return out;
}

}  // namespace kiln::audit
