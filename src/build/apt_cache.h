// The apt package cache a build goes through ([cache] apt, docs/build.md).
//
// "kiln": Debian's apt-cacher-ng, started for the length of one build under
// <state_dir>/apt-cache/ (its config, cache/, log/), listening on loopback
// only. Builds run with the host's network (Options::network), so a RUN
// step reaches it at 127.0.0.1. The port is kept in apt-cache/port and
// reused: the proxy's address is a build argument, and a different one would
// miss the engine's layer cache for every apt step.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

namespace kiln::build::detail {

class AptCacher {
 public:
  // Throws std::runtime_error (apt-cacher-ng missing, no free port, did not
  // answer within 15 s: the message names its log).
  static std::unique_ptr<AptCacher> start(const std::string& dir);
  ~AptCacher();  // SIGTERM, then SIGKILL after 5 s
  AptCacher(const AptCacher&) = delete;
  AptCacher& operator=(const AptCacher&) = delete;

  std::string url() const;  // http://127.0.0.1:PORT
  int port() const { return port_; }

 private:
  AptCacher(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

// An existing proxy's "http://HOST:PORT" must accept a TCP connection
// within 5 s; throws std::runtime_error naming it otherwise.
void check_proxy_answers(const std::string& url);

}  // namespace kiln::build::detail
