// The pieces under the command line a user sees the effect of: one table
// sized to its content, --only selection, the run report's "tagged" taken
// from promote's word, and plan's exclusions grouped by rule.
#include <catch2/catch.hpp>

#include "catalog/catalog.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "report/report.h"
#include "util/select.h"
#include "util/table.h"

using namespace kiln;

TEST_CASE("a table is as wide as its content, with no trailing spaces") {
  Table t({"ID", "RESULT", "WHY"});
  t.add_row({"cuda11.8-debian12-runtime", "ok", ""});
  t.add_row({"a", "FAIL", "too old"});
  t.add_note("driver 470 predates CUDA 11.8");
  CHECK(t.str() ==
        "ID                         RESULT  WHY\n"
        "cuda11.8-debian12-runtime  ok\n"
        "a                          FAIL    too old\n"
        "    driver 470 predates CUDA 11.8\n");
}

TEST_CASE("a table counts characters, not bytes or colour codes") {
  Table t({"GPU", "NOTE"});
  t.add_row({"7.5–12.1", "x"});
  t.add_row({paint("native", Colour::green, true), "y"});
  t.align_right(0);
  CHECK(display_width("7.5–12.1") == 8);
  CHECK(display_width(paint("native", Colour::green, true)) == 6);
  CHECK(t.str("  ") == "       GPU  NOTE\n  7.5–12.1  x\n    \x1b[32mnative\x1b[0m  y\n");
}

TEST_CASE("paint is a no-op when colour is off") { CHECK(paint("ok", Colour::red, false) == "ok"); }

TEST_CASE("--only: globs select, and patterns matching nothing are named") {
  const std::vector<std::string> ids{"cuda11.8-debian12-runtime", "cuda12.4-debian13-devel"};
  CHECK(selected("cuda12.4-debian13-devel", {"cuda12.4-*"}));
  CHECK_FALSE(selected("cuda11.8-debian12-runtime", {"cuda12.4-*"}));
  CHECK(selected("anything", {}));
  CHECK(unmatched_patterns({"cuda12.4-*", "cuda99-*", "*-runtime"}, ids) == std::vector<std::string>{"cuda99-*"});
}

TEST_CASE("the run report's tagged count is promote's ComboPromotion::tagged, not a recount of tag actions") {
  catalog::Catalog cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  plan::Plan p = plan::make_plan(matrix::parse_matrix_file(KILN_SOURCE_DIR "/matrices/offline.toml"), cat);
  build::Report b;
  verify::Report v;
  promote::Report pr;
  const plan::Combo* first = nullptr;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid) {
      if (!first) first = &c;
      build::StageResult s;
      s.id = c.id;
      s.outcome = build::Outcome::built;
      s.engine = "default";
      s.image_id = "sha256:1";
      s.seconds = 1.0;
      b.stages.push_back(s);
      v.combos.push_back({c.id, "sha256:1", true, "", {}});
      promote::ComboPromotion cp;
      cp.id = c.id;
      cp.verified = true;
      // One tag written, the second raced: some tags name the image, but the
      // combination is not tagged.
      cp.tags = {{"r/x:a", promote::TagAction::pushed, "sha256:d", "", ""}, {"r/x:b", promote::TagAction::race, "", "", "changed meanwhile"}};
      cp.tagged = false;
      cp.reason = "changed meanwhile";
      pr.combos.push_back(cp);
    }
  REQUIRE(first);
  report::RunReport rr = report::assemble(p, &b, &v, &pr);
  CHECK(rr.verified == pr.combos.size());
  CHECK(rr.tagged == 0);
  CHECK(report::to_json(rr)["summary"]["tagged"] == 0);
  CHECK(report::table(rr).find("not tagged: changed meanwhile") != std::string::npos);

  pr.combos.front().tagged = true;
  pr.combos.front().recorded = true;
  CHECK(report::assemble(p, &b, &v, &pr).tagged == 1);
}

TEST_CASE("plan's table groups exclusions by rule and shows only what was asked") {
  catalog::Catalog cat = catalog::Catalog::load(KILN_SOURCE_DIR "/recipes");
  plan::Plan p = plan::make_plan(matrix::parse_matrix_file(KILN_SOURCE_DIR "/matrices/pytorch.toml"), cat);
  const std::string all = plan::to_table(p);
  CHECK(all.find("EXCLUDED BY RULE") != std::string::npos);
  CHECK(all.find("\npytorch-cuda-build ") != std::string::npos);
  CHECK(all.find("  excluded  ") == std::string::npos);  // no row per excluded combination
  CHECK(all.find(" \n") == std::string::npos);           // no trailing spaces

  plan::TableOptions valid;
  valid.valid_only = true;
  CHECK(plan::to_table(p, valid).find("EXCLUDED BY RULE") == std::string::npos);

  plan::TableOptions only;
  only.only = {"pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-devel"};
  const std::string one = plan::to_table(p, only);
  CHECK(one.find("pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-devel ") != std::string::npos);
  CHECK(one.find("pytorch2.11-cuda13.0-cudnn9-ubuntu22.04-devel") == std::string::npos);
}

TEST_CASE("a tag's action is an enum: the JSON word, the table's words, and which ones name the verified image") {
  using promote::TagAction;
  CHECK(std::string(promote::to_string(TagAction::would_push)) == "would-push");
  CHECK(std::string(promote::to_string(TagAction::unchanged)) == "unchanged");
  CHECK(std::string(promote::to_string(TagAction::none)).empty());
  CHECK(std::string(promote::words(TagAction::would_retag)) == "would tag");
  CHECK(std::string(promote::words(TagAction::unchanged)) == "already tagged");
  CHECK(std::string(promote::words(TagAction::retagged)) == "tagged");
  CHECK(std::string(promote::words(TagAction::refused)) == "refused");
  for (TagAction a : {TagAction::pushed, TagAction::retagged, TagAction::unchanged}) CHECK(promote::names_verified_image(a));
  for (TagAction a : {TagAction::none, TagAction::conflict, TagAction::would_push, TagAction::would_retag, TagAction::race,
                      TagAction::refused, TagAction::failed})
    CHECK_FALSE(promote::names_verified_image(a));
}

TEST_CASE("a combination's outcome: a dry run would tag, or is already tagged when every tag names the image") {
  using Outcome = promote::ComboPromotion::Outcome;
  promote::ComboPromotion cp;
  cp.tags = {{"r/x:a", promote::TagAction::unchanged, "sha256:d", "sha256:d", ""},
             {"r/x:b", promote::TagAction::would_retag, "", "", ""}};
  CHECK(cp.outcome() == Outcome::not_tagged);  // not a dry run, not tagged
  cp.dry_run = true;
  CHECK(cp.outcome() == Outcome::would_tag);
  cp.tags[1].action = promote::TagAction::unchanged;
  CHECK(cp.outcome() == Outcome::already_tagged);
  CHECK(std::string(promote::to_string(cp.outcome())) == "already tagged");
  cp.dry_run = false;
  cp.tagged = true;
  CHECK(cp.outcome() == Outcome::tagged);
  CHECK(cp.state() == "tagged-without-record");  // the JSON word is unchanged
}
