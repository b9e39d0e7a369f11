// Pieces of the engine room shared by its files; not part of its interface
// (tests include it to check the incremental parsers on split input).
#pragma once

#include "engine/engine.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::engine::detail {

// ---- HTTP to the engine (unix socket, TCP/TLS, ssh tunnel) ----

struct HttpRequest {
  std::string method = "GET";
  std::string path;  // after /v1.41, with its query string
  std::vector<std::string> headers;
  std::string body;     // used when body_reader is empty
  ReadFn body_reader;   // a streamed body (chunked transfer)
  ChunkFn on_data;      // streamed 2xx response body; empty: collect into body
  // A container wait's limit: the reply may be silent that long, and running
  // out is reported as timed_out, not thrown. 0 for every other request,
  // whose limits come from the environment (docs/engine.md, "Time limits"):
  // one with a body either way (on_data, body_reader) is a stream, alive as
  // long as bytes move; any other is a call with a total limit.
  long timeout_ms = 0;
};

struct HttpResponse {
  long status = 0;
  std::string body;  // the whole body unless on_data took it (errors always land here)
  bool timed_out = false;
  std::string message() const;  // the engine's {"message"} or the raw body
};

// Throws Unreachable when the socket cannot be reached, Timeout (naming the
// endpoint, the request and the limit) when it does not answer in time; a
// timeout is reported in the response only when the request set timeout_ms.
HttpResponse http(const Endpoint& ep, const HttpRequest& req);
// The same, throwing ApiError for any status >= 400.
HttpResponse http_ok(const Endpoint& ep, const HttpRequest& req);

std::string url_escape(std::string_view s);

// ---- ssh engines: a unix socket forwarded by `ssh -L` ----

// The local end of an ssh engine's forwarded socket. The tunnel (one ssh
// process per engine URL, shared by every request and thread) is opened on
// first use, opened again when its ssh has ended, and ended when kiln exits.
// Throws Unreachable naming what ssh said (permission denied, host key,
// connection refused), Timeout when it does not come up in time.
std::string local_socket(const Endpoint& ep);
// After a request through the tunnel failed: what ssh logged about it (the
// remote socket missing, forwarding forbidden, ssh gone), as the reason to
// report; "" when it said nothing.
std::string ssh_trouble(const Endpoint& ep);

// ---- incremental parsers ----

// Splits a byte stream into top-level JSON values: NDJSON (the engine) and
// concatenated pretty-printed objects (buildx rawjson) alike. Text outside
// any object (buildx's "ERROR: ..." lines) comes out line by line.
class JsonSplitter {
 public:
  using ObjectFn = std::function<void(const nlohmann::json&)>;
  using TextFn = std::function<void(std::string_view)>;
  JsonSplitter(ObjectFn on_object, TextFn on_text);
  void feed(std::string_view bytes);
  void finish();  // flushes trailing text

 private:
  void emit_object();
  ObjectFn on_object_;
  TextFn on_text_;
  std::string cur_;
  int depth_ = 0;
  bool in_string_ = false, escape_ = false;
};

// Joins text fragments (the build stream's "stream" pieces) into lines.
class LineAssembler {
 public:
  explicit LineAssembler(std::function<void(std::string_view)> on_line);
  void feed(std::string_view text);
  void finish();

 private:
  std::function<void(std::string_view)> on_line_;
  std::string partial_;
};

// The 8-byte frame header of non-TTY container logs:
// [stream (1 stdout, 2 stderr), 0, 0, 0, size u32 big-endian], then size bytes.
class FrameDemux {
 public:
  explicit FrameDemux(Logs& into) : logs_(into) {}
  void feed(std::string_view bytes);
  bool clean() const { return have_ == 0 && left_ == 0; }  // no half frame pending

 private:
  Logs& logs_;
  std::array<unsigned char, 8> header_{};
  std::size_t have_ = 0;   // header bytes collected
  std::uint32_t left_ = 0;  // payload bytes still due for the current frame
  int stream_ = 1;
};

// "Step 3/7 : RUN x" (Docker), "STEP 3/7: RUN x" (Buildah) -> (3, 7); "[2/5] RUN x", "[stage 2/5] RUN x" -> (2, 5).
bool parse_step(std::string_view line, int& step, int& total);
// ANSI colour codes dropped (the classic builder paints stderr red).
std::string strip_ansi(std::string_view s);

// ---- build contexts ----

// A directory as a deterministic tar, produced on demand: sorted member
// order, mtime 0, uid/gid 0, no user names; read() fills the caller's
// buffer and writes only as much of the archive as it needs.
class ContextTar {
 public:
  explicit ContextTar(const std::filesystem::path& dir);
  ~ContextTar();
  ContextTar(const ContextTar&) = delete;
  ContextTar& operator=(const ContextTar&) = delete;
  std::size_t read(char* buf, std::size_t n);  // 0 at the end; throws std::runtime_error

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- builders ----
std::unique_ptr<Builder> make_engine_builder(const Endpoint& ep);
std::unique_ptr<Builder> make_buildx_builder(const Endpoint& ep, const BuildxOptions& opts);

}  // namespace kiln::engine::detail
