// The engine room against a real, private dockerd (tests/support/dockerd.sh).
#include "support.h"
#include "skip.h"

#include <catch2/catch.hpp>

#include <chrono>

using namespace kiln::engine;
using kiln::test::Context;
using kiln::test::unique_tag;

namespace {

// nullptr where no daemon can run: each case then skips (KILN_SKIP).
Client* client() {
  static std::unique_ptr<Client> c = [] {
    std::string sock = kiln::test::docker_socket();
    return sock.empty() ? nullptr : std::make_unique<Client>(Endpoint{sock});
  }();
  return c.get();
}

std::string base() { return kiln::test::busybox_image(*client()); }

struct Recorder {
  std::vector<std::string> lines;
  std::vector<std::tuple<int, int, std::string>> steps;
  ProgressFn progress() {
    return [this](int n, int m, std::string_view l) { steps.emplace_back(n, m, std::string(l)); };
  }
  LogSink log() {
    return [this](std::string_view l) { lines.emplace_back(l); };
  }
  bool logged(std::string_view s) const {
    for (const auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

// Runs a container to its end; removes it.
struct Run {
  WaitResult wait;
  Logs logs;
};
Run run(const ContainerSpec& spec, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  Client& c = *client();
  std::string id = c.create_container(spec);
  Run r;
  c.start_container(id);
  r.wait = c.wait_container(id, limit);
  r.logs = c.container_logs(id);
  c.remove_container(id);
  return r;
}

const char* kGreeting =
    "FROM kiln-test/busybox:1\n"
    "ARG GREETING=none\n"
    "RUN echo \"$GREETING\" > /greeting\n"
    "LABEL org.example.kind=test\n"
    "CMD [\"cat\", \"/greeting\"]\n";

const char* kFailing =
    "FROM kiln-test/busybox:1\n"
    "RUN echo fine\n"
    "RUN echo out; echo err >&2; false\n"
    "RUN echo never\n";

}  // namespace

TEST_CASE("ping and version on the real engine", "[integration][engine]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  client()->ping();
  VersionInfo v = client()->version();
  CHECK_FALSE(v.version.empty());
  CHECK(v.api_version >= "1.40");
  CHECK(v.os == "linux");
}

TEST_CASE("import, inspect, tag, exists, remove", "[integration][engine]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  Client& c = *client();
  std::string img = base();
  auto info = c.inspect_image(img);
  REQUIRE(info);
  CHECK(info->id.starts_with("sha256:"));
  CHECK(info->size > 100000);

  std::string tag = unique_tag("retag");
  c.tag_image(img, tag.substr(0, tag.find(':')), tag.substr(tag.find(':') + 1));
  CHECK(c.image_exists(tag));
  CHECK(c.inspect_image(tag)->id == info->id);
  c.remove_image(tag);
  CHECK_FALSE(c.image_exists(tag));
  CHECK_FALSE(c.inspect_image("kiln-test/never-made:1"));
  CHECK_THROWS_AS(c.tag_image("kiln-test/never-made:1", "x", "y"), ApiError);
}

TEST_CASE("engine build: id, labels, build args, progress, log", "[integration][engine][build]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  base();
  Context ctx(kGreeting);
  std::string tag = unique_tag("greeting");
  Recorder rec;
  BuildRequest req{.context_dir = ctx.dir,
                   .tags = {tag},
                   .build_args = {{"GREETING", "hello kiln"}},
                   .labels = {{"org.opencontainers.image.title", "kiln test"}}};
  BuildResult r = make_builder("engine", client()->endpoint())->build(req, rec.progress(), rec.log());
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.image_id.starts_with("sha256:"));
  CHECK(r.failed_step.empty());
  CHECK(r.seconds > 0);
  // The classic builder adds the request's labels as a last LABEL step.
  REQUIRE(rec.steps.size() == 6);
  CHECK(rec.steps[2] == std::make_tuple(3, 6, std::string("Step 3/6 : RUN echo \"$GREETING\" > /greeting")));
  CHECK(rec.logged("Successfully built"));

  auto info = client()->inspect_image(tag);
  REQUIRE(info);
  CHECK(info->id == r.image_id);
  CHECK(info->labels["org.opencontainers.image.title"] == "kiln test");
  CHECK(info->labels["org.example.kind"] == "test");

  Run out = run({.image = tag, .network_mode = "none"});
  CHECK(out.wait.exit_code == 0);
  CHECK(out.logs.out == "hello kiln\n");
  client()->remove_image(tag);
}

TEST_CASE("engine build: a failing RUN names its step, others still build", "[integration][engine][build]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  base();
  Context bad(kFailing);
  Recorder rec;
  auto builder = make_builder("engine", client()->endpoint());
  BuildResult r = builder->build({.context_dir = bad.dir, .tags = {unique_tag("failing")}}, rec.progress(), rec.log());
  CHECK_FALSE(r.ok);
  CHECK(r.image_id.empty());
  CHECK(r.failed_step == "Step 3/4 : RUN echo out; echo err >&2; false");
  CHECK_THAT(r.error, Catch::Contains("returned a non-zero code: 1"));
  CHECK(rec.logged("err"));  // the step's stderr, colour codes gone
  CHECK_FALSE(rec.logged("never"));
  CHECK_FALSE(client()->image_exists(unique_tag("failing")));

  Context good(kGreeting);
  BuildResult ok = builder->build({.context_dir = good.dir}, {}, {});
  CHECK(ok.ok);

  BuildResult missing = builder->build({.context_dir = good.dir, .dockerfile = "Nope"}, {}, {});
  CHECK_FALSE(missing.ok);
  CHECK_THAT(missing.error, Catch::Contains("Nope"));

  BuildResult no_dir = builder->build({.context_dir = "/nonexistent/kiln-ctx"}, {}, {});
  CHECK_FALSE(no_dir.ok);
  CHECK_THAT(no_dir.error, Catch::Contains("/nonexistent/kiln-ctx"));
}

TEST_CASE("containers: read-only root, no network, demuxed output, exit code", "[integration][engine][containers]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  ContainerSpec spec{.image = base(),
                     .cmd = {"sh", "-c",
                             "echo out; echo err >&2; ls /sys/class/net; "
                             "touch /x 2>/dev/null && echo root-writable; "
                             "touch /tmp/y && echo tmp-writable; echo $KILN_X; exit 3"},
                     .env = {"KILN_X=from-env"},
                     .readonly_rootfs = true,
                     .network_mode = "none",
                     .tmpfs = {{"/tmp", "rw,size=16m"}},
                     .memory = 64 << 20};
  Run r = run(spec);
  CHECK_FALSE(r.wait.timed_out);
  CHECK(r.wait.exit_code == 3);
  CHECK(r.logs.out == "out\nlo\ntmp-writable\nfrom-env\n");
  CHECK(r.logs.err == "err\n");
}

TEST_CASE("containers: the wait limit kills a sleeper", "[integration][engine][containers]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  // The limit, not the sleep, ended it: timed out and SIGKILLed (a wait
  // that ignored the limit would run into ctest's TIMEOUT instead).
  Run r = run({.image = base(), .cmd = {"sleep", "300"}, .network_mode = "none"}, std::chrono::milliseconds(1500));
  CHECK(r.wait.timed_out);
  CHECK(r.wait.exit_code == 137);  // SIGKILL
  CHECK_THROWS_AS(client()->start_container("kiln-no-such-container"), ApiError);
}

TEST_CASE("save streams a docker-save tar", "[integration][engine][images]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  std::string head;
  size_t total = 0, chunks = 0;
  client()->save_image(base(), [&](std::string_view c) {
    if (head.size() < 512) head.append(c.substr(0, 512 - head.size()));
    total += c.size();
    ++chunks;
    return true;
  });
  REQUIRE(head.size() == 512);
  CHECK(head.substr(257, 5) == "ustar");  // a tar header
  CHECK(total > 1000000);
  CHECK(total % 512 == 0);

  size_t stopped = 0;  // a sink may stop early
  client()->save_image(base(), [&](std::string_view c) { stopped += c.size(); return false; });
  CHECK(stopped < total);
}

TEST_CASE("buildx backend: same Dockerfile, digest, failing step", "[integration][engine][buildx]") {
  if (!client()) KILN_SKIP("no test dockerd (needs root and dockerd)");
  base();
  auto builder = make_builder("buildx", client()->endpoint());
  Context ctx(kGreeting);
  std::string tag = unique_tag("buildx");
  Recorder rec;
  // The test daemon has no bridge (--bridge=none): RUN steps use no network.
  BuildRequest req{.context_dir = ctx.dir, .tags = {tag}, .build_args = {{"GREETING", "via buildkit"}},
                   .labels = {{"org.opencontainers.image.title", "kiln buildx"}}, .network = "none"};
  BuildResult r = builder->build(req, rec.progress(), rec.log());
  INFO(r.error);
  for (auto& l : rec.lines) UNSCOPED_INFO(l);
  REQUIRE(r.ok);
  CHECK(r.digest.starts_with("sha256:"));
  auto info = client()->inspect_image(tag);
  REQUIRE(info);
  CHECK(info->id == r.image_id);
  CHECK(info->labels["org.opencontainers.image.title"] == "kiln buildx");
  CHECK_FALSE(rec.steps.empty());
  CHECK(std::get<1>(rec.steps.front()) == 2);  // "[1/2] FROM", "[2/2] RUN"
  Run out = run({.image = tag, .network_mode = "none"});
  CHECK(out.logs.out == "via buildkit\n");
  client()->remove_image(tag);

  Context bad(kFailing);
  Recorder frec;
  BuildResult f = builder->build({.context_dir = bad.dir, .tags = {unique_tag("buildx-bad")}, .network = "none"},
                                 frec.progress(), frec.log());
  CHECK_FALSE(f.ok);
  CHECK(f.failed_step == "[3/4] RUN echo out; echo err >&2; false");
  CHECK_THAT(f.error, Catch::Contains("exit code: 1") || Catch::Contains("non-zero code: 1"));
  CHECK(frec.logged("err"));
}
