#include "state/ledger.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <system_error>

#include "state/internal.h"

namespace kiln::state {

using detail::Connection;
using detail::Query;
using detail::Transaction;

std::string_view to_string(BuildStatus status) {
  switch (status) {
    case BuildStatus::pending: return "pending";
    case BuildStatus::building: return "building";
    case BuildStatus::built: return "built";
    case BuildStatus::failed: return "failed";
    case BuildStatus::skipped: return "skipped";
    case BuildStatus::interrupted: return "interrupted";
  }
  return "unknown";
}

std::optional<BuildStatus> parse_build_status(std::string_view text) {
  for (auto s : {BuildStatus::pending, BuildStatus::building, BuildStatus::built, BuildStatus::failed,
                 BuildStatus::skipped, BuildStatus::interrupted})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

namespace {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

// The builds columns, in the order read_build() reads them.
#define KILN_BUILD_COLUMNS                                                                            \
  "id, stage_id, input_hash, matrix, engine, backend, image_id, digest, status, failed_step, error, " \
  "log_path, started_at, finished_at, seconds, owner, image_ref, runner, attempt, retry_reason"

}  // namespace

struct Ledger::Impl {
  Connection conn;
  std::string owner = detail::this_process_owner();

  Impl(const std::string& path, int busy_timeout_ms) : conn(path, busy_timeout_ms) {}

  std::string normalize_hash(std::string_view hash) const {
    if (hash.starts_with("sha256:")) hash.remove_prefix(7);
    if (hash.size() != 64 || !is_hex(hash))
      throw LedgerError(conn.path() + ": an input hash must be 64 hex digits of sha256, got '" +
                        std::string(hash) + "'");
    std::string out(hash);
    for (char& c : out)
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }

  BuildRecord read_build(const Query& q) const {
    BuildRecord r;
    r.id = q.column_int(0);
    r.stage_id = q.column_text(1);
    r.input_hash = q.column_text(2);
    r.matrix = q.column_text(3);
    r.engine = q.column_text(4);
    r.backend = q.column_text(5);
    r.image_id = q.column_text(6);
    r.digest = q.column_text(7);
    auto status = q.column_text(8);
    auto parsed = parse_build_status(status);
    if (!parsed || *parsed == BuildStatus::pending)
      throw LedgerError(conn.path() + ": build " + std::to_string(r.id) + " has an unknown status '" + status + "'");
    r.status = *parsed;
    r.failed_step = q.column_text(9);
    r.error = q.column_text(10);
    r.log_path = q.column_text(11);
    r.started_at = q.column_int(12);
    r.finished_at = q.column_opt_int(13);
    r.seconds = q.column_opt_real(14);
    r.owner = q.column_text(15);
    r.image_ref = q.column_text(16);
    r.runner = q.column_text(17);
    r.attempt = static_cast<int>(q.column_int(18));
    r.retry_reason = q.column_text(19);
    return r;
  }

  std::optional<BuildRecord> latest(std::string_view stage_id) {
    auto q = conn.query("SELECT " KILN_BUILD_COLUMNS " FROM builds WHERE stage_id = ?1 ORDER BY id DESC LIMIT 1");
    q.text(1, stage_id);
    if (!q.step()) return std::nullopt;
    return read_build(q);
  }
};

Ledger::Ledger(std::string path, LedgerOptions options) {
  if (path.empty()) throw LedgerError("the state ledger path is empty");
  bool in_memory = path == ":memory:" || path.starts_with("file:");
  if (!in_memory) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) throw LedgerError(path + ": cannot create the directory " + parent.string() + ": " + ec.message());
    if (std::filesystem::is_directory(path, ec))
      throw LedgerError(path + ": is a directory, not a state ledger file");
  }
  impl_ = std::make_unique<Impl>(path, options.busy_timeout_ms);
  detail::open_schema(impl_->conn);
}

Ledger::~Ledger() = default;
Ledger::Ledger(Ledger&&) noexcept = default;
Ledger& Ledger::operator=(Ledger&&) noexcept = default;

Ledger::Impl& Ledger::impl() const {
  if (!impl_) throw LedgerError("use of a moved-from state ledger");
  return *impl_;
}

const std::string& Ledger::path() const { return impl().conn.path(); }

BuildId Ledger::start_build(const BuildStart& start) {
  auto& d = impl();
  if (start.stage_id.empty()) throw LedgerError(d.conn.path() + ": start_build needs a stage id");
  std::string hash = d.normalize_hash(start.input_hash);
  Transaction tx(d.conn);
  BuildId id = 0;
  {
    auto q = d.conn.query(
        "INSERT INTO builds (stage_id, input_hash, matrix, engine, backend, log_path, status, started_at, owner, "
        "runner, attempt, retry_reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'building', ?7, ?8, ?9, ?10, ?11) RETURNING id");
    q.text(1, start.stage_id).text(2, hash).text(3, start.matrix).text(4, start.engine).text(5, start.backend);
    q.text(6, start.log_path).integer(7, now_ms()).text(8, d.owner);
    q.text(9, start.runner).integer(10, start.attempt).text(11, start.retry_reason);
    if (!q.step()) d.conn.fail(0, "start_build inserted no row");
    id = q.column_int(0);
    q.run();
  }
  tx.commit();
  return id;
}

