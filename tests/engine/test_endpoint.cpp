// Engine URLs: every form Docker's DOCKER_HOST takes that kiln drives
// (unix, tcp plain/TLS, ssh), the TLS conventions (DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH, port 2376), and the malformed ones, each refused naming
// the URL. The transports themselves are tested against real daemons in
// tests/engine/test_remote_engines.sh.
#include "engine/engine.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace kiln::engine;
namespace fs = std::filesystem;

namespace {

// A directory with ca.pem, cert.pem and key.pem (contents do not matter to parse).
struct CertDir {
  fs::path dir;
  explicit CertDir(std::initializer_list<const char*> files = {"ca.pem", "cert.pem", "key.pem"}) {
    std::string tmpl = (fs::temp_directory_path() / "kiln-endpoint-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()));
    dir = tmpl;
    for (const char* f : files) std::ofstream(dir / f) << "x\n";
  }
  ~CertDir() { fs::remove_all(dir); }
};

// Sets an environment variable for one scope, restoring what was there.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(std::string n, const char* value) : name(std::move(n)) {
    if (const char* o = std::getenv(name.c_str())) old = o;
    value ? setenv(name.c_str(), value, 1) : unsetenv(name.c_str());
  }
  ~EnvVar() { old ? setenv(name.c_str(), old->c_str(), 1) : unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("unix engine URLs", "[engine][endpoint]") {
  auto ep = Endpoint::parse("unix:///run/user/1000/podman/podman.sock");
  CHECK(ep.transport == Endpoint::Transport::unix_socket);
  CHECK(ep.socket_path == "/run/user/1000/podman/podman.sock");
  CHECK(Endpoint::parse("unix:///var/run/docker.sock").uri() == "unix:///var/run/docker.sock");
  CHECK(Endpoint{"/x.sock"}.uri() == "unix:///x.sock");  // tests build endpoints by socket path
  CHECK_THROWS_WITH(Endpoint::parse("unix://docker.sock"), Catch::Contains("names an absolute path"));
}

TEST_CASE("tcp engine URLs: plain, and TLS by Docker's conventions", "[engine][endpoint]") {
  EnvVar home("HOME", "/nonexistent-home");  // ~/.docker must not leak in
  SECTION("plain, port as written or 2375") {
    auto ep = Endpoint::parse("tcp://10.0.0.1:2375");
    CHECK(ep.transport == Endpoint::Transport::tcp);
    CHECK(ep.host == "10.0.0.1");
    CHECK(ep.port == 2375);
    CHECK_FALSE(ep.tls);
    CHECK(ep.uri() == "tcp://10.0.0.1:2375");
    CHECK(Endpoint::parse("tcp://build-1.example.com").uri() == "tcp://build-1.example.com:2375");
    CHECK(Endpoint::parse("tcp://build-1:2375/").uri() == "tcp://build-1:2375");
    CHECK(Endpoint::parse("tcp://[::1]:2375").host == "::1");
    CHECK(Endpoint::parse("tcp://[::1]:2375").uri() == "tcp://[::1]:2375");
  }
  SECTION("port 2376 is TLS by convention; tls_verify = false says otherwise") {
    CHECK(Endpoint::parse("tcp://h:2376").tls);
    CHECK_FALSE(Endpoint::parse("tcp://h:2376", {.verify = false}).tls);
  }
  SECTION("DOCKER_TLS_VERIFY: TLS, the files from DOCKER_CERT_PATH, port 2376 when unwritten") {
    CertDir certs;
    EnvVar v("DOCKER_TLS_VERIFY", "1"), p("DOCKER_CERT_PATH", certs.dir.c_str());
    const TlsSettings tls = TlsSettings::from_env();
    CHECK(tls.verify == true);
    auto ep = Endpoint::parse("tcp://build-1", tls);
    CHECK(ep.tls);
    CHECK(ep.port == 2376);
    CHECK(ep.ca == (certs.dir / "ca.pem").string());
    CHECK(ep.cert == (certs.dir / "cert.pem").string());
    CHECK(ep.key == (certs.dir / "key.pem").string());
    CHECK(ep.uri() == "tcp://build-1:2376");  // no file names in the URL
  }
  SECTION("DOCKER_TLS_VERIFY=0 or unset: no TLS on a plain port") {
    EnvVar v("DOCKER_TLS_VERIFY", "0");
    CHECK(TlsSettings::from_env().verify == false);
    CHECK_FALSE(Endpoint::parse("tcp://h:2375", TlsSettings::from_env()).tls);
    EnvVar u("DOCKER_TLS_VERIFY", nullptr);
    CHECK_FALSE(TlsSettings::from_env().verify.has_value());
  }
  SECTION("~/.docker is the default certificate directory") {
    CertDir home_dir({});
    fs::create_directories(home_dir.dir / ".docker");
    std::ofstream(home_dir.dir / ".docker" / "ca.pem") << "x\n";
    EnvVar h("HOME", home_dir.dir.c_str());
    auto ep = Endpoint::parse("tcp://h:2376");
    CHECK(ep.ca == (home_dir.dir / ".docker" / "ca.pem").string());
    CHECK(ep.cert.empty());  // no client certificate there: none sent
  }
  SECTION("per-engine files turn TLS on and replace cert_path's") {
    CertDir certs, other({"my-ca.pem"});
    TlsSettings tls{.cert_path = certs.dir.string(), .ca = (other.dir / "my-ca.pem").string()};
    auto ep = Endpoint::parse("tcp://h:9999", tls);
    CHECK(ep.tls);
    CHECK(ep.ca == (other.dir / "my-ca.pem").string());
    CHECK(ep.cert == (certs.dir / "cert.pem").string());
  }
  SECTION("a named file that is missing, or a cert without its key, is refused") {
    CHECK_THROWS_WITH(Endpoint::parse("tcp://h:2376", {.ca = "/nonexistent/ca.pem"}),
                      Catch::Contains("engine tcp://h:2376: ca file /nonexistent/ca.pem does not exist"));
    CertDir only_cert({"cert.pem"});
    CHECK_THROWS_WITH(Endpoint::parse("tcp://h:2376", {.cert = (only_cert.dir / "cert.pem").string()}),
                      Catch::Contains("needs both cert and key"));
  }
}

TEST_CASE("ssh engine URLs", "[engine][endpoint]") {
  auto ep = Endpoint::parse("ssh://root@127.0.0.1:2222");
  CHECK(ep.transport == Endpoint::Transport::ssh);
  CHECK(ep.user == "root");
  CHECK(ep.host == "127.0.0.1");
  CHECK(ep.port == 2222);
  CHECK(ep.socket_path == "/var/run/docker.sock");  // the remote engine's
  CHECK(ep.uri() == "ssh://root@127.0.0.1:2222");
  auto bare = Endpoint::parse("ssh://build-1");
  CHECK(bare.user.empty());
  CHECK(bare.port == 0);  // ssh's own default (and ~/.ssh/config)
  CHECK(bare.uri() == "ssh://build-1");
  auto other = Endpoint::parse("ssh://me@build-1/run/user/1000/docker.sock");
  CHECK(other.socket_path == "/run/user/1000/docker.sock");
  CHECK(other.uri() == "ssh://me@build-1/run/user/1000/docker.sock");
}

TEST_CASE("malformed engine URLs are refused naming them", "[engine][endpoint]") {
  CHECK_THROWS_WITH(Endpoint::parse("/var/run/docker.sock"), Catch::Contains("not a URL"));
  CHECK_THROWS_AS(Endpoint::parse(""), std::invalid_argument);
  CHECK_THROWS_WITH(Endpoint::parse("npipe:////./pipe/docker_engine"),
                    Catch::Contains("engine npipe:////./pipe/docker_engine: kiln cannot drive npipe:// engines"));
  CHECK_THROWS_WITH(Endpoint::parse("fd://"), Catch::Contains("kiln cannot drive fd:// engines"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://h:0"), Catch::Contains("port '0' is not a number from 1 to 65535"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://h:70000"), Catch::Contains("port '70000'"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://h:abc"), Catch::Contains("port 'abc'"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://h:"), Catch::Contains("':' without a port"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://:2375"), Catch::Contains("no host"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://h:2375/v1.41"), Catch::Contains("without a user or a path"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://u@h:2375"), Catch::Contains("without a user or a path"));
  CHECK_THROWS_WITH(Endpoint::parse("tcp://[::1:2375"), Catch::Contains("closed with ']'"));
  CHECK_THROWS_WITH(Endpoint::parse("ssh://"), Catch::Contains("no host"));
  CHECK_THROWS_WITH(Endpoint::parse("ssh://me@"), Catch::Contains("no host"));
  // Nothing that ssh would read as an option.
  CHECK_THROWS_WITH(Endpoint::parse("ssh://-oProxyCommand=x"), Catch::Contains("is not a host name"));
  CHECK_THROWS_WITH(Endpoint::parse("ssh://-l@h"), Catch::Contains("is not a user name"));
  CHECK_THROWS_WITH(Endpoint::parse("ssh://a b@h"), Catch::Contains("is not a user name"));
}

TEST_CASE("DOCKER_HOST through from_env, with DOCKER_TLS_VERIFY", "[engine][endpoint]") {
  EnvVar home("HOME", "/nonexistent-home");
  {
    EnvVar h("DOCKER_HOST", "unix:///tmp/x.sock");
    CHECK(Endpoint::from_env().socket_path == "/tmp/x.sock");
    CHECK(Endpoint::from_env().uri() == "unix:///tmp/x.sock");
  }
  {
    EnvVar h("DOCKER_HOST", "tcp://127.0.0.1:12345"), v("DOCKER_TLS_VERIFY", "1");
    CHECK(Endpoint::from_env().tls);
    CHECK(Endpoint::from_env().uri() == "tcp://127.0.0.1:12345");
  }
  {
    EnvVar h("DOCKER_HOST", "ssh://me@h:22");
    CHECK(Endpoint::from_env().uri() == "ssh://me@h:22");
  }
  {
    EnvVar h("DOCKER_HOST", "npipe:////./pipe/docker_engine");
    CHECK_THROWS_WITH(Endpoint::from_env(), Catch::StartsWith("DOCKER_HOST: engine npipe://"));
  }
  EnvVar h("DOCKER_HOST", nullptr);
  CHECK(Endpoint::from_env().socket_path == "/var/run/docker.sock");
}

TEST_CASE("docker_cli_env points the docker CLI at a TLS engine with links named as it wants", "[engine][endpoint]") {
  CertDir certs, scratch({});
  EnvVar stray("DOCKER_CONTEXT", "elsewhere"), v("DOCKER_TLS_VERIFY", nullptr);
  auto ep = Endpoint::parse("tcp://h:2376", {.cert_path = certs.dir.string()});
  auto env = docker_cli_env(ep, scratch.dir);
  auto has = [&](const std::string& kv) { return std::find(env.begin(), env.end(), kv) != env.end(); };
  CHECK(has("DOCKER_HOST=tcp://h:2376"));
  CHECK(has("DOCKER_TLS_VERIFY=1"));
  const fs::path dir = scratch.dir / "docker-tls";
  CHECK(has("DOCKER_CERT_PATH=" + dir.string()));
  CHECK(fs::read_symlink(dir / "ca.pem") == certs.dir / "ca.pem");
  CHECK(fs::read_symlink(dir / "key.pem") == certs.dir / "key.pem");
  CHECK(std::none_of(env.begin(), env.end(), [](const std::string& kv) { return kv.starts_with("DOCKER_CONTEXT="); }));
}
