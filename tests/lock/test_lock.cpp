// MATRIX.lock (src/lock), the drift comparison (src/drift) and the plan's
// end-of-life notes (recipes/catalog/eol.toml).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
#include "drift/drift.h"
#include "lock/lock.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "util/diag.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const catalog::Catalog& cat() {
  static catalog::Catalog c = catalog::Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  return c;
}

const std::string kImage = "sha256:" + std::string(64, 'a');
const std::string kDigest = "sha256:" + std::string(64, 'b');

lock::Lock sample() {
  lock::Lock l;
  l.matrix = "offline";
  l.bases = {{"kiln/debian:13", kImage, "", "engine"}, {"kiln/debian:12", kImage, kDigest, "engine"}};
  l.snapshots = {{"debian13", "debian", "20261201T000000Z", "https://snapshot.debian.org/archive/debian/20261201T000000Z/"}};
  return l;
}

sbom::Package deb(std::string name, std::string version) {
  sbom::Package p;
  p.name = std::move(name);
  p.version = std::move(version);
  return p;
}

}  // namespace

TEST_CASE("lock: written sorted with its header, read back the same", "[lock]") {
  const std::string text = lock::to_toml(sample(), "matrices/offline.toml");
  CHECK(text.starts_with("# MATRIX.lock of offline.toml"));
  CHECK(text.find("kiln/debian:12") < text.find("kiln/debian:13"));  // sorted by reference
  lock::Lock back = lock::parse(text, "offline.lock");
  CHECK(lock::to_toml(back, "matrices/offline.toml") == text);
  REQUIRE(back.base("kiln/debian:12"));
  CHECK(back.base("kiln/debian:12")->pinned() == "kiln/debian@" + kDigest);  // registry digest: FROM by digest
  CHECK(back.base("kiln/debian:13")->pinned() == "kiln/debian:13");              // engine id only: by name, id checked
  CHECK(lock::lock_path("matrices/offline.toml") == "matrices/offline.lock");
}

TEST_CASE("lock: a malformed lock is an error at file:line:col", "[lock]") {
  const std::string bad = "version = 1\nmatrix = \"m\"\n[[base]]\nreference = \"x\"\nimage_id = \"sha256:12\"\nsource = \"engine\"\n";
  try {
    lock::parse(bad, "m.lock");
    FAIL("accepted");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("m.lock:5") != std::string::npos);
    CHECK(std::string(e.what()).find("not a sha256 digest") != std::string::npos);
  }
  CHECK_THROWS_AS(lock::parse("version = 1\nmatrix = \"m\"\nextra = 1\n", "m.lock"), InputError);
  CHECK_THROWS_AS(lock::parse("version = 1\nmatrix = \"m\"\n[[snapshot]]\nos = \"d\"\nfamily = \"debian\"\ntimestamp = \"2026\"\nurl = \"https://x/\"\n",
                              "m.lock"),
                  InputError);
}

TEST_CASE("lock: diff names what moved", "[lock]") {
  lock::Lock a = sample(), b = sample();
  b.bases[0].image_id = "sha256:" + std::string(64, 'c');
  b.snapshots[0].url = "https://snapshot.debian.org/archive/debian/20261202T000000Z/";
  b.bases.pop_back();
  auto d = lock::diff(a, b);
  REQUIRE(d.size() == 3);
  CHECK(d[0].starts_with("- base kiln/debian:12"));
  CHECK(d[1].starts_with("~ base kiln/debian:13: " + kImage + " -> sha256:ccc"));
  CHECK(d[2] == "~ snapshot debian13: https://snapshot.debian.org/archive/debian/20261201T000000Z/ -> "
                "https://snapshot.debian.org/archive/debian/20261202T000000Z/");
  CHECK(lock::diff(a, a).empty());
}

TEST_CASE("lock: snapshot URLs in Debian's and Ubuntu's forms", "[lock]") {
  lock::Services s;
  CHECK(lock::snapshot_url(s, "debian", "20261201T000000Z") == "https://snapshot.debian.org/archive/debian/20261201T000000Z/");
  CHECK(lock::snapshot_url(s, "ubuntu", "20261201T000000Z") == "https://snapshot.ubuntu.com/ubuntu/20261201T000000Z/");
  setenv("KILN_NOW", "2026-12-01T08:09:10Z", 1);
  CHECK(lock::snapshot_timestamp() == "20261201T080910Z");
  setenv("KILN_NOW", "yesterday", 1);
  CHECK_THROWS_AS(lock::snapshot_timestamp(), InputError);
  unsetenv("KILN_NOW");
}

