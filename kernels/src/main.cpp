// kiln-smoke: proves that a CUDA image works on the GPU it runs on.
// One JSON document on stdout (schema: kernels/README.md); exit codes in report.h.

#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>

#include "cuda_util.h"
#include "options.h"
#include "report.h"
#include "sections.h"

#ifndef KILN_SMOKE_VERSION
#define KILN_SMOKE_VERSION "0.0.0"
#endif

namespace kiln::smoke {
namespace {

using RunFn = void (*)(Context&, Section&);

struct SectionDef {
  const char* name;
  bool built_in;
  RunFn run;
};

// Order matters: env first (it reads versions even without a GPU), arch
// before the libraries (a missing kernel image explains later failures).
const std::vector<SectionDef>& section_defs() {
  static const std::vector<SectionDef> defs = {
      {"env", true, run_env},
      {"arch", true, run_arch},
      {"memory", true, run_memory},
#if KILN_SMOKE_WITH_CUBLAS
      {"cublas", true, run_cublas},
#else
      {"cublas", false, nullptr},
#endif
#if KILN_SMOKE_WITH_CUDNN
      {"cudnn", true, run_cudnn},
#else
      {"cudnn", false, nullptr},
#endif
#if KILN_SMOKE_WITH_NCCL
      {"nccl", true, run_nccl},
#else
      {"nccl", false, nullptr},
#endif
  };
  return defs;
}

std::vector<std::string> section_names() {
  std::vector<std::string> names;
  for (const auto& d : section_defs()) names.push_back(d.name);
  return names;
}

Section run_one(const SectionDef& def, Context& ctx) {
  Section s;
  s.name = def.name;
  s.required = required(ctx.options, def.name, def.built_in);
  if (!selected(ctx.options, def.name)) {
    s.status = Status::Skipped;
    s.notes.push_back("not selected (--only/--skip)");
    return s;
  }
  if (!def.built_in) {
    s.status = Status::Absent;
    s.notes.push_back(std::string("kiln-smoke was built without ") + def.name +
                      " (library not found at build time)");
    return s;
  }
  // env runs without a GPU: versions and the driver check need none.
  if (!ctx.gpu.usable && s.name != "env") {
    s.status = Status::Skipped;
    s.notes.push_back("no usable GPU: " + ctx.gpu.error);
    return s;
  }
  auto start = std::chrono::steady_clock::now();
  try {
    def.run(ctx, s);
  } catch (const std::exception& e) {
    s.fail(e.what());
  }
  s.duration_s = seconds_since(start);
  return s;
}

Json build_info() {
  Json b = Json::object();
  b["cuda_architectures"] = KILN_CUDA_ARCHITECTURES;
  b["sass"] = KILN_SASS_ARCHS;
  b["ptx"] = KILN_PTX_ARCHS;
  b["cuda_header_version"] = CUDART_VERSION;
  Json& with = b["with"];
  for (const auto& d : section_defs()) with[d.name] = d.built_in;
  return b;
}

Json expected_versions(const Options& o) {
  Json e = Json::object();
  e["cuda"] = o.expect_cuda.empty() ? Json() : Json(o.expect_cuda);
  e["cudnn"] = o.expect_cudnn.empty() ? Json() : Json(o.expect_cudnn);
  e["nccl"] = o.expect_nccl.empty() ? Json() : Json(o.expect_nccl);
  return e;
}

int run(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  ReportHeader header{"kiln-smoke", KILN_SMOKE_VERSION, utc_timestamp()};
  Options opts;
  try {
    opts = parse_options(argc, argv, section_names());
  } catch (const std::invalid_argument& e) {
    std::cerr << "kiln-smoke: " << e.what() << "\n" << usage("kiln-smoke", section_names());
    return kExitUsage;
  }
  if (opts.help) {
    std::cout << usage("kiln-smoke", section_names());
    return kExitPass;
  }
  header.build = build_info();
  header.expected = expected_versions(opts);

  Context ctx = probe_context(opts);
  std::vector<Section> sections;
  for (const auto& def : section_defs()) sections.push_back(run_one(def, ctx));

  enforce_no_gpu_contract(ctx.gpu, sections);
  int code = decide_exit_code(ctx.gpu, sections);
  Json doc = make_report(header, ctx.gpu, sections, seconds_since(start), code);
  doc["seed"] = static_cast<long long>(ctx.seed);
  std::string text = doc.dump(opts.json_indent) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (!opts.output.empty()) std::ofstream(opts.output) << text;
  return code;
}

}  // namespace
}  // namespace kiln::smoke

int main(int argc, char** argv) {
  try {
    return kiln::smoke::run(argc, argv);
  } catch (const std::exception& e) {
    // Something outside any section broke: still say so on stderr, exit 1.
    std::cerr << "kiln-smoke: " << e.what() << "\n";
    return kiln::smoke::kExitFail;
  }
}
