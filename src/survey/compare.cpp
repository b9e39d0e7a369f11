// Each artifact's facts next to the catalog's: one Row per fact, and a
// Change wherever the artifact can correct the catalog (write.cpp applies it).
#include <algorithm>
#include <cstdio>
#include <set>

#include <fmt/format.h>

#include "survey/internal.h"
#include "util/diag.h"
#include "util/text.h"

namespace kiln::survey::detail {

namespace {

constexpr const char* kNone = "(none)";

size_t add(Report& report, Row row) {
  report.rows.push_back(std::move(row));
  return report.rows.size() - 1;
}

size_t info(Report& report, std::string fact, std::string artifact, std::string source, std::string catalog = "") {
  Row r{std::move(fact), std::move(catalog), std::move(artifact), std::move(source)};
  r.compared = false;
  return add(report, std::move(r));
}

const catalog::TorchRelease* exact_release(const catalog::Catalog& cat, const Version& v) {
  for (const auto& r : cat.pytorch)
    if (r.version == v) return &r;
  return nullptr;
}

const catalog::TorchRelease* newest_in_series(const catalog::Catalog& cat, const Version& series) {
  const catalog::TorchRelease* best = nullptr;
  for (const auto& r : cat.pytorch)
    if (r.version.prefix(2) == series && (!best || best->version < r.version)) best = &r;
  return best;
}

// The pinned requirement whose normalised name is `base` or `base-cuNN`
// (nvidia-cudnn-cu12, nvidia-cudnn-cu13, nvidia-cublas, nvidia-nccl-cu11...).
const Requirement* find_pin(const Metadata& m, std::string_view base) {
  for (const auto& r : m.requires_dist) {
    if (r.pin.empty()) continue;
    if (r.name == base) return &r;
    if (r.name.starts_with(std::string(base) + "-cu") && r.name.size() > base.size() + 3) return &r;
  }
  return nullptr;
}

const std::pair<const std::string, std::string>* find_installed(const TorchArtifact& a, std::string_view base) {
  for (const auto& kv : a.installed)
    if (kv.first == base || kv.first.starts_with(std::string(base) + "-cu")) return &kv;
  return nullptr;
}

// A value the artifact states, and where.
struct Stated {
  std::string value;  // "" when the artifact does not say
  std::string where;
};

Stated stated_library(const TorchArtifact& a, std::string_view base, std::string_view redistrib_component,
                      const std::vector<Redistrib>& redistribs) {
  if (const Requirement* r = find_pin(a.metadata, base))
    return {r->pin, fmt::format("{}: Requires-Dist {}=={}", a.label, r->name, r->pin)};
  if (auto* kv = find_installed(a, base))
    return {kv->second, fmt::format("{}: installed {}-{}", a.label, kv->first, kv->second)};
  // CUDA 13 wheels pin the toolkit metapackage (cuda-toolkit[cublas,...]==13.0.2),
  // whose components are those of that CUDA release's redistrib JSON.
  for (const auto& r : a.metadata.requires_dist) {
    if (r.name != "cuda-toolkit" || r.pin.empty()) continue;
    for (const auto& rd : redistribs)
      if (rd.release_label == r.pin && rd.components.count(std::string(redistrib_component)))
        return {rd.components.at(std::string(redistrib_component)),
                fmt::format("{}: Requires-Dist cuda-toolkit=={} -> redistrib_{}.json {}", a.label, r.pin, r.pin,
                            redistrib_component)};
    return {"", fmt::format("not pinned: cuda-toolkit=={} (give --redistrib redistrib_{}.json to read it)", r.pin, r.pin)};
  }
  return {"", "no Requires-Dist pin"};
}

// Whether the catalog marks this field of the build unconfirmed.
bool inferred(const catalog::TorchBuild& b, std::string_view field) {
  const auto& f = b.provenance.inferred_fields;
  return b.provenance.inferred && (f.empty() || std::find(f.begin(), f.end(), field) != f.end());
}

bool same_version(const std::string& a, const std::string& b) {
  auto va = Version::parse(a), vb = Version::parse(b);
  return va && vb ? *va == *vb : a == b;
}

std::string cc_list(const std::vector<ComputeCapability>& ccs) {
  std::vector<std::string> out;
  for (const auto& c : ccs) out.push_back(c.str());
  return join(out, " ");
}

std::vector<ComputeCapability> minus(const std::vector<ComputeCapability>& a, const std::vector<ComputeCapability>& b) {
  std::vector<ComputeCapability> out;
  for (const auto& c : a)
    if (std::find(b.begin(), b.end(), c) == b.end()) out.push_back(c);
  return out;
}

// What differs between two arch lists, compared as sets: "SASS only in the
// artifact: 10.3; PTX only in the catalog: 12.0".
std::string arch_difference(const ArchList& cat, const ArchList& art) {
  std::vector<std::string> parts;
  auto say = [&](const char* what, const std::vector<ComputeCapability>& v) {
    if (!v.empty()) parts.push_back(fmt::format("{}: {}", what, cc_list(v)));
  };
  say("SASS only in the catalog", minus(cat.sass, art.sass));
  say("SASS only in the artifact", minus(art.sass, cat.sass));
  say("PTX only in the catalog", minus(cat.ptx, art.ptx));
  say("PTX only in the artifact", minus(art.ptx, cat.ptx));
  return join(parts, "; ");
}

std::string python_difference(const std::set<std::string>& cat, const std::set<std::string>& art) {
  std::vector<std::string> only_cat, only_art;
  for (const auto& p : cat)
    if (!art.count(p)) only_cat.push_back(p);
  for (const auto& p : art)
    if (!cat.count(p)) only_art.push_back(p);
  std::vector<std::string> parts;
  if (!only_cat.empty()) parts.push_back("only in the catalog: " + join(only_cat, " "));
  if (!only_art.empty()) parts.push_back("only in the artifact: " + join(only_art, " "));
  return join(parts, "; ");
}

}  // namespace

std::string toml_strings(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const auto& i : items) q.push_back(toml_string(i));
  return "[" + join(q, ", ") + "]";
}

