// The state ledger: a SQLite database (default .kiln/state.db) that records
// every build attempt and every verification verdict, so that a rerun skips
// what is already built and verified, and a `kill -9` at any moment loses no
// committed step. See docs/state.md for the schema and the reasons.
//
// Builds are keyed by *stage*: a content-addressed unit of building that
// several combinations may share (one runtime stage under a devel stage and
// a smoke stage, say). Each call to start_build() is one attempt, kept as
// history; the input hash (sha256 of everything that went into the build,
// computed by the caller) is what makes reruns incremental.
//
// A Ledger is one connection: use it from one thread at a time; open one per
// thread or process (WAL lets readers and one writer work side by side, and
// writers wait for each other up to the busy timeout).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::state {

// Any failure of the ledger: cannot open or create, not a kiln ledger, a
// corrupt file, a schema newer than this kiln, a lock held past the busy
// timeout, a misuse such as finishing a build that is not running. The
// message names the database path.
class LedgerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class BuildStatus {
  pending,      // no attempt yet (only reported by combos(); never stored)
  building,     // an attempt is running (or its process died: see recover())
  built,
  failed,
  skipped,      // the caller decided not to build (e.g. a parent stage failed)
  interrupted,  // was `building` when its process died; recover() sets it
};
std::string_view to_string(BuildStatus status);
std::optional<BuildStatus> parse_build_status(std::string_view text);

using BuildId = std::int64_t;

// What start_build() needs. input_hash is 64 hex digits of sha256 (a
// "sha256:" prefix is accepted and dropped; hex is stored in lowercase).
struct BuildStart {
  std::string stage_id;
  std::string input_hash;
  std::string matrix;    // the matrix name that asked for it (informational)
  std::string engine;    // engine socket or name, e.g. "unix:///var/run/docker.sock"
  std::string backend;   // matrix::to_string(Backend): "engine" or "buildx"
  std::string log_path;  // where the build log is written
  // Where and why it runs when a build has several engines (schema 2):
  // the runner's name ("" when unnamed), which attempt of this stage in this
  // run it is (1 the first; 2, 3 retries on another engine), and why it is
  // retried ("" for a first attempt).
  std::string runner;
  int attempt = 1;
  std::string retry_reason;
};

// How an attempt ended. status must be built, failed or skipped.
struct BuildOutcome {
  BuildStatus status = BuildStatus::built;
  std::string image_id;     // "sha256:..." image (config) id, when built
  std::string digest;       // manifest digest, when known (e.g. after a push)
  std::string failed_step;  // e.g. "RUN apt-get install ..." or "step 4/9"
  std::string error;
  std::optional<double> seconds;  // default: finished_at - started_at
  // Pushed by a builder that is not the engine: where the image is,
  // "HOST/REPO@sha256:<digest>" (it is in no engine). "": in the engine.
  std::string image_ref;
};

// One row of the builds table: one attempt.
struct BuildRecord {
  BuildId id = 0;
  std::string stage_id;
  std::string input_hash;
  std::string matrix;
  std::string engine;
  std::string backend;
  std::string image_id;
  std::string digest;
  BuildStatus status = BuildStatus::building;
  std::string failed_step;
  std::string error;
  std::string log_path;
  std::int64_t started_at = 0;                // unix ms
  std::optional<std::int64_t> finished_at;    // unix ms; empty while building
  std::optional<double> seconds;
  std::string owner;  // "<host>:<boot id>:<pid>:<process start time>" of the process that ran it (state/owner.cpp)
  std::string image_ref;  // BuildOutcome::image_ref
  std::string runner;  // as BuildStart: the engine's runner name
  int attempt = 1;
  std::string retry_reason;
};

// `kiln status`: one combination, its stages (parents first, the final
// stage last) and where it stands.
struct ComboStatus {
  std::string matrix;
  std::string combo_id;
  std::vector<std::string> stage_ids;
  // The final stage's status from its latest attempt; if the final stage has
  // no attempt yet, the status of the first earlier stage whose latest
  // attempt failed, was skipped, was interrupted or is building (named in
  // blocked_by); else pending.
  BuildStatus status = BuildStatus::pending;
  std::optional<BuildRecord> final_build;  // the final stage's latest attempt
  std::string blocked_by;                   // stage id, when status comes from an earlier stage
  std::optional<BuildRecord> blocking_build;
};

// One verification result against one image digest. status is the verify
// stage's word (verify::to_string(CheckStatus): "passed", "failed",
// "no-gpu", "error"); the ledger stores it as given. detail_json must be
// valid JSON (an object or "{}" when there is nothing to add).
struct Verdict {
  std::string image_digest;
  std::string runner;  // the matrix's runner name, e.g. "local", "h100"
  std::string check;   // "static" or "gpu" (one gpu verdict per runner, whose classes say which GPU)
  std::string status;
  std::string detail_json = "{}";
  std::int64_t recorded_at = 0;  // unix ms; set by record_verdict()
};

struct LedgerOptions {
  int busy_timeout_ms = 10000;
};

class Ledger {
 public:
  static constexpr const char* default_path = ".kiln/state.db";
  static constexpr int schema_version = 3;

  // Opens or creates the ledger (and its parent directories), sets WAL,
  // synchronous=NORMAL, the busy timeout and foreign keys, and migrates an
  // older schema. Throws LedgerError for a file that is not a kiln ledger,
  // a corrupt one, or one written by a newer kiln.
  explicit Ledger(std::string path = default_path, LedgerOptions options = {});
  ~Ledger();
  Ledger(Ledger&&) noexcept;
  Ledger& operator=(Ledger&&) noexcept;
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  const std::string& path() const;

  // --- builds ---------------------------------------------------------
  // Records a new attempt with status building; returns its id.
  BuildId start_build(const BuildStart& start);
  // Ends a running attempt. Throws LedgerError if `id` is unknown or not
  // building (e.g. recover() already declared it interrupted).
  void finish_build(BuildId id, const BuildOutcome& outcome);
  // The latest attempt with this input hash and status built: the image to
  // reuse (the caller still checks that the engine has it).
  std::optional<BuildRecord> built(std::string_view input_hash) const;
  std::optional<BuildRecord> build(BuildId id) const;
  std::optional<BuildRecord> latest(std::string_view stage_id) const;
  std::vector<BuildRecord> history(std::string_view stage_id) const;  // oldest first

  // Attempts left `building` by a process that no longer runs (killed,
  // crashed, or on a previous boot) become `interrupted`; returns them, so
  // a rerun redoes exactly those stages. Attempts of live processes are
  // left alone, so it is safe to call while another kiln is building.
  // Attempts of another host (or container: a different hostname) are left
  // alone unless include_other_hosts.
  std::vector<BuildRecord> recover(bool include_other_hosts = false);

  // --- combinations ---------------------------------------------------
  // Sets (replaces) the stages of one combination, parents first.
  void record_combo(std::string_view matrix, std::string_view combo_id,
                    const std::vector<std::string>& stage_ids);
  std::vector<ComboStatus> combos(std::string_view matrix) const;  // by combo id

  // --- verdicts -------------------------------------------------------
  // Appends a verdict (history is kept); verdicts() returns the latest per
  // (runner, check), ordered by runner then check. A new digest has none.
  void record_verdict(const Verdict& verdict);
  std::vector<Verdict> verdicts(std::string_view image_digest) const;

  // --- maintenance ----------------------------------------------------
  // PRAGMA integrity_check and foreign_key_check: empty when the database
  // is sound, else one line per problem.
  std::vector<std::string> check_integrity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Impl& impl() const;
};

}  // namespace kiln::state
