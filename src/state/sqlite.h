// A thin RAII layer over the SQLite C API, private to src/state: one
// connection, cached prepared statements with bound parameters, and
// IMMEDIATE transactions. Every failure becomes a LedgerError naming the
// database path.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "state/ledger.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kiln::state::detail {

class Connection;

// A cached statement in use: parameters are bound by index (1-based, as
// SQLite counts), columns read by index (0-based). The destructor resets the
// statement and clears its bindings so the cache can hand it out again.
class Query {
 public:
  Query(Connection& conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& text(int index, std::string_view value);
  Query& integer(int index, std::int64_t value);
  Query& real(int index, std::optional<double> value);        // NULL when empty
  Query& integer(int index, std::optional<std::int64_t> value);  // NULL when empty

  bool step();  // true: a row is ready; false: done
  void run();   // steps to the end (statements without rows)

  std::string column_text(int col) const;  // "" for NULL
  std::int64_t column_int(int col) const;
  std::optional<std::int64_t> column_opt_int(int col) const;
  std::optional<double> column_opt_real(int col) const;

 private:
  Connection& conn_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  Connection(std::string path, int busy_timeout_ms);  // opens (creates) the file
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }
  int busy_timeout_ms() const { return busy_timeout_ms_; }

  // `sql` must be a string literal (it keys the statement cache).
  Query query(const char* sql);
  // Runs constant SQL with no parameters (schema, PRAGMA, BEGIN/COMMIT).
  void exec(const char* sql);
  std::int64_t changes() const;

  // Throws LedgerError for SQLite result `rc`, with `what` as context.
  [[noreturn]] void fail(int rc, std::string_view what) const;

 private:
  std::string path_;
  int busy_timeout_ms_;
  sqlite3* db_ = nullptr;
  std::map<const char*, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE (takes the write lock up front, so the busy timeout
// applies and two writers never deadlock upgrading a read lock); rolls back
// unless commit() ran. With immediate=false, a read snapshot (BEGIN).
class Transaction {
 public:
  explicit Transaction(Connection& conn, bool immediate = true);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Connection& conn_;
  bool done_ = false;
};

}  // namespace kiln::state::detail
