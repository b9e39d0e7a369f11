#include "verify/slurm.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "util/child.h"
#include "verify/smoke_unit.h"

namespace kiln::slurm {

namespace {

constexpr std::string_view kBegin = "::kiln-step-begin ";
constexpr std::string_view kEnd = "::kiln-step-end ";
constexpr std::string_view kNode = "::kiln-node ";
constexpr std::string_view kGpu = "::kiln-gpu ";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::optional<int> to_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// A step name is a word kiln chose ("kiln-smoke", "torch"): it goes into
// the frame lines unquoted.
void check_step_name(const std::string& n) {
  if (n.empty() || !std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }))
    throw std::invalid_argument("slurm: step name \"" + n + "\" is not a word");
}

// Runs a Slurm command; both streams come back (the result on stdout, the
// reason it failed on stderr). A minute at most: the controller answers in
// milliseconds or is not there.
std::pair<int, std::string> run(const std::vector<std::string>& argv) {
  ChildSpec spec;
  spec.argv = argv;
  spec.both_streams = true;
  spec.total = std::chrono::seconds(60);
  std::string out;
  ChildResult r = run_child(spec, [&](std::string_view s) {
    out.append(s);
    return out.size() < (1u << 20);
  });
  if (r.timed_out) throw std::runtime_error(fmt::format("{} did not answer within 60 s", argv.front()));
  return {r.status, out};
}

std::string first_line(std::string_view s) {
  s = trim(s);
  return std::string(s.substr(0, s.find('\n')));
}

}  // namespace

std::string job_script(const JobSpec& job) {
  std::string s = "#!/bin/bash\n";
  auto sb = [&](const std::string& opt) {
    if (opt.find('\n') != std::string::npos) throw std::invalid_argument("slurm: an sbatch option holds a newline");
    s += "#SBATCH " + opt + "\n";
  };
  sb("--job-name=" + job.name);
  if (!job.partition.empty()) sb("--partition=" + job.partition);
  if (job.gpus > 0) sb(fmt::format("--gres=gpu:{}", job.gpus));
  sb(fmt::format("--time={}", job.time_limit_min));
  sb("--nodes=1");
  sb("--ntasks=1");
  sb("--output=" + job.output);
  sb("--error=" + job.error);
  for (const auto& a : job.sbatch_args) sb(a);
  for (const auto& line : job.comment) s += "# " + line + "\n";
  s += "set -u\n"
       "echo \"::kiln-node $(hostname -s)\"\n"
       "# The node's view of the GPUs Slurm gave the job: model and driver branch.\n"
       "if command -v nvidia-smi >/dev/null 2>&1; then\n"
       "  nvidia-smi ${CUDA_VISIBLE_DEVICES:+-i \"$CUDA_VISIBLE_DEVICES\"} "
       "--query-gpu=index,name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/::kiln-gpu /'\n"
       "fi\n"
       "first=0\n";
  for (const auto& step : job.steps) {
    check_step_name(step.name);
    std::string cmd = verify::shell_line(step.argv);
    s += fmt::format("echo \"::kiln-step-begin {}\"\n{} </dev/null\nrc=$?\necho\necho \"::kiln-step-end {} $rc\"\n"
                     "[ \"$first\" -ne 0 ] || first=$rc\n",
                     step.name, cmd, step.name);
  }
  s += "exit \"$first\"\n";
  return s;
}

