// Helpers shared by the ledger tests: a temporary directory and raw SQLite
// access for building files the ledger must refuse.
#pragma once
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace kiln::state::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-state-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Runs constant SQL on a raw connection (test setup only).
inline void raw_exec(const std::string& db_path, const char* sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + db_path);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error("raw_exec: " + msg);
}

// The first column of the first row of a constant query, as text.
inline std::string raw_scalar(const std::string& db_path, const char* sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + db_path);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    auto* p = sqlite3_column_text(st, 0);
    out = p ? reinterpret_cast<const char*>(p) : "";
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// A well-formed input hash derived from n.
inline std::string hash_of(unsigned long n) {
  static const char* hex = "0123456789abcdef";
  std::string h(64, '0');
  for (int i = 63; i >= 0 && n; --i, n >>= 4) h[static_cast<size_t>(i)] = hex[n & 15];
  h[0] = 'a';  // never all zeros
  return h;
}

}  // namespace kiln::state::test
