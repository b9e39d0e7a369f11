#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace kiln::test {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t w = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 307: return "Temporary Redirect";
    case 401: return "Unauthorized";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

// Whether a raw chunked body holds its last (zero-size) chunk and trailer.
bool chunked_complete(const std::string& body) {
  std::size_t pos = 0;
  for (;;) {
    std::size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    std::size_t size = 0;
    try {
      size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    } catch (const std::exception&) {
      return true;  // not chunked after all: forward what came
    }
    if (size == 0) return body.find("\r\n\r\n", eol) != std::string::npos;
    pos = eol + 2 + size + 2;
    if (pos > body.size()) return false;
  }
}

}  // namespace

Proxy::Proxy(std::string upstream) {
  auto colon = upstream.rfind(':');
  upstream_host_ = upstream.substr(0, colon);
  upstream_port_ = std::stoi(upstream.substr(colon + 1));
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 64) != 0)
    throw std::runtime_error("proxy: cannot listen");
  socklen_t len = sizeof a;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> l(mu_);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  });
}

Proxy::~Proxy() {
  stop_ = true;
  acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> w;
  {
    std::lock_guard<std::mutex> l(mu_);
    w.swap(workers_);
  }
  for (auto& t : w) t.join();
}

void Proxy::set_hook(Hook h) {
  std::lock_guard<std::mutex> l(mu_);
  hook_ = std::move(h);
}

std::vector<SeenRequest> Proxy::seen() {
  std::lock_guard<std::mutex> l(mu_);
  return seen_;
}

void Proxy::clear() {
  std::lock_guard<std::mutex> l(mu_);
  seen_.clear();
}

void Proxy::serve(int fd) {
  std::string buf;
  char tmp[65536];
  std::size_t hdr_end;
  while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) { close(fd); return; }
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r <= 0) { close(fd); return; }
    buf.append(tmp, static_cast<std::size_t>(r));
    // A TLS ClientHello (Docker tries HTTPS first even on an insecure
    // registry): close at once so it falls back to HTTP without waiting.
    if (buf[0] == '\x16') { close(fd); return; }
  }
  SeenRequest req;
  std::string head = buf.substr(0, hdr_end);
  std::size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  req.method = line.substr(0, sp1);
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::vector<std::string> fwd_headers;
  for (std::size_t pos = eol + 2; pos < head.size() && eol != std::string::npos;) {
    std::size_t e = head.find("\r\n", pos);
    std::string h = head.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    pos = e == std::string::npos ? head.size() : e + 2;
    auto c = h.find(':');
    if (c == std::string::npos) continue;
    std::string name = lower(h.substr(0, c));
    std::string v = h.substr(c + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    req.headers[name] = v;
    if (name != "connection") fwd_headers.push_back(h);
  }
  std::size_t want = std::stoul(req.header("content-length").empty() ? "0" : req.header("content-length"));
  // Docker's engine uploads layers with a chunked body: read up to its last
  // chunk (kept raw, forwarded as it came) or the request would never end.
  bool chunked = lower(req.header("transfer-encoding")).find("chunked") != std::string::npos;
  req.body = buf.substr(hdr_end + 4);
  auto complete = [&] { return chunked ? chunked_complete(req.body) : req.body.size() >= want; };
  while (!complete()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0) break;
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r <= 0) break;
    req.body.append(tmp, static_cast<std::size_t>(r));
  }
  Hook hook;
  {
    std::lock_guard<std::mutex> l(mu_);
    seen_.push_back(req);
    hook = hook_;
  }
  HookResult hr = hook ? hook(req) : HookResult{};
  if (hr.delay_ms > 0) {
    // Sleep in slices so the proxy's destructor is not held up for long.
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(hr.delay_ms);
    while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (hr.reset) {
    linger l{1, 0};  // close() then sends RST, not FIN
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
    return;
  }
  if (hr.answer) {
    std::string out = "HTTP/1.1 " + std::to_string(hr.answer->status) + " " + reason(hr.answer->status) + "\r\n";
    for (const auto& h : hr.answer->headers) out += h + "\r\n";
    out += "Content-Length: " + std::to_string(hr.answer->body.size()) + "\r\nConnection: close\r\n\r\n";
    if (req.method != "HEAD") out += hr.answer->body;
    write_all(fd, out);
    close(fd);
    return;
  }
  int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  inet_pton(AF_INET, upstream_host_.c_str(), &a.sin_addr);
  if (connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(up);
    write_all(fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    close(fd);
    return;
  }
  std::string out = line + "\r\n";
  for (const auto& h : fwd_headers) out += h + "\r\n";
  out += "Connection: close\r\n\r\n" + req.body;
  write_all(up, out);
  std::size_t forwarded = 0;
  while (hr.cut_after == 0 || forwarded < hr.cut_after) {
    ssize_t r = recv(up, tmp, sizeof tmp, 0);
    if (r <= 0) break;
    std::size_t n = static_cast<std::size_t>(r);
    if (hr.cut_after) n = std::min(n, hr.cut_after - forwarded);  // a connection that breaks mid-reply
    if (!write_all(fd, std::string(tmp, n))) break;
    forwarded += n;
  }
  close(up);
  close(fd);
}

}  // namespace kiln::test
