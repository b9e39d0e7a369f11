// Unit tests of the registry room: parsers, references, Docker config
// credentials (auths, credHelpers/credsStore with a helper on PATH) and the
// engine's X-Registry-Auth value.
#include "registry/internal.h"
#include "registry/registry.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace kiln::registry;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kiln-reg-unit-XXXXXX").string();
    dir = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(dir); }
  void write(const std::string& name, const std::string& text, bool exec = false) {
    std::ofstream(dir / name) << text;
    if (exec) fs::permissions(dir / name, fs::perms::owner_all);
  }
};

// Puts `dir` first on PATH for the scope of the object.
struct PathPrefix {
  std::string old;
  explicit PathPrefix(const fs::path& dir) {
    old = std::getenv("PATH") ? std::getenv("PATH") : "";
    setenv("PATH", (dir.string() + ":" + old).c_str(), 1);
  }
  ~PathPrefix() { setenv("PATH", old.c_str(), 1); }
};

}  // namespace

TEST_CASE("base64 round trips, standard and url alphabets") {
  using namespace kiln::registry::detail;
  CHECK(base64_encode("user:pass") == "dXNlcjpwYXNz");
  CHECK(base64_encode("{}") == "e30=");
  CHECK(base64_encode("a") == "YQ==");
  CHECK(base64_encode("\xfb\xff", true) == "-_8=");
  CHECK(base64_encode("\xfb\xff") == "+/8=");
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\x01\xfe\xff\x00z"}) {
    CHECK(base64_decode(base64_encode(s)) == s);
    CHECK(base64_decode(base64_encode(s, true)) == s);
  }
  CHECK(base64_decode("dXNlcjpwYXNz") == "user:pass");
  CHECK_FALSE(base64_decode("a$b").has_value());
}

TEST_CASE("WWW-Authenticate challenges") {
  using namespace kiln::registry::detail;
  auto c = parse_challenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->params["realm"] == "https://auth.example.com/token");
  CHECK(c->params["service"] == "registry.example.com");
  CHECK(c->params["scope"] == "repository:a/b:pull,push");
  auto e = parse_challenge(R"(Bearer realm="r", error="insufficient_scope", scope="x \"q\"")");
  REQUIRE(e);
  CHECK(e->params["error"] == "insufficient_scope");
  CHECK(e->params["scope"] == "x \"q\"");
  auto b = parse_challenge(R"(Basic realm="kiln-test")");
  REQUIRE(b);
  CHECK(b->scheme == "basic");
  CHECK(b->params["realm"] == "kiln-test");
  CHECK_FALSE(parse_challenge("").has_value());
}

TEST_CASE("Link, Retry-After, config keys, URLs") {
  using namespace kiln::registry::detail;
  CHECK(parse_link_next(R"(</v2/x/tags/list?n=2&last=b>; rel="next")") == "/v2/x/tags/list?n=2&last=b");
  CHECK(parse_link_next(R"(</a>; rel="prev", </b>; rel="next")") == "/b");
  CHECK(parse_link_next("").empty());
  CHECK(parse_retry_after("3") == std::chrono::milliseconds(3000));
  CHECK_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").has_value());
  CHECK(config_key_host("https://index.docker.io/v1/") == "index.docker.io");
  CHECK(config_key_host("http://Reg.Example:5000/v2/") == "reg.example:5000");
  CHECK(config_key_host("127.0.0.1:5000") == "127.0.0.1:5000");
  CHECK(url_origin("https://a:1/x?y") == "https://a:1");
  CHECK(resolve_url("http://a:1/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/u?_state=s") ==
        "http://a:1/v2/x/blobs/uploads/u?_state=s");
  CHECK(resolve_url("http://a:1/v2/x", "http://b/y") == "http://b/y");
  CHECK(resolve_url("https://a/v2/x", "//c/z") == "https://c/z");
}

