// kiln promote MATRIX: release tags for verified combinations only.
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/promote_options.h"
#include "promote/promote.h"
#include "util/json_out.h"
#include "util/table.h"

namespace kiln::cli {

namespace {

std::string promote_table(const promote::Report& r, bool dry_run, bool colour) {
  using Outcome = promote::ComboPromotion::Outcome;
  Table t({"COMBINATION", "RESULT", "DIGEST / WHY NOT"});
  size_t would = 0, already = 0, existing_tags = 0, tags = 0;
  for (const auto& c : r.combos) {
    Outcome result = c.outcome();
    would += result == Outcome::would_tag;
    already += result == Outcome::already_tagged;
    Colour hue = result == Outcome::not_tagged ? Colour::red : result == Outcome::would_tag ? Colour::yellow : Colour::green;
    t.add_row({c.id, paint(promote::to_string(result), hue, colour), c.tagged ? c.digest : (c.dry_run ? "" : c.reason)});
    for (const auto& tag : c.tags) {
      ++tags;
      existing_tags += tag.action == promote::TagAction::unchanged;
      t.add_note(fmt::format("{:<14} {}{}", promote::words(tag.action), tag.tag, tag.error.empty() ? "" : "  (" + tag.error + ")"));
    }
    if (!c.record.empty()) t.add_note(fmt::format("{:<14} attached ({})", "record", c.record));
    if (c.tagged && !c.recorded) t.add_note(fmt::format("{:<14} NOT attached: {}", "record", c.record_error));
  }
  std::string out = t.str();
  if (dry_run)
    return out + fmt::format("\ndry run, nothing written: {} of {} would be tagged, {} already tagged ({} of {} tags exist)\n",
                             would, r.combos.size(), already, existing_tags, tags);
  return out + fmt::format("\n{} of {} tagged ({} of {} tags already existed)\n", r.tagged(), r.combos.size(), existing_tags, tags);
}

int run_promote(const Common& common, const PromoteArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  promote::Report r = promote::promote_plan(l.p, promote_options(common, l.m, a));
  bool json = a.format == "json";
  emit(common, json ? json_text(promote::to_json(r), 2) + '\n' : promote_table(r, a.dry_run, colour(common)), json);
  if (!r.environment_error.empty()) {
    std::cerr << "kiln: error: " << r.environment_error << '\n';
    return 2;
  }
  if (a.dry_run) return 0;
  bool all = std::all_of(r.combos.begin(), r.combos.end(), [](const auto& c) { return c.complete(); });
  return all ? 0 : 1;
}

}  // namespace

void register_promote(CLI::App& app, Common& common) {
  auto p = std::make_shared<PromoteArgs>();
  CLI::App* promote = app.add_subcommand("promote", "Push release tags for verified combinations only");
  add_promote_flags(promote, *p);
  promote->add_flag("--dry-run", p->dry_run, "Show what would be tagged (and what already is); write nothing");
  promote->add_flag("--force", p->force, "Move a tag that names another image");
  add_output_flag(promote, common);
  set_action(promote, [&common, p] { return run_promote(common, *p); });
}

}  // namespace kiln::cli
