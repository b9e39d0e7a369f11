#include "report.h"

#include <ctime>
#include <unistd.h>

namespace kiln::smoke {

const char* status_name(Status s) {
  switch (s) {
    case Status::Pass: return "pass";
    case Status::Fail: return "fail";
    case Status::Absent: return "absent";
    case Status::Skipped: return "skipped";
  }
  return "?";
}

int decide_exit_code(const GpuProbe& gpu, const std::vector<Section>& sections) {
  bool any_required = false, required_not_pass = false;
  for (const auto& s : sections) {
    if (!s.required) continue;
    any_required = true;
    if (s.status == Status::Fail) return kExitFail;
    if (s.status != Status::Pass) required_not_pass = true;
  }
  if (!gpu.usable) return kExitNoGpu;
  // Requiring nothing proves nothing: treat it as a failed run, not a pass.
  if (!any_required || required_not_pass) return kExitFail;
  return kExitPass;
}

int enforce_no_gpu_contract(const GpuProbe& gpu, std::vector<Section>& sections) {
  if (gpu.usable) return 0;
  int demoted = 0;
  for (auto& s : sections)
    if (s.status == Status::Pass) {
      s.status = Status::Skipped;
      s.notes.push_back("no usable GPU: a section cannot pass without one");
      ++demoted;
    }
  return demoted;
}

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

static std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

static Json section_json(const Section& s) {
  Json j = Json::object();
  j["status"] = status_name(s.status);
  j["required"] = s.required;
  j["duration_s"] = s.duration_s;
  j["errors"] = Json::array(s.errors);
  j["notes"] = Json::array(s.notes);
  j["data"] = s.data;
  return j;
}

static const char* verdict_for(int exit_code) {
  switch (exit_code) {
    case kExitPass: return "pass";
    case kExitNoGpu: return "no-gpu";
    case kExitUsage: return "usage";
    default: return "fail";
  }
}

Json make_report(const ReportHeader& header, const GpuProbe& gpu,
                 const std::vector<Section>& sections, double wall_s, int exit_code) {
  Json doc = Json::object();
  doc["schema"] = kSchema;
  doc["tool"] = header.tool;
  doc["tool_version"] = header.tool_version;
  doc["started_at"] = header.started_at.empty() ? utc_timestamp() : header.started_at;
  doc["host"] = hostname();
  doc["verdict"] = verdict_for(exit_code);
  doc["exit_code"] = exit_code;
  doc["wall_s"] = wall_s;

  Json& g = doc["gpu"];
  g["usable"] = gpu.usable;
  g["device_count"] = gpu.device_count;
  g["error"] = gpu.error.empty() ? Json() : Json(gpu.error);

  doc["build"] = header.build;
  doc["expected"] = header.expected;

  Json summary = Json::object();
  for (const char* st : {"pass", "fail", "absent", "skipped"}) summary[st] = Json::array();
  Json required = Json::array();
  Json& secs = doc["sections"];
  secs = Json::object();
  for (const auto& s : sections) {
    secs[s.name] = section_json(s);
    summary[status_name(s.status)].push_back(s.name);
    if (s.required) required.push_back(s.name);
  }
  summary["required"] = required;
  doc["summary"] = summary;
  return doc;
}

}  // namespace kiln::smoke