std::string catalog_require_cuda(const catalog::CudaRelease& cuda, const catalog::Catalog& cat) {
  if (!cuda.require_cuda.empty()) return cuda.require_cuda;
  // As src/plan/targets.cpp builds it for an nvidia/cuda base (which carries
  // cuda-compat, so every listed branch stays).
  std::string out = "cuda>=" + cuda.version.str();
  for (int branch : cuda.require_branches)
    for (const auto& brand : cat.require_brands) out += fmt::format(" brand={},driver>={},driver<{}", brand, branch, branch + 1);
  return out;
}

void compare_torch(const catalog::Catalog& cat, const TorchArtifact& a, const std::vector<Redistrib>& redistribs,
                   Report& report) {
  auto tv = parse_torch_version(a.version_py.version);
  if (!tv) throw InputError(Location{a.path, 0, 0}, fmt::format("torch {} is a pre-release; the catalog holds releases", a.version_py.version));
  auto cuda = Version::parse(a.version_py.cuda);
  if (!cuda) throw InputError(Location{a.path, 0, 0}, fmt::format("torch/version.py: cuda = '{}' is not a version", a.version_py.cuda));
  const std::string head = fmt::format("pytorch {} CUDA {}", tv->version.str(), cuda->str());
  const std::string version_src = a.label + ": torch/version.py";

  Change ch;
  ch.target = Change::Target::torch_build;
  ch.release = tv->version;
  ch.cuda = *cuda;
  ch.source_key = a.source_key;
  ch.source_text = a.source_text;

  const catalog::TorchRelease* rel = exact_release(cat, tv->version);
  const catalog::TorchBuild* build = rel ? rel->build_for(*cuda) : nullptr;
  if (!rel) {
    ch.rows.push_back(add(report, {head + ": release", kNone, "torch " + a.version_py.version, version_src, "", true, true}));
  } else {
    Row r{head + ": build", build ? "published" : fmt::format("(none; CUDA builds {})", rel->cuda_list()),
          "published (torch " + a.version_py.version + ")", version_src};
    r.differs = !build;
    size_t i = add(report, std::move(r));
    if (!build) ch.rows.push_back(i);
  }

  // The bundled libraries: the catalog's value, the artifact's, and the key to write.
  struct Field {
    const char* key;
    std::optional<Version> catalog;
    Stated stated;
  };
  std::vector<Field> fields = {
      {"cudnn", build ? std::optional(build->cudnn) : std::nullopt, stated_library(a, "nvidia-cudnn", "cudnn", redistribs)},
      {"nccl", build ? std::optional(build->nccl) : std::nullopt, stated_library(a, "nvidia-nccl", "nccl", redistribs)},
      {"cublas", build ? build->cublas : std::nullopt, stated_library(a, "nvidia-cublas", "libcublas", redistribs)},
  };
  for (auto& f : fields) {
    Row r{fmt::format("{}: {}", head, f.key), f.catalog && !f.catalog->empty() ? f.catalog->str() : kNone,
          f.stated.value.empty() ? "(not stated)" : f.stated.value, f.stated.where};
    if (f.stated.value.empty()) {
      r.compared = false;
      add(report, std::move(r));
      continue;
    }
    r.differs = !f.catalog || f.catalog->empty() || !same_version(f.catalog->str(), f.stated.value);
    if (!r.differs && build && inferred(*build, f.key))
      r.detail = fmt::format("the catalog marks {} inferred; the artifact confirms it", f.key);
    size_t i = add(report, std::move(r));
    if (report.rows[i].differs) {
      ch.set.emplace_back(f.key, toml_string(f.stated.value));
      ch.rows.push_back(i);
    }
  }

  // The arch list, from the fat binaries.
  {
    Row r{head + ": arch_list", build ? build->arch.str() : kNone, a.arch_read ? a.arch.str() : "(not read)",
          fmt::format("{}: {}", a.label, a.arch_file)};
    if (!a.arch_read) {
      r.compared = false;
      add(report, std::move(r));
    } else {
      r.differs = !build || build->arch.sass != a.arch.sass || build->arch.ptx != a.arch.ptx;
      if (build && r.differs) r.detail = arch_difference(build->arch, a.arch);
      else if (build && inferred(*build, "arch_list")) r.detail = "the catalog marks arch_list inferred; the artifact confirms it";
      size_t i = add(report, std::move(r));
      if (report.rows[i].differs) {
        ch.set.emplace_back("arch_list", toml_string(a.arch.str()));
        ch.rows.push_back(i);
      }
    }
    if (!a.arch_specific.empty())
      info(report, head + ": code for a few kernels only, outside the arch list", join(a.arch_specific, " "), a.label + ": " + a.arch_file);
  }

  // Python versions the artifact was built for (the wheel tag, the venv's lib/pythonX.Y).
  for (const auto& py : a.python) {
    if (py.ends_with('t')) continue;  // free-threaded builds: the catalog lists the plain ones
    Row r{fmt::format("pytorch {}: python {}", tv->version.str(), py), rel ? join(rel->python, " ") : kNone, py,
          a.label + (a.kind == "wheel" ? ": wheel tag" : ": lib/python" + py)};
    r.differs = !rel || std::find(rel->python.begin(), rel->python.end(), py) == rel->python.end();
    size_t i = add(report, std::move(r));
    if (report.rows[i].differs) {
      ch.add_python.push_back(py);
      ch.rows.push_back(i);
    }
  }

  // Reported, not compared: what else the wheel pins, and what is installed.
  for (const auto& r : a.metadata.requires_dist)
    if (r.name == "cuda-toolkit" || (r.name.starts_with("nvidia-cuda-runtime") && !r.pin.empty()))
      info(report, head + ": pins " + r.name, r.spec, a.label + ": Requires-Dist");
  for (const auto& [name, version] : a.installed) {
    Row r{head + ": installed " + name, "", version, a.label + ": " + name + " dist-info"};
    r.compared = false;
    for (const auto& req : a.metadata.requires_dist)
      if (req.name == name && !req.pin.empty() && !same_version(req.pin, version))
        r.detail = fmt::format("torch pins {}=={}, but {} is installed", name, req.pin, version);
    add(report, std::move(r));
  }

  if (!ch.rows.empty()) report.changes.push_back(std::move(ch));
}

