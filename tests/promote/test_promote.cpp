// `kiln promote` against the real engine and a real registry, with faults a
// real registry and a real neighbour produce: a name re-pointed (`docker
// tag`) while the engine pushes, one lying 404 on the conflict check, a
// writer racing a tag, 500s and connection resets on the engine's push and
// on kiln's own calls. Each case runs the kiln binary and checks its exit
// code, its JSON report and what the registry holds afterwards.
#include "engine/support.h"
#include "registry/proxy.h"
#include "skip.h"

#include "engine/engine.h"
#include "registry/registry.h"
#include "state/ledger.h"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

using kiln::test::Canned;
using kiln::test::HookResult;
using kiln::test::Proxy;
using kiln::test::SeenRequest;
using nlohmann::json;
namespace fs = std::filesystem;
namespace engine = kiln::engine;
namespace registry = kiln::registry;

namespace {

const std::string kCombo = "cuda12.4-debian13-devel";

std::string sh(const std::string& cmd) {
  std::array<char, 256> buf;
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return out;
  while (fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One registry for this test process (repositories differ per case).
struct Registry {
  std::string name = "promote-" + std::to_string(getpid());
  std::string addr;
  Registry() { addr = sh(std::string(KILN_SOURCE_DIR) + "/tests/registry/registry.sh start " + name + " 2>&1"); }
  ~Registry() { sh(std::string(KILN_SOURCE_DIR) + "/tests/registry/registry.sh stop " + name + " 2>&1"); }
};
Registry& shared_registry() {
  static Registry r;
  return r;
}

// An image holding one file with `content`: distinct content, distinct id.
std::string tiny_image(engine::Client& eng, const std::string& repo, const std::string& tag, const std::string& content) {
  std::string tar(64 << 10, '\0');
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, tar.data(), tar.size(), &used);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "id");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
  archive_write_header(a, e);
  archive_write_data(a, content.data(), content.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  tar.resize(used);
  size_t pos = 0;
  return eng.import_image(
      [&](char* buf, size_t n) {
        size_t take = std::min(n, tar.size() - pos);
        std::copy_n(tar.data() + pos, take, buf);
        pos += take;
        return take;
      },
      repo, tag);
}

std::string unique_word() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(getpid()) + "-" + std::to_string(rng());
}

bool is_engine(const SeenRequest& r) { return r.header("user-agent").find("docker/") != std::string::npos; }

struct Run {
  int exit_code = -1;
  json report;
  std::string err;
};

// One case: a matrix with one combination whose two release tags live in
// its own repository behind a fresh proxy; a verified image (its static
// verdict in the ledger, as `kiln verify` records it) and another image.
struct Case {
  std::string sock;
  engine::Client eng;
  Registry& reg = shared_registry();
  Proxy proxy{reg.addr};
  fs::path dir;
  std::string matrix_name, repo, verified_id, other_id;

