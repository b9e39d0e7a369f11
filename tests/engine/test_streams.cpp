// The incremental parsers, fed every possible split of real engine output.
#include "engine/internal.h"

#include <catch2/catch.hpp>

using namespace kiln::engine;
using namespace kiln::engine::detail;
using nlohmann::json;

namespace {

// Feeds `data` in two pieces split at every offset, and byte by byte.
template <class Feed>
void each_split(const std::string& data, Feed&& feed) {
  for (size_t cut = 0; cut <= data.size(); ++cut)
    feed(std::vector<std::string>{data.substr(0, cut), data.substr(cut)});
  std::vector<std::string> bytes;
  for (char c : data) bytes.emplace_back(1, c);
  feed(bytes);
}

// What the engine really sends for a failing RUN (Docker 20.10, captured).
const std::string kFailingBuild =
    R"({"stream":"Step 1/2 : FROM kiln-bb:1"})" "\n"
    R"({"stream":"\n"})" "\n"
    R"({"stream":" ---\u003e 67d5f40523d4\n"})" "\n"
    R"({"stream":"Step 2/2 : RUN echo out; echo err \u003e\u00262; false"})" "\n"
    R"({"stream":"\n"})" "\n"
    R"({"stream":"\u001b[91merr\n\u001b[0m"})" "\n"
    R"({"errorDetail":{"code":1,"message":"The command returned a non-zero code: 1"},"error":"The command returned a non-zero code: 1"})" "\n";

}  // namespace

TEST_CASE("JsonSplitter finds every NDJSON message whatever the split", "[engine][streams]") {
  each_split(kFailingBuild, [](const std::vector<std::string>& pieces) {
    std::vector<json> got;
    std::vector<std::string> text;
    JsonSplitter s([&](const json& j) { got.push_back(j); }, [&](std::string_view t) { text.emplace_back(t); });
    for (const auto& p : pieces) s.feed(p);
    s.finish();
    REQUIRE(got.size() == 7);
    CHECK(got[3]["stream"] == "Step 2/2 : RUN echo out; echo err >&2; false");
    CHECK(got[6]["errorDetail"]["message"] == "The command returned a non-zero code: 1");
    CHECK(text.empty());
  });
}

TEST_CASE("JsonSplitter reads pretty-printed objects and text lines between them", "[engine][streams]") {
  const std::string raw =
      "{\n  \"vertexes\": [\n    {\n      \"name\": \"[1/2] FROM x {not a brace}\",\n"
      "      \"digest\": \"sha256:1\"\n    }\n  ]\n}\n{\n  \"logs\": []\n}\n"
      "ERROR: failed to solve: \"quoted\" {x}\n";
  each_split(raw, [](const std::vector<std::string>& pieces) {
    std::vector<json> got;
    std::vector<std::string> text;
    JsonSplitter s([&](const json& j) { got.push_back(j); }, [&](std::string_view t) { text.emplace_back(t); });
    for (const auto& p : pieces) s.feed(p);
    s.finish();
    REQUIRE(got.size() == 2);
    CHECK(got[0]["vertexes"][0]["name"] == "[1/2] FROM x {not a brace}");
    REQUIRE(text.size() == 1);
    CHECK(text[0] == "ERROR: failed to solve: \"quoted\" {x}");
  });
}

TEST_CASE("LineAssembler joins stream fragments into lines", "[engine][streams]") {
  std::vector<std::string> lines;
  LineAssembler a([&](std::string_view l) { lines.emplace_back(l); });
  a.feed("Step 1/2 : FROM x");
  a.feed("\n");
  a.feed(" ---> abc\r\nhalf");
  a.feed(" line\nlast");
  a.finish();
  CHECK(lines == std::vector<std::string>{"Step 1/2 : FROM x", " ---> abc", "half line", "last"});
}

TEST_CASE("parse_step reads classic and BuildKit step counters", "[engine][streams]") {
  int n = 0, m = 0;
  CHECK(parse_step("Step 3/7 : RUN apt-get update", n, m));
  CHECK((n == 3 && m == 7));
  CHECK(parse_step("STEP 4/6: RUN make", n, m));
  CHECK((n == 4 && m == 6));
  CHECK(parse_step("[2/5] RUN make", n, m));
  CHECK((n == 2 && m == 5));
  CHECK(parse_step("[build 4/9] COPY . .", n, m));
  CHECK((n == 4 && m == 9));
  CHECK_FALSE(parse_step("[internal] load build definition from Dockerfile", n, m));
  CHECK_FALSE(parse_step(" ---> Running in 1234", n, m));
  CHECK_FALSE(parse_step("Step x/7 : RUN", n, m));
}

TEST_CASE("strip_ansi drops colour codes", "[engine][streams]") {
  CHECK(strip_ansi("\x1b[91merr\x1b[0m") == "err");
  CHECK(strip_ansi("plain") == "plain");
}

TEST_CASE("FrameDemux splits stdout and stderr frames whatever the split", "[engine][streams]") {
  auto frame = [](char stream, const std::string& payload) {
    std::string f = {stream, 0, 0, 0};
    uint32_t n = static_cast<uint32_t>(payload.size());
    f += static_cast<char>(n >> 24);
    f += static_cast<char>(n >> 16);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n);
    return f + payload;
  };
  std::string big(300, 'x');  // a size that needs more than the low byte
  std::string data = frame(1, "hello\n") + frame(2, "oops\n") + frame(1, "") + frame(1, "world\n") +
                     frame(2, big);
  each_split(data, [&](const std::vector<std::string>& pieces) {
    Logs logs;
    FrameDemux d(logs);
    for (const auto& p : pieces) d.feed(p);
    CHECK(d.clean());
    CHECK(logs.out == "hello\nworld\n");
    CHECK(logs.err == "oops\n" + big);
  });
  // A frame larger than 64 KiB (three size bytes), its header split mid-way.
  std::string huge(70000, 'y'), two = frame(1, huge);
  Logs logs;
  FrameDemux d(logs);
  d.feed(two.substr(0, 5));
  d.feed(two.substr(5, 40000));
  CHECK_FALSE(d.clean());
  d.feed(two.substr(40005));
  CHECK(d.clean());
  CHECK(logs.out == huge);
}

TEST_CASE("make_builder knows engine and buildx", "[engine]") {
  Endpoint ep{"/nonexistent.sock"};
  CHECK(make_builder("engine", ep)->name() == "engine");
  CHECK(make_builder("buildx", ep)->name() == "buildx");
  CHECK_THROWS_AS(make_builder("kaniko", ep), std::invalid_argument);
}

TEST_CASE("an absent socket is Unreachable, naming it", "[engine]") {
  Client c(Endpoint{"/nonexistent/kiln-test.sock"});
  try {
    c.ping();
    FAIL("ping succeeded");
  } catch (const Unreachable& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("cannot reach the engine at unix:///nonexistent/kiln-test.sock: "));
  }
  CHECK_THROWS_AS(c.version(), Unreachable);
  CHECK_THROWS_AS(make_builder("buildx", c.endpoint())->build({}, {}, {}), Unreachable);
}

