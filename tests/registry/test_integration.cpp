// Integration tests against a real registry (Debian docker-registry, CNCF
// distribution 2.8) started by tests/registry/registry.sh, with the
// recording/fault-injecting proxy of proxy.h in front where a test needs to
// count requests or inject faults. Seeded with a tiny image pushed by the
// client itself: a layer tar made here, a config, a manifest.
#include "proxy.h"
#include "image/registry_source.h"
#include "registry/registry.h"
#include "util/sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>
#include <crypt.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

using namespace kiln::registry;
using kiln::test::Canned;
using kiln::test::HookResult;
using kiln::test::Proxy;
using kiln::test::SeenRequest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kScript = std::string(KILN_SOURCE_DIR) + "/tests/registry/registry.sh";

std::string run(const std::string& cmd) {
  std::array<char, 256> buf;
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return out;
  while (fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// A registry for the life of the object; name unique to this process.
struct Registry {
  std::string name, addr;
  explicit Registry(const std::string& n, const std::string& htpasswd = "")
      : name("it-" + std::to_string(getpid()) + "-" + n) {
    addr = run(kScript + " start " + name + (htpasswd.empty() ? "" : " " + htpasswd) + " 2>&1");
    if (addr.rfind("127.0.0.1:", 0) != 0) FAIL("registry.sh start failed: " << addr);
  }
  ~Registry() { stop(); }
  void stop() { run(kScript + " stop " + name + " 2>&1"); }
  std::string log() { return run(kScript + " log " + name); }
};

Registry& shared_registry() {
  static Registry r("open");
  return r;
}

struct TempDir {
  fs::path dir;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kiln-reg-it-XXXXXX").string();
    dir = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(dir); }
};

Options opts_for(const std::string& addr) {
  Options o;
  o.host = addr;
  o.insecure = true;
  o.credentials = Credentials{};  // anonymous unless a test says otherwise
  o.backoff = std::chrono::milliseconds(20);
  return o;
}

// A one-file tar, built with libarchive.
std::string layer_tar(const std::string& content) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* u, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(u)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "hello.txt");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
  archive_write_header(a, e);
  archive_write_data(a, content.data(), content.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string sha(const std::string& b) { return "sha256:" + kiln::sha256_hex(b); }

struct Seeded {
  std::string digest, media_type, layer, config;
};

// Pushes a tiny image into repo:tag; `docker` picks the Docker v2 media types.
Seeded seed(Client& c, const std::string& repo, const std::string& tag, bool docker = false,
            const std::string& text = "hello from kiln\n") {
  std::string layer = layer_tar(text);
  json cfg = {{"architecture", "amd64"},
              {"os", "linux"},
              {"config", {{"Env", {"PATH=/usr/bin"}}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", {sha(layer)}}}}};
  std::string config = cfg.dump();
  Seeded s;
  s.layer = c.push_blob(repo, layer);
  s.config = c.push_blob(repo, config);
  s.media_type = docker ? media::docker_manifest : media::oci_manifest;
  json m = {{"schemaVersion", 2},
            {"mediaType", s.media_type},
            {"config",
             {{"mediaType", docker ? "application/vnd.docker.container.image.v1+json"
                                   : "application/vnd.oci.image.config.v1+json"},
              {"digest", s.config},
              {"size", config.size()}}},
            {"layers",
             {{{"mediaType", docker ? "application/vnd.docker.image.rootfs.diff.tar"
                                    : "application/vnd.oci.image.layer.v1.tar"},
               {"digest", s.layer},
               {"size", layer.size()}}}}};
  // Pretty-printed on purpose: a client that re-serialised would change the digest.
  s.digest = c.put_manifest(repo, tag, m.dump(3), s.media_type);
  return s;
}

std::vector<std::string> lines(const std::vector<SeenRequest>& seen) {
  std::vector<std::string> out;
  for (const auto& r : seen) out.push_back(r.method + " " + r.target);
  return out;
}

std::string htpasswd_file(const fs::path& dir, const std::string& user, const std::string& pass) {
  // bcrypt (what distribution's htpasswd wants) through libxcrypt; cost 4 keeps tests fast.
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt) != nullptr);
  crypt_data data{};
  const char* hash = crypt_r(pass.c_str(), salt, &data);
  REQUIRE(hash != nullptr);
  REQUIRE(std::string(hash).rfind("$2b$", 0) == 0);
  fs::path f = dir / "htpasswd";
  std::ofstream(f) << user << ":" << hash << "\n";
  return f.string();
}

std::string docker_config(const fs::path& dir, const std::string& host, const std::string& user,
                          const std::string& pass) {
  std::string up = user + ":" + pass;
  // base64 by hand through the engine_auth helper would be circular: use openssl's tool.
  std::string b64 = run("printf '%s' '" + up + "' | base64 -w0");
  std::ofstream(dir / "config.json") << json{{"auths", {{host, {{"auth", b64}}}}}}.dump();
  return dir.string();
}

// Bytes that no compression shrinks much and no other test pushes.
std::string blob_of_size(std::size_t n, unsigned seed) {
  std::string out(n, '\0');
  std::uint32_t x = 2463534242u ^ seed;
  for (char& ch : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ch = static_cast<char>(x);
  }
  return out;
}

struct Collected {
  std::string bytes;
  int pieces = 0;
};

Client::BlobSink collect(Collected& into) {
  return [&into](std::string_view b) {
    into.bytes.append(b);
    ++into.pieces;
    return true;
  };
}

bool is_blob_get(const SeenRequest& r) { return r.method == "GET" && r.target.find("/blobs/sha256:") != std::string::npos; }

std::size_t blob_gets(Proxy& p) {
  auto seen = p.seen();
  return static_cast<std::size_t>(std::count_if(seen.begin(), seen.end(), is_blob_get));
}

}  // namespace

TEST_CASE("push a tiny image, read it back byte for byte", "[registry]") {
  Client c(opts_for(shared_registry().addr));
  c.ping();
  Seeded s = seed(c, "kiln/tiny", "v1");
  Manifest m = c.get_manifest("kiln/tiny", "v1");
  CHECK(m.digest == s.digest);
  CHECK(m.media_type == media::oci_manifest);
  CHECK(sha(m.bytes) == s.digest);
  CHECK(m.bytes.find("\n   ") != std::string::npos);  // the pretty-printed bytes, as pushed
  auto h = c.head_manifest("kiln/tiny", "v1");
  REQUIRE(h);
  CHECK(h->digest == s.digest);
  CHECK(h->size == static_cast<std::int64_t>(m.bytes.size()));
  CHECK(c.blob_exists("kiln/tiny", s.layer));
  CHECK(c.get_blob("kiln/tiny", s.config).find("diff_ids") != std::string::npos);
  // By digest too.
  CHECK(c.get_manifest("kiln/tiny", s.digest).bytes == m.bytes);
  // Absent things.
  CHECK_FALSE(c.head_manifest("kiln/tiny", "nope").has_value());
  CHECK_THROWS_AS(c.get_manifest("kiln/tiny", "nope"), NotFound);
  CHECK_FALSE(c.blob_exists("kiln/tiny", sha("absent")));
  CHECK_THROWS_AS(c.tags("kiln/never-pushed"), NotFound);
  // A manifest naming a blob the repository lacks is refused with the registry's code.
  json bad = {{"schemaVersion", 2},
              {"mediaType", media::oci_manifest},
              {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", sha("x")}, {"size", 1}}},
              {"layers", json::array()}};
  try {
    c.put_manifest("kiln/tiny", "bad", bad.dump(), media::oci_manifest);
    FAIL("expected ApiError");
  } catch (const ApiError& e) {
    CHECK(e.status == 400);
    CHECK(e.code == "MANIFEST_BLOB_UNKNOWN");
  }
}

TEST_CASE("retag moves no blobs: one manifest GET and one PUT, same digest", "[registry]") {
  Client seeder(opts_for(shared_registry().addr));
  Seeded oci = seed(seeder, "kiln/retag", "build-1");
  Seeded dock = seed(seeder, "kiln/retag", "build-docker", /*docker=*/true, "docker flavour\n");
  Proxy proxy(shared_registry().addr);
  Client c(opts_for(proxy.addr()));

  std::string d = c.retag("kiln/retag", "build-1", "2.6-cuda12.4");
  CHECK(d == oci.digest);
  CHECK(lines(proxy.seen()) == std::vector<std::string>{"GET /v2/kiln/retag/manifests/build-1",
                                                        "PUT /v2/kiln/retag/manifests/2.6-cuda12.4"});
  auto put = proxy.seen()[1];
  CHECK(put.header("content-type") == media::oci_manifest);
  CHECK(sha(put.body) == oci.digest);  // the exact bytes went back

  proxy.clear();
  CHECK(c.retag("kiln/retag", "build-docker", "docker-release") == dock.digest);
  for (const auto& r : proxy.seen()) CHECK(r.target.find("/blobs/") == std::string::npos);
  CHECK(proxy.seen().size() == 2);
  Manifest back = seeder.get_manifest("kiln/retag", "docker-release");
  CHECK(back.media_type == media::docker_manifest);
  CHECK(back.digest == dock.digest);
  CHECK(seeder.head_manifest("kiln/retag", "2.6-cuda12.4")->digest == oci.digest);

  // Retag by digest as the source works the same way.
  CHECK(c.retag("kiln/retag", oci.digest, "by-digest") == oci.digest);
}

TEST_CASE("an index retags with its bytes, and copies across repositories by mounting", "[registry]") {
  Client c(opts_for(shared_registry().addr));
  Seeded a = seed(c, "kiln/multi", "amd64");
  Seeded b = seed(c, "kiln/multi", "arm64", false, "other arch\n");
  json idx = {{"schemaVersion", 2},
              {"mediaType", media::oci_index},
              {"manifests",
               {{{"mediaType", media::oci_manifest}, {"digest", a.digest}, {"size", c.head_manifest("kiln/multi", "amd64")->size},
                 {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}},
                {{"mediaType", media::oci_manifest}, {"digest", b.digest}, {"size", c.head_manifest("kiln/multi", "arm64")->size},
                 {"platform", {{"architecture", "arm64"}, {"os", "linux"}}}}}}};
  std::string idx_digest = c.put_manifest("kiln/multi", "build", idx.dump(2), media::oci_index);

  Proxy proxy(shared_registry().addr);
  Client p(opts_for(proxy.addr()));
  CHECK(p.retag("kiln/multi", "build", "release") == idx_digest);
  CHECK(proxy.seen().size() == 2);
  CHECK(c.get_manifest("kiln/multi", "release").media_type == media::oci_index);

  proxy.clear();
  CHECK(p.copy("kiln/multi", "build", "kiln/published", "1.0") == idx_digest);
  int mounts = 0;
  for (const auto& r : proxy.seen()) {
    if (r.target.find("mount=") != std::string::npos) ++mounts;
    // No blob bytes moved: no PATCH, no PUT to an upload, no blob GET.
    CHECK(r.method != "PATCH");
    CHECK_FALSE((r.method == "PUT" && r.target.find("/blobs/uploads/") != std::string::npos));
    CHECK_FALSE((r.method == "GET" && r.target.find("/blobs/") != std::string::npos));
  }
  CHECK(mounts == 4);  // two configs, two layers
  Manifest copied = c.get_manifest("kiln/published", "1.0");
  CHECK(copied.digest == idx_digest);
  CHECK(c.get_manifest("kiln/published", a.digest).digest == a.digest);
  CHECK(c.blob_exists("kiln/published", b.layer));
}

TEST_CASE("attach a record: fallback tag where the registry has no referrers API", "[registry]") {
  Client c(opts_for(shared_registry().addr));
  Seeded s = seed(c, "kiln/attach", "v1");
  const std::string type = "application/vnd.kiln.verdict.v1+json";
  std::string doc = R"({"combo":"pytorch2.6-cuda12.4","verdict":"pass"})";
  auto refs = c.referrers("kiln/attach", s.digest);
  Attached at = c.attach("kiln/attach", s.digest, type, doc, "application/vnd.kiln.verdict.v1+json",
                         {{"org.opencontainers.image.title", "verdict"}});
  CHECK_FALSE(at.digest.empty());
  if (!refs) {  // distribution 2.8: no referrers API, subject ignored
    CHECK(at.mode == AttachMode::FallbackTag);
    CHECK(at.tag == fallback_tag(s.digest));
    CHECK(at.tag == "sha256-" + s.digest.substr(7) + ".kiln");
    auto tags = c.tags("kiln/attach");
    CHECK(std::find(tags.begin(), tags.end(), at.tag) != tags.end());
    Manifest m = c.get_manifest("kiln/attach", at.tag);
    CHECK(m.digest == at.digest);
    auto j = json::parse(m.bytes);
    CHECK(j["artifactType"] == type);
    CHECK(j["subject"]["digest"] == s.digest);
    CHECK(j["config"]["digest"] == media::empty_digest);
    CHECK(j["config"]["size"] == 2);
    CHECK(c.get_blob("kiln/attach", media::empty_digest) == "{}");
    CHECK(c.get_blob("kiln/attach", j["layers"][0]["digest"]) == doc);
  } else {
    CHECK(at.mode == AttachMode::Referrers);
  }
  auto found = c.attached("kiln/attach", s.digest, type);
  REQUIRE(found.size() == 1);
  CHECK(found[0].digest == at.digest);
  CHECK(found[0].artifact_type == type);
  CHECK(found[0].annotations["org.opencontainers.image.title"] == "verdict");
  CHECK(c.attached("kiln/attach", s.digest, "application/other").empty());
  CHECK_THROWS_AS(c.attach("kiln/attach", sha("nothing"), type, doc), NotFound);
}

TEST_CASE("tags list", "[registry]") {
  Client c(opts_for(shared_registry().addr));
  seed(c, "kiln/tags", "b");
  c.retag("kiln/tags", "b", "a");
  c.retag("kiln/tags", "b", "c");
  CHECK(c.tags("kiln/tags") == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("confirmed_tag: one lying 404 is not believed; a registry that keeps contradicting itself throws",
          "[registry][faults]") {
  Client seeder(opts_for(shared_registry().addr));
  Seeded s = seed(seeder, "kiln/confirm", "v1");
  CHECK_FALSE(seeder.confirmed_tag("kiln/no-such-repo", "v1"));  // no repository: absent, not NotFound
  // The tag list is read from just before the tag: one small page, even among many tags.
  for (const char* t : {"a", "v0", "v0zz", "v1-", "v10", "v2", "w"}) seeder.retag("kiln/confirm", "v1", t);
  for (const char* t : {"a", "v0", "v0zz", "v1", "v1-", "v10", "v2", "w"}) CHECK(seeder.tag_listed("kiln/confirm", t));
  for (const char* t : {"-", "v", "v0z", "v1--", "v11", "x"}) CHECK_FALSE(seeder.tag_listed("kiln/confirm", t));
  Proxy proxy(shared_registry().addr);
  std::atomic<int> lies{1};
  proxy.set_hook([&](const SeenRequest& r) -> HookResult {
    if (r.method == "HEAD" && r.target == "/v2/kiln/confirm/manifests/v1" && lies-- > 0)
      return {Canned{404, {"Content-Type: application/json"}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]})"}};
    return {};
  });
  Client c(opts_for(proxy.addr()));
  auto d = c.confirmed_tag("kiln/confirm", "v1");
  REQUIRE(d);
  CHECK(d->digest == s.digest);
  CHECK(lines(proxy.seen()) == std::vector<std::string>{"HEAD /v2/kiln/confirm/manifests/v1",
                                                         "GET /v2/kiln/confirm/tags/list?n=10&last=v0" + std::string(126, 'z'),
                                                         "HEAD /v2/kiln/confirm/manifests/v1"});
  // Absent both ways: absent, with no second HEAD.
  proxy.clear();
  CHECK_FALSE(c.confirmed_tag("kiln/confirm", "v9"));
  CHECK(proxy.seen().size() == 2);
  // The list has it, the manifest keeps answering 404: not guessed.
  lies = 1000;
  CHECK_THROWS_AS(c.confirmed_tag("kiln/confirm", "v1"), ApiError);
}

TEST_CASE("htpasswd registry: credentials from the Docker config; wrong password is an AuthError", "[registry][auth]") {
  TempDir t;
  const std::string secret = "kiln-planted-S3cret-htpw";
  Registry reg("auth", htpasswd_file(t.dir, "kiln", secret));
  std::vector<std::string> logged;
  std::vector<std::string> thrown;

  TempDir good;
  Options o = opts_for(reg.addr);
  o.credentials.reset();  // from the config
  o.docker_config = docker_config(good.dir, reg.addr, "kiln", secret);
  o.log = [&](std::string_view l) { logged.emplace_back(l); };
  Client c(o);
  c.ping();
  Seeded s = seed(c, "kiln/private", "v1");
  CHECK(c.retag("kiln/private", "v1", "v2") == s.digest);
  CHECK(c.tags("kiln/private") == std::vector<std::string>{"v1", "v2"});

  // The engine push header carries them for the engine, base64url JSON.
  CHECK_FALSE(engine_auth(lookup_credentials(reg.addr, good.dir), reg.addr).empty());

  TempDir bad;
  Options w = opts_for(reg.addr);
  w.credentials.reset();
  w.docker_config = docker_config(bad.dir, reg.addr, "kiln", secret + "-wrong");
  w.log = o.log;
  Client wc(w);
  try {
    wc.get_manifest("kiln/private", "v1");
    FAIL("expected AuthError");
  } catch (const AuthError& e) {
    thrown.emplace_back(e.what());
    CHECK(std::string(e.what()).find("rejected the credentials") != std::string::npos);
  }
  Client anon(opts_for(reg.addr));
  try {
    anon.ping();
    FAIL("expected AuthError");
  } catch (const AuthError& e) {
    thrown.emplace_back(e.what());
    CHECK(std::string(e.what()).find("docker login") != std::string::npos);
  }
  // The planted secret, raw or encoded, is nowhere in what the client said.
  std::string b64 = run("printf '%s' 'kiln:" + secret + "' | base64 -w0");
  for (const auto& l : logged) {
    CHECK(l.find(secret) == std::string::npos);
    CHECK(l.find(b64) == std::string::npos);
    CHECK(l.find("Authorization") == std::string::npos);
  }
  for (const auto& l : thrown) {
    INFO(l);
    CHECK(l.find(secret) == std::string::npos);
    CHECK(l.find(b64) == std::string::npos);
  }
  CHECK(logged.size() > 5);
}

TEST_CASE("bearer token flow through the realm, and no credentials across a redirect", "[registry][auth]") {
  const std::string secret = "kiln-planted-S3cret-bearer";
  const std::string token = "tok-" + std::to_string(getpid()) + "-opaque";
  Proxy other(shared_registry().addr);  // "another host": reached as localhost, not 127.0.0.1
  Proxy gate(shared_registry().addr);
  std::string realm = "http://" + gate.addr() + "/token";
  std::string basic = "Basic " + run("printf '%s' 'kiln:" + secret + "' | base64 -w0");
  int token_calls = 0;
  gate.set_hook([&](const SeenRequest& r) -> HookResult {
    if (r.target.rfind("/token", 0) == 0) {
      ++token_calls;
      if (r.header("authorization") != basic) return {Canned{401, {}, R"({"details":"bad credentials"})"}};
      if (r.target.find("service=kiln-test") == std::string::npos) return {Canned{400, {}, "no service"}};
      return {Canned{200, {"Content-Type: application/json"}, json{{"access_token", token}}.dump()}};
    }
    if (r.header("authorization") != "Bearer " + token) {
      std::string scope = "repository:kiln/bearer:pull";
      return {Canned{401,
                     {"WWW-Authenticate: Bearer realm=\"" + realm + "\",service=\"kiln-test\",scope=\"" + scope + "\"",
                      "Content-Type: application/json"},
                     R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"}};
    }
    if (r.method == "GET" && r.target.find("/blobs/") != std::string::npos)
      return {Canned{307, {"Location: http://localhost:" + std::to_string(other.port()) + r.target}, ""}};
    return {};
  });
  std::vector<std::string> logged, thrown;
  TempDir cfg;
  Options o = opts_for(gate.addr());
  o.credentials.reset();
  o.docker_config = docker_config(cfg.dir, gate.addr(), "kiln", secret);
  o.log = [&](std::string_view l) { logged.emplace_back(l); };
  Client c(o);
  Seeded s = seed(c, "kiln/bearer", "v1");
  CHECK(c.get_manifest("kiln/bearer", "v1").digest == s.digest);
  CHECK(token_calls >= 1);
  CHECK(token_calls <= 3);  // tokens are cached per scope, not fetched per request
  // The blob GET was redirected to another host: it got there, without the token.
  std::string cfgblob = c.get_blob("kiln/bearer", s.config);
  CHECK(cfgblob.find("diff_ids") != std::string::npos);
  REQUIRE_FALSE(other.seen().empty());
  for (const auto& r : other.seen()) CHECK(r.header("authorization").empty());
  // A streamed read follows the same redirect, with the same care.
  other.clear();
  Collected layer;
  c.read_blob("kiln/bearer", s.layer, collect(layer));
  CHECK(sha(layer.bytes) == s.layer);
  REQUIRE_FALSE(other.seen().empty());
  for (const auto& r : other.seen()) CHECK(r.header("authorization").empty());

  TempDir badcfg;
  Options w = o;
  w.docker_config = docker_config(badcfg.dir, gate.addr(), "kiln", "wrong-" + secret);
  Client wc(w);
  try {
    wc.get_manifest("kiln/bearer", "v1");
    FAIL("expected AuthError");
  } catch (const AuthError& e) {
    thrown.emplace_back(e.what());
  }
  for (const auto& l : logged) {
    CHECK(l.find(secret) == std::string::npos);
    CHECK(l.find(token) == std::string::npos);
  }
  for (const auto& l : thrown) {
    INFO(l);
    CHECK(l.find(secret) == std::string::npos);
    CHECK(l.find(token) == std::string::npos);
  }
}

TEST_CASE("a stopped registry is Unreachable after bounded retries", "[registry][faults]") {
  std::string addr;
  {
    Registry down("down");
    addr = down.addr;
  }  // stopped here
  Options o = opts_for(addr);
  o.max_attempts = 3;
  o.backoff = std::chrono::milliseconds(50);
  std::vector<std::string> logged;
  o.log = [&](std::string_view l) { logged.emplace_back(l); };
  Client c(o);
  try {
    c.get_manifest("kiln/x", "v1");
    FAIL("expected Unreachable");
  } catch (const Timeout&) {
    FAIL("a refused connection is not a timeout");
  } catch (const Unreachable& e) {
    std::string w = e.what();
    CHECK(w.find("cannot reach the registry at http://" + addr) != std::string::npos);
    CHECK(w.find("3 tries") != std::string::npos);
  }
  CHECK(logged.size() == 2);  // two "retry" lines
}

TEST_CASE("5xx and 429 are retried; persistent ones become ApiError", "[registry][faults]") {
  Client seeder(opts_for(shared_registry().addr));
  Seeded s = seed(seeder, "kiln/faults", "v1");
  Proxy proxy(shared_registry().addr);
  int failures_left = 2;
  std::mutex mu;
  proxy.set_hook([&](const SeenRequest& r) -> HookResult {
    std::lock_guard<std::mutex> l(mu);
    if (r.target.find("/manifests/") != std::string::npos && failures_left > 0) {
      --failures_left;
      return {Canned{500, {"Content-Type: application/json"},
                     R"({"errors":[{"code":"UNKNOWN","message":"injected"}]})"}};
    }
    return {};
  });
  Options o = opts_for(proxy.addr());
  Client c(o);
  CHECK(c.get_manifest("kiln/faults", "v1").digest == s.digest);
  CHECK(proxy.seen().size() == 3);

  // 429 with Retry-After: 1 is honoured, then success.
  proxy.clear();
  bool limited = true;
  proxy.set_hook([&](const SeenRequest&) -> HookResult {
    std::lock_guard<std::mutex> l(mu);
    if (limited) {
      limited = false;
      return {Canned{429, {"Retry-After: 1"}, R"({"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]})"}};
    }
    return {};
  });
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.retag("kiln/faults", "v1", "v2") == s.digest);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
  CHECK(proxy.seen().size() == 3);

  // Always 429: bounded attempts, then an ApiError with the status.
  proxy.clear();
  proxy.set_hook([](const SeenRequest&) -> HookResult {
    return {Canned{429, {}, R"({"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]})"}};
  });
  try {
    c.get_manifest("kiln/faults", "v1");
    FAIL("expected ApiError");
  } catch (const ApiError& e) {
    CHECK(e.status == 429);
    CHECK(e.code == "TOOMANYREQUESTS");
  }
  CHECK(proxy.seen().size() == static_cast<std::size_t>(o.max_attempts));

  // A Retry-After beyond the retry budget is not waited for.
  proxy.clear();
  proxy.set_hook([](const SeenRequest&) -> HookResult { return {Canned{503, {"Retry-After: 3600"}, ""}}; });
  CHECK_THROWS_AS(c.ping(), ApiError);  // at once: waiting an hour would run into ctest's TIMEOUT
  CHECK(proxy.seen().size() == 1);
}

TEST_CASE("slow responses time out, bounded", "[registry][faults]") {
  Proxy proxy(shared_registry().addr);
  proxy.set_hook([](const SeenRequest&) -> HookResult { return {std::nullopt, 3000}; });
  Options o = opts_for(proxy.addr());
  o.timeout = std::chrono::milliseconds(300);
  o.max_attempts = 2;
  Client c(o);
  CHECK_THROWS_AS(c.ping(), Timeout);
  CHECK(proxy.seen().size() == 2);  // Timeout: each attempt's 300 ms limit fired before the 3 s answer
  // Timeout is an Unreachable: callers exit 2 for both.
  CHECK_THROWS_AS(c.ping(), Unreachable);
}

// ---- streamed blob reads (Client::read_blob) and the image reader's registry source ----

TEST_CASE("read_blob streams a blob in pieces, stops when asked, and a missing blob is NotFound", "[registry][blob]") {
  Client c(opts_for(shared_registry().addr));
  const std::string big = blob_of_size(3u << 20, 1);
  const std::string digest = c.push_blob("kiln/stream", big);

  Collected all;
  c.read_blob("kiln/stream", digest, collect(all));
  CHECK(all.bytes.size() == big.size());
  CHECK(all.bytes == big);
  CHECK(all.pieces > 1);  // handed over as it arrived, not whole

  int calls = 0;
  std::size_t seen = 0;
  c.read_blob("kiln/stream", digest, [&](std::string_view b) {
    ++calls;
    seen += b.size();
    return false;
  });
  CHECK(calls == 1);
  CHECK(seen < big.size());
  CHECK(c.blob_exists("kiln/stream", digest));  // the client goes on after a stopped transfer

  bool called = false;
  CHECK_THROWS_AS(c.read_blob("kiln/stream", sha("absent"), [&](std::string_view) { return called = true; }), NotFound);
  CHECK_FALSE(called);
}

TEST_CASE("read_blob: a 500 before the body is retried and never reaches the sink; a break after bytes is not retried",
          "[registry][blob][faults]") {
  Client seeder(opts_for(shared_registry().addr));
  const std::string big = blob_of_size(2u << 20, 2);
  const std::string digest = seeder.push_blob("kiln/stream-faults", big);
  Proxy proxy(shared_registry().addr);
  Client c(opts_for(proxy.addr()));

  bool failed_once = false;
  const std::string error_body = R"({"errors":[{"code":"UNKNOWN","message":"injected"}]})";
  proxy.set_hook([&](const SeenRequest& r) -> HookResult {
    if (!is_blob_get(r) || failed_once) return {};
    failed_once = true;
    return {Canned{500, {"Content-Type: application/json"}, error_body}};
  });
  Collected got;
  c.read_blob("kiln/stream-faults", digest, collect(got));
  CHECK(got.bytes == big);  // the 500's body went to the error text, not the sink
  CHECK(blob_gets(proxy) == 2);

  proxy.clear();
  proxy.set_hook([](const SeenRequest& r) -> HookResult {
    HookResult h;
    if (is_blob_get(r)) h.cut_after = 256u << 10;  // headers and some of the body, then the connection drops
    return h;
  });
  Collected partial;
  try {
    c.read_blob("kiln/stream-faults", digest, collect(partial));
    FAIL("expected Unreachable");
  } catch (const Unreachable& e) {
    std::string w = e.what();
    INFO(w);
    CHECK(w.find("blob kiln/stream-faults@" + digest) != std::string::npos);
    CHECK(w.find("broke off after") != std::string::npos);
  }
  CHECK_FALSE(partial.bytes.empty());
  CHECK(partial.bytes.size() < big.size());
  CHECK(blob_gets(proxy) == 1);  // the sink had bytes: no second try
}

TEST_CASE("read_blob has no total timeout, only a stall limit", "[registry][blob][faults]") {
  Client seeder(opts_for(shared_registry().addr));
  const std::string digest = seeder.push_blob("kiln/stream-slow", blob_of_size(64u << 10, 3));
  Proxy proxy(shared_registry().addr);
  int delay_ms = 800;
  proxy.set_hook([&](const SeenRequest& r) -> HookResult { return {std::nullopt, is_blob_get(r) ? delay_ms : 0}; });
  Options o = opts_for(proxy.addr());
  o.timeout = std::chrono::milliseconds(300);  // would end any other request
  o.stall_timeout = std::chrono::seconds(2);
  o.max_attempts = 1;
  Client c(o);
  Collected got;
  c.read_blob("kiln/stream-slow", digest, collect(got));
  CHECK(got.bytes.size() == 64u << 10);

  delay_ms = 6000;  // silent for longer than the stall limit
  CHECK_THROWS_AS(c.read_blob("kiln/stream-slow", digest, collect(got)), Timeout);
}

TEST_CASE("registry_source: read_image reads an image from the registry as from an OCI layout", "[registry][image]") {
  const std::string addr = shared_registry().addr;
  Client c(opts_for(addr));
  Seeded s = seed(c, "kiln/source", "v1", false, "read over the distribution API\n");

  auto src = kiln::image::registry_source(parse_reference(addr + "/kiln/source:v1"), opts_for(addr));
  CHECK(src->describe() == "docker://" + addr + "/kiln/source:v1");
  CHECK_FALSE(src->exists("manifest.json"));
  CHECK(src->exists("index.json"));
  kiln::image::ImageFs fs = kiln::image::read_image(src);
  CHECK(fs.read_file("hello.txt") == "read over the distribution API\n");
  REQUIRE(fs.layers().size() == 1);
  CHECK(fs.layers()[0].verified);
  CHECK(fs.config().digest == s.config);
  CHECK(fs.config().repo_tags == std::vector<std::string>{"v1"});
  CHECK(src->exists("blobs/sha256/" + s.layer.substr(7)));
  CHECK_FALSE(src->exists("blobs/sha256/" + sha("absent").substr(7)));

  // By digest: the same image, no tag to report.
  auto by_digest = kiln::image::read_image(
      kiln::image::registry_source(parse_reference(addr + "/kiln/source@" + s.digest), opts_for(addr)));
  CHECK(by_digest.read_file("hello.txt") == "read over the distribution API\n");
  CHECK(by_digest.config().repo_tags.empty());

  // An index: the linux/amd64 manifest it lists is served by digest, as received.
  Seeded amd = seed(c, "kiln/source", "amd64", false, "amd64 bytes\n");
  Seeded arm = seed(c, "kiln/source", "arm64", false, "arm64 bytes\n");
  auto entry = [&](const Seeded& m, const char* arch) {
    return json{{"mediaType", media::oci_manifest}, {"digest", m.digest},
                {"size", c.head_manifest("kiln/source", m.digest)->size},
                {"platform", {{"architecture", arch}, {"os", "linux"}}}};
  };
  json idx = {{"schemaVersion", 2}, {"mediaType", media::oci_index}, {"manifests", {entry(arm, "arm64"), entry(amd, "amd64")}}};
  c.put_manifest("kiln/source", "multi", idx.dump(), media::oci_index);
  auto multi = kiln::image::read_image(
      kiln::image::registry_source(parse_reference(addr + "/kiln/source:multi"), opts_for(addr)));
  CHECK(multi.read_file("hello.txt") == "amd64 bytes\n");

  // A missing tag names the image and says "not found".
  try {
    kiln::image::read_image(kiln::image::registry_source(parse_reference(addr + "/kiln/source:nope"), opts_for(addr)));
    FAIL("expected ImageError");
  } catch (const kiln::image::ImageError& e) {
    std::string w = e.what();
    INFO(w);
    CHECK(w.find("docker://" + addr + "/kiln/source:nope") != std::string::npos);
    CHECK(w.find("not found") != std::string::npos);
  }
}

TEST_CASE("registry_source streams: an early close stops the download, a later open supersedes, errors name the blob",
          "[registry][image]") {
  const std::string addr = shared_registry().addr;
  Client c(opts_for(addr));
  const std::string big = blob_of_size(12u << 20, 4);  // three times what the pipe holds
  const std::string big_digest = c.push_blob("kiln/source-stream", big);
  const std::string small_digest = c.push_blob("kiln/source-stream", "small blob");
  auto src = kiln::image::registry_source(parse_reference(addr + "/kiln/source-stream:any"), opts_for(addr));
  auto name = [](const std::string& digest) { return "blobs/sha256/" + digest.substr(7); };

  {  // Read a little, then drop it while the producer waits on a full pipe.
    auto in = src->open(name(big_digest));
    std::array<std::byte, 4096> buf;
    REQUIRE(in->read(buf.data(), buf.size()) > 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the pipe fill
    in.reset();  // returns: a producer left blocked would hang here until ctest's TIMEOUT
  }

  {  // The whole blob arrives through the pipe, in order.
    auto in = src->open(name(big_digest));
    std::string got;
    std::array<std::byte, 1 << 16> buf;
    while (std::size_t n = in->read(buf.data(), buf.size())) got.append(reinterpret_cast<const char*>(buf.data()), n);
    CHECK(got.size() == big.size());
    CHECK(got == big);
  }

  {  // One stream at a time: opening another stops the first, which then says so.
    auto first = src->open(name(big_digest));
    auto second = src->open(name(small_digest));
    std::array<std::byte, 64> buf;
    CHECK_THROWS_WITH(first->read(buf.data(), buf.size()), Catch::Contains("another blob"));
    CHECK(std::string(reinterpret_cast<const char*>(buf.data()), second->read(buf.data(), buf.size())) == "small blob");
  }

  {  // A producer's failure comes back from read() as an ImageError naming registry, repository and blob.
    const std::string absent = sha("absent from the registry");
    auto in = src->open(name(absent));
    std::array<std::byte, 64> buf;
    try {
      in->read(buf.data(), buf.size());
      FAIL("expected ImageError");
    } catch (const kiln::image::ImageError& e) {
      std::string w = e.what();
      INFO(w);
      CHECK(w.find("docker://" + addr + "/kiln/source-stream") != std::string::npos);
      CHECK(w.find(absent) != std::string::npos);
      CHECK(w.find("not found") != std::string::npos);
    }
  }
}