void compare_index(const catalog::Catalog& cat, const IndexPage& page, Report& report) {
  struct Published {
    std::set<std::string> python;  // linux x86_64 wheels, not free-threaded
    std::set<std::string> platforms;
  };
  std::map<Version, std::map<Version, Published>> by_cuda;  // CUDA -> torch version -> files
  size_t no_cuda = 0, prerelease = 0, yanked = 0;
  for (const auto& f : page.files) {
    auto tv = parse_torch_version(f.wheel.version);
    if (!tv) {
      ++prerelease;
      continue;
    }
    auto cuda = cuda_of_local(tv->local);
    // PyPI's own page (pypi.org/simple/torch/) carries no local version: its
    // Linux wheels are each release's default CUDA build. They count under
    // an empty CUDA: releases compared, builds not.
    if (!cuda && tv->local.empty() && f.wheel.platform.find("linux") != std::string::npos) cuda = Version();
    if (!cuda) {
      ++no_cuda;
      continue;
    }
    if (f.yanked) {
      ++yanked;
      continue;
    }
    Published& p = by_cuda[*cuda][tv->version];
    p.platforms.insert(f.wheel.platform);
    std::string py = f.wheel.python();
    if (!py.empty() && !py.ends_with('t') && f.wheel.platform.find("linux") != std::string::npos &&
        f.wheel.platform.find("x86_64") != std::string::npos)
      p.python.insert(py);
  }
  if (no_cuda || prerelease || yanked)
    report.notes.push_back(fmt::format("{}: left out {} wheel(s) of no CUDA build (+cpu, +rocm, or no local version off Linux), {} pre-release(s), {} yanked",
                                       page.source, no_cuda, prerelease, yanked));
  if (by_cuda.empty())
    throw InputError(Location{page.source, 0, 0}, "the index lists no torch wheel of a CUDA build (torch-X.Y.Z+cuNNN-...whl, or PyPI's Linux wheels)");

  Version oldest_series;
  for (const auto& r : cat.pytorch)
    if (oldest_series.empty() || r.version.prefix(2) < oldest_series) oldest_series = r.version.prefix(2);
  const std::string unwritable = "not written: an index page does not say what a build bundles; check one of its wheels";

  for (const auto& [cuda, releases] : by_cuda) {
    const std::string src = fmt::format("index {}", page.source);
    const std::string build = cuda.empty() ? "default build" : "CUDA " + cuda.str();
    auto has_build = [&](const catalog::TorchRelease& rel) { return cuda.empty() || rel.build_for(cuda); };
    // Every release the catalog says has this CUDA build must be on the index.
    for (const auto& rel : cat.pytorch) {
      if (!has_build(rel)) continue;
      auto it = releases.find(rel.version);
      Row r{fmt::format("pytorch {} {}: published", rel.version.str(), build), "published",
            it == releases.end() ? "not listed" : fmt::format("published ({})", join({it->second.platforms.begin(), it->second.platforms.end()}, " ")),
            src};
      r.differs = it == releases.end();
      if (r.differs) r.written = "not written: remove the build by hand if the index is right";
      add(report, std::move(r));
      if (it == releases.end() || it->second.python.empty()) continue;
      std::set<std::string> cat_py(rel.python.begin(), rel.python.end());
      Row p{fmt::format("pytorch {} {}: python", rel.version.str(), build), join(rel.python, " "),
            join({it->second.python.begin(), it->second.python.end()}, " "), src + " (linux x86_64 wheels)"};
      p.differs = cat_py != it->second.python;
      p.detail = python_difference(cat_py, it->second.python);
      if (p.differs) p.written = unwritable;
      add(report, std::move(p));
    }
    // Every release series the index publishes must be in the catalog, at its newest patch.
    std::map<Version, Version> newest;  // series -> newest version
    for (const auto& [v, files] : releases) {
      Version s = v.prefix(2);
      if (s < oldest_series) continue;  // older than the catalog's line-up
      if (!newest.count(s) || newest[s] < v) newest[s] = v;
    }
    for (const auto& [series, v] : newest) {
      const catalog::TorchRelease* rel = newest_in_series(cat, series);
      if (!rel) {
        Row r{fmt::format("pytorch {} {}: release", series.str(), build), kNone, v.str() + " published", src};
        r.differs = true;
        r.written = unwritable;
        add(report, std::move(r));
      } else if (!has_build(*rel)) {
        Row r{fmt::format("pytorch {} {}: build", rel->version.str(), build),
              fmt::format("(none; CUDA builds {})", rel->cuda_list()),
              (releases.count(rel->version) ? rel->version.str() : v.str()) + " published", src};
        r.differs = true;
        r.written = unwritable;
        add(report, std::move(r));
      } else if (rel->version < v) {
        Row r{fmt::format("pytorch {} {}: newest patch", series.str(), build), rel->version.str(), v.str(), src};
        r.differs = true;
        r.written = unwritable;
        add(report, std::move(r));
      }
    }
  }
}

