// The ledger's schema and its migrations. PRAGMA user_version holds the
// schema version and PRAGMA application_id marks the file as kiln's; each
// migration runs in the same IMMEDIATE transaction that bumps the version,
// so a crash mid-migration leaves the old schema intact. docs/state.md
// explains every table.
#include <sqlite3.h>

#include <chrono>
#include <string>
#include <thread>

#include "state/internal.h"

namespace kiln::state::detail {

namespace {

// 'kiln' in ASCII: lets kiln tell its ledger from any other SQLite file.
constexpr std::int64_t application_id = 0x6b696c6e;

// migrations[i] takes the schema from version i to i + 1. Append, never edit.
const char* const migrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE builds (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- one row per attempt; never reused
  stage_id    TEXT    NOT NULL CHECK (stage_id <> ''),
  input_hash  TEXT    NOT NULL CHECK (length(input_hash) = 64),
  matrix      TEXT    NOT NULL DEFAULT '',
  engine      TEXT    NOT NULL DEFAULT '',
  backend     TEXT    NOT NULL DEFAULT '',
  image_id    TEXT    NOT NULL DEFAULT '',
  digest      TEXT    NOT NULL DEFAULT '',
  status      TEXT    NOT NULL
              CHECK (status IN ('building', 'built', 'failed', 'skipped', 'interrupted')),
  failed_step TEXT    NOT NULL DEFAULT '',
  error       TEXT    NOT NULL DEFAULT '',
  log_path    TEXT    NOT NULL DEFAULT '',
  started_at  INTEGER NOT NULL,                    -- unix ms
  finished_at INTEGER,                             -- unix ms; NULL exactly while building
  seconds     REAL,
  owner       TEXT    NOT NULL DEFAULT '',         -- host:boot_id:pid:start_time
  CHECK ((status = 'building') = (finished_at IS NULL))
);
CREATE INDEX builds_by_hash  ON builds (input_hash, status, id);
CREATE INDEX builds_by_stage ON builds (stage_id, id);
CREATE INDEX builds_running  ON builds (status) WHERE status = 'building';

CREATE TABLE combos (
  matrix      TEXT    NOT NULL,
  combo_id    TEXT    NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (matrix, combo_id)
) WITHOUT ROWID;

CREATE TABLE combo_stages (
  matrix      TEXT    NOT NULL,
  combo_id    TEXT    NOT NULL,
  position    INTEGER NOT NULL,                    -- 0 = first parent; the last is the final stage
  stage_id    TEXT    NOT NULL CHECK (stage_id <> ''),
  PRIMARY KEY (matrix, combo_id, position),
  FOREIGN KEY (matrix, combo_id) REFERENCES combos (matrix, combo_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX combo_stages_by_stage ON combo_stages (stage_id);

CREATE TABLE verdicts (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  image_digest TEXT    NOT NULL CHECK (image_digest <> ''),
  runner       TEXT    NOT NULL,
  check_name   TEXT    NOT NULL CHECK (check_name <> ''),
  status       TEXT    NOT NULL CHECK (status <> ''),
  detail       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
  recorded_at  INTEGER NOT NULL                    -- unix ms
);
CREATE INDEX verdicts_by_digest ON verdicts (image_digest, runner, check_name, id);

PRAGMA application_id = 1802071150;
PRAGMA user_version = 1;
)sql",
    // 1 -> 2: a build pushed by a buildx builder that is not the engine
    // (docs/build-farm.md) is only in the registry: "HOST/REPO@sha256:...".
    R"sql(
ALTER TABLE builds ADD COLUMN image_ref TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 2;
)sql",
    // 2 -> 3: where each attempt ran and why it was retried (a build over
    // several engines retries a stage whose engine stopped answering).
    R"sql(
ALTER TABLE builds ADD COLUMN runner       TEXT    NOT NULL DEFAULT '';  -- the engine's runner name
ALTER TABLE builds ADD COLUMN attempt      INTEGER NOT NULL DEFAULT 1;   -- 1, then 2, 3 for retries in one run
ALTER TABLE builds ADD COLUMN retry_reason TEXT    NOT NULL DEFAULT '';  -- why this attempt is a retry
PRAGMA user_version = 3;
)sql",
};
constexpr int latest_version = sizeof(migrations) / sizeof(migrations[0]);
static_assert(latest_version == Ledger::schema_version, "add a migration when bumping schema_version");