  explicit Case(const std::string& name, const std::string& static_status = "passed")
      : sock(kiln::test::docker_socket()), eng(engine::Endpoint{sock}),
        dir(fs::temp_directory_path() / ("kiln-promote-" + name + "-" + std::to_string(getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    matrix_name = "promote-" + name + "-" + std::to_string(getpid());
    repo = "kiln-test/promote-" + name;
    std::ofstream(dir / "matrix.toml") << "name = \"" << matrix_name << "\"\n"
                                       << "targets = [\"T4\"]\n[axes]\ncuda = [\"12.4\"]\nos = [\"debian13\"]\n"
                                       << "flavor = [\"devel\"]\n[policy]\nverify = [\"static\"]\n"
                                       << "[registry]\nurl = \"" << proxy.addr() << "\"\nrepository = \"" << repo
                                       << "\"\ninsecure = true\n[tags]\ntemplates = [\"cuda{cuda}-{os}-{flavor}\", "
                                          "\"{flavor}-latest\"]\n[[base]]\nos = \"debian13\"\nimage = \"kiln/debian:13\"\n"
                                       << "[runners.local]\nbackend = \"engine\"\ngpu = \"none\"\n";
    verified_id = tiny_image(eng, "kiln.local/" + matrix_name, kCombo, "verified " + unique_word());
    other_id = tiny_image(eng, "kiln-test/promote-other", name + "-" + std::to_string(getpid()), "other " + unique_word());
    kiln::state::Ledger ledger((dir / "state" / "state.db").string());
    ledger.record_verdict({verified_id, "local", "static", static_status,
                           static_status == "passed" ? "{}" : R"({"problems":["the devel image has no nvcc"]})", 0});
  }
  ~Case() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    for (const auto& id : {verified_id, other_id}) {
      try {  // every name this case gave them goes too
        eng.remove_image(id, true);
      } catch (const std::exception&) {
      }
    }
  }

  std::string tag1() const { return "cuda12.4-debian13-devel"; }
  std::string tag2() const { return "devel-latest"; }

  Run promote(const std::string& extra = "") {
    std::string cmd = "DOCKER_HOST=unix://" + sock + " " + std::getenv("KILN_BIN") + " --data-dir " + KILN_SOURCE_DIR +
                      " promote " + (dir / "matrix.toml").string() + " --state-dir " + (dir / "state").string() +
                      " --format json " + extra + " >" + (dir / "out.json").string() + " 2>" + (dir / "err.txt").string();
    int st = std::system(cmd.c_str());
    Run r;
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.report = json::parse(slurp(dir / "out.json"), nullptr, false);
    r.err = slurp(dir / "err.txt");
    INFO("kiln stderr: " << r.err << "\nkiln stdout: " << slurp(dir / "out.json"));
    REQUIRE(r.report.is_object());
    REQUIRE(r.report["combos"].size() == 1);
    return r;
  }

  // The registry itself, not through the proxy.
  registry::Client direct() {
    registry::Options o;
    o.host = reg.addr;
    o.insecure = true;
    o.credentials = registry::Credentials{};
    return registry::Client(o);
  }
  std::vector<std::string> release_tags() {
    std::vector<std::string> out;
    try {
      for (const auto& t : direct().tags(repo))
        if (t == tag1() || t == tag2()) out.push_back(t);
    } catch (const registry::NotFound&) {  // no manifest ever reached the repository
    }
    return out;
  }
  // The image id (config digest) a tag names in the registry; "" when absent.
  std::string image_at(const std::string& tag) {
    auto c = direct();
    auto d = c.head_manifest(repo, tag);
    if (!d) return "";
    auto j = json::parse(c.get_manifest(repo, d->digest).bytes);
    return j["config"]["digest"];
  }
  // Plants `tag` naming the other image, pushed by the engine straight to the registry.
  std::string plant_other(const std::string& tag) {
    eng.tag_image(other_id, reg.addr + "/" + repo, tag);
    engine::PushResult p = eng.push_image(reg.addr + "/" + repo, tag, "e30=", nullptr);
    REQUIRE(p.ok);
    return p.digest;
  }
  size_t count(const std::function<bool(const SeenRequest&)>& pred) {
    auto s = proxy.seen();
    return static_cast<size_t>(std::count_if(s.begin(), s.end(), pred));
  }
};

bool staging_manifest_put(const SeenRequest& r) {
  return r.method == "PUT" && r.target.find("/manifests/kiln-push-") != std::string::npos;
}
// The engine's manifest PUT, whatever name it pushes.
bool engine_manifest_put(const SeenRequest& r) {
  return is_engine(r) && r.method == "PUT" && r.target.find("/manifests/") != std::string::npos;
}
bool record_manifest_put(const SeenRequest& r) {
  return r.method == "PUT" && r.target.find("/manifests/sha256:") != std::string::npos;
}

#define NEEDS_ENGINE()                                \
  if (kiln::test::docker_socket().empty()) {          \
    KILN_SKIP("no test dockerd here (needs root)");   \
  }

}  // namespace

TEST_CASE("promote pushes the verified image by identity; tags and record read back", "[promote]") {
  NEEDS_ENGINE();
  Case c("happy");
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  CHECK(r.exit_code == 0);
  const json& cp = r.report["combos"][0];
  CHECK(cp["state"] == "tagged");
  CHECK(cp["tags"][0]["action"] == "pushed");
  CHECK(cp["tags"][1]["action"] == "retagged");
  CHECK(c.image_at(c.tag1()) == c.verified_id);
  CHECK(c.image_at(c.tag2()) == c.verified_id);
  CHECK(c.direct().attached(c.repo, cp["digest"], "application/vnd.kiln.verification.v1+json").size() == 1);
  // The engine pushed the kiln-owned staging name, never a release tag.
  CHECK(c.count(staging_manifest_put) == 1);
  CHECK(c.count([&](const SeenRequest& q) { return is_engine(q) && q.method == "PUT" && q.target.find("/manifests/" + c.tag1()) != std::string::npos; }) == 0);
  // Promoting again writes no tag.
  Run again = c.promote();
  CHECK(again.exit_code == 0);
  CHECK(again.report["combos"][0]["tags"][0]["action"] == "unchanged");
}

TEST_CASE("a name re-pointed (docker tag) during the push: no release tag, exit 1, said why", "[promote][race]") {
  NEEDS_ENGINE();
  Case c("repoint");
  // When the engine starts its push (its GET /v2/, before it resolves the
  // name), another process points every name kiln gave the verified image in
  // this repository at the other image -- with the docker CLI, on the real daemon.
  std::atomic<bool> done{false};
  std::string prefix = c.proxy.addr() + "/" + c.repo + ":";
  c.proxy.set_hook([&](const SeenRequest& q) {
    if (is_engine(q) && q.method == "GET" && q.target == "/v2/" && !done.exchange(true)) {
      auto info = c.eng.inspect_image(c.verified_id);
      for (const auto& name : info->repo_tags)
        if (name.rfind(prefix, 0) == 0)
          sh("DOCKER_HOST=unix://" + c.sock + " docker tag " + c.other_id + " " + name + " 2>&1");
    }
    return HookResult{};
  });
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  REQUIRE(done);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK(cp["state"] == "not-tagged");
  CHECK(cp["reason"].get<std::string>().find("not the verified image " + c.verified_id) != std::string::npos);
  CHECK(cp["reason"].get<std::string>().find("re-pointed") != std::string::npos);
  CHECK(cp["tags"][0]["action"] == "refused");
  CHECK(cp["tags"][1]["action"] == "refused");
  CHECK(c.release_tags().empty());
  CHECK(c.image_at(c.tag1()).empty());
}

TEST_CASE("one lying 404 on the conflict check does not move a tag that names another image", "[promote][faults]") {
  NEEDS_ENGINE();
  Case c("lie404");
  std::string foreign = c.plant_other(c.tag1());
  std::atomic<int> lies{0};
  c.proxy.set_hook([&](const SeenRequest& q) {
    HookResult h;
    if (q.method == "HEAD" && q.target == "/v2/" + c.repo + "/manifests/" + c.tag1() && lies++ == 0)
      h.answer = Canned{404, {"Content-Type: application/json"},
                        R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"};
    return h;
  });
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  CHECK(lies >= 1);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK(cp["tags"][0]["action"] == "conflict");
  CHECK(cp["tags"][0]["previous"] == foreign);
  CHECK(c.image_at(c.tag1()) == c.other_id);
  CHECK(c.direct().head_manifest(c.repo, c.tag1())->digest == foreign);
  CHECK(c.image_at(c.tag2()).empty());  // never half a promotion
}

TEST_CASE("a writer racing a tag after kiln's PUT is reported, not called tagged", "[promote][race]") {
  NEEDS_ENGINE();
  Case c("race");
  std::string foreign = c.plant_other("planted");
  auto other_manifest = c.direct().get_manifest(c.repo, foreign);
  std::atomic<bool> put_seen{false}, raced{false};
  c.proxy.set_hook([&](const SeenRequest& q) {
    std::string m = "/v2/" + c.repo + "/manifests/" + c.tag2();
    if (q.method == "PUT" && q.target == m) put_seen = true;
    else if (put_seen && q.method == "HEAD" && q.target == m && !raced.exchange(true))
      c.direct().put_manifest(c.repo, c.tag2(), other_manifest.bytes, other_manifest.media_type);
    return HookResult{};
  });
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  REQUIRE(raced);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK_FALSE(cp["tagged"].get<bool>());
  CHECK(cp["tags"][1]["action"] == "race");
  CHECK(cp["tags"][1]["error"].get<std::string>().find("now names " + foreign + ", expected " +
                                                         cp["tags"][0]["digest"].get<std::string>()) != std::string::npos);
  CHECK(cp["recorded"] == false);
}

TEST_CASE("the engine's push is retried after a 500 and after a reset", "[promote][faults]") {
  for (bool reset : {false, true}) {
    DYNAMIC_SECTION((reset ? "reset" : "500")) {
      NEEDS_ENGINE();
      Case c(reset ? "pushreset" : "push500");
      std::atomic<int> faults{0};
      c.proxy.set_hook([&](const SeenRequest& q) {
        HookResult h;
        if (engine_manifest_put(q) && faults++ == 0) {
          if (reset) h.reset = true;
          else h.answer = Canned{500, {}, "boom"};
        }
        return h;
      });
      Run r = c.promote();
      INFO(r.report.dump(2) << r.err);
      CHECK(faults >= 1);
      CHECK(r.exit_code == 0);
      CHECK(r.report["combos"][0]["state"] == "tagged");
      CHECK(c.count(staging_manifest_put) >= 2);
      CHECK(c.image_at(c.tag1()) == c.verified_id);
    }
  }
}

TEST_CASE("a registry that keeps failing: the same exit code (2) for 500s and resets, engine push or kiln's own call",
          "[promote][faults]") {
  struct Fault {
    const char* name;
    bool reset;
    bool (*where)(const SeenRequest&);
  };
  for (const Fault& f : {Fault{"down-push500", false, engine_manifest_put}, Fault{"down-pushrst", true, engine_manifest_put},
                         Fault{"down-rec500", false, record_manifest_put}, Fault{"down-recrst", true, record_manifest_put}}) {
    DYNAMIC_SECTION(f.name) {
      NEEDS_ENGINE();
      Case c(f.name);
      c.proxy.set_hook([&](const SeenRequest& q) {
        HookResult h;
        if (f.where(q)) {
          if (f.reset) h.reset = true;
          else h.answer = Canned{500, {}, "boom"};
        }
        return h;
      });
      Run r = c.promote();
      INFO(r.report.dump(2) << r.err);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("kiln: error: registry: ") != std::string::npos);
      CHECK(r.report["environment_error"].is_string());
      const json& cp = r.report["combos"][0];
      if (f.where == engine_manifest_put) {
        CHECK(cp["state"] == "not-tagged");
        CHECK(c.release_tags().empty());
        CHECK(r.err.find("the engine's push to " + c.proxy.addr() + " failed 4 times") != std::string::npos);
      } else {
        // Tagged, but the record is not there: the report says exactly that.
        CHECK(cp["state"] == "tagged-without-record");
        CHECK(cp["recorded"] == false);
        CHECK(cp["reason"].get<std::string>().rfind("tagged, but the verification record was not attached: ", 0) == 0);
        CHECK(c.image_at(c.tag1()) == c.verified_id);
      }
    }
  }
}

TEST_CASE("a record the registry rejects (400): tagged without record, exit 1", "[promote][faults]") {
  NEEDS_ENGINE();
  Case c("rec400");
  c.proxy.set_hook([&](const SeenRequest& q) {
    HookResult h;
    if (record_manifest_put(q))
      h.answer = Canned{400, {"Content-Type: application/json"},
                        R"({"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]})"};
    return h;
  });
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK(cp["tagged"] == true);
  CHECK(cp["state"] == "tagged-without-record");
  CHECK(cp["record_error"].get<std::string>().find("MANIFEST_INVALID") != std::string::npos);
  CHECK(r.report["environment_error"].is_null());
}