namespace {

// The redistrib file's driver against the release's: a row, and a change to
// write when they differ.
void compare_driver(Report& report, Change& ch, const std::string& head, const catalog::CudaRelease& rel,
                    const std::string& driver, const std::string& src) {
  Row d{head + ": driver shipped", rel.driver.str(), driver, src + ": nvidia_driver"};
  d.differs = !same_version(rel.driver.str(), driver);
  size_t i = add(report, std::move(d));
  if (report.rows[i].differs) {
    ch.set.emplace_back("driver", toml_string(driver));
    ch.rows.push_back(i);
  }
}

}  // namespace

void compare_redistrib(const catalog::Catalog& cat, const Redistrib& r, const std::string& source, const std::string& sha,
                       Report& report) {
  const Version label = Version::must(r.release_label);
  const std::string src = fmt::format("redistrib {}", source);
  const catalog::CudaRelease* rel = cat.find_cuda(label.prefix(2));
  const std::string head = fmt::format("CUDA {}", label.prefix(2).str());
  const std::string driver = r.components.count("nvidia_driver") ? r.components.at("nvidia_driver") : "";
  Change ch;
  ch.target = Change::Target::cuda_release;
  ch.release = label.prefix(2);
  const std::string name = source.substr(source.find_last_of('/') + 1);
  ch.source_key = fmt::format("redistrib:{} sha256:{}", name, sha);
  ch.source_text = fmt::format("NVIDIA {} (release_date {}): component versions of CUDA {}", source, r.release_date, r.release_label);
  if (!rel) {
    Row row{head + ": release", kNone, r.release_label, src};
    row.differs = true;
    row.written = "not written: a new CUDA release needs its SASS targets and driver floor (cuda.toml) by hand";
    add(report, std::move(row));
  } else if (rel->full < label) {
    Row row{head + ": newest update", rel->full.str(), r.release_label, src + ": release_label"};
    row.differs = true;
    ch.set.emplace_back("full", toml_string(r.release_label));
    ch.rows.push_back(add(report, std::move(row)));
    if (!driver.empty()) compare_driver(report, ch, head, *rel, driver, src);
  } else if (rel->full == label) {
    add(report, {head + ": newest update", rel->full.str(), r.release_label, src + ": release_label"});
    if (!driver.empty()) compare_driver(report, ch, head, *rel, driver, src);
  } else {
    info(report, head + ": an older update than the catalog's newest", r.release_label, src + ": release_label", rel->full.str());
  }
  for (const auto& [component, version] : r.components)
    info(report, fmt::format("CUDA {}: {}", r.release_label, component), version, src);
  if (!ch.rows.empty()) report.changes.push_back(std::move(ch));
}

