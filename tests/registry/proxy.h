// A tiny HTTP/1.1 proxy for registry tests, in front of the real registry:
// it records every request (counting blob traffic), and a hook may answer
// in its place (faults: 500, 429, delays, resets; a bearer-token gate;
// redirects) or lie (a 404 for a manifest that exists).
// One request per connection (it answers "Connection: close").
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kiln::test {

struct SeenRequest {
  std::string method, target;                  // "GET", "/v2/x/manifests/1"
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};

struct Canned {
  int status = 200;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};

struct HookResult {
  std::optional<Canned> answer;  // empty: forward upstream
  int delay_ms = 0;              // before answering or forwarding
  std::size_t cut_after = 0;     // forwarding: close after this many bytes of the reply (0: all)
  bool reset = false;            // no answer: the connection is reset (RST), as a crashed peer does
};

class Proxy {
 public:
  using Hook = std::function<HookResult(const SeenRequest&)>;
  explicit Proxy(std::string upstream);  // "127.0.0.1:PORT"
  ~Proxy();
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  void set_hook(Hook h);
  std::vector<SeenRequest> seen();
  void clear();

 private:
  void serve(int fd);
  std::string upstream_host_;
  int upstream_port_ = 0;
  int listen_fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<SeenRequest> seen_;
  Hook hook_;
};

}  // namespace kiln::test
