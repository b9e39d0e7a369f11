// The smoke report: section results, the JSON document and the exit code.
//
// Plain C++ (no CUDA) so the contract — statuses, schema fields, exit codes —
// is unit-tested on machines without a GPU. Both kiln-smoke and
// kiln-smoke-torch build their output through this.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "json.h"

namespace kiln::smoke {

inline constexpr const char* kSchema = "kiln-smoke/1";

enum class Status { Pass, Fail, Absent, Skipped };
const char* status_name(Status s);

// Exit codes (README.md): the GPU stage of kiln reads these.
enum ExitCode : int {
  kExitPass = 0,      // every required section passed
  kExitFail = 1,      // a check failed, or a required section did not pass
  kExitUsage = 2,     // bad command line
  kExitNoGpu = 3,     // no usable GPU: says nothing about the image, never a pass
};

struct Section {
  std::string name;
  Status status = Status::Skipped;
  bool required = false;
  double duration_s = 0;
  std::vector<std::string> errors;  // why it failed (the real CUDA/library error text)
  std::vector<std::string> notes;   // why skipped/absent, or context worth a line
  Json data = Json::object();       // numbers, versions, per-device results

  // Records a failure; a failed section stays failed.
  void fail(std::string message) {
    errors.push_back(std::move(message));
    status = Status::Fail;
  }
  // Pass unless something already failed it.
  void pass_unless_failed() {
    if (status != Status::Fail) status = Status::Pass;
  }
};

struct GpuProbe {
  bool usable = false;
  int device_count = 0;
  std::string error;  // why not usable ("" when usable)
};

// Exit code from the sections: a failed required section -> 1 (a definite
// defect wins over "no GPU", e.g. a driver older than the runtime); else no
// usable GPU -> 3; else a required section that is not "pass" (absent,
// skipped) -> 1; else 0.
int decide_exit_code(const GpuProbe& gpu, const std::vector<Section>& sections);

// Without a usable GPU nothing may read as a pass: any section a run left at
// Pass is demoted to Skipped with a note. Returns how many were demoted.
int enforce_no_gpu_contract(const GpuProbe& gpu, std::vector<Section>& sections);

struct ReportHeader {
  std::string tool;           // "kiln-smoke" / "kiln-smoke-torch"
  std::string tool_version;
  std::string started_at;          // utc_timestamp() taken at start
  Json build = Json::object();     // how the binary was built
  Json expected = Json::object();  // versions passed in
};

// The whole document (schema in kernels/README.md).
Json make_report(const ReportHeader& header, const GpuProbe& gpu,
                 const std::vector<Section>& sections, double wall_s, int exit_code);

// UTC "2026-11-25T10:00:00Z".
std::string utc_timestamp();

// Seconds since `start` (steady clock).
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace kiln::smoke