TEST_CASE("image references") {
  auto r = parse_reference("127.0.0.1:5000/kiln/torch:2.6-cuda12.4");
  CHECK(r.host == "127.0.0.1:5000");
  CHECK(r.repo == "kiln/torch");
  CHECK(r.tag == "2.6-cuda12.4");
  auto d = parse_reference("ghcr.io/a/b@sha256:" + std::string(64, 'a'));
  CHECK(d.host == "ghcr.io");
  CHECK(d.ref() == "sha256:" + std::string(64, 'a'));
  auto h = parse_reference("ubuntu");
  CHECK(h.host == "docker.io");
  CHECK(h.repo == "library/ubuntu");
  CHECK(h.tag == "latest");
  CHECK(parse_reference("localhost/x").host == "localhost");
  CHECK_THROWS_AS(parse_reference("reg.io/Upper:1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_reference("reg.io/x@sha256:abc"), std::invalid_argument);
  CHECK(fallback_tag("sha256:" + std::string(64, 'b')) == "sha256-" + std::string(64, 'b') + ".kiln");
  CHECK(fallback_tag("sha256:" + std::string(64, 'b'), "sbom") == "sha256-" + std::string(64, 'b') + ".sbom");
}

TEST_CASE("loopback hosts: the registries Docker speaks plain HTTP to unasked") {
  for (const char* host : {"localhost", "LocalHost:5000", "127.0.0.1", "127.0.0.1:5000", "127.1.2.3:80", "[::1]", "[::1]:5000"})
    CHECK(is_loopback_host(host));
  for (const char* host : {"registry.example.com", "10.0.0.1:5000", "127.0.0.1.nip.io", "localhost.example.com:5000",
                           "128.0.0.1", "[::2]:5000", "127.evil.com"})
    CHECK_FALSE(is_loopback_host(host));
  // A reference's host is what gets judged.
  CHECK(is_loopback_host(parse_reference("[::1]:5000/kiln/x:1").host));
  CHECK_FALSE(is_loopback_host(parse_reference("kiln/x:1").host));  // docker.io
}

TEST_CASE("credentials from auths, with Docker Hub aliases") {
  TempDir t;
  t.write("config.json", R"({"auths": {
      "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
      "http://reg.example:5000": {"auth": "dTpwOmFzcw=="},
      "tok.example": {"identitytoken": "refresh-xyz"}}})");
  auto hub = lookup_credentials("docker.io", t.dir);
  REQUIRE(hub);
  CHECK(hub->username == "hub");
  CHECK(hub->password == "hubpw");
  auto r = lookup_credentials("reg.example:5000", t.dir);
  REQUIRE(r);
  CHECK(r->username == "u");
  CHECK(r->password == "p:ass");  // only the first ':' splits
  auto tok = lookup_credentials("tok.example", t.dir);
  REQUIRE(tok);
  CHECK(tok->identity_token == "refresh-xyz");
  CHECK_FALSE(lookup_credentials("other.example", t.dir).has_value());
  TempDir empty;
  CHECK_FALSE(lookup_credentials("reg.example:5000", empty.dir).has_value());
}

TEST_CASE("a bad auth value is reported without quoting it") {
  TempDir t;
  t.write("config.json", R"({"auths": {"reg.example": {"auth": "bm9jb2xvbnNlY3JldA=="}}})");  // "nocolonsecret"
  try {
    lookup_credentials("reg.example", t.dir);
    FAIL("expected AuthError");
  } catch (const AuthError& e) {
    std::string w = e.what();
    CHECK(w.find("bm9jb2xvbnNlY3JldA") == std::string::npos);
    CHECK(w.find("nocolonsecret") == std::string::npos);
    CHECK(w.find("config.json") != std::string::npos);
  }
}

