// Reports from known verdicts: the offline matrix planned against the
// shipped catalog, verdicts written into a ledger the way `kiln verify`
// writes them and read back by verify::recorded_verdict, one combination
// tagged by promote. Every format must say the same thing about each
// combination: verified or not, why not, its tags, the GPU grid.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "promote/promote.h"
#include "report/report.h"
#include "state/ledger.h"
#include "state/support.h"
#include "verify/verify.h"

using namespace kiln;
using nlohmann::json;

namespace {

const std::string kDevel = "cuda12.4-debian13-devel";      // policy: static
const std::string kRuntime = "cuda12.4-debian13-runtime";  // policy: static + gpu on sm_90
const std::string kFailed = "cuda11.8-debian12-devel";     // its static check failed
const std::string kDevelImage = "sha256:" + std::string(64, 'a');
const std::string kRuntimeImage = "sha256:" + std::string(64, 'b');
const std::string kFailedImage = "sha256:" + std::string(64, 'c');

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Fixture {
  state::test::TempDir tmp;
  catalog::Catalog cat = catalog::Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  matrix::Matrix m = matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/offline.toml");
  plan::Plan p = plan::make_plan(m, cat);
  std::vector<verify::Runner> runners{verify::Runner{.name = "local"}};

  const plan::Combo& combo(const std::string& id) const {
    for (const auto& c : p.combos)
      if (c.id == id) return c;
    FAIL("no combination " << id << " in the offline plan");
    throw std::logic_error("unreachable");
  }

  report::RunReport run() {
    {
      state::Ledger ledger(tmp.file("state.db"));
      ledger.record_verdict({kDevelImage, "local", "static", "passed", "{}", 0});
      ledger.record_verdict({kRuntimeImage, "local", "static", "passed", "{}", 0});
      ledger.record_verdict({kFailedImage, "local", "static", "failed",
                             R"({"problems":["the devel image has no nvcc"]})", 0});
    }
    verify::Report v;
    for (const auto& [id, image] : {std::pair{kDevel, kDevelImage}, {kRuntime, kRuntimeImage}, {kFailed, kFailedImage}})
      v.combos.push_back(verify::recorded_verdict(combo(id), image, runners, tmp.path.string()));
    promote::Report pr;
    promote::ComboPromotion tagged;
    tagged.id = kDevel;
    tagged.image_id = kDevelImage;
    tagged.verified = tagged.tagged = tagged.recorded = true;
    tagged.tags.push_back({"127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel", promote::TagAction::pushed, "sha256:" + std::string(64, 'd'), "", ""});
    pr.combos.push_back(tagged);
    for (const auto& [id, image] : {std::pair{kRuntime, kRuntimeImage}, {kFailed, kFailedImage}}) {
      promote::ComboPromotion no;
      no.id = id;
      no.image_id = image;
      no.reason = "not verified";
      pr.combos.push_back(no);
    }
    // The other valid combinations were never verified: a plan-only row each.
    return report::assemble(p, nullptr, &v, &pr);
  }
};

const report::Row& row(const report::RunReport& r, const std::string& id) {
  for (const auto& x : r.rows)
    if (x.id == id) return x;
  FAIL("no row " << id);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("verdicts read back from the ledger decide each row", "[report]") {
  Fixture f;
  auto r = f.run();
  CHECK(r.matrix == "offline");
  CHECK(r.gpu_columns == std::vector<std::string>{"T4", "H100"});
  CHECK(r.verified == 1);
  CHECK(r.tagged == 1);

  const auto& devel = row(r, kDevel);
  CHECK(devel.verified);
  CHECK(devel.checks == std::vector<std::string>{"static=passed"});
  CHECK(devel.tags == std::vector<std::string>{"127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel"});
  CHECK(devel.why.empty());

  const auto& runtime = row(r, kRuntime);
  CHECK_FALSE(runtime.verified);
  CHECK(runtime.tags.empty());
  CHECK(runtime.why == "awaiting a GPU runner of class sm_90");

  const auto& failed = row(r, kFailed);
  CHECK_FALSE(failed.verified);
  CHECK(failed.checks == std::vector<std::string>{"static=failed"});
  CHECK(failed.why == "static check failed: the devel image has no nvcc");

  // The plan's exclusions keep their rule.
  const auto& excluded = row(r, "cuda12.4-debian12-runtime");
  CHECK(excluded.plan_status == "excluded");
  CHECK_FALSE(excluded.why.empty());
  // The grid: the catalog's answer per target GPU.
  CHECK(devel.gpus.at("H100") == "native");
}

TEST_CASE("Markdown, JSON and HTML say the same thing", "[report]") {
  Fixture f;
  auto r = f.run();
  auto paths = report::write(r, f.tmp.file("reports"), "templates");
  REQUIRE(paths.size() == 3);
  const std::string md = slurp(paths[0]);
  const json js = json::parse(slurp(paths[1]));
  const std::string html = slurp(paths[2]);
  CHECK(paths[0].ends_with("offline.md"));

  SECTION("Markdown") {
    CHECK_THAT(md, Catch::StartsWith("# kiln run: offline\n"));
    CHECK_THAT(md, Catch::Contains("1 verified · 1 tagged"));
    CHECK_THAT(md, Catch::Contains("| " + kDevel + "<br>`"));
    CHECK_THAT(md, Catch::Contains("static=passed<br>"));
    CHECK_THAT(md, Catch::Contains("[127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel](http://127.0.0.1:5000/v2/kiln/offline/manifests/"
                                   "cuda12.4-debian13-devel)"));
    CHECK_THAT(md, Catch::Contains("- **" + kRuntime + "**: awaiting a GPU runner of class sm_90"));
    CHECK_THAT(md, Catch::Contains("- **" + kFailed + "**: static check failed: the devel image has no nvcc"));
    CHECK_THAT(md, Catch::Contains("static=failed<br>"));
    CHECK_THAT(md, Catch::Contains("## GPUs the images serve"));
    CHECK_THAT(md, Catch::Contains("## Excluded by the plan\n\n| rule | why | combinations |"));
  }
  SECTION("JSON") {
    CHECK(js["matrix"] == "offline");
    CHECK(js["summary"]["verified"] == 1);
    CHECK(js["summary"]["tagged"] == 1);
    std::map<std::string, json> by;
    for (const auto& c : js["combos"]) by[c["id"]] = c;
    CHECK(by.at(kDevel)["verified"] == true);
    CHECK(by.at(kDevel)["tags"][0] == "127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel");
    CHECK(by.at(kRuntime)["verified"] == false);
    CHECK(by.at(kRuntime)["reason"] == "awaiting a GPU runner of class sm_90");
    CHECK(by.at(kFailed)["reason"] == "static check failed: the devel image has no nvcc");
    CHECK(by.at(kFailed)["checks"][0] == "static=failed");
    CHECK(by.at("cuda12.4-debian12-runtime")["plan"] == "excluded");
  }
  SECTION("HTML: self-contained, escaped, one row per valid combination") {
    CHECK_THAT(html, Catch::StartsWith("<!doctype html>"));
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("src=") == std::string::npos);  // no external asset (links to the registry are not assets)
    CHECK(html.find("<link") == std::string::npos);
    CHECK_THAT(html, Catch::Contains("<code>" + kDevel + "</code>"));
    CHECK_THAT(html, Catch::Contains("<a href=\"http://127.0.0.1:5000/v2/kiln/offline/manifests/cuda12.4-debian13-devel\">"
                                     "<code>127.0.0.1:5000/kiln/offline:cuda12.4-debian13-devel</code></a>"));
    CHECK_THAT(html, Catch::Contains("<div class=\"why\"><code>" + kRuntime + "</code>: awaiting a GPU runner of class sm_90"));
    CHECK_THAT(html, Catch::Contains("<div class=\"why\"><code>" + kFailed + "</code>: static check failed: the devel image has no nvcc"));
    size_t rows = 0;
    for (size_t at = html.find("<div class=\"why\">"); at != std::string::npos; at = html.find("<div class=\"why\">", at + 1)) ++rows;
    CHECK(rows == 3);  // the runtime waiting for a GPU, the failed devel, the 11.8 runtime never verified
  }
}

TEST_CASE("a why-not text is escaped in HTML", "[report]") {
  report::RunReport r;
  r.matrix = "m<x>";
  r.generated_at = "2026-12-01T00:00:00Z";
  r.valid = 1;
  report::Row row;
  row.id = "a&b";
  row.plan_status = "valid";
  row.why = "<script>alert(1)</script>";
  r.rows.push_back(row);
  const std::string h = report::html(r, "templates");
  CHECK(h.find("<script>") == std::string::npos);
  CHECK_THAT(h, Catch::Contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
  CHECK_THAT(h, Catch::Contains("<code>a&amp;b</code>"));
  CHECK_THAT(h, Catch::Contains("<title>kiln run: m&lt;x&gt;</title>"));
}
