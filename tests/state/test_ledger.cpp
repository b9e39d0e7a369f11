// The state ledger: round trips, incremental lookup, combinations, verdicts,
// recovery, and the files it must refuse.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "state/ledger.h"
#include "support.h"

using namespace kiln::state;
using kiln::state::test::hash_of;
using kiln::state::test::raw_exec;
using kiln::state::test::raw_scalar;
using kiln::state::test::TempDir;

namespace {

BuildStart start_of(const std::string& stage, const std::string& hash) {
  return BuildStart{stage, hash, "offline", "unix:///var/run/docker.sock", "engine", "logs/" + stage + ".log"};
}

BuildOutcome built_as(const std::string& image_id) {
  BuildOutcome o;
  o.status = BuildStatus::built;
  o.image_id = image_id;
  o.digest = "sha256:" + hash_of(7);
  return o;
}

BuildOutcome failed_at(const std::string& step) {
  BuildOutcome o;
  o.status = BuildStatus::failed;
  o.failed_step = step;
  o.error = "exit code 100";
  return o;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("a new ledger is created with its directories, in WAL mode, at the current schema") {
  TempDir tmp;
  std::string path = tmp.file("a/b/.kiln/state.db");
  {
    Ledger ledger(path);
    CHECK(ledger.path() == path);
    CHECK(ledger.check_integrity().empty());
  }
  CHECK(std::filesystem::exists(path));
  CHECK(raw_scalar(path, "PRAGMA journal_mode") == "wal");
  CHECK(raw_scalar(path, "PRAGMA user_version") == std::to_string(Ledger::schema_version));
  CHECK(raw_scalar(path, "PRAGMA application_id") == "1802071150");
  // Reopening an existing ledger migrates nothing and keeps its rows.
  BuildId id;
  {
    Ledger ledger(path);
    id = ledger.start_build(start_of("rt", hash_of(1)));
  }
  Ledger again(path);
  REQUIRE(again.build(id));
  CHECK(again.build(id)->status == BuildStatus::building);
}

TEST_CASE("a build round-trips through start_build and finish_build") {
  TempDir tmp;
  Ledger ledger(tmp.file("state.db"));
  auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  BuildId id = ledger.start_build(start_of("debian13-cuda12.4-runtime", hash_of(42)));
  CHECK(id > 0);

  auto running = ledger.build(id);
  REQUIRE(running);
  CHECK(running->status == BuildStatus::building);
  CHECK(running->stage_id == "debian13-cuda12.4-runtime");
  CHECK(running->input_hash == hash_of(42));
  CHECK(running->matrix == "offline");
  CHECK(running->engine == "unix:///var/run/docker.sock");
  CHECK(running->backend == "engine");
  CHECK(running->log_path == "logs/debian13-cuda12.4-runtime.log");
  CHECK(running->started_at >= before);
  CHECK_FALSE(running->finished_at);
  CHECK_FALSE(running->seconds);
  CHECK(running->owner.find(":" + std::to_string(getpid()) + ":") != std::string::npos);
  CHECK_FALSE(ledger.built(hash_of(42)));  // not built yet

  ledger.finish_build(id, built_as("sha256:" + hash_of(1000)));
  auto done = ledger.build(id);
  REQUIRE(done);
  CHECK(done->status == BuildStatus::built);
  CHECK(done->image_id == "sha256:" + hash_of(1000));
  CHECK(done->digest == "sha256:" + hash_of(7));
  REQUIRE(done->finished_at);
  CHECK(*done->finished_at >= done->started_at);
  REQUIRE(done->seconds);
  CHECK(*done->seconds >= 0.0);
  CHECK(done->failed_step.empty());

  SECTION("an explicit duration is kept") {
    BuildId id2 = ledger.start_build(start_of("other", hash_of(43)));
    BuildOutcome o = failed_at("RUN apt-get install -y nvidia-cuda-toolkit");
    o.seconds = 12.5;
    ledger.finish_build(id2, o);
    auto r = ledger.build(id2);
    REQUIRE(r);
    CHECK(r->status == BuildStatus::failed);
    CHECK(r->failed_step == "RUN apt-get install -y nvidia-cuda-toolkit");
    CHECK(r->error == "exit code 100");
    CHECK(r->seconds == Approx(12.5));
  }

  SECTION("a build ends once") {
    CHECK_THROWS_WITH(ledger.finish_build(id, built_as("x")), Catch::Contains("is built, not building"));
    CHECK_THROWS_WITH(ledger.finish_build(id + 100, built_as("x")), Catch::Contains("no build"));
    BuildId id3 = ledger.start_build(start_of("third", hash_of(44)));
    BuildOutcome o;
    o.status = BuildStatus::interrupted;
    CHECK_THROWS_AS(ledger.finish_build(id3, o), LedgerError);
    CHECK(ledger.build(id3)->status == BuildStatus::building);  // the failed call changed nothing
  }
}

TEST_CASE("a pushed build keeps its registry reference; a version 1 ledger is migrated to the latest") {
  TempDir tmp;
  const std::string path = tmp.file("state.db");
  {  // a ledger as kiln wrote it before schema 2: one built attempt, no image_ref column
    Ledger ledger(path);
    ledger.finish_build(ledger.start_build(start_of("old-runtime", hash_of(1))), built_as("sha256:" + hash_of(2)));
  }
  raw_exec(path.c_str(),
           "ALTER TABLE builds DROP COLUMN retry_reason; ALTER TABLE builds DROP COLUMN attempt; "
           "ALTER TABLE builds DROP COLUMN runner; ALTER TABLE builds DROP COLUMN image_ref; PRAGMA user_version = 1;");
  REQUIRE(raw_scalar(path, "PRAGMA user_version") == "1");
  Ledger ledger(path);
  CHECK(raw_scalar(path, "PRAGMA user_version") == std::to_string(Ledger::schema_version));
  auto old = ledger.built(hash_of(1));
  REQUIRE(old);
  CHECK(old->image_ref.empty());
  BuildOutcome out = built_as("sha256:" + hash_of(3));
  out.image_ref = "127.0.0.1:5000/kiln/x@sha256:" + hash_of(4);
  ledger.finish_build(ledger.start_build(start_of("farm-runtime", hash_of(5))), out);
  auto pushed = ledger.built(hash_of(5));
  REQUIRE(pushed);
  CHECK(pushed->image_ref == "127.0.0.1:5000/kiln/x@sha256:" + hash_of(4));
  CHECK(ledger.history("farm-runtime").back().image_ref == pushed->image_ref);
}

TEST_CASE("input hashes are checked and normalized") {
  TempDir tmp;
  Ledger ledger(tmp.file("state.db"));
  std::string upper = hash_of(0xabcdef);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  BuildId id = ledger.start_build(start_of("s", "sha256:" + upper));
  CHECK(ledger.build(id)->input_hash == hash_of(0xabcdef));
  ledger.finish_build(id, built_as("img"));
  CHECK(ledger.built(hash_of(0xabcdef)));
  CHECK(ledger.built("sha256:" + hash_of(0xabcdef)));

  CHECK_THROWS_WITH(ledger.start_build(start_of("s", "abc")), Catch::Contains("64 hex digits"));
  CHECK_THROWS_WITH(ledger.start_build(start_of("s", std::string(64, 'g'))), Catch::Contains("64 hex digits"));
  CHECK_THROWS_WITH(ledger.start_build(start_of("", hash_of(1))), Catch::Contains("stage id"));
  CHECK_THROWS_AS(ledger.built("'; DROP TABLE builds; --"), LedgerError);
}

TEST_CASE("built() finds the latest successful build of an input hash: reruns are incremental") {
  TempDir tmp;
  Ledger ledger(tmp.file("state.db"));
  std::string a = hash_of(1), b = hash_of(2);

  BuildId a1 = ledger.start_build(start_of("rt", a));
  ledger.finish_build(a1, built_as("img-a1"));
  BuildId b1 = ledger.start_build(start_of("rt", b));  // the same stage re-rendered: a new hash
  ledger.finish_build(b1, failed_at("step 3/9"));

  REQUIRE(ledger.built(a));
  CHECK(ledger.built(a)->id == a1);
  CHECK_FALSE(ledger.built(b));               // failed: must be built again
  CHECK_FALSE(ledger.built(hash_of(3)));      // never seen
  CHECK(ledger.latest("rt")->id == b1);       // the stage's latest attempt is the failure
  REQUIRE(ledger.history("rt").size() == 2);
  CHECK(ledger.history("rt")[0].id == a1);

  // A later failed attempt with the same inputs does not hide the good image;
  // a later success replaces it.
  BuildId a2 = ledger.start_build(start_of("rt", a));
  ledger.finish_build(a2, failed_at("push"));
  CHECK(ledger.built(a)->id == a1);
  BuildId a3 = ledger.start_build(start_of("rt-other-name", a));  // same content, another stage id
  ledger.finish_build(a3, built_as("img-a3"));
  CHECK(ledger.built(a)->id == a3);
  CHECK(ledger.built(a)->image_id == "img-a3");

  // A skipped stage is not built.
  BuildId c1 = ledger.start_build(start_of("dev", hash_of(9)));
  BuildOutcome skip;
  skip.status = BuildStatus::skipped;
  skip.error = "parent stage rt failed";
  ledger.finish_build(c1, skip);
  CHECK_FALSE(ledger.built(hash_of(9)));
  CHECK(ledger.latest("dev")->status == BuildStatus::skipped);
  CHECK_FALSE(ledger.latest("nope"));
}

TEST_CASE("combos() reports each combination by its final stage, or the earlier stage that blocks it") {
  TempDir tmp;
  Ledger ledger(tmp.file("state.db"));
  // Two combinations share the runtime stage.
  ledger.record_combo("offline", "cuda12.4-debian13-devel", {"rt13", "dev13"});
  ledger.record_combo("offline", "cuda12.4-debian13-runtime", {"rt13"});
  ledger.record_combo("other", "x", {"rt13"});

  auto cs = ledger.combos("offline");
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].combo_id == "cuda12.4-debian13-devel");  // ordered by id
  CHECK(cs[0].stage_ids == std::vector<std::string>{"rt13", "dev13"});
  CHECK(cs[0].status == BuildStatus::pending);
  CHECK(cs[1].status == BuildStatus::pending);
  CHECK_FALSE(cs[1].final_build);

