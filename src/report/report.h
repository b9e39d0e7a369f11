// What a `kiln run` did, per combination: plan status, build outcome,
// checks, verdict, tags -- and the combination x GPU grid.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "build/build.h"
#include "plan/plan.h"
#include "promote/promote.h"
#include "verify/verify.h"

namespace kiln::report {

struct Row {
  std::string id;
  std::string plan_status;  // valid | excluded
  std::string build;        // built | cached | failed | skipped | ""
  std::string image_id;
  std::vector<std::string> checks;  // "static=passed", "gpu@h100=passed"
  bool verified = false;
  std::vector<std::string> tags;    // tags now pointing at image_id
  std::string why;                  // why not verified or not tagged
  std::string record_missing;       // tagged, but its verification record was not attached: why
  std::map<std::string, std::string> gpus;  // target GPU -> native | ptx-jit | unsupported
  std::string gemm_bf16_tflops;     // from a passed gpu check, when measured
  std::int64_t size = 0;            // the image's bytes (engine inspect), 0: unknown
  std::vector<std::string> largest_layers;  // "671 MB RUN set -eux; ..." (engine history), largest first
  std::vector<std::string> measured;  // per gpu check: GPUs used, versions loaded, GEMM/busbw (its detail.summary.line)
};

struct RunReport {
  std::string matrix;
  std::string generated_at;  // ISO 8601 UTC
  std::vector<std::string> gpu_columns;
  std::vector<Row> rows;
  size_t valid = 0, verified = 0, tagged = 0;
};

RunReport assemble(const plan::Plan& p, const build::Report* b, const verify::Report* v, const promote::Report* pr);

std::string table(const RunReport& r);
std::string markdown(const RunReport& r);
nlohmann::json to_json(const RunReport& r);
std::string html(const RunReport& r);  // self-contained: no script, no external asset

// Writes <dir>/<matrix>.{md,json,html}; returns the paths.
std::vector<std::string> write(const RunReport& r, const std::string& dir);

}  // namespace kiln::report