std::optional<std::string> parse_submitted(std::string_view out) {
  auto digits = [](std::string_view w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  constexpr std::string_view kSubmitted = "Submitted batch job ";
  if (auto at = out.find(kSubmitted); at != std::string_view::npos) {
    std::string_view rest = out.substr(at + kSubmitted.size());
    std::string_view id = rest.substr(0, rest.find_first_of(" \r\n"));
    if (digits(id)) return std::string(id);
    return std::nullopt;
  }
  std::string_view line = trim(out);
  line = line.substr(0, line.find(';'));  // --parsable: "ID" or "ID;CLUSTER"
  if (digits(line)) return std::string(line);
  return std::nullopt;
}

JobInfo parse_show_job(std::string_view text) {
  JobInfo j;
  // The job's line; scontrol may print a warning before it.
  size_t at = text.find("JobId=");
  if (at == std::string_view::npos) return j;
  std::string_view line = text.substr(at);
  line = line.substr(0, line.find('\n'));
  // Key=Value pairs separated by spaces. A value may hold spaces (Reason,
  // Comment): a token without '=' belongs to the value before it.
  std::vector<std::pair<std::string, std::string>> kv;
  size_t i = 0;
  while (i < line.size()) {
    size_t end = line.find(' ', i);
    if (end == std::string_view::npos) end = line.size();
    std::string_view tok = line.substr(i, end - i);
    size_t eq = tok.find('=');
    bool key_like = eq != std::string_view::npos && eq > 0 &&
                    std::all_of(tok.begin(), tok.begin() + static_cast<long>(eq), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == ':' || c == '_';
                    });
    if (key_like) kv.emplace_back(std::string(tok.substr(0, eq)), std::string(tok.substr(eq + 1)));
    else if (!kv.empty() && !tok.empty()) kv.back().second += " " + std::string(tok);
    i = end + 1;
  }
  auto get = [&](std::string_view key) -> std::string {
    for (const auto& [k, v] : kv)
      if (k == key) return v;
    return "";
  };
  j.found = true;
  j.id = get("JobId");
  j.name = get("JobName");
  j.state = get("JobState");
  j.reason = get("Reason");
  j.node = get("BatchHost");
  if (j.node.empty() || j.node == "(null)") j.node = get("NodeList");
  if (j.node == "(null)") j.node.clear();
  std::string ec = get("ExitCode");
  if (auto colon = ec.find(':'); colon != std::string::npos) {
    j.exit_code = to_int(ec.substr(0, colon)).value_or(0);
    j.exit_signal = to_int(ec.substr(colon + 1)).value_or(0);
  }
  j.time_limit = get("TimeLimit");
  j.run_time = get("RunTime");
  j.start_time = get("StartTime");
  j.end_time = get("EndTime");
  j.std_out = get("StdOut");
  return j;
}

