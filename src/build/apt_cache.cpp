#include "build/apt_cache.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace kiln::build::detail {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kProgram = "/usr/sbin/apt-cacher-ng";

// A TCP connection to host:port within `limit`.
bool connects(const std::string& host, const std::string& port, std::chrono::milliseconds limit) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* a = res; a && !ok; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, static_cast<int>(limit.count())) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
           err == 0;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

// Nothing listens on 127.0.0.1:port (a bind succeeds). SO_REUSEADDR as
// apt-cacher-ng sets it: the connections of the previous build's cache, in
// TIME_WAIT for a minute, must not move the next build to another port.
bool port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// The port this state directory used before, else 3142 (apt-cacher-ng's
// own), else the first free one above 23142. All below 32768: Debian 12's
// apt-cacher-ng 3.7.4 cannot bind a port from 32768 on ("Error resolving
// address for binding"), so the kernel's ephemeral ports are no choice.
int choose_port(const fs::path& dir) {
  std::vector<int> candidates;
  if (std::ifstream in(dir / "port"); in) {
    int p = 0;
    if (in >> p && p > 0 && p < 32768) candidates.push_back(p);
  }
  candidates.push_back(3142);
  for (int p = 23142; p < 23142 + 400; ++p) candidates.push_back(p);
  for (int p : candidates)
    if (port_free(p)) return p;
  throw std::runtime_error("no free loopback port for apt-cacher-ng (tried 3142 and 23142-23541)");
}

// Its own configuration, so a host's /etc/apt-cacher-ng changes nothing:
// Debian's archive and security mirrors are remapped to one cache each
// (a second mirror of the same archive hits the same files).
void write_config(const fs::path& dir, int port) {
  fs::create_directories(dir / "cache");
  fs::create_directories(dir / "log");
  std::ofstream c(dir / "acng.conf", std::ios::trunc);
  c << "# Written by kiln for one build's apt cache (docs/build.md); rewritten at every start.\n"
    << "CacheDir: " << fs::absolute(dir / "cache").string() << "\n"
    << "LogDir: " << fs::absolute(dir / "log").string() << "\n"
    << "SupportDir: /usr/lib/apt-cacher-ng\n"
    << "Port: " << port << "\n"
    << "BindAddress: 127.0.0.1\n"
    // Its unix socket (for in.acng) in /tmp: a deep state directory would
    // pass the 108-byte limit of socket paths.
    << "SocketPath: /tmp/kiln-acng-" << port << ".sock\n"
    << "PidFile: " << fs::absolute(dir / "acng.pid").string() << "\n"
    << "ForeGround: 1\n"
    << "ExThreshold: 4\n"
    << "Remap-debrep: file:deb_mirror*.gz /debian ; http://deb.debian.org/debian/\n"
    << "Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security "
       "/debian-security ; http://deb.debian.org/debian-security/\n";
  std::ofstream(dir / "port", std::ios::trunc) << port << "\n";
}

}  // namespace

std::unique_ptr<AptCacher> AptCacher::start(const std::string& dir_name) {
  if (access(kProgram, X_OK) != 0)
    throw std::runtime_error(fmt::format("[cache] apt = \"kiln\" needs Debian's apt-cacher-ng ({} is missing): "
                                         "scripts/install-deps.sh installs it", kProgram));
  fs::path dir = fs::absolute(dir_name);
  int port = choose_port(dir);
  write_config(dir, port);
  std::string conf = (dir).string(), out = (dir / "log" / "acng.out").string();
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls.
  std::vector<std::string> args{kProgram, "-c", conf};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed for apt-cacher-ng");
  if (pid == 0) {
    // Dies with kiln however kiln ends (a SIGKILL included): the cache never
    // outlives the build that started it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    setpgid(0, 0);  // not in the terminal's group: Ctrl-C reaches kiln, which stops it
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (null >= 0) dup2(null, 0);
    execv(kProgram, argv.data());
    _exit(127);
  }
  std::unique_ptr<AptCacher> self(new AptCacher(pid, port));
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      self->pid_ = -1;
      throw std::runtime_error(fmt::format("apt-cacher-ng exited at start (status {}); its output: {}", status, out));
    }
    if (connects("127.0.0.1", std::to_string(port), 200ms)) return self;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error(fmt::format("apt-cacher-ng did not answer on 127.0.0.1:{} within 15 s; its output: {}", port, out));
}

AptCacher::~AptCacher() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(100ms);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::string AptCacher::url() const { return fmt::format("http://127.0.0.1:{}", port_); }

void check_proxy_answers(const std::string& url) {
  std::string rest = url.substr(url.find("//") + 2);
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port = "80";
  if (auto colon = rest.rfind(':'); colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (!connects(host, port, 5s))
    throw std::runtime_error(fmt::format("[cache] apt proxy {} does not accept connections", url));
}

}  // namespace kiln::build::detail
