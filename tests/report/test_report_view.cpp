// The run report rendered from templates/report/: what each section says,
// and that a section with nothing to say is left out. The plan is the
// offline matrix against the shipped catalog; build, verify and promote
// results are the structures those stages return.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "report/report.h"

namespace report = kiln::report;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// `today` dates the end-of-life notes (empty: KILN_TODAY or the clock).
kiln::plan::Plan offline_plan(const std::string& today = {}) {
  auto cat = kiln::catalog::Catalog::load("recipes");
  auto m = kiln::matrix::parse_matrix_file("matrices/offline.toml");
  return kiln::plan::make_plan(m, cat, {}, today);
}

// Runtime: built, static passed, refused on the GPU runner (not tagged).
// Devel: built, verified on an H200, tagged. Logs under state/logs.
report::RunReport sample(const std::string& state_dir, bool all_tagged = false) {
  auto p = offline_plan();
  kiln::build::Report b;
  kiln::verify::Report v;
  kiln::promote::Report pr;
  for (const char* id : {"cuda12.4-debian13-runtime", "cuda12.4-debian13-devel"}) {
    const bool devel = has(id, "devel") || all_tagged;
    kiln::build::StageResult s;
    s.id = id;
    s.outcome = kiln::build::Outcome::built;
    s.image_id = devel ? "sha256:44b7af78707e0000" : "sha256:8f485c4192180000";
    s.log_path = state_dir + "/logs/offline/" + id + ".log";
    b.stages.push_back(s);
    kiln::verify::CheckResult st{"static", "gpuhost", kiln::verify::CheckStatus::passed, {}, {}, false};
    nlohmann::json detail = {{"summary", {{"gpus", {"0 NVIDIA H200 (sm_90)"}}, {"line", "1 GPU(s): 0 NVIDIA H200 (sm_90)"}}}};
    kiln::verify::CheckResult gpu{"gpu", "gpuhost", devel ? kiln::verify::CheckStatus::passed : kiln::verify::CheckStatus::failed, {}, detail, false};
    v.combos.push_back({id, s.image_id, devel, devel ? "" : "gpu check failed on gpuhost: cudnn: cuDNN version mismatch: "
                                                             "expected 9.19.0, loaded 9.14.0 | a pipe", {st, gpu}});
    kiln::promote::ComboPromotion cp;
    cp.id = id;
    cp.tagged = devel;
    cp.recorded = devel;
    if (devel) cp.tags.push_back({std::string("127.0.0.1:5000/kiln/offline:") + id, kiln::promote::TagAction::pushed, "sha256:d", "", ""});
    pr.combos.push_back(cp);
  }
  b.stages.resize(b.stages.size());
  auto r = report::assemble(p, &b, &v, &pr);
  r.kiln_version = "0.1.0";
  return r;
}

}  // namespace

TEST_CASE("the report says versions, driver, where checks ran, the GPU used, links and a legend", "[report]") {
  const std::string state = "/tmp/kiln-report-view";
  auto r = sample(state);
  const std::string md = report::markdown(r, "templates", state + "/reports");
  CHECK(has(md, "kiln 0.1.0 · catalog "));
  CHECK(has(md, "registry 127.0.0.1:5000/kiln/offline"));
  CHECK(has(md, "**2 valid · 1 verified · 1 tagged**"));
  // The why-not first, with its build log, the pipe kept inside its cell.
  CHECK(md.find("## Not tagged") < md.find("## Combinations"));
  CHECK(has(md, "- **cuda12.4-debian13-runtime**: gpu check failed on gpuhost: cudnn: cuDNN version mismatch: expected 9.19.0, "
                "loaded 9.14.0 \\| a pipe ([build log](../logs/offline/cuda12.4-debian13-runtime.log))"));
  CHECK(has(md, "CUDA 12.4.131<br>"));
  CHECK(has(md, "<br>driver ≥ 525.60.13 |"));
  CHECK(has(md, "gpu@gpuhost=passed<br>"));
  CHECK(has(md, "GPU used: gpuhost: 0 NVIDIA H200 (sm_90)<br>"));
  CHECK(has(md, "[127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel](http://127.0.0.1:5000/v2/kiln/offline/manifests/"
                "cuda12.4-debian13-devel)"));
  CHECK(has(md, "| cuda-recipe | no recipe installs CUDA 11.8 on debian13"));
  CHECK(has(md, "- **ptx-jit**: "));

  const std::string html = report::html(r, "templates", state + "/reports");
  CHECK(has(html, "<div class=\"why\"><code>cuda12.4-debian13-runtime</code>: gpu check failed on gpuhost: cudnn: cuDNN version "
                  "mismatch: expected 9.19.0, loaded 9.14.0 | a pipe (<a href=\"../logs/offline/cuda12.4-debian13-runtime.log\">"));
  CHECK(has(html, "<span class=\"failed\">gpu@gpuhost=failed</span>"));
  CHECK(has(html, "<a href=\"http://127.0.0.1:5000/v2/kiln/offline/manifests/cuda12.4-debian13-devel\">"));
  CHECK_FALSE(has(html, "<script"));
  CHECK_FALSE(has(html, "http-equiv"));
}