namespace {

// What differs between two NVIDIA_REQUIRE_CUDA strings, said briefly: by
// brand and by driver branch where every alternative is
// brand=B,driver>=R,driver<R+1 (NVIDIA's form), else alternative by alternative.
std::string require_difference(const std::vector<std::string>& cat, const std::vector<std::string>& art) {
  auto pairs = [](const std::vector<std::string>& words, std::set<std::string>& brands, std::set<int>& branches,
                  std::set<std::string>& head) {
    for (const auto& w : words) {
      int branch = 0, next = 0;
      char brand[64] = "";
      if (std::sscanf(w.c_str(), "brand=%63[^,],driver>=%d,driver<%d", brand, &branch, &next) == 3) {
        brands.insert(brand);
        branches.insert(branch);
      } else {
        head.insert(w);
      }
    }
  };
  std::set<std::string> cb, ab, ch, ah;
  std::set<int> cr, ar;
  pairs(cat, cb, cr, ch);
  pairs(art, ab, ar, ah);
  std::vector<std::string> parts;
  auto only = [&](const char* what, const auto& x, const auto& y) {
    std::vector<std::string> out;
    for (const auto& v : x)
      if (!y.count(v)) out.push_back(fmt::format("{}", v));
    if (!out.empty()) parts.push_back(fmt::format("{}: {}", what, join(out, " ")));
  };
  only("brands only in the catalog", cb, ab);
  only("brands only in the Dockerfile", ab, cb);
  only("branches only in the catalog", cr, ar);
  only("branches only in the Dockerfile", ar, cr);
  only("only in the catalog", ch, ah);
  only("only in the Dockerfile", ah, ch);
  if (parts.empty()) {
    std::set<std::string> sc(cat.begin(), cat.end()), sa(art.begin(), art.end());
    only("alternatives only in the catalog", sc, sa);
    only("alternatives only in the Dockerfile", sa, sc);
  }
  return parts.empty() ? "same alternatives, another order" : join(parts, "; ");
}

}  // namespace