TEST_CASE("transient_push_error: a registry 5xx, reset or timeout as the engine words it; not auth, not a bad manifest",
          "[engine][push]") {
  using kiln::engine::transient_push_error;
  // Texts Docker 20.10 reported in tests/promote (the registry behind a faulting proxy).
  CHECK(transient_push_error("received unexpected HTTP status: 500 Internal Server Error"));
  CHECK(transient_push_error("received unexpected HTTP status: 503 Service Unavailable"));
  CHECK(transient_push_error(
      "Put \"http://127.0.0.1:34699/v2/x/manifests/kiln-push-a3\": read tcp 127.0.0.1:36432->127.0.0.1:34699: read: "
      "connection reset by peer"));
  CHECK(transient_push_error("Put \"http://127.0.0.1:1/v2/x/blobs/uploads/\": EOF"));
  CHECK(transient_push_error("dial tcp 127.0.0.1:5000: connect: connection refused"));
  CHECK(transient_push_error("net/http: TLS handshake timeout"));
  CHECK_FALSE(transient_push_error("unauthorized: authentication required"));
  CHECK_FALSE(transient_push_error("denied: requested access to the resource is denied"));
  CHECK_FALSE(transient_push_error("manifest invalid: manifest invalid"));
  CHECK_FALSE(transient_push_error("An image does not exist locally with the tag: 127.0.0.1:5000/x"));
}

TEST_CASE("largest_layers keeps the biggest history entries, largest first, none empty", "[engine][sizes]") {
  std::vector<HistoryEntry> h{{"/bin/sh -c #(nop)  USER kiln", 0},
                              {"/bin/sh -c useradd kiln", 8900},
                              {"|1 APT_PROXY=http://127.0.0.1:3142 /bin/sh -c set -eux; apt-get install", 671000000},
                              {"", 117000000},
                              {"/bin/sh -c #(nop)  ENV A=1", 0}};
  auto top = largest_layers(h, 2);
  REQUIRE(top.size() == 2);
  CHECK(top[0].size == 671000000);
  CHECK(top[1].created_by.empty());  // the base image's layer
  auto all = largest_layers(h, 10);
  CHECK(all.size() == 3);  // metadata-only steps (0 bytes) are not layers worth naming
  CHECK(all.back().size == 8900);
  CHECK(largest_layers({}, 3).empty());
}
