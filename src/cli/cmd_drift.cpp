// kiln drift MATRIX: each combination's last two builds (from the ledger)
// compared by what the images hold -- packages (dpkg, Python, CUDA, read
// from the images' bytes as `kiln sbom` reads them) and layers -- with the
// likely cause (src/drift/drift.h, docs/sbom.md "Drift"). Exit 0 when no
// combination drifted, 1 when one did or could not be compared, 2 for bad
// input or environment.
#include <ctime>
#include <iostream>

#include <fmt/format.h>

#include "util/text.h"
#include "cli/audit_input.h"
#include "cli/commands.h"
#include "drift/drift.h"
#include "sbom/sbom.h"
#include "state/ledger.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/select.h"

namespace kiln::cli {

namespace {

struct DriftArgs {
  std::string matrix;
  std::string state_dir;
  std::vector<std::string> only;
  std::string format = "table";
};

std::string rfc3339(std::int64_t unix_ms) { return utc_time(unix_ms, "%Y-%m-%dT%H:%M:%SZ"); }

sbom::Inventory inventory_of(const std::string& image_id) {
  OpenedImage in = open_image("docker-daemon:" + image_id);  // by id: the engine keeps both builds
  return sbom::read_inventory(in.source);
}

drift::Comparison compare(const std::string& id, const std::vector<state::BuildRecord>& builds) {
  drift::Comparison c;
  c.id = id;
  if (builds.empty()) {
    c.error = "never built";
    return c;
  }
  const auto& last = builds.back();
  c.after = {last.image_id, last.input_hash, rfc3339(last.started_at)};
  if (builds.size() < 2) return c;
  const auto& prev = builds[builds.size() - 2];
  c.before = {prev.image_id, prev.input_hash, rfc3339(prev.started_at)};
  if (c.before.image_id == c.after.image_id) return c;
  try {
    sbom::Inventory a = inventory_of(c.before.image_id);
    sbom::Inventory b = inventory_of(c.after.image_id);
    c.packages = drift::compare_packages(a, b);
    c.layers = drift::compare_layers(a.config.diff_ids, b.config.diff_ids);
  } catch (const std::exception& e) {
    // Fail closed: two builds that cannot both be read are not "identical".
    c.error = fmt::format("cannot read both images: {}", e.what());
  }
  return c;
}

int run_drift(const Common& common, const DriftArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  auto state_dir = find_state_dir(a.state_dir);
  if (!state_dir) throw InputError({a.state_dir.empty() ? ".kiln" : a.state_dir}, "no ledger: nothing was built yet");
  state::Ledger ledger(*state_dir + "/state.db");
  std::vector<drift::Comparison> out;
  for (const auto& combo : l.p.combos) {
    if (combo.status != plan::Status::valid) continue;
    if (!selected(combo.id, a.only)) continue;
    std::vector<state::BuildRecord> builds;
    for (auto& r : ledger.history(combo.id))
      if (r.status == state::BuildStatus::built && !r.image_id.empty() && r.matrix == l.p.matrix_name) builds.push_back(r);
    out.push_back(compare(combo.id, builds));
  }
  bool bad = false;
  for (const auto& c : out) bad = bad || c.verdict() == "drifted" || c.verdict() == "unknown";
  if (a.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : out) {
      nlohmann::json pk = nlohmann::json::array();
      for (const auto& p : c.packages) pk.push_back({{"kind", p.kind}, {"name", p.name}, {"before", p.before}, {"after", p.after}});
      list.push_back({{"id", c.id}, {"verdict", c.verdict()}, {"cause", c.cause()},
                      {"before", {{"image_id", c.before.image_id}, {"input_hash", c.before.input_hash}, {"built", c.before.when}}},
                      {"after", {{"image_id", c.after.image_id}, {"input_hash", c.after.input_hash}, {"built", c.after.when}}},
                      {"packages", pk},
                      {"layers", {{"before", c.layers.before}, {"after", c.layers.after}, {"common_prefix", c.layers.common_prefix}}}});
    }
    emit(common, json_text({{"schema", "kiln.drift/v1"}, {"matrix", l.p.matrix_name}, {"drifted", bad}, {"combos", list}}, 2) + "\n", true);
  } else {
    std::string text;
    for (const auto& c : out) {
      text += fmt::format("{:<32} {}\n", c.id, c.verdict());
      if (!c.before.image_id.empty())
        text += fmt::format("  {} ({}) -> {} ({})\n", c.before.image_id.substr(0, 19), c.before.when,
                            c.after.image_id.substr(0, 19), c.after.when);
      for (const auto& p : c.packages) text += "  " + p.str() + "\n";
      text += "  cause: " + c.cause() + "\n";
    }
    emit(common, text, false);
  }
  return bad ? 1 : 0;
}

}  // namespace

void register_drift(CLI::App& app, Common& common) {
  auto args = std::make_shared<DriftArgs>();
  CLI::App* sub = app.add_subcommand("drift", "Compare each combination's last two builds: packages and layers, and the likely cause");
  sub->add_option("matrix", args->matrix, "The matrix file")->required()->check(CLI::ExistingFile);
  sub->add_option("--state-dir", args->state_dir, "kiln's state directory (default: .kiln found upward)");
  sub->add_option("--only", args->only, "Combination ids or globs");
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, args] { return run_drift(common, *args); });
}

}  // namespace kiln::cli