TEST_CASE("lock: made from a plan, applied to it", "[lock]") {
  plan::Plan p = plan::make_plan(matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/offline.toml"), cat());
  int asked = 0;
  lock::Resolver resolve = [&](const std::string& ref, std::string& why) -> std::optional<lock::BasePin> {
    ++asked;
    if (ref == "kiln/debian:13") {
      why = "not on the engine";
      return std::nullopt;
    }
    return lock::BasePin{ref, kImage, "", "engine"};
  };
  try {
    lock::make_lock(p, cat(), resolve, {}, "20261201T000000Z");
    FAIL("an unresolvable base was accepted");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("kiln/debian:13") != std::string::npos);
  }
  resolve = [](const std::string& ref, std::string&) -> std::optional<lock::BasePin> {
    return lock::BasePin{ref, kImage, ref == "kiln/debian:12" ? kDigest : "", "engine"};
  };
  lock::Lock l = lock::make_lock(p, cat(), resolve, {}, "20261201T000000Z");
  CHECK(l.bases.size() == 2);
  REQUIRE(l.snapshots.size() == 2);
  CHECK(l.snapshot("debian12")->url == "https://snapshot.debian.org/archive/debian/20261201T000000Z/");

  const fs::path file = fs::temp_directory_path() / ("kiln-test-lock-" + std::to_string(getpid()) + ".lock");
  std::ofstream(file) << lock::to_toml(l, "offline.toml");
  lock::apply(l, file.string(), p);
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid || c.base.empty()) continue;
    CHECK(!c.apt_snapshot.empty());
    CHECK(c.lock_entry.find("snapshot") != std::string::npos);
    if (c.versions.os == "debian12") CHECK(c.base == "kiln/debian@" + kDigest);
  }
  CHECK(p.lock_sha256.size() == 64);
  lock::Lock partial = l;
  partial.bases.pop_back();
  plan::Plan q = plan::make_plan(matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/offline.toml"), cat());
  CHECK_THROWS_AS(lock::apply(partial, file.string(), q), InputError);  // a base the lock lacks: lock --update
  fs::remove(file);
}

TEST_CASE("drift: package changes by kind and name; verdict and cause", "[drift]") {
  sbom::Inventory a, b;
  a.packages = {deb("libc6", "2.36-9"), deb("probe", "1.0-1"), deb("gone", "1")};
  b.packages = {deb("libc6", "2.36-9"), deb("probe", "2.0-1"), deb("new", "3")};
  auto changes = drift::compare_packages(a, b);
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].str() == "- deb gone 1");
  CHECK(changes[1].str() == "+ deb new 3");
  CHECK(changes[2].str() == "~ deb probe 1.0-1 -> 2.0-1");
  CHECK(drift::compare_packages(a, a).empty());

  drift::Comparison c;
  c.before = {"sha256:1", "hash", "t1"};
  c.after = {"sha256:2", "hash", "t2"};
  c.layers = drift::compare_layers({"l1", "l2"}, {"l1", "l3"});
  CHECK(c.layers.common_prefix == 1);
  CHECK(c.verdict() == "same-packages");
  CHECK(c.cause().find("same inputs") != std::string::npos);
  c.packages = changes;
  CHECK(c.verdict() == "drifted");
  CHECK(c.cause().find("same inputs") != std::string::npos);
  CHECK(c.cause().find("kiln lock") != std::string::npos);
  c.layers = drift::compare_layers({"l1"}, {"l9"});
  CHECK(c.cause().find("base image") != std::string::npos);
  c.before.image_id = c.after.image_id;
  CHECK(c.verdict() == "identical");
  c.error = "gone";
  CHECK(c.verdict() == "unknown");
}

namespace {

// A one-combination matrix on an nvidia/cuda base.
matrix::Matrix nvidia_matrix(const std::string& cuda, const std::string& os) {
  return matrix::parse_matrix_text(fmt::format("name = \"n\"\ntargets = [\"T4\"]\n[axes]\ncuda = [\"{}\"]\nos = [\"{}\"]\n"
                                               "flavor = [\"runtime\"]\n[tags]\ntemplates = [\"{{cuda}}-{{os}}-{{flavor}}\"]\n",
                                               cuda, os),
                                   "n.toml");
}

// The plan's notes for kind/name across its valid combinations.
std::vector<plan::EolNote> notes(const plan::Plan& p, std::string_view kind, std::string_view name) {
  std::vector<plan::EolNote> out;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid)
      for (const auto& n : c.end_of_life)
        if (n.kind == kind && n.name == name) out.push_back(n);
  return out;
}

}  // namespace