TEST_CASE("a tag naming another image: a conflict without --force, moved with it", "[promote][conflict]") {
  NEEDS_ENGINE();
  Case c("conflict");
  std::string foreign = c.plant_other(c.tag1());
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK(cp["tagged"] == false);
  CHECK(cp["tags"][0]["action"] == "conflict");
  CHECK(cp["tags"][0]["previous"] == foreign);
  CHECK_THAT(cp["reason"].get<std::string>(), Catch::StartsWith("tag conflict: "));
  CHECK_THAT(cp["reason"].get<std::string>(), Catch::Contains("--force moves it"));
  // Never half a promotion: the free tag is not written either, nothing was pushed.
  CHECK(c.image_at(c.tag1()) == c.other_id);
  CHECK(c.image_at(c.tag2()).empty());
  CHECK(c.count(staging_manifest_put) == 0);
  CHECK(c.count(record_manifest_put) == 0);

  Run forced = c.promote("--force");
  INFO(forced.report.dump(2) << forced.err);
  CHECK(forced.exit_code == 0);
  const json& fp = forced.report["combos"][0];
  CHECK(fp["state"] == "tagged");
  CHECK(fp["tags"][0]["previous"] == foreign);
  CHECK(c.image_at(c.tag1()) == c.verified_id);
  CHECK(c.image_at(c.tag2()) == c.verified_id);
}

