// kiln status MATRIX: where each combination stands -- built, verified,
// tagged, or awaiting a GPU class -- from what the ledger and the last run's
// report hold. Read-only: it never creates a ledger, never takes the writer
// lock, never marks dead builds interrupted (the next writer does).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/runners.h"
#include "state/ledger.h"
#include "util/json_out.h"
#include "util/text.h"
#include "util/table.h"
#include "verify/verify.h"

namespace kiln::cli {

namespace {

namespace fs = std::filesystem;

struct StatusArgs {
  std::string matrix;
  std::string state_dir;  // empty: found from the working directory up
  std::string format = "table";
};

std::string age(std::int64_t unix_ms) {
  using namespace std::chrono;
  auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto s = (now - unix_ms) / 1000;
  if (s < 120) return fmt::format("{}s ago", s);
  if (s < 7200) return fmt::format("{}m ago", s / 60);
  return fmt::format("{}h ago", s / 3600);
}

// Release tags from the last `kiln run`'s report, per combination, kept only
// while they name the image the ledger holds now.
std::map<std::string, std::vector<std::string>> last_run_tags(const std::string& state_dir, const std::string& matrix) {
  std::map<std::string, std::vector<std::string>> tags;
  std::ifstream in(fs::path(state_dir) / "reports" / (matrix + ".json"));
  if (!in) return tags;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("combos") || !j["combos"].is_array()) return tags;
  // The report is a file anyone can edit: a value of the wrong type is
  // skipped, never read as if it were right.
  auto text = [](const nlohmann::json& c, const char* key) {
    return c.contains(key) && c[key].is_string() ? c[key].get<std::string>() : std::string();
  };
  for (const auto& c : j["combos"]) {
    if (!c.is_object() || !c.contains("tags") || !c["tags"].is_array()) continue;
    std::vector<std::string> named;
    for (const auto& t : c["tags"])
      if (t.is_string()) named.push_back(t.get<std::string>());
    if (!named.empty()) tags[text(c, "id") + "@" + text(c, "image_id")] = std::move(named);
  }
  return tags;
}

struct Line {
  std::string id, build = "pending", image, verified = "-", when, why;
  std::optional<state::ComboStatus> ledger;
  std::vector<state::Verdict> verdicts;
  std::vector<std::string> tags;
  std::vector<std::string> checks;
  double seconds = 0;
};

std::vector<Line> lines(const Loaded& l, const std::optional<std::string>& state_dir) {
  std::vector<Line> out;
  std::optional<state::Ledger> ledger;
  std::map<std::string, state::ComboStatus> known;
  std::map<std::string, std::vector<std::string>> tags;
  if (state_dir) {
    ledger.emplace(*state_dir + "/state.db");
    for (auto& c : ledger->combos(l.m.name)) known.emplace(c.combo_id, std::move(c));
    tags = last_run_tags(*state_dir, l.m.name);
  }
  const auto runners = runners_for(l.m, {});
  for (const auto& c : l.p.combos) {
    if (c.status != plan::Status::valid) continue;
    Line line{c.id};
    auto it = known.find(c.id);
    if (it != known.end()) {
      const auto& s = it->second;
      line.ledger = s;
      line.build = std::string(state::to_string(s.status));
      if (const auto& b = s.final_build) {
        line.image = b->image_id;
        line.when = age(b->started_at);
        line.seconds = b->seconds.value_or(0);
        if (!b->error.empty()) line.why = b->error + (b->log_path.empty() ? "" : " (log: " + b->log_path + ")");
      }
      if (!s.blocked_by.empty()) line.why = "blocked by " + s.blocked_by;
    }
    if (!line.image.empty() && line.build == "built") {  // verdicts belong to this exact image
      line.verdicts = ledger->verdicts(line.image);
      verify::ComboVerdict v = verify::recorded_verdict(c, line.image, runners, *state_dir);
      line.verified = v.verified ? "yes" : "no";
      if (!v.verified) line.why = v.reason;
      for (const auto& ch : v.checks) line.checks.push_back(ch.check + "@" + ch.runner + "=" + verify::to_string(ch.status));
      if (auto t = tags.find(c.id + "@" + line.image); t != tags.end()) line.tags = t->second;
    }
    out.push_back(std::move(line));
  }
  return out;
}

int run_status(const Common& common, const StatusArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  const auto state_dir = find_state_dir(a.state_dir);
  const auto rows = lines(l, state_dir);
  const std::string where = state_dir ? *state_dir + "/state.db"
                                      : (a.state_dir.empty() ? "no ledger (.kiln/state.db) here or in a parent directory"
                                                             : "no ledger in " + a.state_dir);
  if (a.format == "json") {
    nlohmann::json combos = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json c{{"id", r.id}, {"status", r.build}, {"verified", r.verified == "yes"}, {"tags", r.tags},
                       {"reason", r.why.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.why)}, {"stages", nlohmann::json::array()}};
      if (r.ledger) {
        c["stages"] = r.ledger->stage_ids;
        if (const auto& b = r.ledger->final_build)
          c["build"] = {{"image_id", b->image_id}, {"engine", b->engine}, {"input_hash", b->input_hash}, {"log", b->log_path},
                        {"error", b->error}, {"seconds", b->seconds.value_or(0)}};
        if (!r.ledger->blocked_by.empty()) c["blocked_by"] = r.ledger->blocked_by;
      }
      c["verdicts"] = nlohmann::json::array();
      for (const auto& v : r.verdicts) c["verdicts"].push_back({{"runner", v.runner}, {"check", v.check}, {"status", v.status}});
      combos.push_back(std::move(c));
    }
    nlohmann::json j = {{"schema", "kiln.status/v1"}, {"matrix", l.m.name},
                        {"ledger", state_dir ? nlohmann::json(*state_dir + "/state.db") : nlohmann::json(nullptr)}, {"combos", combos}};
    emit(common, json_text(j, 2) + '\n', true);
    return 0;
  }
  size_t built = 0, verified = 0, tagged = 0;
  Table t({"COMBINATION", "BUILD", "IMAGE", "VERIFIED", "TAGGED", "WHEN"});
  for (const auto& r : rows) {
    built += r.build == "built";
    verified += r.verified == "yes";
    tagged += !r.tags.empty();
    const bool hue = colour(common);
    const std::string verified = r.verified == "yes" ? paint("yes", Colour::green, hue) : r.verified == "no" ? paint("no", Colour::red, hue) : r.verified;
    t.add_row({r.id, r.build == "failed" ? paint(r.build, Colour::red, hue) : r.build, r.image.empty() ? "-" : r.image.substr(0, 19), verified, r.tags.empty() ? "-" : "yes", r.when});
    if (!r.why.empty()) t.add_note(r.why);
    if (!r.checks.empty()) t.add_note("checks: " + join(r.checks, " "));
    for (const auto& tag : r.tags) t.add_note("tag: " + tag);
  }
  std::string out = fmt::format("{}: {} valid combinations; {}\n\n", l.m.name, rows.size(), where);
  out += t.str();
  out += fmt::format("\n{} built, {} verified, {} tagged (tags as of the last `kiln run` report)\n", built, verified, tagged);
  emit(common, out, false);
  return 0;
}

}  // namespace

void register_status(CLI::App& app, Common& common) {
  auto s = std::make_shared<StatusArgs>();
  CLI::App* st = app.add_subcommand("status", "Show where each combination stands: built, verified, tagged, awaiting a GPU (read-only)");
  st->add_option("matrix", s->matrix, "Matrix TOML (default: matrices/offline.toml)");
  st->add_option("--state-dir", s->state_dir, "Ledger location (default: the nearest .kiln/ from here up)");
  st->add_option("--format", s->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(st, common);
  set_action(st, [&common, s] { return run_status(common, *s); });
}

}  // namespace kiln::cli