void Ledger::finish_build(BuildId id, const BuildOutcome& outcome) {
  auto& d = impl();
  if (outcome.status != BuildStatus::built && outcome.status != BuildStatus::failed &&
      outcome.status != BuildStatus::skipped)
    throw LedgerError(d.conn.path() + ": finish_build of build " + std::to_string(id) + " with status '" +
                      std::string(to_string(outcome.status)) + "' (only built, failed or skipped end a build)");
  Transaction tx(d.conn);
  std::int64_t finished = now_ms();
  {
    auto q = d.conn.query(
        "UPDATE builds SET status = ?2, image_id = ?3, digest = ?4, failed_step = ?5, error = ?6, "
        "finished_at = ?7, seconds = coalesce(?8, max(?7 - started_at, 0) / 1000.0), image_ref = ?9 "
        "WHERE id = ?1 AND status = 'building'");
    q.integer(1, id).text(2, to_string(outcome.status)).text(3, outcome.image_id).text(4, outcome.digest);
    q.text(5, outcome.failed_step).text(6, outcome.error).integer(7, finished).real(8, outcome.seconds);
    q.text(9, outcome.image_ref);
    q.run();
  }
  if (d.conn.changes() != 1) {
    auto rec = build(id);
    if (!rec) throw LedgerError(d.conn.path() + ": finish_build: no build " + std::to_string(id));
    throw LedgerError(d.conn.path() + ": finish_build: build " + std::to_string(id) + " of stage " + rec->stage_id +
                      " is " + std::string(to_string(rec->status)) + ", not building");
  }
  tx.commit();
}

std::optional<BuildRecord> Ledger::built(std::string_view input_hash) const {
  auto& d = impl();
  std::string hash = d.normalize_hash(input_hash);
  auto q = d.conn.query("SELECT " KILN_BUILD_COLUMNS
                        " FROM builds WHERE input_hash = ?1 AND status = 'built' ORDER BY id DESC LIMIT 1");
  q.text(1, hash);
  if (!q.step()) return std::nullopt;
  return d.read_build(q);
}

std::optional<BuildRecord> Ledger::build(BuildId id) const {
  auto& d = impl();
  auto q = d.conn.query("SELECT " KILN_BUILD_COLUMNS " FROM builds WHERE id = ?1");
  q.integer(1, id);
  if (!q.step()) return std::nullopt;
  return d.read_build(q);
}

std::optional<BuildRecord> Ledger::latest(std::string_view stage_id) const { return impl().latest(stage_id); }

std::vector<BuildRecord> Ledger::history(std::string_view stage_id) const {
  auto& d = impl();
  auto q = d.conn.query("SELECT " KILN_BUILD_COLUMNS " FROM builds WHERE stage_id = ?1 ORDER BY id");
  q.text(1, stage_id);
  std::vector<BuildRecord> out;
  while (q.step()) out.push_back(d.read_build(q));
  return out;
}

std::vector<BuildRecord> Ledger::recover(bool include_other_hosts) {
  auto& d = impl();
  Transaction tx(d.conn);
  std::vector<BuildRecord> running;
  {
    auto q = d.conn.query("SELECT " KILN_BUILD_COLUMNS " FROM builds WHERE status = 'building' ORDER BY id");
    while (q.step()) running.push_back(d.read_build(q));
  }
  std::vector<BuildRecord> recovered;
  std::int64_t now = now_ms();
  for (auto& r : running) {
    auto state = detail::owner_state(r.owner);
    if (state == detail::OwnerState::alive) continue;
    if (state == detail::OwnerState::elsewhere && !include_other_hosts) continue;
    std::string why = "interrupted: the process that ran it (" + (r.owner.empty() ? "unknown" : r.owner) +
                      ") stopped before it finished";
    {
      auto q = d.conn.query(
          "UPDATE builds SET status = 'interrupted', finished_at = ?2, error = ?3 WHERE id = ?1 AND status = 'building'");
      q.integer(1, r.id).integer(2, now).text(3, why);
      q.run();
    }
    r.status = BuildStatus::interrupted;
    r.finished_at = now;
    r.error = why;
    recovered.push_back(std::move(r));
  }
  tx.commit();
  return recovered;
}