  BuildId rt = ledger.start_build(start_of("rt13", hash_of(13)));
  cs = ledger.combos("offline");
  CHECK(cs[0].status == BuildStatus::building);
  CHECK(cs[0].blocked_by == "rt13");
  CHECK(cs[1].status == BuildStatus::building);
  CHECK(cs[1].blocked_by.empty());

  ledger.finish_build(rt, failed_at("RUN apt-get update"));
  cs = ledger.combos("offline");
  CHECK(cs[0].status == BuildStatus::failed);
  CHECK(cs[0].blocked_by == "rt13");
  REQUIRE(cs[0].blocking_build);
  CHECK(cs[0].blocking_build->failed_step == "RUN apt-get update");
  CHECK(cs[1].status == BuildStatus::failed);
  REQUIRE(cs[1].final_build);
  CHECK(cs[1].final_build->failed_step == "RUN apt-get update");

  BuildId rt2 = ledger.start_build(start_of("rt13", hash_of(13)));
  ledger.finish_build(rt2, built_as("img-rt"));
  cs = ledger.combos("offline");
  CHECK(cs[0].status == BuildStatus::pending);  // parent built, the devel stage not yet started
  CHECK(cs[0].blocked_by.empty());
  CHECK(cs[1].status == BuildStatus::built);
  CHECK(cs[1].final_build->id == rt2);