// "Today" is make_plan's argument (the CLI's KILN_TODAY), never the clock.
TEST_CASE("end of life: sourced dates in the catalog", "[eol]") {
  // Debian's own data (distro-info-data): bookworm's regular security
  // support ends 2026-07-11, LTS 2028-06-30; jammy's standard support
  // 2027-06-01. Confirmed, with their sources.
  const auto* deb12 = cat().find_end_of_life("os", "debian12");
  REQUIRE(deb12);
  CHECK(deb12->eol == "2026-07-11");
  CHECK(deb12->removal == "2028-06-30");
  CHECK(!deb12->provenance.inferred);
  CHECK(std::find(deb12->provenance.sources.begin(), deb12->provenance.sources.end(), "DISTRO-INFO") !=
        deb12->provenance.sources.end());
  const auto* jammy = cat().find_end_of_life("os", "ubuntu22.04");
  REQUIRE(jammy);
  CHECK(jammy->eol == "2027-06-01");
  CHECK(jammy->removal == "2032-04-21");
  CHECK(!jammy->provenance.inferred);
  // CUDA 11.x: derived from NVIDIA's two-major-versions rule (11 EOL when
  // 13.0.0 shipped, 2025-08-09), so inferred, and the note says derived.
  const auto* cu118 = cat().find_end_of_life("cuda", "11.8");
  REQUIRE(cu118);
  CHECK(cu118->eol == "2025-08-09");
  CHECK(cu118->provenance.inferred);
  CHECK(cu118->provenance.note.find("derived") != std::string::npos);
  // NVIDIA states no EOL for 12.1.1 (its chart keeps it Active): no entry,
  // not the 12.1.0 row's date.
  CHECK(cat().find_end_of_life("cuda", "12.1") == nullptr);
}

TEST_CASE("end of life: past and near dates are noted per combination, with the catalog's words", "[eol]") {
  const auto m = matrix::parse_matrix_file(std::string(KILN_SOURCE_DIR) + "/matrices/offline.toml");
  plan::Plan before = plan::make_plan(m, cat(), {}, "2026-01-01");
  for (const auto& c : before.combos) CHECK(c.end_of_life.empty());
  // Within 90 days: 71 days before bookworm's 2026-07-11.
  auto near = notes(plan::make_plan(m, cat(), {}, "2026-05-01"), "os", "debian12");
  REQUIRE(!near.empty());
  for (const auto& n : near) {
    CHECK(n.status == "soon");
    CHECK(n.days == 71);
    CHECK(n.date == "2026-07-11");
    CHECK(!n.inferred);
    CHECK(n.text.find("reaches end of life on 2026-07-11 (in 71 days)") != std::string::npos);
    CHECK(n.text.find("extended support ends on 2028-06-30") != std::string::npos);
  }
  // Past: 143 days after it; Debian's packaged CUDA has no nvidia/cuda note,
  // and trixie (2028-08-09) none yet.
  plan::Plan past = plan::make_plan(m, cat(), {}, "2026-12-01");
  auto gone = notes(past, "os", "debian12");
  REQUIRE(!gone.empty());
  for (const auto& n : gone) {
    CHECK(n.status == "past");
    CHECK(n.days == 143);
    CHECK(n.text.find("past end of life since 2026-07-11 (143 days)") != std::string::npos);
  }
  for (const auto& c : past.combos) {
    if (c.status != plan::Status::valid) continue;
    if (c.versions.os == "debian13") CHECK(c.end_of_life.empty());
    for (const auto& n : c.end_of_life) CHECK(n.kind == "os");
  }
  // nvidia/cuda tags: only where the base is NVIDIA's; 11.8's date is
  // derived, so the note says "inferred"; its tags' removal has passed.
  plan::Plan nv = plan::make_plan(nvidia_matrix("11.8", "ubuntu22.04"), cat(), {}, "2026-12-01");
  auto cu = notes(nv, "cuda", "11.8");
  REQUIRE(cu.size() == 1);
  CHECK(cu[0].status == "past");
  CHECK(cu[0].days == 479);
  CHECK(cu[0].inferred);
  CHECK(cu[0].text.find("deleted from Docker Hub and NGC since 2025-09-09") != std::string::npos);
  CHECK(cu[0].text.find("(date inferred)") != std::string::npos);
  CHECK(notes(nv, "os", "ubuntu22.04").empty());  // 182 days to 2027-06-01: not yet
  // Jammy within 90 days of its sourced date, on a 12.1 base NVIDIA has not
  // dated: the OS note only.
  plan::Plan jam = plan::make_plan(nvidia_matrix("12.1", "ubuntu22.04"), cat(), {}, "2027-04-01");
  auto os = notes(jam, "os", "ubuntu22.04");
  REQUIRE(os.size() == 1);
  CHECK(os[0].status == "soon");
  CHECK(os[0].days == 61);
  CHECK(!os[0].inferred);
  CHECK(os[0].text.find("2027-06-01") != std::string::npos);
  CHECK(os[0].text.find("2032-04-21") != std::string::npos);
  CHECK(notes(jam, "cuda", "12.1").empty());
  const auto* e = cat().find_end_of_life("os", "ubuntu24.04");
  REQUIRE(e);
  CHECK(!e->provenance.sources.empty());
}
