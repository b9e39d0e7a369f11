// Where a stage may build: the scheduler's decisions as pure functions over
// plain data (no threads, no engines), so they are tested alone
// (tests/build/test_placement.cpp). docs/build.md, "Several engines", says
// why each rule is what it is.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace kiln::build::detail {

// A combination's platform as the plan writes it ("x86_64", "aarch64") as
// the OCI platform engines and runners declare ("linux/amd64",
// "linux/arm64"); an OCI platform is returned as given.
std::string oci_platform(std::string_view combo_platform);
// An engine's GET /version Os and Arch ("linux", "amd64") as "linux/amd64";
// Docker's Arch is Go's GOARCH, so "x86_64"/"aarch64" (Podman on some
// hosts) are mapped to it.
std::string engine_platform(std::string_view os, std::string_view arch);

// What a stage asks of its engine.
struct Need {
  std::string platform;             // "linux/amd64"
  std::vector<std::string> labels;  // every one must be on the engine
  bool secrets = false;             // build secrets: backend buildx only
  bool run_mounts = false;          // RUN --mount: buildx, or Podman's engine
};
// Both needs at once (a root and the stages built on it share its engine).
Need merge(Need a, const Need& b);
// "linux/arm64 with labels cuda, big-disk".
std::string describe(const Need& n);

// What the scheduler knows of one engine during a run.
struct Slot {
  std::string name;
  std::vector<std::string> platforms;  // declared, or the engine's own
  std::vector<std::string> labels;
  bool buildx = false;  // backend = "buildx"
  bool podman = false;  // Podman's engine (reads RUN --mount)
  int jobs = 0;         // 0: no cap of its own (only -j)
  int running = 0;
  int started = 0;      // stages started here so far (spreads ties)
  bool down = false;    // stopped answering: not used again this run
  std::string down_reason;

  bool free() const { return jobs <= 0 || running < jobs; }
};

bool matches(const Slot& e, const Need& n);
// Why `e` cannot build `n` ("" when it can): "platform linux/amd64",
// "no label big-disk", "down: ...".
std::string why_not(const Slot& e, const Need& n);
// The whole refusal, for a stage's error: "no engine can build it (needs
// linux/arm64 with labels cuda): engine 'a': platform linux/amd64; ...".
std::string no_engine_message(const std::vector<Slot>& engines, const Need& n);

// The answer for one ready stage.
struct Choice {
  enum Kind {
    start,           // start it now on `engine`
    wait,            // a matching engine is busy: leave it queued
    none,            // no engine that is up can build it: fail it (`why`)
    rebuild_parent,  // its parent's image is on an engine that is down
  } kind = none;
  int engine = -1;
  std::string why;
};

// A stage with no parent: on an up engine that matches `subtree` (its own
// need and its dependants', so they can follow it) or, when none does, its
// own; the engine of its last build (`sticky`, -1 none) when that is one of
// them, so a rerun finds its image there; else the matching engine with a
// free slot that runs the fewest builds (then has started the fewest, then
// comes first).
Choice choose_root(const std::vector<Slot>& engines, const Need& own, const Need& subtree, int sticky);
// A stage built FROM its parent's image goes where that image is: the
// parent's engine, when it is up and matches; never moved to another engine
// behind its back (a multi-GB image is not worth carrying over; the parent
// is rebuilt where it is needed instead: rebuild_parent).
Choice choose_child(const std::vector<Slot>& engines, const Need& own, int parent_engine);

// A stage whose engine stopped answering may run again while it has made
// no more than `retries` + 1 attempts.
inline bool may_retry(int attempts, int retries) { return attempts <= retries; }

}  // namespace kiln::build::detail