TEST_CASE("a dry run writes nothing and says what it would do", "[promote][dry-run]") {
  NEEDS_ENGINE();
  Case c("dryrun");
  Run r = c.promote("--dry-run");
  INFO(r.report.dump(2) << r.err);
  CHECK(r.exit_code != 2);
  const json& cp = r.report["combos"][0];
  CHECK(cp["verified"] == true);
  CHECK(cp["tagged"] == false);
  REQUIRE(cp["tags"].size() == 2);
  for (const auto& t : cp["tags"]) CHECK_THAT(t["action"].get<std::string>(), Catch::StartsWith("would"));
  // Only reads reached the registry: no upload, no manifest, no record.
  CHECK(c.count([](const SeenRequest& q) { return q.method != "GET" && q.method != "HEAD"; }) == 0);
  CHECK(c.release_tags().empty());
  // A dry run sees conflicts as a real run does.
  std::string foreign = c.plant_other(c.tag2());
  Run conflict = c.promote("--dry-run");
  INFO(conflict.report.dump(2) << conflict.err);
  CHECK(conflict.exit_code != 2);  // what a dry run's conflict exits with is the command's (docs/cli exit codes)
  CHECK(conflict.report["combos"][0]["tags"][1]["action"] == "conflict");
  CHECK(conflict.report["combos"][0]["tags"][1]["previous"] == foreign);
  CHECK(c.image_at(c.tag2()) == c.other_id);
}