TEST_CASE("credHelpers and credsStore run docker-credential-NAME get with the host on stdin") {
  TempDir bin, cfg;
  // The helper records its argv and stdin, and knows one server.
  bin.write("docker-credential-kilntest", R"(#!/bin/sh
read server
echo "$# $1 $server" >> ")" + (bin.dir / "calls").string() + R"("
case "$server" in
  reg.example:5000) echo '{"ServerURL":"reg.example:5000","Username":"helperuser","Secret":"helper-secret"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"idtok"}' ;;
  broken.example) echo 'oops' >&2; exit 3 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
)",
            true);
  PathPrefix path(bin.dir);
  cfg.write("config.json", R"({"credHelpers": {"reg.example:5000": "kiltest-missing", "tok.example": "kilntest"},
                               "credsStore": "kilntest",
                               "auths": {"fallback.example": {"auth": "Zjpn"}}})");
  // credHelpers names a helper that does not exist: an AuthError, not a silent anonymous.
  CHECK_THROWS_AS(lookup_credentials("reg.example:5000", cfg.dir), AuthError);
  cfg.write("config.json", R"({"credHelpers": {"tok.example": "kilntest"}, "credsStore": "kilntest",
                               "auths": {"fallback.example": {"auth": "Zjpn"}}})");
  auto r = lookup_credentials("reg.example:5000", cfg.dir);  // via credsStore
  REQUIRE(r);
  CHECK(r->username == "helperuser");
  CHECK(r->password == "helper-secret");
  auto t = lookup_credentials("tok.example", cfg.dir);
  REQUIRE(t);
  CHECK(t->identity_token == "idtok");
  CHECK(t->username.empty());
  auto f = lookup_credentials("fallback.example", cfg.dir);  // store knows none: auths
  REQUIRE(f);
  CHECK(f->username == "f");
  CHECK_FALSE(lookup_credentials("none.example", cfg.dir).has_value());
  CHECK_THROWS_AS(lookup_credentials("broken.example", cfg.dir), AuthError);
  std::ifstream calls(bin.dir / "calls");
  std::string first;
  std::getline(calls, first);
  CHECK(first == "1 get reg.example:5000");  // one argument, "get"; the host came on stdin
}

TEST_CASE("a helper named by kiln's config is asked first; when it knows nothing, the Docker config decides") {
  TempDir bin, cfg;
  bin.write("docker-credential-kilnsite", R"(#!/bin/sh
read server
case "$server" in
  site.example:5000) echo '{"ServerURL":"site.example:5000","Username":"siteuser","Secret":"site-secret"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
)",
            true);
  PathPrefix path(bin.dir);
  cfg.write("config.json", R"({"auths": {"site.example:5000": {"auth": "ZG9ja2VyOnB3"}, "other.example": {"auth": "ZG9ja2VyOnB3"}}})");
  auto s = lookup_credentials("site.example:5000", cfg.dir, "kilnsite");
  REQUIRE(s);
  CHECK(s->username == "siteuser");  // the helper's, not auths'
  CHECK(s->password == "site-secret");
  auto o = lookup_credentials("other.example", cfg.dir, "kilnsite");
  REQUIRE(o);
  CHECK(o->username == "docker");  // "credentials not found": the Docker config's auths
  // A helper that does not exist is an error, not a silent fall-through.
  CHECK_THROWS_AS(lookup_credentials("site.example:5000", cfg.dir, "kiln-no-such-helper"), AuthError);
}

TEST_CASE("helper names cannot smuggle paths or shell words") {
  TempDir cfg;
  cfg.write("config.json", R"({"credsStore": "x; touch /tmp/kiln-pwned"})");
  CHECK_THROWS_AS(lookup_credentials("reg.example", cfg.dir), AuthError);
  cfg.write("config.json", R"({"credsStore": "../../bin/sh"})");
  CHECK_THROWS_AS(lookup_credentials("reg.example", cfg.dir), AuthError);
}

TEST_CASE("the engine's X-Registry-Auth value") {
  CHECK(engine_auth(std::nullopt, "reg.example") == "e30=");
  Credentials c{"alice", "p@ss/+word?", ""};
  std::string v = engine_auth(c, "reg.example:5000");
  CHECK(v.find('+') == std::string::npos);
  CHECK(v.find('/') == std::string::npos);
  auto j = nlohmann::json::parse(*kiln::registry::detail::base64_decode(v));
  CHECK(j["username"] == "alice");
  CHECK(j["password"] == "p@ss/+word?");
  CHECK(j["serveraddress"] == "reg.example:5000");
  auto hub = nlohmann::json::parse(*kiln::registry::detail::base64_decode(engine_auth(c, "docker.io")));
  CHECK(hub["serveraddress"] == "https://index.docker.io/v1/");
  Credentials t{"", "", "idtok"};
  auto tj = nlohmann::json::parse(*kiln::registry::detail::base64_decode(engine_auth(t, "x")));
  CHECK(tj["identitytoken"] == "idtok");
  CHECK_FALSE(tj.contains("password"));
}
