// Unit tests of the report contract: JSON schema, statuses, exit codes.
#include <catch2/catch.hpp>

#include "json.h"
#include "options.h"
#include "report.h"

#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define KILN_HAVE_NLOHMANN 1
#endif

using namespace kiln::smoke;

namespace {

const std::vector<std::string> kNames{"env", "arch", "memory", "cublas", "cudnn", "nccl"};

Section section(const std::string& name, Status st, bool required = true) {
  Section s;
  s.name = name;
  s.status = st;
  s.required = required;
  return s;
}

GpuProbe gpu(bool usable) {
  GpuProbe g;
  g.usable = usable;
  g.device_count = usable ? 1 : 0;
  if (!usable) g.error = "cudaErrorInsufficientDriver (35): CUDA driver version is insufficient";
  return g;
}

std::vector<Section> all(Status st) {
  std::vector<Section> v;
  for (const auto& n : kNames) v.push_back(section(n, st));
  return v;
}

Options parse(std::vector<std::string> args) {
  std::vector<char*> argv{const_cast<char*>("kiln-smoke")};
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data(), kNames);
}

}  // namespace

TEST_CASE("exit codes") {
  CHECK(decide_exit_code(gpu(true), all(Status::Pass)) == kExitPass);

  auto v = all(Status::Pass);
  v[3].status = Status::Fail;
  CHECK(decide_exit_code(gpu(true), v) == kExitFail);

  // A failure outside the required set does not fail the run.
  v[3].required = false;
  CHECK(decide_exit_code(gpu(true), v) == kExitPass);

  // A required section that is absent is not a pass.
  auto a = all(Status::Pass);
  a[4].status = Status::Absent;
  CHECK(decide_exit_code(gpu(true), a) == kExitFail);
  a[4].required = false;
  CHECK(decide_exit_code(gpu(true), a) == kExitPass);

  // Nothing required proves nothing.
  auto none = all(Status::Pass);
  for (auto& s : none) s.required = false;
  CHECK(decide_exit_code(gpu(true), none) == kExitFail);
}

TEST_CASE("a CPU-only host exits 3 and nothing reads as pass") {
  auto v = all(Status::Skipped);
  CHECK(decide_exit_code(gpu(false), v) == kExitNoGpu);

  // Even a section that (wrongly) claimed a pass is demoted.
  v[0].status = Status::Pass;
  CHECK(enforce_no_gpu_contract(gpu(false), v) == 1);
  CHECK(v[0].status == Status::Skipped);
  CHECK(decide_exit_code(gpu(false), v) == kExitNoGpu);

  // But a definite image defect (driver older than runtime) is a failure.
  v[0].status = Status::Fail;
  CHECK(decide_exit_code(gpu(false), v) == kExitFail);
}

TEST_CASE("report document carries the schema fields") {
  ReportHeader h{"kiln-smoke", "0.1.0", "2026-11-25T00:00:00Z"};
  h.expected["cuda"] = "13.0";
  auto v = all(Status::Skipped);
  v[0].notes.push_back("no usable GPU");
  v[0].data["runtime_version"] = "13.0";
  Json doc = make_report(h, gpu(false), v, 0.25, kExitNoGpu);

  for (const char* key : {"schema", "tool", "tool_version", "started_at", "host", "verdict",
                          "exit_code", "wall_s", "gpu", "build", "expected", "sections", "summary"})
    CHECK(doc.find(key) != nullptr);
  CHECK(doc.find("schema")->str() == kSchema);
  CHECK(doc.find("verdict")->str() == "no-gpu");
  CHECK(doc.find("exit_code")->number() == 3);
  CHECK(doc.find("gpu")->find("usable")->boolean() == false);
  const Json* secs = doc.find("sections");
  REQUIRE(secs->size() == kNames.size());
  for (const auto& n : kNames) {
    const Json* s = secs->find(n);
    REQUIRE(s != nullptr);
    for (const char* key : {"status", "required", "duration_s", "errors", "notes", "data"})
      CHECK(s->find(key) != nullptr);
    CHECK(s->find("status")->str() == "skipped");
  }
  CHECK(doc.find("summary")->find("pass")->size() == 0);
  CHECK(doc.find("summary")->find("skipped")->size() == kNames.size());
}

#ifdef KILN_HAVE_NLOHMANN
TEST_CASE("the document is valid JSON that round-trips") {
  ReportHeader h{"kiln-smoke", "0.1.0", ""};
  auto v = all(Status::Pass);
  v[1].fail("cudaErrorNoKernelImageForDevice (209): no kernel image is available \"quoted\"\n");
  v[2].data["h2d_gbps"] = 24.5;
  v[2].data["nan"] = std::nan("");
  Json doc = make_report(h, gpu(true), v, 1.5, decide_exit_code(gpu(true), v));
  for (int indent : {-1, 2}) {
    auto parsed = nlohmann::json::parse(doc.dump(indent));
    CHECK(parsed["sections"]["arch"]["status"] == "fail");
    CHECK(parsed["sections"]["arch"]["errors"][0].get<std::string>().find("no kernel image") !=
          std::string::npos);
    CHECK(parsed["sections"]["memory"]["data"]["h2d_gbps"] == 24.5);
    CHECK(parsed["sections"]["memory"]["data"]["nan"].is_null());
    CHECK(parsed["exit_code"] == 1);
    CHECK(parsed["verdict"] == "fail");
  }
}
#endif

TEST_CASE("json writer escapes and orders") {
  Json j;
  j["b"] = 1;
  j["a"] = "x\"y\\z\t";
  j["list"].push_back(true);
  j["list"].push_back(nullptr);
  CHECK(j.dump(-1) == R"({"b":1,"a":"x\"y\\z\t","list":[true,null]})");
}

TEST_CASE("options: selection, requirement and versions") {
  Options o = parse({"--only", "env,arch", "--expect-cudnn=9.19.0"});
  CHECK(selected(o, "env"));
  CHECK_FALSE(selected(o, "cublas"));
  CHECK(o.expect_cudnn == "9.19.0");
  CHECK(required(o, "env", true));
  CHECK_FALSE(required(o, "cublas", true));

  Options d = parse({});
  CHECK(required(d, "cudnn", true));
  CHECK_FALSE(required(d, "cudnn", false));  // compiled out: absent, not required by default

  Options r = parse({"--require", "env,cudnn", "--skip", "nccl"});
  CHECK(required(r, "cudnn", false));        // insisted on: absent then fails the run
  CHECK_FALSE(required(r, "arch", true));
  CHECK_FALSE(selected(r, "nccl"));

  CHECK_THROWS_AS(parse({"--only", "gpu"}), std::invalid_argument);
  CHECK_THROWS_AS(parse({"--expect-cuda", "thirteen"}), std::invalid_argument);
  CHECK_THROWS_AS(parse({"--gemm-size", "-4"}), std::invalid_argument);
  CHECK_THROWS_AS(parse({"--bogus"}), std::invalid_argument);
  CHECK_THROWS_AS(parse({"--expect-cuda"}), std::invalid_argument);
}