  BuildId dev = ledger.start_build(start_of("dev13", hash_of(14)));
  ledger.finish_build(dev, built_as("img-dev"));
  cs = ledger.combos("offline");
  CHECK(cs[0].status == BuildStatus::built);
  CHECK(cs[0].final_build->image_id == "img-dev");

  // Recording a combination again replaces its stages.
  ledger.record_combo("offline", "cuda12.4-debian13-devel", {"rt13", "dev13b"});
  cs = ledger.combos("offline");
  CHECK(cs[0].stage_ids == std::vector<std::string>{"rt13", "dev13b"});
  CHECK(cs[0].status == BuildStatus::pending);

  CHECK(ledger.combos("other").size() == 1);
  CHECK(ledger.combos("unknown").empty());
  CHECK_THROWS_AS(ledger.record_combo("offline", "empty", {}), LedgerError);
  CHECK(ledger.check_integrity().empty());
}

TEST_CASE("verdicts are recorded per image digest; the latest per runner and check wins") {
  TempDir tmp;
  Ledger ledger(tmp.file("state.db"));
  std::string d1 = "sha256:" + hash_of(100), d2 = "sha256:" + hash_of(200);
  ledger.record_verdict({d1, "local", "static", "passed", R"({"cuda":"12.4.131"})"});
  ledger.record_verdict({d1, "h100", "gpu:sm_90", "failed", R"({"check":"gemm","max_error":0.5})"});
  ledger.record_verdict({d1, "h100", "gpu:sm_90", "passed", R"({"gemm_tflops":612.3})"});

  auto v = ledger.verdicts(d1);
  REQUIRE(v.size() == 2);
  CHECK(v[0].runner == "h100");
  CHECK(v[0].check == "gpu:sm_90");
  CHECK(v[0].status == "passed");  // the rerun replaced the failure
  CHECK(v[0].detail_json == R"({"gemm_tflops":612.3})");
  CHECK(v[0].recorded_at > 0);
  CHECK(v[1].check == "static");
  CHECK(v[1].detail_json == R"({"cuda":"12.4.131"})");

  CHECK(ledger.verdicts(d2).empty());  // a rebuilt image has a new digest, hence no verdicts
  CHECK_THROWS_WITH(ledger.record_verdict({d2, "local", "static", "passed", "{not json"}),
                    Catch::Contains("not valid JSON"));
  CHECK_THROWS_AS(ledger.record_verdict({"", "local", "static", "passed", "{}"}), LedgerError);
  CHECK(ledger.verdicts(d2).empty());
}