bool is_final(std::string_view state) {
  static constexpr std::array<std::string_view, 11> kFinal{"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL",
                                                           "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                                                           "SPECIAL_EXIT", "REVOKED"};
  // scontrol may add a qualifier: "CANCELLED by 0".
  std::string_view word = state.substr(0, state.find(' '));
  return std::find(kFinal.begin(), kFinal.end(), word) != kFinal.end();
}

JobOutput parse_output(std::string_view text) {
  JobOutput o;
  StepOutput* open = nullptr;
  size_t i = 0;
  while (i <= text.size()) {
    size_t end = text.find('\n', i);
    bool last = end == std::string_view::npos;
    std::string_view line = text.substr(i, last ? std::string_view::npos : end - i);
    if (line.starts_with(kBegin)) {
      o.steps.push_back({std::string(trim(line.substr(kBegin.size()))), "", std::nullopt});
      open = &o.steps.back();
    } else if (line.starts_with(kEnd) && open) {
      std::string_view rest = trim(line.substr(kEnd.size()));
      size_t sp = rest.rfind(' ');
      if (sp != std::string_view::npos && rest.substr(0, sp) == open->name) open->exit_code = to_int(rest.substr(sp + 1));
      // job_script echoes a newline before the end frame, so a program's
      // last line is whole; that newline is not the program's.
      if (open->out.ends_with('\n')) open->out.pop_back();
      open = nullptr;
    } else if (open) {
      open->out.append(line);
      if (!last) open->out += '\n';
    } else if (line.starts_with(kNode)) {
      o.node = std::string(trim(line.substr(kNode.size())));
    } else if (line.starts_with(kGpu)) {
      o.gpus.emplace_back(trim(line.substr(kGpu.size())));
    }
    if (last) break;
    i = end + 1;
  }
  return o;
}

std::string submit(const std::string& script_path) {
  auto [status, out] = run({"sbatch", script_path});
  auto id = parse_submitted(out);
  if (status != 0 || !id)
    throw std::runtime_error(fmt::format("sbatch {} failed (exit {}): {}", script_path, status, first_line(out)));
  return *id;
}

JobInfo show_job(const std::string& id) {
  auto [status, out] = run({"scontrol", "show", "job", "-o", id});
  JobInfo j = parse_show_job(out);
  if (status == 0 && j.found) return j;
  if (out.find("Invalid job id") != std::string::npos) return JobInfo{};  // forgotten (MinJobAge)
  throw std::runtime_error(fmt::format("scontrol show job {} failed (exit {}): {}", id, status, first_line(out)));
}

void cancel(const std::string& id) {
  auto [status, out] = run({"scancel", id});
  if (status != 0) throw std::runtime_error(fmt::format("scancel {} failed (exit {}): {}", id, status, first_line(out)));
}

std::optional<JobInfo> parse_queue_line(std::string_view line) {
  std::vector<std::string> f;
  for (size_t i = 0;;) {
    size_t bar = line.find('|', i);
    f.emplace_back(trim(line.substr(i, bar == std::string_view::npos ? std::string_view::npos : bar - i)));
    if (bar == std::string_view::npos) break;
    i = bar + 1;
  }
  if (f.size() < 5 || f[0].empty() || !std::all_of(f[0].begin(), f[0].end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  JobInfo j;
  j.found = true;
  j.id = f[0];
  j.state = f[1];
  j.reason = f[2] == "None" ? "" : f[2];
  j.node = f[3] == "(null)" ? "" : f[3];
  j.start_time = f[4];
  return j;
}

std::map<std::string, JobInfo> queue_states(const std::vector<std::string>& ids) {
  std::map<std::string, JobInfo> out;
  if (ids.empty()) return out;
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
  auto [status, text] = run({"squeue", "-h", "-t", "all", "-j", list, "-o", "%i|%T|%r|%N|%S"});
  // Every id forgotten: squeue says "Invalid job id" and exits 1.
  if (status != 0 && text.find("Invalid job id") == std::string::npos)
    throw std::runtime_error(fmt::format("squeue -j {} failed (exit {}): {}", list, status, first_line(text)));
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\n', i);
    if (end == std::string::npos) end = text.size();
    if (auto j = parse_queue_line(std::string_view(text).substr(i, end - i)); j && std::count(ids.begin(), ids.end(), j->id))
      out[j->id] = *j;
    i = end + 1;
  }
  return out;
}

void wait_all(const std::vector<Watched>& jobs, const std::function<void(size_t, const std::string&)>& on_state,
              const std::function<void(size_t, const WaitResult&)>& on_end, const std::function<bool()>& stop,
              const std::function<void(std::chrono::milliseconds)>& sleep) {
  using Clock = std::chrono::steady_clock;
  struct Follow {
    Clock::time_point submitted;
    std::optional<Clock::time_point> started;
    std::string said;
    bool ended = false;
  };
  std::vector<Follow> follow(jobs.size(), Follow{Clock::now(), std::nullopt, "", false});
  std::chrono::milliseconds interval(1000);
  auto end = [&](size_t i, WaitResult w) {
    follow[i].ended = true;
    if (on_end) on_end(i, w);
  };
  for (;;) {
    std::vector<std::string> open;
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!follow[i].ended) open.push_back(jobs[i].id);
    if (open.empty() || (stop && stop())) return;
    std::map<std::string, JobInfo> states = queue_states(open);
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (follow[i].ended) continue;
      if (stop && stop()) return;
      auto it = states.find(jobs[i].id);
      if (it == states.end() || is_final(it->second.state)) {
        // Ended (or forgotten before kiln saw it end): scontrol has the
        // exit code; a forgotten one's output file must tell.
        WaitResult w;
        w.info = show_job(jobs[i].id);
        if (!w.info.found) {
          w.info.id = jobs[i].id;
          w.info.state = "UNKNOWN";
        }
        if (!is_final(w.info.state) && w.info.state != "UNKNOWN") continue;  // squeue and scontrol a moment apart
        end(i, w);
        continue;
      }
      const JobInfo& j = it->second;
      std::string now_state = j.state + (j.state == "PENDING" && !j.reason.empty() ? " (" + j.reason + ")"
                                         : j.node.empty()                           ? ""
                                                                                    : " on " + j.node);
      if (now_state != follow[i].said && on_state) on_state(i, now_state);
      follow[i].said = now_state;
      auto now = Clock::now();
      if (j.state != "PENDING" && !follow[i].started) follow[i].started = now;
      std::string why;
      if (!follow[i].started && now - follow[i].submitted > jobs[i].queue_limit)
        why = fmt::format("still pending after {} min ({}): cancelled", jobs[i].queue_limit.count() / 60, j.reason);
      else if (follow[i].started && now - *follow[i].started > jobs[i].run_limit)
        why = fmt::format("still {} {} s after it started, past its time limit: cancelled", j.state,
                          jobs[i].run_limit.count());
      if (!why.empty()) {
        cancel(jobs[i].id);
        WaitResult w;
        w.info = j;
        w.gave_up = true;
        w.why = why;
        end(i, w);
      }
    }
    if (sleep) sleep(interval);
    else std::this_thread::sleep_for(interval);
    interval = std::min(std::chrono::milliseconds(5000), interval * 3 / 2);
  }
}

}  // namespace kiln::slurm
