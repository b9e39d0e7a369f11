// The scheduler's pure decisions (src/build/placement.h): which engine a
// stage may go to (platform, labels, backend, capacity, stickiness), what a
// stage built on a parent does, and the retry bound.
#include <catch2/catch.hpp>

#include "build/placement.h"

using namespace kiln::build::detail;

namespace {

Slot engine(std::string name, std::string platform = "linux/amd64", std::vector<std::string> labels = {}, int jobs = 0) {
  Slot s;
  s.name = std::move(name);
  s.platforms = {std::move(platform)};
  s.labels = std::move(labels);
  s.jobs = jobs;
  return s;
}

Need need(std::string platform = "linux/amd64", std::vector<std::string> labels = {}) {
  return Need{std::move(platform), std::move(labels)};
}

}  // namespace

TEST_CASE("platforms: the plan's and the engine's words meet as OCI platforms", "[build][placement]") {
  CHECK(oci_platform("x86_64") == "linux/amd64");
  CHECK(oci_platform("aarch64") == "linux/arm64");
  CHECK(oci_platform("linux/arm64") == "linux/arm64");
  CHECK(engine_platform("linux", "amd64") == "linux/amd64");
  CHECK(engine_platform("linux", "arm64") == "linux/arm64");
  CHECK(engine_platform("linux", "x86_64") == "linux/amd64");  // Podman on some hosts
  CHECK(engine_platform("", "aarch64") == "linux/arm64");
}

TEST_CASE("matching: platform, every label, backend; down engines never match", "[build][placement]") {
  Slot a = engine("a", "linux/amd64", {"cuda", "big-disk"});
  CHECK(matches(a, need()));
  CHECK(matches(a, need("linux/amd64", {"cuda"})));
  CHECK(matches(a, need("linux/amd64", {"big-disk", "cuda"})));
  CHECK_FALSE(matches(a, need("linux/arm64")));
  CHECK(why_not(a, need("linux/arm64")) == "platform linux/amd64");
  CHECK(why_not(a, need("linux/amd64", {"cuda", "gpu"})) == "no label gpu");

  Slot emulating = engine("q");
  emulating.platforms = {"linux/amd64", "linux/arm64"};  // qemu's binfmt handlers
  CHECK(matches(emulating, need("linux/arm64")));

  Need secret = need();
  secret.secrets = true;
  CHECK_FALSE(matches(a, secret));
  a.buildx = true;
  CHECK(matches(a, secret));
  Need mounts = need();
  mounts.run_mounts = true;
  Slot podman = engine("p");
  CHECK_FALSE(matches(podman, mounts));
  podman.podman = true;
  CHECK(matches(podman, mounts));

  a.down = true;
  a.down_reason = "connection refused";
  CHECK_FALSE(matches(a, need()));
  CHECK(why_not(a, need()) == "down: connection refused");
}

TEST_CASE("merge: a root's need with its dependants' labels", "[build][placement]") {
  Need m = merge(need("linux/arm64", {"cuda"}), need("linux/arm64", {"big-disk", "cuda"}));
  CHECK(m.platform == "linux/arm64");
  CHECK(m.labels == std::vector<std::string>{"cuda", "big-disk"});
  CHECK(describe(m) == "linux/arm64 with labels cuda, big-disk");
}

TEST_CASE("a root goes to a matching engine with a free slot, the least busy first", "[build][placement]") {
  std::vector<Slot> e{engine("a"), engine("b"), engine("arm", "linux/arm64")};
  Choice c = choose_root(e, need(), need(), -1);
  CHECK(c.kind == Choice::start);
  CHECK(c.engine == 0);
  e[0].running = 1;
  CHECK(choose_root(e, need(), need(), -1).engine == 1);
  e[1].running = 1;
  e[1].started = 5;
  CHECK(choose_root(e, need(), need(), -1).engine == 0);  // same load: fewer started
  CHECK(choose_root(e, need("linux/arm64"), need("linux/arm64"), -1).engine == 2);
}

TEST_CASE("capacity: an engine's jobs caps it; a full match waits, never spills to a non-match", "[build][placement]") {
  std::vector<Slot> e{engine("a", "linux/amd64", {}, 1), engine("arm", "linux/arm64", {}, 4)};
  e[0].running = 1;
  CHECK(choose_root(e, need(), need(), -1).kind == Choice::wait);
  e[0].running = 0;
  CHECK(choose_root(e, need(), need(), -1).kind == Choice::start);
  Slot unlimited = engine("u");
  unlimited.running = 100;
  CHECK(unlimited.free());  // jobs 0: only -j limits it
}

TEST_CASE("no matching engine: the stage fails with every engine's reason", "[build][placement]") {
  std::vector<Slot> e{engine("a", "linux/amd64", {"cuda"}), engine("b", "linux/amd64")};
  e[1].down = true;
  e[1].down_reason = "connection reset";
  Choice c = choose_root(e, need("linux/arm64", {"cuda"}), need("linux/arm64", {"cuda"}), -1);
  CHECK(c.kind == Choice::none);
  CHECK(c.why ==
        "no engine can build it (needs linux/arm64 with label cuda): engine 'a': platform linux/amd64; "
        "engine 'b': down: connection reset");
}

TEST_CASE("a root prefers an engine its dependants can use too", "[build][placement]") {
  std::vector<Slot> e{engine("small", "linux/amd64", {"cuda"}), engine("big", "linux/amd64", {"cuda", "big-disk"})};
  Need own = need("linux/amd64", {"cuda"});
  Need subtree = need("linux/amd64", {"cuda", "big-disk"});
  CHECK(choose_root(e, own, subtree, -1).engine == 1);
  // none can hold both: the root still builds where it can
  e[1].down = true;
  CHECK(choose_root(e, own, subtree, -1).engine == 0);
}

TEST_CASE("sticky: a root goes back to the engine of its last build, waiting for it when busy", "[build][placement]") {
  std::vector<Slot> e{engine("a", "linux/amd64", {}, 1), engine("b", "linux/amd64", {}, 1)};
  CHECK(choose_root(e, need(), need(), 1).engine == 1);
  e[1].running = 1;
  CHECK(choose_root(e, need(), need(), 1).kind == Choice::wait);
  e[1].down = true;  // gone: any other match
  CHECK(choose_root(e, need(), need(), 1).engine == 0);
  CHECK(choose_root(e, need("linux/arm64"), need("linux/arm64"), 0).kind == Choice::none);  // sticky never overrides matching
}

TEST_CASE("a child builds on its parent's engine; a down parent engine means rebuilding the parent", "[build][placement]") {
  std::vector<Slot> e{engine("a", "linux/amd64", {}, 1), engine("b", "linux/amd64", {"big-disk"})};
  CHECK(choose_child(e, need(), 0).kind == Choice::start);
  CHECK(choose_child(e, need(), 0).engine == 0);
  e[0].running = 1;
  CHECK(choose_child(e, need(), 0).kind == Choice::wait);  // never elsewhere: the image is on a
  Choice c = choose_child(e, need("linux/amd64", {"big-disk"}), 0);
  CHECK(c.kind == Choice::none);
  CHECK_THAT(c.why, Catch::Contains("on engine 'a' (no label big-disk)"));
  e[0].down = true;
  CHECK(choose_child(e, need(), 0).kind == Choice::rebuild_parent);
}

TEST_CASE("retries are bounded", "[build][placement]") {
  CHECK(may_retry(1, 2));
  CHECK(may_retry(2, 2));
  CHECK_FALSE(may_retry(3, 2));
  CHECK_FALSE(may_retry(1, 0));
}
