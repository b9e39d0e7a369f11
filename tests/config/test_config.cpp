// kiln.toml: which file is used (upward search, XDG, named), how it merges
// into a matrix (the matrix wins per named entry), and its errors at
// file:line:col.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

// A fresh directory tree per test, removed afterwards.
struct TempTree {
  fs::path root;
  TempTree() {
    static int n = 0;
    root = fs::temp_directory_path() / ("kiln-config-test-" + std::to_string(getpid()) + "-" + std::to_string(++n));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~TempTree() { fs::remove_all(root); }
  fs::path write(const std::string& rel, const std::string& text = "") {
    fs::path p = root / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir(const std::string& rel) {
    fs::create_directories(root / rel);
    return root / rel;
  }
};

const char* kMatrixHead = "name = \"m\"\n[axes]\ncuda = [\"12.4\"]\nos = [\"ubuntu22.04\"]\nflavor = [\"runtime\"]\n";

std::string errors_of(const std::string& text) {
  try {
    config::parse_text(text, "kiln.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("kiln.toml is found from the working directory upward, and the checkout bounds the search", "[config][find]") {
  TempTree t;
  t.write("outside/kiln.toml");
  t.dir("outside/repo/.git");
  fs::path deep = t.dir("outside/repo/src/a/b");
  config::Lookup w;
  w.cwd = deep;
  // .git marks the checkout: the kiln.toml above it belongs to someone else.
  CHECK(config::find(w).path.empty());

  fs::path mine = t.write("outside/repo/kiln.toml");
  auto s = config::find(w);
  CHECK(s.path == mine.string());
  CHECK(s.how == "found upward from " + deep.string());

  // The nearest wins.
  fs::path nearer = t.write("outside/repo/src/kiln.toml");
  CHECK(config::find(w).path == nearer.string());

  // Without any .git the search goes up to /.
  TempTree u;
  fs::path top = u.write("kiln.toml");
  w.cwd = u.dir("x/y");
  CHECK(config::find(w).path == top.string());
}

TEST_CASE("without kiln.toml: $XDG_CONFIG_HOME/kiln/config.toml, else ~/.config/kiln/config.toml", "[config][find]") {
  TempTree t;
  config::Lookup w;
  w.cwd = t.dir("work/.git").parent_path();
  w.home = t.dir("home").string();
  CHECK(config::find(w).path.empty());

  fs::path home_cfg = t.write("home/.config/kiln/config.toml");
  auto s = config::find(w);
  CHECK(s.path == home_cfg.string());
  CHECK(s.how == "~/.config");

  fs::path xdg_cfg = t.write("xdg/kiln/config.toml");
  w.xdg_config_home = (t.root / "xdg").string();
  s = config::find(w);
  CHECK(s.path == xdg_cfg.string());
  CHECK(s.how == "$XDG_CONFIG_HOME");

  // A set $XDG_CONFIG_HOME without the file does not fall back to ~/.config
  // (the XDG rule: it replaces the default); a relative one is ignored.
  fs::remove(xdg_cfg);
  CHECK(config::find(w).path.empty());
  w.xdg_config_home = "relative/xdg";
  CHECK(config::find(w).path == home_cfg.string());

  // A kiln.toml upward comes before either.
  fs::path local = t.write("work/kiln.toml");
  CHECK(config::find(w).path == local.string());
}

TEST_CASE("--config and KILN_CONFIG name the file; a missing named file is an error; --no-config reads none", "[config][find]") {
  TempTree t;
  config::Lookup w;
  w.cwd = t.dir("work");
  t.write("work/kiln.toml");
  fs::path env_file = t.write("env.toml");
  fs::path flag_file = t.write("flag.toml");
  w.kiln_config = env_file.string();
  CHECK(config::find(w).path == env_file.string());
  CHECK(config::find(w).how == "KILN_CONFIG");
  w.explicit_path = flag_file.string();
  CHECK(config::find(w).path == flag_file.string());
  CHECK(config::find(w).how == "--config");

  w.explicit_path = (t.root / "nope.toml").string();
  try {
    config::find(w);
    FAIL("a missing --config file was accepted");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("nope.toml: error: no such config file (named by --config)") != std::string::npos);
  }
  w.disabled = true;
  CHECK(config::find(w).path.empty());
}

TEST_CASE("the matrix wins per runner name; the config's other runners are added", "[config][merge]") {
  auto c = config::parse_text(
      "[runners.h100]\nengine = \"unix:///cfg.sock\"\ngpu = \"nvidia\"\ngpu_classes = [\"sm_90\"]\n"
      "[runners.builder]\nengine = \"unix:///var/run/docker.sock\"\nbackend = \"buildx\"\n",
      "kiln.toml");
  auto m = matrix::parse_matrix_text(std::string(kMatrixHead) + "[runners.h100]\nengine = \"unix:///mine.sock\"\n", "m.toml");
  auto e = config::merge(m, c);
  REQUIRE(m.runners.size() == 2);
  CHECK(m.runners[0].name == "h100");
  CHECK(m.runners[0].engine == "unix:///mine.sock");  // the matrix's, whole: no gpu from the config's
  CHECK(m.runners[0].gpu == kiln::matrix::GpuMode::none);
  CHECK(m.runners[1].name == "builder");
  CHECK(m.runners[1].backend == kiln::matrix::Backend::buildx);
  REQUIRE(e.runners.size() == 2);
  CHECK(e.runners[0].from.str() == "m.toml:6:1");
  REQUIRE(e.runners[0].replaces);
  CHECK(e.runners[0].replaces->str() == "kiln.toml:1:1");
  CHECK(e.runners[1].from.str() == "kiln.toml:5:1");
  CHECK_FALSE(e.runners[1].replaces);
  // The config's GPU classes are checked by the plan at the config's positions.
  REQUIRE(m.gpu_classes_named.size() == 1);
  CHECK(m.gpu_classes_named[0].where.str() == "kiln.toml:4:16");
}

TEST_CASE("registry: the matrix's url wins; the config's insecure and helper come only with the config's url",
          "[config][merge]") {
  auto c = config::parse_text(
      "[registry]\nurl = \"reg.site:5000\"\ninsecure = true\ncredential_helper = \"pass\"\n"
      "[credential_helpers]\n\"ghcr.io\" = \"gh\"\n",
      "kiln.toml");

  SECTION("a matrix without [registry] gets the config's") {
    auto m = matrix::parse_matrix_text(kMatrixHead, "m.toml");
    auto e = config::merge(m, c);
    CHECK(m.registry.url == "reg.site:5000");
    CHECK(m.registry.insecure);
    CHECK(m.registry.credential_helper == "pass");
    CHECK(e.url.from.str() == "kiln.toml:2:7");
    CHECK(e.insecure.from.str() == "kiln.toml:3:12");
    CHECK(e.credential_helper.from.str() == "kiln.toml:4:21");
    CHECK(e.repository.value == "kiln/m");
    CHECK(e.repository.from.file.empty());  // kiln's default
  }
  SECTION("a matrix's repository alone takes the config's url") {
    auto m = matrix::parse_matrix_text(std::string(kMatrixHead) + "[registry]\nrepository = \"ml/m\"\n", "m.toml");
    auto e = config::merge(m, c);
    CHECK(m.registry.url == "reg.site:5000");
    CHECK(m.registry.repository == "ml/m");
    CHECK(e.repository.from.str() == "m.toml:7:14");
  }
  SECTION("a matrix's url wins, without the config's insecure or helper; a per-host helper applies") {
    auto m = matrix::parse_matrix_text(std::string(kMatrixHead) + "[registry]\nurl = \"ghcr.io/team\"\nrepository = \"ml/m\"\n",
                                       "m.toml");
    auto e = config::merge(m, c);
    CHECK(m.registry.url == "ghcr.io/team");
    CHECK_FALSE(m.registry.insecure);
    CHECK(e.insecure.from.file.empty());
    CHECK(m.registry.credential_helper == "gh");
    CHECK(e.credential_helper.from.str() == "kiln.toml:6:13");
  }
  SECTION("a matrix naming the config's url gets its insecure and helper, unless it writes them") {
    auto m = matrix::parse_matrix_text(
        std::string(kMatrixHead) + "[registry]\nurl = \"reg.site:5000\"\ninsecure = false\n", "m.toml");
    auto e = config::merge(m, c);
    CHECK_FALSE(m.registry.insecure);
    CHECK(e.insecure.from.str() == "m.toml:8:12");
    CHECK(m.registry.credential_helper == "pass");
    CHECK(e.url.from.str() == "m.toml:7:7");
  }
  SECTION("the matrix's own helper wins over [credential_helpers]") {
    auto m = matrix::parse_matrix_text(
        std::string(kMatrixHead) + "[registry]\nurl = \"ghcr.io\"\ncredential_helper = \"osxkeychain\"\n", "m.toml");
    auto e = config::merge(m, c);
    CHECK(m.registry.credential_helper == "osxkeychain");
    CHECK(e.credential_helper.from.str() == "m.toml:8:21");
  }
  SECTION("use_config = false: nothing merged") {
    auto m = matrix::parse_matrix_text(std::string("use_config = false\n") + kMatrixHead, "m.toml");
    auto e = config::merge(m, c);
    CHECK_FALSE(e.used);
    CHECK(e.opted_out.str() == "m.toml:1:14");
    CHECK(m.registry.url.empty());
    CHECK(m.registry.credential_helper.empty());
  }
}

TEST_CASE("a matrix's [registry] without a url needs one from the config", "[config][merge]") {
  auto m = matrix::parse_matrix_text(std::string(kMatrixHead) + "[registry]\nrepository = \"ml/m\"\n", "m.toml");
  try {
    config::merge(m, config::Config{});
    FAIL("a [registry] without url was accepted");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("m.toml:6:1: error: [registry] names no url (give one here, or in a config file") !=
          std::string::npos);
  }
}

TEST_CASE("config state_dir is relative to the config file", "[config]") {
  auto c = config::parse_text("state_dir = \"state\"\n", "/site/kiln.toml");
  REQUIRE(c.state_dir);
  CHECK(c.state_dir->text == "/site/state");
  auto m = matrix::parse_matrix_text(kMatrixHead, "m.toml");
  CHECK(config::merge(m, c).state_dir.value == "/site/state");
}

TEST_CASE("config errors are the matrix reader's, at file:line:col", "[config][bad-input]") {
  CHECK(errors_of("stat_dir = \"x\"\n") == "kiln.toml:1:1: error: unknown key 'stat_dir' (did you mean 'state_dir'?)");
  CHECK(errors_of("[runners.a]\nbackend = \"kaniko\"\n") ==
        "kiln.toml:2:11: error: backend must be \"engine\" or \"buildx\"");
  CHECK(errors_of("[runners.a]\ngpu_classes = [\"9.0\"]\n") ==
        "kiln.toml:2:16: error: GPU class \"9.0\" must be written \"sm_90\"");
  CHECK(errors_of("[registry]\nurl = \"r:5000\"\nrepository = \"x/y\"\n") ==
        "kiln.toml:3:14: error: [registry] repository names one matrix's images; set it in the matrix, not here");
  CHECK(errors_of("[registry]\nurl = \"https://r\"\n").find("kiln.toml:2:7: error: registry.url") == 0);
  // A secret is refused without being quoted back.
  std::string e = errors_of("[registry]\nurl = \"r:5000\"\npassword = \"hunter2\"\n");
  CHECK(e.find("kiln.toml:3:12: error: [registry] password: kiln never reads credentials from its files") == 0);
  CHECK(e.find("hunter2") == std::string::npos);
  CHECK(errors_of("[registry]\nurl = \"r\"\ncredential_helper = \"docker-credential-pass\"\n") ==
        "kiln.toml:3:21: error: credential_helper is the helper's NAME, as in Docker's credHelpers: write \"pass\" "
        "(kiln runs docker-credential-pass)");
  CHECK(errors_of("[credential_helpers]\n\"ghcr.io\" = 1\n") ==
        "kiln.toml:2:13: error: [credential_helpers] \"ghcr.io\" must be a helper's name (a string)");
  // TOML syntax, at toml++'s position.
  CHECK(errors_of("[runners.a]\nengine = \n").find("kiln.toml:2:") == 0);
}

TEST_CASE("a runner's TLS keys: paths beside the file, ~ is $HOME, never their contents", "[config][tls]") {
  auto c = config::parse_text(
      "[runners.farm]\nengine = \"tcp://build-1:2376\"\ntls_verify = true\ncert_path = \"certs/build-1\"\n"
      "ca = \"/etc/kiln/ca.pem\"\ncert = \"~/kiln/cert.pem\"\nkey = \"../keys/key.pem\"\n",
      "/site/conf/kiln.toml");
  REQUIRE(c.runners.size() == 1);
  const auto& r = c.runners[0];
  CHECK(r.tls_verify == true);
  CHECK(r.cert_path == "/site/conf/certs/build-1");
  CHECK(r.ca == "/etc/kiln/ca.pem");
  const char* home = std::getenv("HOME");
  if (home && *home) CHECK(r.cert == (fs::path(home) / "kiln/cert.pem").lexically_normal().string());
  CHECK(r.key == "/site/keys/key.pem");
  CHECK(errors_of("[runners.a]\nengine = \"tcp://h:2376\"\ntls_verify = \"yes\"\n").find("kiln.toml:3:") == 0);
  CHECK(errors_of("[runners.a]\ncacert = \"x\"\n").find("unknown key 'cacert'") != std::string::npos);
}