struct Header {
  std::int64_t version = 0;
  std::int64_t app_id = 0;
  std::int64_t objects = 0;
};

Header read_header(Connection& conn) {
  Header h;
  {
    auto q = conn.query("PRAGMA user_version");
    if (q.step()) h.version = q.column_int(0);
  }
  {
    auto q = conn.query("PRAGMA application_id");
    if (q.step()) h.app_id = q.column_int(0);
  }
  {
    auto q = conn.query("SELECT count(*) FROM sqlite_schema");
    if (q.step()) h.objects = q.column_int(0);
  }
  return h;
}

void check_header(const Connection& conn, const Header& h) {
  if (h.app_id != 0 && h.app_id != application_id)
    throw LedgerError(conn.path() + ": not a kiln state ledger (SQLite application_id " +
                      std::to_string(h.app_id) + "); point kiln at another path");
  if (h.app_id == 0 && h.objects > 0)
    throw LedgerError(conn.path() + ": not a kiln state ledger (a SQLite database with " +
                      std::to_string(h.objects) + " objects of something else); point kiln at another path");
  if (h.version > latest_version)
    throw LedgerError(conn.path() + ": the state ledger has schema version " + std::to_string(h.version) +
                      ", newer than this kiln understands (" + std::to_string(latest_version) +
                      "): it was written by a newer kiln; upgrade kiln, or use another ledger path");
  if (h.version < 0)
    throw LedgerError(conn.path() + ": the state ledger has an invalid schema version " +
                      std::to_string(h.version));
}

// The switch needs the file to itself, and SQLite answers SQLITE_BUSY at
// once, without its busy handler, while another process has it open to
// read (it would deadlock waiting): so retry within the busy timeout. Another
// kiln opening the same new ledger may switch it meanwhile; then it is WAL.
std::string switch_to_wal(Connection& conn) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(conn.busy_timeout_ms());
  for (;;) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(conn.handle(), "PRAGMA journal_mode = WAL", -1, &stmt, nullptr);
    std::string mode;
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    if (rc == SQLITE_ROW) return mode;
    if ((rc & 0xff) != SQLITE_BUSY || clock::now() > deadline)
      throw LedgerError(conn.path() + ": cannot switch the state ledger to WAL journal mode: " + sqlite3_errstr(rc));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

void open_schema(Connection& conn) {
  // The first read: a file that is not a database fails here, before kiln
  // changes anything in it; so does a ledger from a newer kiln. One read
  // transaction for the three values: read one by one, another process's
  // first migration could commit between them (no application_id yet, but
  // its tables already there: "not a kiln state ledger").
  Header h;
  {
    Transaction snapshot(conn, /*immediate=*/false);
    h = read_header(conn);
    snapshot.commit();
  }
  check_header(conn, h);

  // An existing ledger is already in WAL mode (it is persistent), and asking
  // again would wait for writers; a new one is switched once.
  std::string mode;
  {
    auto q = conn.query("PRAGMA journal_mode");
    mode = q.step() ? q.column_text(0) : "";
  }
  if (mode != "wal" && mode != "memory") {
    mode = switch_to_wal(conn);
    if (mode != "wal")
      throw LedgerError(conn.path() + ": cannot switch the state ledger to WAL journal mode (got '" + mode +
                        "'); its file system must support shared memory (not NFS): use a local path");
  }
  // WAL + NORMAL: a commit is in the WAL (the OS has it) before it returns,
  // so killing kiln loses nothing committed; only a power loss can drop the
  // last commits, never corrupt the file.
  conn.exec("PRAGMA synchronous = NORMAL");
  conn.exec("PRAGMA foreign_keys = ON");

  if (h.version == latest_version && h.app_id == application_id) return;  // current: no write lock needed
  Transaction tx(conn);
  h = read_header(conn);  // again, under the write lock: another process may have migrated
  check_header(conn, h);
  if (h.version == latest_version) return;  // rollback of an empty transaction
  for (auto v = h.version; v < latest_version; ++v) conn.exec(migrations[v]);
  tx.commit();
}

}  // namespace kiln::state::detail