void Ledger::record_combo(std::string_view matrix, std::string_view combo_id,
                          const std::vector<std::string>& stage_ids) {
  auto& d = impl();
  if (combo_id.empty()) throw LedgerError(d.conn.path() + ": record_combo needs a combination id");
  if (stage_ids.empty())
    throw LedgerError(d.conn.path() + ": record_combo: combination " + std::string(combo_id) + " has no stages");
  Transaction tx(d.conn);
  {
    // Replacing the row cascades to its old stage list.
    auto q = d.conn.query("DELETE FROM combos WHERE matrix = ?1 AND combo_id = ?2");
    q.text(1, matrix).text(2, combo_id);
    q.run();
  }
  {
    auto q = d.conn.query("INSERT INTO combos (matrix, combo_id, updated_at) VALUES (?1, ?2, ?3)");
    q.text(1, matrix).text(2, combo_id).integer(3, now_ms());
    q.run();
  }
  for (size_t i = 0; i < stage_ids.size(); ++i) {
    auto q = d.conn.query("INSERT INTO combo_stages (matrix, combo_id, position, stage_id) VALUES (?1, ?2, ?3, ?4)");
    q.text(1, matrix).text(2, combo_id).integer(3, static_cast<std::int64_t>(i)).text(4, stage_ids[i]);
    q.run();
  }
  tx.commit();
}

std::vector<ComboStatus> Ledger::combos(std::string_view matrix) const {
  auto& d = impl();
  Transaction snapshot(d.conn, /*immediate=*/false);  // one consistent view
  std::vector<ComboStatus> out;
  {
    auto q = d.conn.query(
        "SELECT combo_id, stage_id FROM combo_stages WHERE matrix = ?1 ORDER BY combo_id, position");
    q.text(1, matrix);
    while (q.step()) {
      std::string combo = q.column_text(0);
      if (out.empty() || out.back().combo_id != combo) {
        out.emplace_back();
        out.back().matrix = std::string(matrix);
        out.back().combo_id = combo;
      }
      out.back().stage_ids.push_back(q.column_text(1));
    }
  }
  std::map<std::string, std::optional<BuildRecord>, std::less<>> cache;
  auto latest = [&](const std::string& stage) -> const std::optional<BuildRecord>& {
    auto it = cache.find(stage);
    if (it == cache.end()) it = cache.emplace(stage, d.latest(stage)).first;
    return it->second;
  };
  for (auto& c : out) {
    c.final_build = latest(c.stage_ids.back());
    if (c.final_build) {
      c.status = c.final_build->status;
      continue;
    }
    c.status = BuildStatus::pending;
    for (size_t i = 0; i + 1 < c.stage_ids.size(); ++i) {
      const auto& b = latest(c.stage_ids[i]);
      if (b && b->status != BuildStatus::built) {
        c.status = b->status;
        c.blocked_by = c.stage_ids[i];
        c.blocking_build = b;
        break;
      }
    }
  }
  snapshot.commit();
  return out;
}

void Ledger::record_verdict(const Verdict& v) {
  auto& d = impl();
  if (v.image_digest.empty() || v.check.empty() || v.status.empty())
    throw LedgerError(d.conn.path() + ": record_verdict needs an image digest, a check and a status");
  {
    auto q = d.conn.query("SELECT json_valid(?1)");
    q.text(1, v.detail_json);
    if (!q.step() || q.column_int(0) != 1)
      throw LedgerError(d.conn.path() + ": record_verdict: the detail of check " + v.check + " on " +
                        v.image_digest + " is not valid JSON");
  }
  Transaction tx(d.conn);
  {
    auto q = d.conn.query(
        "INSERT INTO verdicts (image_digest, runner, check_name, status, detail, recorded_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    q.text(1, v.image_digest).text(2, v.runner).text(3, v.check).text(4, v.status).text(5, v.detail_json);
    q.integer(6, now_ms());
    q.run();
  }
  tx.commit();
}

std::vector<Verdict> Ledger::verdicts(std::string_view image_digest) const {
  auto& d = impl();
  auto q = d.conn.query(
      "SELECT image_digest, runner, check_name, status, detail, recorded_at FROM verdicts AS v "
      "WHERE image_digest = ?1 AND id = (SELECT max(id) FROM verdicts AS w WHERE w.image_digest = v.image_digest "
      "AND w.runner = v.runner AND w.check_name = v.check_name) ORDER BY runner, check_name");
  q.text(1, image_digest);
  std::vector<Verdict> out;
  while (q.step()) {
    Verdict v;
    v.image_digest = q.column_text(0);
    v.runner = q.column_text(1);
    v.check = q.column_text(2);
    v.status = q.column_text(3);
    v.detail_json = q.column_text(4);
    v.recorded_at = q.column_int(5);
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<std::string> Ledger::check_integrity() const {
  auto& d = impl();
  std::vector<std::string> problems;
  {
    auto q = d.conn.query("PRAGMA integrity_check");
    while (q.step()) {
      auto line = q.column_text(0);
      if (line != "ok") problems.push_back(line);
    }
  }
  {
    auto q = d.conn.query("PRAGMA foreign_key_check");
    while (q.step())
      problems.push_back("foreign key violation in " + q.column_text(0) + " row " + q.column_text(1) + " -> " +
                         q.column_text(2));
  }
  return problems;
}

}  // namespace kiln::state
