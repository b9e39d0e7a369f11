#include <cstring>
#include "state/sqlite.h"

#include <sqlite3.h>

#include <string>

namespace kiln::state::detail {

namespace {

// What a user can do about each class of failure.
std::string hint(int rc, int busy_timeout_ms) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      return " (the file is not a SQLite database: it is corrupt or not kiln's; move it away and "
             "kiln starts a new ledger, redoing the builds it no longer remembers)";
    case SQLITE_CORRUPT:
      return " (the ledger is corrupt; move it away and kiln starts a new ledger, redoing the "
             "builds it no longer remembers)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return " (another kiln process held the ledger longer than the busy timeout of " +
             std::to_string(busy_timeout_ms) + " ms)";
    case SQLITE_CANTOPEN:
      return " (cannot open the file: check that its directory exists and is writable)";
    case SQLITE_READONLY:
      return " (the ledger or its directory is read-only; kiln needs to write it, and its -wal "
             "and -shm files beside it)";
    case SQLITE_FULL:
      return " (the disk is full)";
    default:
      return "";
  }
}

}  // namespace

Connection::Connection(std::string path, int busy_timeout_ms)
    : path_(std::move(path)), busy_timeout_ms_(busy_timeout_ms) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw LedgerError(path_ + ": cannot open the state ledger: " + msg + hint(rc, busy_timeout_ms_));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms_);
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  // The last connection to close checkpoints the WAL into the database and
  // removes the -wal file; a crash instead leaves it for the next open.
  sqlite3_close_v2(db_);
}

void Connection::fail(int rc, std::string_view what) const {
  std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  throw LedgerError(path_ + ": " + std::string(what) + ": " + msg + hint(rc, busy_timeout_ms_));
}

Query Connection::query(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) fail(rc, "cannot prepare a query");
    it = cache_.emplace(sql, stmt).first;
  }
  return Query(*this, it->second);
}

void Connection::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw LedgerError(path_ + ": " + msg + hint(rc, busy_timeout_ms_));
  }
}

std::int64_t Connection::changes() const { return sqlite3_changes64(db_); }

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Query& Query::text(int index, std::string_view value) {
  int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) conn_.fail(rc, "cannot bind a value");
  return *this;
}

Query& Query::integer(int index, std::int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) conn_.fail(rc, "cannot bind a value");
  return *this;
}

Query& Query::integer(int index, std::optional<std::int64_t> value) {
  int rc = value ? sqlite3_bind_int64(stmt_, index, *value) : sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) conn_.fail(rc, "cannot bind a value");
  return *this;
}

Query& Query::real(int index, std::optional<double> value) {
  int rc = value ? sqlite3_bind_double(stmt_, index, *value) : sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) conn_.fail(rc, "cannot bind a value");
  return *this;
}

bool Query::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  std::string what = sql ? std::string(sql).substr(0, 60) : std::string("?");
  conn_.fail(rc, "query failed (" + what + (sql && std::strlen(sql) > 60 ? "...)" : ")"));
}

void Query::run() {
  while (step()) {
  }
}

std::string Query::column_text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::int64_t Query::column_int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::optional<std::int64_t> Query::column_opt_int(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(stmt_, col);
}

std::optional<double> Query::column_opt_real(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt_, col);
}

Transaction::Transaction(Connection& conn, bool immediate) : conn_(conn) {
  conn_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  conn_.exec("COMMIT");
  done_ = true;
}

}  // namespace kiln::state::detail