TEST_CASE("a section with nothing to say is left out", "[report]") {
  auto r = sample("/tmp/kiln-report-view", true);
  // Nothing excluded, everything tagged: neither section appears.
  r.rows.erase(std::remove_if(r.rows.begin(), r.rows.end(), [](const auto& row) { return row.plan_status == "excluded"; }),
               r.rows.end());
  r.rows.erase(std::remove_if(r.rows.begin(), r.rows.end(), [](const auto& row) { return row.build.empty(); }), r.rows.end());
  const std::string md = report::markdown(r, "templates");
  CHECK(has(md, "## Combinations"));
  CHECK_FALSE(has(md, "## Not tagged"));
  CHECK_FALSE(has(md, "## Excluded by the plan"));
  const std::string html = report::html(r, "templates");
  CHECK_FALSE(has(html, "id=\"not-tagged\""));
  CHECK_FALSE(has(html, "id=\"excluded\""));
  // No combination at all: no tables, only the counts and the legend.
  r.rows.clear();
  r.gpu_columns.clear();
  const std::string empty = report::markdown(r, "templates");
  CHECK_FALSE(has(empty, "## Combinations"));
  CHECK_FALSE(has(empty, "## GPUs the images serve"));
  CHECK(has(empty, "## Legend"));
}

TEST_CASE("the end-of-life section lists the plan's notes, dated by the plan's today", "[report][eol]") {
  // Debian 12's regular security support ended 2026-07-11 (eol.toml,
  // distro-info-data): on 2026-12-01 every Debian 12 row says so.
  auto r = report::assemble(offline_plan("2026-12-01"), nullptr, nullptr, nullptr);
  const std::string md = report::markdown(r, "templates");
  CHECK(has(md, "## End of life"));
  CHECK(has(md, "- **cuda11.8-debian12-runtime**: debian12's regular security support is past end of life since "
                "2026-07-11 (143 days); extended support ends on 2028-06-30"));
  CHECK_FALSE(has(md, "debian13's"));
  const std::string html = report::html(r, "templates");
  CHECK(has(html, "id=\"end-of-life\""));
  CHECK(has(html, "since 2026-07-11 (143 days)"));
  // Before the 90-day window nothing is noted and the section is left out.
  auto early = report::assemble(offline_plan("2026-01-01"), nullptr, nullptr, nullptr);
  CHECK_FALSE(has(report::markdown(early, "templates"), "## End of life"));
  CHECK_FALSE(has(report::html(early, "templates"), "id=\"end-of-life\""));
}

TEST_CASE("a broken report template is an error naming the file", "[report]") {
  const fs::path dir = fs::temp_directory_path() / "kiln-report-broken-templates";
  fs::create_directories(dir / "report");
  std::ofstream(dir / "report" / "run.md.mustache") << "{{#rows}} unclosed";
  CHECK_THROWS_WITH(report::markdown(sample("/tmp/x"), dir.string()), Catch::Contains("run.md.mustache"));
  fs::remove_all(dir);
}

// Not a check: writes the sample page for test_report_browser.sh
// (KILN_REPORT_OUT=DIR test_report_view "[.write]").
TEST_CASE("write the sample report", "[.write]") {
  const char* out = std::getenv("KILN_REPORT_OUT");
  REQUIRE(out);
  auto files = report::write(sample(out), std::string(out) + "/reports", "templates");
  REQUIRE(files.size() == 3);
}
