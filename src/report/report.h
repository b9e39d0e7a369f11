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

// Where and on what one gpu verdict was obtained (its placement).
struct VerdictPlace {
  std::string runner, status;
  verify::Placement where;
  bool cached = false;  // taken from the ledger (an earlier run, an ingested result)
};

struct Row {
  std::string id;
  std::string plan_status;  // valid | excluded
  std::string rule;         // for excluded: the plan's rule id (the report groups by it)
  std::string build;        // built | cached | failed | skipped | ""
  std::string image_id;
  std::vector<std::string> checks;  // "static=passed", "gpu@h100=passed"
  bool verified = false;
  std::vector<std::string> tags;    // tags now pointing at image_id
  bool tagged = false;              // promote's word (ComboPromotion::tagged): every tag names the verified image
  std::string why;                  // why not verified or not tagged
  std::string record_missing;       // tagged, but its verification record was not attached: why
  std::map<std::string, std::string> gpus;  // target GPU -> native | ptx-jit | unsupported
  std::string gemm_bf16_tflops;     // from a passed gpu check, when measured
  std::int64_t size = 0;            // the image's bytes (engine inspect), 0: unknown
  std::vector<std::string> largest_layers;  // "671 MB RUN set -eux; ..." (engine history), largest first
  std::vector<std::string> measured;  // per gpu check: GPUs used, versions loaded, GEMM/busbw (its detail.summary.line)
  std::vector<std::pair<std::string, std::string>> versions;  // ("CUDA", "12.4.1"), ("cuDNN", ...): the plan's
  std::string min_driver;
  std::string log_path;               // the build log, when there is one
  std::vector<std::string> gpu_used;  // per gpu check that saw GPUs: "RUNNER: 0 NVIDIA H200 (sm_90), ..."
  std::vector<VerdictPlace> places;   // per gpu check with a placement: scheduler, node, GPU, driver, count, date
  std::vector<std::string> end_of_life;  // the plan's end-of-life notes (eol.toml): past or within 90 days
};

struct RunReport {
  std::string matrix;
  std::string generated_at;  // ISO 8601 UTC
  std::string kiln_version;  // set by the caller (the binary knows it)
  std::string catalog_version, catalog_collected;
  matrix::Registry registry;
  std::vector<std::string> gpu_columns;
  std::vector<Row> rows;
  size_t valid = 0, verified = 0, tagged = 0;
};

RunReport assemble(const plan::Plan& p, const build::Report* b, const verify::Report* v, const promote::Report* pr);

std::string table(const RunReport& r);
nlohmann::json to_json(const RunReport& r);

// What the report templates see (templates/report/run.{md,html}.mustache):
// every section's data, and a has_X flag per section so that a template
// leaves out what would be empty. Links (tags, logs) are made relative to
// `link_dir`, where the report is written. For Markdown every string is
// escaped for a table cell.
enum class Flavor { markdown, html };
nlohmann::json view(const RunReport& r, Flavor flavor, const std::string& link_dir);
// The Markdown and the self-contained HTML page (no script, no external
// asset), rendered from TEMPLATES_DIR/report/run.{md,html}.mustache.
std::string markdown(const RunReport& r, const std::string& templates_dir, const std::string& link_dir = ".");
std::string html(const RunReport& r, const std::string& templates_dir, const std::string& link_dir = ".");

// Writes <dir>/<matrix>.{md,json,html}; returns the paths.
std::vector<std::string> write(const RunReport& r, const std::string& dir, const std::string& templates_dir);

}  // namespace kiln::report
