// ssh:// engines. The Docker CLI runs `ssh HOST docker system dial-stdio`
// once per connection; kiln's transport is libcurl, which wants a socket,
// so kiln forwards the remote engine's unix socket instead:
//   ssh -nNT -o BatchMode=yes -o ExitOnForwardFailure=yes
//       -L /tmp/kiln-ssh-XXXXXX/docker.sock:/var/run/docker.sock [-p PORT] [-l USER] -- HOST
// One ssh process per engine URL carries every request (and `docker buildx`,
// given the local socket as DOCKER_HOST), and the remote host needs sshd and
// a Docker engine but no docker CLI. BatchMode: a refused key or an unknown
// host key fails at once instead of prompting on a terminal kiln does not own.
// The socket lives in a 0700 directory: a forwarded engine socket is root on
// the remote host, so no other local user may connect to it.
#include "engine/internal.h"
#include "util/child.h"
#include "util/env_limits.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace kiln::engine::detail {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// KILN_SSH_OPTS: extra ssh arguments (e.g. "-i KEY -o UserKnownHostsFile=F"),
// split on white space. Docker reads only ~/.ssh/config; this is for the
// cases a config file cannot name (tests, CI jobs). Paths, never secrets.
std::vector<std::string> extra_options() {
  std::vector<std::string> out;
  const char* opts = std::getenv("KILN_SSH_OPTS");
  std::istringstream in(opts ? opts : "");
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> ssh_argv(const Endpoint& ep, const std::string& local) {
  using namespace std::chrono_literals;
  std::vector<std::string> a = {"ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                                "-o", "StreamLocalBindUnlink=yes"};
  // ssh takes the first value it reads for an option: kiln's come first,
  // the user's KILN_SSH_OPTS next, then defaults the user may have overridden.
  for (auto& o : extra_options()) a.push_back(std::move(o));
  const auto connect = env_seconds("KILN_ENGINE_CONNECT_TIMEOUT", 10s);
  if (connect.count() > 0)
    a.insert(a.end(), {"-o", "ConnectTimeout=" + std::to_string((connect.count() + 999) / 1000)});
  a.insert(a.end(), {"-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"});
  if (ep.port) a.insert(a.end(), {"-p", std::to_string(ep.port)});
  if (!ep.user.empty()) a.insert(a.end(), {"-l", ep.user});
  a.insert(a.end(), {"-L", local + ":" + ep.socket_path, "--", ep.host});
  return a;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ssh's stderr, without the notes that say nothing went wrong.
std::vector<std::string> log_lines(const fs::path& log) {
  std::vector<std::string> out;
  std::istringstream in(read_file(log));
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.empty() || l.starts_with("Warning: Permanently added")) continue;
    out.push_back(l);
  }
  return out;
}

bool contains(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// Why ssh could not set the tunnel up, and what to do, from its log.
std::string why_ssh_failed(const Endpoint& ep, const std::vector<std::string>& lines, int status) {
  const std::string where = ep.host + (ep.port ? ":" + std::to_string(ep.port) : "");
  for (const auto& l : lines) {
    if (contains(l, "Permission denied"))
      return "ssh: permission denied (" + (l.find('(') != std::string::npos ? l.substr(l.find('(') + 1, l.find(')') - l.find('(') - 1) : std::string("publickey")) +
             "): " + where + " refused kiln's key (ssh runs with BatchMode=yes and never prompts); add the key to the "
             "remote ~/.ssh/authorized_keys, load it into ssh-agent, or name it in ~/.ssh/config or KILN_SSH_OPTS=\"-i KEY\"";
    if (contains(l, "Host key verification failed") || contains(l, "REMOTE HOST IDENTIFICATION HAS CHANGED"))
      return "ssh: host key verification failed for " + where + " (BatchMode never asks): add its key to "
             "~/.ssh/known_hosts (ssh-keyscan), or set KILN_SSH_OPTS=\"-o StrictHostKeyChecking=accept-new\"";
    if (contains(l, "Connection refused"))
      return "ssh: connection refused: no ssh server listens on " + where;
    if (contains(l, "Could not resolve hostname")) return "ssh: " + l;
    if (contains(l, "timed out")) return "ssh: " + l + " (KILN_ENGINE_CONNECT_TIMEOUT)";
  }
  if (status == 127) return "ssh is not installed here (kiln runs `ssh` to reach ssh:// engines)";
  return "ssh exited with status " + std::to_string(status) + (lines.empty() ? "" : ": " + lines.back());
}

class Tunnel {
 public:
  explicit Tunnel(const Endpoint& ep) {
    std::string tmpl = (fs::temp_directory_path() / "kiln-ssh-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    dir_ = tmpl;
    socket_ = (dir_ / "docker.sock").string();
    log_ = dir_ / "ssh.log";
    try {
      ssh_ = std::make_unique<BackgroundChild>(ssh_argv(ep, socket_), log_.string());
    } catch (const std::runtime_error&) {
      remove_dir();
      throw Unreachable("cannot reach the engine at " + ep.uri() +
                        ": ssh is not installed here (kiln runs `ssh` to reach ssh:// engines)");
    }
    wait_until_up(ep);
  }
  ~Tunnel() {
    ssh_.reset();  // before its directory goes
    remove_dir();
  }
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  const std::string& socket() const { return socket_; }
  bool alive() { return !ssh_->exited(); }
  std::vector<std::string> log() const { return log_lines(log_); }

 private:
  // Up when ssh has made the local socket (it does so after logging in);
  // down when ssh has exited (ExitOnForwardFailure covers a failed forward).
  void wait_until_up(const Endpoint& ep) {
    using namespace std::chrono_literals;
    const auto connect = env_seconds("KILN_ENGINE_CONNECT_TIMEOUT", 10s);
    // Connecting has its limit (ssh's ConnectTimeout); logging in gets as long again.
    const auto deadline = Clock::now() + 2 * connect + 5s;
    for (;;) {
      struct stat st {};
      if (::stat(socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return;
      if (auto status = ssh_->exited()) {
        const std::string why = why_ssh_failed(ep, log(), *status);
        ssh_.reset();
        remove_dir();
        throw Unreachable("cannot reach the engine at " + ep.uri() + ": " + why);
      }
      if (connect.count() > 0 && Clock::now() >= deadline) {
        ssh_.reset();
        remove_dir();
        throw Timeout("engine " + ep.uri() + ": ssh did not open its forwarded socket within " +
                      describe_seconds(std::chrono::duration_cast<std::chrono::milliseconds>(2 * connect + 5s)) +
                      " (KILN_ENGINE_CONNECT_TIMEOUT)");
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  void remove_dir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_, log_;
  std::string socket_;
  std::unique_ptr<BackgroundChild> ssh_;
};

// One tunnel per engine URL for the whole process; destroyed at exit, which
// ends the ssh processes.
struct Tunnels {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Tunnel>> open;
};
Tunnels& tunnels() {
  static Tunnels t;
  return t;
}

}  // namespace

std::string local_socket(const Endpoint& ep) {
  Tunnels& t = tunnels();
  std::lock_guard lock(t.mu);
  auto& slot = t.open[ep.uri()];
  if (slot && !slot->alive()) slot.reset();  // the connection dropped: log in again
  if (!slot) slot = std::make_unique<Tunnel>(ep);
  return slot->socket();
}

std::string ssh_trouble(const Endpoint& ep) {
  Tunnels& t = tunnels();
  std::lock_guard lock(t.mu);
  auto it = t.open.find(ep.uri());
  if (it == t.open.end() || !it->second) return "";
  const auto lines = it->second->log();
  // The most recent complaint about the forwarded socket tells the most.
  for (auto l = lines.rbegin(); l != lines.rend(); ++l) {
    if (!contains(*l, "open failed")) continue;
    if (contains(*l, "administratively prohibited"))
      return "the ssh server forbids forwarding a unix socket (sshd_config AllowStreamLocalForwarding); kiln needs it "
             "to reach the engine's socket " + ep.socket_path;
    return "ssh logged in, but no Docker engine answers on " + ep.socket_path + " on " + ep.host + " (" + *l +
           "): is Docker installed and running there? (another socket: ssh://" +
           (ep.user.empty() ? "" : ep.user + "@") + ep.host + (ep.port ? ":" + std::to_string(ep.port) : "") +
           "/path/to/docker.sock)";
  }
  if (!it->second->alive())
    return "the ssh connection ended (" + (lines.empty() ? std::string("ssh said nothing") : lines.back()) + ")";
  return "";
}

}  // namespace kiln::engine::detail