void compare_dockerfile(const catalog::Catalog& cat, const DockerfileFacts& d, const std::string& source,
                        const std::string& sha, Report& report) {
  std::optional<Version> version = Version::parse(d.cuda_version);
  if (!version && d.require_cuda.starts_with("cuda>="))
    version = Version::parse(d.require_cuda.substr(6, d.require_cuda.find(' ') == std::string::npos ? std::string::npos : d.require_cuda.find(' ') - 6));
  if (!version) throw InputError(Location{source, 0, 0}, "no CUDA version: neither ENV CUDA_VERSION nor NVIDIA_REQUIRE_CUDA=cuda>=X.Y");
  const std::string src = fmt::format("Dockerfile {}", source);
  const std::string head = fmt::format("CUDA {}", version->prefix(2).str());
  const catalog::CudaRelease* rel = cat.find_cuda(version->prefix(2));
  if (!rel) {
    Row row{head + ": release", kNone, d.cuda_version.empty() ? version->str() : d.cuda_version, src};
    row.differs = true;
    row.written = "not written: a new CUDA release needs its SASS targets and driver floor (cuda.toml) by hand";
    add(report, std::move(row));
    return;
  }
  if (!d.cuda_version.empty()) {
    const Version v = Version::must(d.cuda_version);
    if (rel->full < v) {
      Row row{head + ": newest update", rel->full.str(), d.cuda_version, src + ": ENV CUDA_VERSION"};
      row.differs = true;
      row.written = "not written: a Dockerfile does not name the driver shipped; give the redistrib JSON of " + d.cuda_version;
      add(report, std::move(row));
    } else if (rel->full == v) {
      add(report, {head + ": newest update", rel->full.str(), d.cuda_version, src + ": ENV CUDA_VERSION"});
    } else {
      info(report, head + ": an older update than the catalog's newest", d.cuda_version, src + ": ENV CUDA_VERSION", rel->full.str());
    }
  }
  if (d.require_cuda.empty()) return;
  // Compared alternative by alternative: the order and spacing of NVIDIA's
  // string carry no meaning, the set of brand/branch pairs does.
  const std::string mine = catalog_require_cuda(*rel, cat);
  auto words = [](const std::string& s) {
    std::vector<std::string> out;
    for (auto w : split(s, ' '))
      if (!trim(w).empty()) out.emplace_back(trim(w));
    return out;
  };
  auto a = words(mine), b = words(d.require_cuda);
  Row row{head + ": NVIDIA_REQUIRE_CUDA", mine, d.require_cuda, src + ": ENV NVIDIA_REQUIRE_CUDA"};
  row.differs = a != b;
  if (row.differs) row.detail = require_difference(a, b);
  size_t i = add(report, std::move(row));
  if (report.rows[i].differs) {
    Change ch;
    ch.target = Change::Target::cuda_release;
    ch.release = rel->version;
    ch.set.emplace_back("require_cuda", toml_string(d.require_cuda));
    const std::string name = is_url(source) ? source : source.substr(source.find_last_of('/') + 1);
    ch.source_key = fmt::format("dockerfile:{} sha256:{}", name, sha);
    ch.source_text = fmt::format("nvidia/cuda Dockerfile {}: ENV NVIDIA_REQUIRE_CUDA{}", source,
                                 d.cuda_version.empty() ? "" : ", CUDA_VERSION " + d.cuda_version);
    ch.rows.push_back(i);
    report.changes.push_back(std::move(ch));
  }
}

void compare_pypi(const catalog::Catalog& cat, const std::vector<PypiRelease>& releases, const std::string& source,
                  Report& report) {
  Version newest_known;
  for (const auto& r : cat.pytorch) newest_known = std::max(newest_known, r.version);
  const std::string src = fmt::format("PyPI {}", source);
  std::vector<std::pair<Version, const PypiRelease*>> newer;
  Version newest_published;
  for (const auto& r : releases) {
    auto v = parse_torch_version(r.version);
    if (!v || !v->local.empty() || r.yanked) continue;  // pre-releases and yanked ones are no line-up
    newest_published = std::max(newest_published, v->version);
    if (newest_known < v->version) newer.emplace_back(v->version, &r);
  }
  std::sort(newer.begin(), newer.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  if (newer.empty()) {
    add(report, {"pytorch: newest release", newest_known.str(), newest_published.empty() ? kNone : newest_published.str(), src});
    return;
  }
  for (const auto& [v, r] : newer) {
    Row row{"pytorch: release newer than the catalog", "newest " + newest_known.str(),
            r->uploaded.empty() ? v.str() : fmt::format("{} ({})", v.str(), r->uploaded), src};
    row.differs = true;
    row.written = "not written: check a wheel of it (--wheel) to add the release";
    add(report, std::move(row));
  }
}

}  // namespace kiln::survey::detail
