// Slurm as kiln's Slurm runner uses it (gpu = "slurm", docs/verify.md): a
// batch script that runs a few commands on the node and frames each one's
// output in the job's output file, `sbatch` to submit it, `scontrol show
// job` to follow it, `scancel` to end it. Slurm's own commands, run with
// argument vectors (util/child.h), find the cluster as a user's do
// (SLURM_CONF, else /etc/slurm/slurm.conf). No accounting database is
// needed: a finished job is read from the controller while it remembers
// it (MinJobAge), and the steps' exit codes from the framed output.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::slurm {

// One command the job runs; its stdout is framed in the output file under
// `name`, its stderr goes to the job's error file.
struct Step {
  std::string name;
  std::vector<std::string> argv;
};

struct JobSpec {
  std::string name;                      // --job-name
  std::string partition;                 // "": the cluster's default
  int gpus = 0;                          // --gres=gpu:N; 0: no --gres
  int time_limit_min = 10;               // --time
  std::string output, error;             // absolute paths (%j: the job id)
  std::vector<std::string> sbatch_args;  // appended as #SBATCH lines
  std::vector<std::string> comment;      // lines of the script's header comment
  std::vector<Step> steps;
};

// The #!/bin/bash script with #SBATCH lines: prints the node's name (and
// its GPUs, name and driver, when nvidia-smi is there), then each step
// framed, and exits with the first nonzero step's code.
std::string job_script(const JobSpec& job);

// "Submitted batch job 42" (or --parsable's "42" / "42;cluster") -> "42".
std::optional<std::string> parse_submitted(std::string_view sbatch_output);

// What `scontrol show job -o ID` says of a job (one line of Key=Value).
struct JobInfo {
  bool found = false;   // false: the controller does not know it (never, or forgotten)
  std::string id, name, state, reason;
  std::string node;     // BatchHost, else NodeList
  int exit_code = 0;    // ExitCode=CODE:SIGNAL
  int exit_signal = 0;
  std::string time_limit, run_time, start_time, end_time;
  std::string std_out;  // StdOut: where the output file is
};
JobInfo parse_show_job(std::string_view scontrol_output);

// COMPLETED, FAILED, TIMEOUT, CANCELLED, NODE_FAIL, OUT_OF_MEMORY, ...:
// the job has ended (COMPLETING has not: its output may still be written).
bool is_final(std::string_view state);

// The framed output of job_script: node, GPUs, each step's stdout and exit code.
struct StepOutput {
  std::string name, out;
  std::optional<int> exit_code;  // nullopt: the step never finished (killed, timed out)
};
struct JobOutput {
  std::string node;
  std::vector<std::string> gpus;  // nvidia-smi's "index, name, driver_version"
  std::vector<StepOutput> steps;
};
JobOutput parse_output(std::string_view text);

// The commands. Each throws std::runtime_error with Slurm's own message
// when it fails (no sbatch, no controller, a partition that does not exist).
std::string submit(const std::string& script_path);  // the job id
JobInfo show_job(const std::string& id);             // found = false once forgotten
void cancel(const std::string& id);

// One look at several jobs with one `squeue -t all` call (finished jobs
// too, while the controller remembers them): state, reason, node, start.
// A job squeue does not list (forgotten, or never) is not in the map.
std::map<std::string, JobInfo> queue_states(const std::vector<std::string>& ids);
// The squeue line of one job as queue_states asks for it ("%i|%T|%r|%N|%S").
std::optional<JobInfo> parse_queue_line(std::string_view line);

// Follows several jobs together until each has ended: one squeue per round
// (every 1 s, growing to 5 s), `scontrol show job` once for each that ended
// (its exit code, node, run time). Gives up on a job, cancelling it, when it
// has pended longer than its `queue_limit` or run longer than its
// `run_limit`; its `why` then says which. `on_state(i, "PENDING
// (Resources)" / "RUNNING on node1")` hears each new state, `on_end(i, ...)`
// each end as it comes. `sleep` waits between rounds; when `stop()` says
// so, wait_all returns with the jobs not yet ended left as they are (the
// caller cancels them).
struct Watched {
  std::string id;
  std::chrono::seconds queue_limit, run_limit;
};
struct WaitResult {
  JobInfo info;
  bool gave_up = false;
  std::string why;
};
void wait_all(const std::vector<Watched>& jobs, const std::function<void(size_t, const std::string&)>& on_state,
              const std::function<void(size_t, const WaitResult&)>& on_end, const std::function<bool()>& stop,
              const std::function<void(std::chrono::milliseconds)>& sleep);

}  // namespace kiln::slurm
