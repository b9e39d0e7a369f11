// Exit codes that mean one thing: main() runs every verb through
// cli::guarded(), so these cases are exactly what `kiln` exits with.
//
// Kiln's own bugs (exit 70) are triggered here by real misuse of the
// libraries kiln's code uses -- an empty std::optional read, a JSON value
// read as the wrong type, a broken invariant -- not by a debug hook in the
// binary. The end-to-end paths that reached 70 before this test existed
// were fixed instead of kept as triggers: `kiln status` reading a run report
// whose tags are not strings (now ignored), and a DOCKER_HOST, image
// reference or KILN_*_TIMEOUT value kiln refuses (std::invalid_argument:
// the user's input, exit 2; tests/cli/test_cli_ux.sh checks that through
// the binary).
#include <catch2/catch.hpp>

#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/exit_status.h"
#include "util/diag.h"
#include "util/errors.h"

using namespace kiln;

namespace {

struct Ended {
  int code;
  std::string out, err;
};

Ended run(bool json, const std::function<int()>& body) {
  std::ostringstream out, err;
  int code = cli::guarded(json, body, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("a verb's own exit code passes through") {
  CHECK(run(false, [] { return 0; }).code == 0);
  CHECK(run(false, [] { return 1; }).code == 1);
}

TEST_CASE("kiln's own bugs exit 70 (EX_SOFTWARE), never 2") {
  SECTION("an empty optional read") {
    auto e = run(false, [] {
      std::optional<int> none;
      return none.value();
    });
    CHECK(e.code == cli::kExitBug);
    CHECK(e.code == 70);
    CHECK_THAT(e.err, Catch::Contains("a bug in kiln, please report it"));
  }
  SECTION("a JSON value read as the wrong type") {
    auto e = run(false, [] { return nlohmann::json("five").get<int>(); });
    CHECK(e.code == 70);
  }
  SECTION("a vector read past its end") {
    auto e = run(false, [] { return std::vector<int>{}.at(3); });
    CHECK(e.code == 70);
  }
  SECTION("something that is not a std::exception") {
    auto e = run(false, []() -> int { throw 42; });
    CHECK(e.code == 70);
  }
  SECTION("under --format json the document says so on stdout") {
    auto e = run(true, [] { return nlohmann::json::object().at("missing").get<int>(); });
    REQUIRE(e.code == 70);
    auto doc = nlohmann::json::parse(e.out);
    CHECK(doc["schema"] == "kiln.error/v1");
    CHECK(doc["kind"] == "bug");
    CHECK(doc["exit_code"] == 70);
  }
}

TEST_CASE("bad input and a failing environment exit 2") {
  auto input = run(true, []() -> int { throw InputError(Location{"m.toml", 3, 7}, "unknown key 'cuda_'"); });
  CHECK(input.code == 2);
  CHECK_THAT(input.err, Catch::Contains("m.toml:3:7: error: unknown key 'cuda_'"));
  auto doc = nlohmann::json::parse(input.out);
  CHECK(doc["kind"] == "input");
  CHECK(doc["diagnostics"][0]["line"] == 3);

  // kiln's parsers refuse a value the user gave with std::invalid_argument
  // (a logic_error by type, but the user's input by meaning).
  auto refused = run(true, []() -> int { throw std::invalid_argument("DOCKER_HOST: tcp:// needs TLS"); });
  CHECK(refused.code == 2);
  CHECK(nlohmann::json::parse(refused.out)["kind"] == "input");

  auto env = run(true, []() -> int { throw EnvironmentError("engine unix:///x.sock: connection refused"); });
  CHECK(env.code == 2);
  CHECK(nlohmann::json::parse(env.out)["kind"] == "environment");

  auto other = run(false, []() -> int { throw std::runtime_error("registry said 500"); });
  CHECK(other.code == 2);
  CHECK(other.out.empty());  // no JSON asked for: stdout stays empty
}
