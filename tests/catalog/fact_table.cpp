// Evaluates facts.toml rows through kiln's code paths (see fact_table.h).
#include "fact_table.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "catalog/compat.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "util/diag.h"
#include "util/text.h"
#include "util/toml_reader.h"

namespace kiln::facts {

namespace {

using catalog::Catalog;

// One row while it is read and checked.
struct Row {
  TomlFields& f;
  const Catalog& c;
  Outcome& out;

  void expect(const std::string& field, const std::string& want, const std::string& got) {
    if (want != got) out.failures.push_back(fmt::format("{}: expected \"{}\", kiln says \"{}\"", field, want, got));
  }
  void fail(std::string why) { out.failures.push_back(std::move(why)); }
  bool has(std::string_view key) const { return f.raw().contains(key); }
  std::string text(std::string_view key, bool required = false) { return f.str(key, required).value_or(""); }
};

std::string ccs_text(const std::vector<ComputeCapability>& ccs) {
  std::vector<std::string> out;
  for (const auto& cc : ccs) out.push_back(cc.str());
  return join(out, " ");
}

// A one-combination matrix for pytorch/cuda on the first OS where it
// resolves; the plan answers the query as `kiln plan --driver --gpu` and
// `kiln check-driver MATRIX` do.
std::optional<plan::Combo> plan_one(const Catalog& c, const std::string& pytorch, const std::string& cuda,
                                    const std::vector<std::string>& targets, const plan::Query& q,
                                    std::vector<std::string>& tried) {
  std::vector<std::string> oses;
  if (const auto* nb = c.find_nvidia_base(Version::must(cuda)))  // NVIDIA's images first: their string is the fact
    for (const auto& os : nb->os)
      if (c.find_os(os)) oses.push_back(os);
  for (const auto& os : c.os)
    if (std::find(oses.begin(), oses.end(), os.name) == oses.end()) oses.push_back(os.name);
  for (const auto& os : oses) {
    std::string toml = fmt::format("name = \"facts\"\n{}[axes]\n{}cuda = [\"{}\"]\nos = [\"{}\"]\nflavor = [\"runtime\"]\n"
                                   "[policy]\ntargets = \"report\"\n[tags]\ntemplates = [\"{{id}}\"]\n",
                                   targets.empty() ? "" : fmt::format("targets = [\"{}\"]\n", join(targets, "\", \"")),
                                   pytorch.empty() ? "" : fmt::format("pytorch = [\"{}\"]\n", pytorch), cuda, os);
    plan::Plan p = plan::make_plan(matrix::parse_matrix_text(toml, "facts-row.toml"), c, q, "2026-11-30");
    const plan::Combo& combo = p.combos.front();
    if (combo.status == plan::Status::valid) return combo;
    tried.push_back(os + ": " + combo.reason);
  }
  return std::nullopt;
}

void torch_build(Row& r) {
  r.f.only({"what", "source", "kind", "pytorch", "cuda", "exists", "cudnn", "nccl", "cublas", "arch_list"});
  std::string pytorch = r.text("pytorch", true), cuda = r.text("cuda", true);
  auto pv = Version::parse(pytorch);
  auto cv = Version::parse(cuda);
  if (!pv || !cv) return r.fail("pytorch and cuda must be versions");
  const auto* rel = r.c.find_pytorch(*pv);
  const auto* build = rel ? rel->build_for(*cv) : nullptr;
  bool want = r.f.boolean("exists").value_or(true);
  if (!rel && want) return r.fail(fmt::format("the catalog knows no PyTorch {} (it knows {})", pytorch, r.c.known_pytorch()));
  if (r.has("exists")) r.expect("exists", want ? "true" : "false", build ? "true" : "false");
  if (!build) {
    if (want && !r.has("exists")) r.fail(fmt::format("PyTorch {} has no CUDA {} build (builds: {})", pytorch, cuda, rel->cuda_list()));
    return;
  }
  if (r.has("cudnn")) r.expect("cudnn", r.text("cudnn"), build->cudnn.str());
  if (r.has("nccl")) r.expect("nccl", r.text("nccl"), build->nccl.str());
  if (r.has("cublas")) r.expect("cublas", r.text("cublas"), build->cublas ? build->cublas->str() : "(none)");
  if (r.has("arch_list")) r.expect("arch_list", r.text("arch_list"), build->arch.str());
}

void torch_release(Row& r) {
  r.f.only({"what", "source", "kind", "pytorch", "default_cuda", "cuda_builds", "python"});
  std::string pytorch = r.text("pytorch", true);
  auto pv = Version::parse(pytorch);
  const auto* rel = pv ? r.c.find_pytorch(*pv) : nullptr;
  if (!rel) return r.fail(fmt::format("the catalog knows no PyTorch {} (it knows {})", pytorch, r.c.known_pytorch()));
  if (r.has("default_cuda")) r.expect("default_cuda", r.text("default_cuda"), rel->default_cuda ? rel->default_cuda->str() : "(none)");
  if (r.has("cuda_builds")) {
    std::vector<std::string> got;
    for (const auto& b : rel->builds) got.push_back(b.cuda.prefix(2).str());
    r.expect("cuda_builds", join(r.f.strings("cuda_builds"), ", "), join(got, ", "));
  }
  if (r.has("python")) r.expect("python", join(r.f.strings("python"), ", "), join(rel->python, ", "));
}

void driver(Row& r) {
  r.f.only({"what", "source", "kind", "gpu", "driver", "pytorch", "cuda", "ok", "reason"});
  std::string gpu = r.text("gpu", true), drv = r.text("driver", true), pytorch = r.text("pytorch"), cuda = r.text("cuda");
  auto ok = r.f.boolean("ok");
  if (!ok) r.f.error(r.f.where(), "a driver row needs 'ok' (true or false)");
  if (!pytorch.empty() && cuda.empty()) r.f.error(r.f.where("pytorch"), "a torch wheel row needs 'cuda' too");
  auto dv = Version::parse(drv);
  auto cc = r.c.resolve_gpu(gpu);
  if (!dv || !cc || !ok) return r.fail(fmt::format("bad row: driver \"{}\" or GPU \"{}\" unknown", drv, gpu));
  bool usable = false;
  std::vector<std::string> words;
  if (cuda.empty()) {  // the GPU's own architecture limits, as check-driver and audit apply them
    words = catalog::gpu_driver_limits(r.c, gpu, *cc, *dv);
    usable = words.empty();
  } else {
    std::vector<std::string> tried;
    auto combo = plan_one(r.c, pytorch, cuda, pytorch.empty() ? std::vector<std::string>{gpu} : std::vector<std::string>{},
                          plan::Query{drv, {gpu}}, tried);
    if (!combo) return r.fail(fmt::format("no OS gives a valid combination for PyTorch {} + CUDA {}: {}", pytorch, cuda, join(tried, "; ")));
    // ok: runs as the wheel or toolkit itself would; an answer that needs
    // the image's forward-compatibility package (cuda-compat) is not ok.
    usable = combo->usable.value_or(false) && !combo->forward_compat;
    words = combo->why_not;
    words.insert(words.end(), combo->conditions.begin(), combo->conditions.end());
  }
  std::string said = words.empty() ? "(no reason)" : join(words, " | ");
  if (usable != *ok) r.fail(fmt::format("ok: expected {}, kiln says {}: {}", *ok, usable, said));
  if (r.has("reason") && said.find(r.text("reason")) == std::string::npos)
    r.fail(fmt::format("reason: expected words containing \"{}\", kiln says: {}", r.text("reason"), said));
}

void cuda_row(Row& r) {
  r.f.only({"what", "source", "kind", "cuda", "require_cuda", "min_driver", "driver", "sass"});
  std::string cuda = r.text("cuda", true);
  auto cv = Version::parse(cuda);
  const auto* rel = cv ? r.c.find_cuda(*cv) : nullptr;
  if (!rel) return r.fail(fmt::format("the catalog knows no CUDA {} (it knows {})", cuda, r.c.known_cuda()));
  if (r.has("min_driver")) r.expect("min_driver", r.text("min_driver"), rel->min_driver.str());
  if (r.has("driver")) {  // "X.Y": the full release's driver; "X.Y.Z": that update's
    std::string want = r.text("driver");
    std::string got = rel->full == *cv || cv->parts().size() < 3 ? rel->driver.str() : "(no such update)";
    for (const auto& u : rel->updates)
      if (cv->parts().size() >= 3 && u.version == *cv) got = u.driver.str();
    r.expect("driver", want, got);
  }
  if (r.has("sass")) r.expect("sass", join(r.f.strings("sass"), " "), ccs_text(rel->sass));
  if (r.has("require_cuda")) {
    std::vector<std::string> tried;
    auto combo = plan_one(r.c, "", cuda, {}, {}, tried);
    if (!combo) return r.fail(fmt::format("no OS gives a valid CUDA {} image: {}", cuda, join(tried, "; ")));
    if (combo->install.method != "nvidia-base") r.fail(fmt::format("CUDA {} resolves to no nvidia/cuda base (method {})", cuda, combo->install.method));
    r.expect("require_cuda", r.text("require_cuda"), combo->require_cuda);
  }
}

void gpu_row(Row& r) {
  r.f.only({"what", "source", "kind", "gpu", "cc", "platforms", "cc_under_cuda"});
  std::string gpu = r.text("gpu", true);
  const auto* g = r.c.find_gpu(gpu);
  if (!g) return r.fail(fmt::format("the catalog knows no GPU named \"{}\"", gpu));
  if (r.has("cc")) r.expect("cc", r.text("cc"), r.c.resolve_gpu(gpu)->str());
  if (r.has("platforms")) r.expect("platforms", join(r.f.strings("platforms"), " "), join(g->platforms, " "));
  if (const toml::table* under = r.f.table("cc_under_cuda"))
    for (const auto& [cuda, node] : *under) {
      auto cv = Version::parse(cuda.str());
      auto want = node.value<std::string>();
      if (!cv || !want) {
        r.f.error(location_of(node, r.f.file()), "cc_under_cuda maps a CUDA version to a capability string");
        continue;
      }
      r.expect(fmt::format("cc under CUDA {}", cuda.str()), *want, r.c.resolve_gpu(gpu, *cv)->str());
    }
}

}  // namespace

std::vector<Outcome> check_facts(const Catalog& c, const std::string& facts_file) {
  toml::table doc = parse_toml_file(facts_file);
  std::vector<Diagnostic> diags;
  TomlFields top(doc, facts_file, diags);
  top.only({"fact"});
  std::vector<Outcome> out;
  for (const toml::table* t : top.tables("fact", true)) {
    TomlFields f(*t, facts_file, diags);
    Outcome o{f.where().str(), f.str("what", true).value_or(""), f.str("source", true).value_or(""), {}};
    if (f.raw().contains("what") && o.what.empty()) f.error(f.where("what"), "'what' must say what the row checks");
    if (f.raw().contains("source") && o.source.empty()) f.error(f.where("source"), "'source' must name where the fact comes from");
    Row r{f, c, o};
    std::string kind = f.str("kind", true).value_or("");
    size_t before = diags.size();
    try {
      if (kind == "torch_build") torch_build(r);
      else if (kind == "torch_release") torch_release(r);
      else if (kind == "driver") driver(r);
      else if (kind == "cuda") cuda_row(r);
      else if (kind == "gpu") gpu_row(r);
      else f.error(f.where("kind"), fmt::format("unknown kind \"{}\" (torch_build, torch_release, driver, cuda, gpu)", kind));
    } catch (const InputError& e) {  // a row that makes kiln reject its own question
      o.failures.push_back(std::string("kiln refused the row's question: ") + e.what());
    }
    if (diags.size() == before) out.push_back(std::move(o));
  }
  if (!diags.empty()) throw InputError(std::move(diags));
  return out;
}

}  // namespace kiln::facts