TEST_CASE("the verification record names the verified image, its digest and its checks", "[promote][record]") {
  NEEDS_ENGINE();
  Case c("record");
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string digest = r.report["combos"][0]["digest"];
  auto reg = c.direct();
  auto found = reg.attached(c.repo, digest, "application/vnd.kiln.verification.v1+json");
  REQUIRE(found.size() == 1);
  json artifact = json::parse(reg.get_manifest(c.repo, found[0].digest).bytes);
  REQUIRE(artifact["layers"].size() == 1);
  json rec = json::parse(reg.get_blob(c.repo, artifact["layers"][0]["digest"]));
  CHECK(rec["schema"] == "kiln.verification/v1");
  CHECK(rec["combination"] == kCombo);
  CHECK(rec["image_id"] == c.verified_id);
  CHECK(rec["digest"] == digest);
  CHECK(rec["policy"]["verify"] == json{"static"});
  REQUIRE(rec["checks"].size() == 1);
  CHECK(rec["checks"][0]["check"] == "static");
  CHECK(rec["checks"][0]["runner"] == "local");
  CHECK(rec["checks"][0]["status"] == "passed");
  CHECK(rec["versions"]["cuda"].get<std::string>().rfind("12.4", 0) == 0);
}

TEST_CASE("an image whose static check failed is never pushed", "[promote]") {
  NEEDS_ENGINE();
  Case c("unverified", "failed");
  Run r = c.promote();
  INFO(r.report.dump(2) << r.err);
  CHECK(r.exit_code == 1);
  const json& cp = r.report["combos"][0];
  CHECK(cp["verified"] == false);
  CHECK(cp["reason"] == "not verified: static check failed: the devel image has no nvcc");
  CHECK(c.proxy.seen().empty());
  CHECK(c.release_tags().empty());
}