TEST_CASE("recover() interrupts the builds of processes that died, and only those") {
  TempDir tmp;
  std::string path = tmp.file("state.db");
  Ledger ledger(path);
  BuildId mine = ledger.start_build(start_of("live", hash_of(1)));

  // A child process starts two builds, finishes one, and exits without
  // finishing the other -- as a crash would.
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      Ledger child(path);
      BuildId a = child.start_build(start_of("done", hash_of(2)));
      child.finish_build(a, built_as("img"));
      child.start_build(start_of("crashed", hash_of(3)));
      _exit(0);
    } catch (...) {
      _exit(1);
    }
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(ledger.latest("crashed")->status == BuildStatus::building);

  auto recovered = ledger.recover();
  REQUIRE(recovered.size() == 1);
  CHECK(recovered[0].stage_id == "crashed");
  CHECK(recovered[0].status == BuildStatus::interrupted);
  CHECK(recovered[0].error.find("interrupted") != std::string::npos);
  auto crashed = ledger.latest("crashed");
  CHECK(crashed->status == BuildStatus::interrupted);
  CHECK(crashed->finished_at);
  CHECK(ledger.latest("live")->status == BuildStatus::building);  // this process still runs
  CHECK(ledger.latest("done")->status == BuildStatus::built);
  CHECK_THROWS_WITH(ledger.finish_build(crashed->id, built_as("late")), Catch::Contains("interrupted"));

  // Nothing left to recover; the rerun redoes exactly the interrupted stage.
  CHECK(ledger.recover().empty());
  CHECK_FALSE(ledger.built(hash_of(3)));
  BuildId redo = ledger.start_build(start_of("crashed", hash_of(3)));
  ledger.finish_build(redo, built_as("img3"));
  CHECK(ledger.latest("crashed")->status == BuildStatus::built);
  ledger.finish_build(mine, built_as("img1"));

  SECTION("owners from before a reboot, on other hosts, or unreadable") {
    BuildId rebooted = ledger.start_build(start_of("rebooted", hash_of(4)));
    BuildId remote = ledger.start_build(start_of("remote", hash_of(5)));
    BuildId garbled = ledger.start_build(start_of("garbled", hash_of(6)));
    raw_exec(path, "UPDATE builds SET owner = (SELECT substr(owner, 1, instr(owner, ':')) || "
                   "'00000000-0000-0000-0000-000000000000:1:1') WHERE stage_id = 'rebooted'");
    raw_exec(path, "UPDATE builds SET owner = 'another-host:00000000-0000-0000-0000-000000000000:1:1' "
                   "WHERE stage_id = 'remote'");
    raw_exec(path, "UPDATE builds SET owner = 'garbage' WHERE stage_id = 'garbled'");
    auto r = ledger.recover();
    REQUIRE(r.size() == 2);
    CHECK(r[0].id == rebooted);
    CHECK(r[1].id == garbled);
    CHECK(ledger.build(remote)->status == BuildStatus::building);
    auto all = ledger.recover(/*include_other_hosts=*/true);
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == remote);
  }
}

TEST_CASE("a ledger is movable, not copyable") {
  static_assert(!std::is_copy_constructible_v<Ledger>);
  static_assert(!std::is_copy_assignable_v<Ledger>);
  static_assert(std::is_nothrow_move_constructible_v<Ledger>);
  TempDir tmp;
  Ledger a(tmp.file("state.db"));
  BuildId id = a.start_build(start_of("s", hash_of(1)));
  Ledger b = std::move(a);
  CHECK(b.build(id));
  CHECK_THROWS_WITH(a.build(id), Catch::Contains("moved-from"));  // NOLINT(bugprone-use-after-move)
  Ledger c(tmp.file("other.db"));
  c = std::move(b);
  CHECK(c.build(id));
}

TEST_CASE("files that are not a usable ledger give a clear error, never a crash") {
  TempDir tmp;

  SECTION("garbage") {
    std::string path = tmp.file("state.db");
    std::string garbage;
    for (int i = 0; i < 8192; ++i) garbage += static_cast<char>((i * 7919 + 13) % 251);
    { std::ofstream(path, std::ios::binary) << garbage; }
    CHECK_THROWS_WITH(Ledger(path), Catch::Contains(path) && Catch::Contains("not a SQLite database"));
    CHECK(slurp(path) == garbage);  // left as it was
  }

  SECTION("a text file") {
    std::string path = tmp.file("notes.txt");
    { std::ofstream(path) << "this is not a database, it is a note to self that is longer than one hundred "
                             "bytes so that SQLite reads a full header from it and rejects it\n"; }
    CHECK_THROWS_AS(Ledger(path), LedgerError);
  }

  SECTION("a ledger from a newer kiln") {
    std::string path = tmp.file("state.db");
    raw_exec(path, "CREATE TABLE builds (id INTEGER PRIMARY KEY, future TEXT); "
                   "PRAGMA application_id = 1802071150; PRAGMA user_version = 99;");
    CHECK_THROWS_WITH(Ledger(path), Catch::Contains("schema version 99") && Catch::Contains("newer") &&
                                        Catch::Contains("upgrade kiln"));
    CHECK(raw_scalar(path, "PRAGMA user_version") == "99");        // untouched
    CHECK(raw_scalar(path, "PRAGMA journal_mode") == "delete");    // not even switched to WAL
  }

  SECTION("another program's SQLite database") {
    std::string path = tmp.file("other.db");
    raw_exec(path, "CREATE TABLE songs (title TEXT)");
    CHECK_THROWS_WITH(Ledger(path), Catch::Contains("not a kiln state ledger"));
    raw_exec(path, "PRAGMA application_id = 42");
    CHECK_THROWS_WITH(Ledger(path), Catch::Contains("application_id 42"));
  }

  SECTION("a directory") {
    CHECK_THROWS_WITH(Ledger(tmp.path.string()), Catch::Contains("is a directory"));
  }

  SECTION("an empty file is a new ledger") {
    std::string path = tmp.file("empty.db");
    { std::ofstream(path) << ""; }
    Ledger ledger(path);
    CHECK(ledger.check_integrity().empty());
  }

  SECTION("damaged pages inside a valid header") {
    std::string path = tmp.file("state.db");
    {
      Ledger ledger(path);
      for (unsigned long i = 0; i < 400; ++i) {
        BuildId id = ledger.start_build(start_of("stage-" + std::to_string(i % 37), hash_of(i)));
        ledger.finish_build(id, built_as("image-" + std::to_string(i) + std::string(100, 'x')));
      }
    }  // closed: checkpointed into the main file
    auto size = std::filesystem::file_size(path);
    REQUIRE(size > 8 * 4096);
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      for (std::uintmax_t off = 4096 * 2; off + 512 < size; off += 4096 * 3) {
        f.seekp(static_cast<std::streamoff>(off));
        for (int i = 0; i < 512; ++i) f.put(static_cast<char>(0xA5 ^ i));
      }
    }
    bool reported = false;
    try {
      Ledger ledger(path);
      reported = !ledger.check_integrity().empty();
      for (unsigned long i = 0; i < 400; ++i) (void)ledger.built(hash_of(i));
      (void)ledger.history("stage-3");
      (void)ledger.combos("offline");
    } catch (const LedgerError& e) {
      reported = true;
      INFO(e.what());
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    CHECK(reported);
  }
}

TEST_CASE("a writer waits for another writer's lock up to the busy timeout") {
  TempDir tmp;
  std::string path = tmp.file("state.db");
  { Ledger init(path); }

  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  SECTION("and gives up with a clear error after it") {
    Ledger ledger(path, LedgerOptions{200});
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(ledger.start_build(start_of("s", hash_of(1))),
                      Catch::Contains("busy timeout of 200 ms"));
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(150));
    CHECK(ledger.history("s").empty());  // reads still work beside a writer (WAL)
    sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr);
    CHECK(ledger.start_build(start_of("s", hash_of(1))) > 0);
  }

  SECTION("and goes on once the lock is released") {
    Ledger ledger(path, LedgerOptions{10000});
    std::thread release([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr);
    });
    auto t0 = std::chrono::steady_clock::now();
    BuildId id = ledger.start_build(start_of("s", hash_of(1)));
    auto waited = std::chrono::steady_clock::now() - t0;
    release.join();
    CHECK(id > 0);
    CHECK(waited >= std::chrono::milliseconds(250));
  }
  sqlite3_close(holder);
}
