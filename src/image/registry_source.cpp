// A registry as a BlobSource: the reference's manifest behind a made-up OCI
// index.json, manifests served as received, every other blob streamed by a
// producer thread (Client::read_blob pushes, ByteStream::read pulls).
#include "image/registry_source.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "image/internal.h"

namespace kiln::image {
namespace {

using nlohmann::json;

// How far the download may run ahead of the reader: enough to keep the
// connection busy while a library is scanned, small next to a layer.
constexpr std::size_t kPipeCapacity = 4u << 20;

// Registry errors as a reader says them; a 404 says "not found" first.
std::string registry_failure(const std::exception& e) {
  if (dynamic_cast<const registry::NotFound*>(&e)) return std::string("not found: ") + e.what();
  return e.what();
}

// The bounded hand-over from the thread that downloads to the one that reads.
class BlobPipe {
 public:
  // Producer: blocks while the pipe is full; false once the reader cancelled.
  bool push(std::string_view bytes) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_ || queued_ == 0 || queued_ + bytes.size() <= kPipeCapacity; });
    if (cancelled_) return false;
    chunks_.emplace_back(bytes);
    queued_ += bytes.size();
    cv_.notify_all();
    return true;
  }
  void finish(std::exception_ptr error) {
    std::lock_guard lock(mu_);
    finished_ = true;
    error_ = std::move(error);
    cv_.notify_all();
  }

  // Reader: 0 at the end; rethrows what the producer threw.
  std::size_t pull(std::byte* buf, std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_ || finished_ || !chunks_.empty(); });
    if (cancelled_) throw std::runtime_error("stream stopped: another blob of this image was opened after it");
    if (chunks_.empty() && error_) std::rethrow_exception(error_);
    std::size_t copied = 0;
    while (copied < n && !chunks_.empty()) {
      const std::string& front = chunks_.front();
      const std::size_t take = std::min(n - copied, front.size() - front_used_);
      std::memcpy(buf + copied, front.data() + front_used_, take);
      copied += take;
      front_used_ += take;
      if (front_used_ == front.size()) {
        chunks_.pop_front();
        front_used_ = 0;
      }
    }
    queued_ -= copied;
    cv_.notify_all();
    return copied;
  }
  void cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  std::size_t front_used_ = 0;  // bytes of chunks_.front() already read
  std::size_t queued_ = 0;      // bytes not yet read
  bool finished_ = false, cancelled_ = false;
  std::exception_ptr error_;
};

// One blob download on its own thread. Stopping cancels the pipe (the sink
// then returns false, which ends the transfer) and joins the thread.
class Producer {
 public:
  Producer(std::shared_ptr<registry::Client> client, std::string repo, std::string digest)
      : thread_([this, client = std::move(client), repo = std::move(repo), digest = std::move(digest)] {
          std::exception_ptr error;
          try {
            client->read_blob(repo, digest, [this](std::string_view bytes) { return pipe_.push(bytes); });
          } catch (...) {
            error = std::current_exception();
          }
          pipe_.finish(error);
        }) {}
  ~Producer() { stop(); }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  BlobPipe& pipe() { return pipe_; }
  void stop() {
    std::lock_guard lock(stop_mu_);
    pipe_.cancel();
    if (thread_.joinable()) thread_.join();
  }

 private:
  BlobPipe pipe_;  // before thread_: the thread uses it from its first instruction
  std::mutex stop_mu_;
  std::thread thread_;
};

class BlobStream : public ByteStream {
 public:
  BlobStream(std::shared_ptr<Producer> producer, std::string where)
      : producer_(std::move(producer)), where_(std::move(where)) {}
  std::size_t read(std::byte* buf, std::size_t n) override {
    try {
      return producer_->pipe().pull(buf, n);
    } catch (const std::exception& e) {
      throw ImageError(where_ + ": " + registry_failure(e));
    }
  }

 private:
  std::shared_ptr<Producer> producer_;  // the only owner: destroying the stream stops it
  std::string where_;
};


// "blobs/sha256/<hex>" -> "sha256:<hex>"; nullopt for any other name.
std::optional<std::string> digest_of_blob_name(const std::string& name) {
  constexpr std::string_view prefix = "blobs/sha256/";
  if (!name.starts_with(prefix)) return std::nullopt;
  std::string digest = "sha256:" + name.substr(prefix.size());
  if (!detail::is_sha256_digest(digest)) return std::nullopt;
  return digest;
}

class RegistrySource : public BlobSource {
 public:
  RegistrySource(registry::Reference ref, registry::Options opts) : ref_(std::move(ref)) {
    opts.host = ref_.host;
    client_ = std::make_shared<registry::Client>(std::move(opts));
  }
  ~RegistrySource() override { stop_active(); }

  std::string describe() const override { return "docker://" + ref_.str(); }

  bool exists(const std::string& name) override {
    if (name == "index.json") return true;  // made up from the reference
    const auto digest = digest_of_blob_name(name);
    if (!digest) return false;
    if (is_manifest(*digest)) return true;
    stop_active();
    return ask([&] { return client_->blob_exists(ref_.repo, *digest); });
  }

  std::unique_ptr<ByteStream> open(const std::string& name) override {
    stop_active();
    if (name == "index.json") return std::make_unique<detail::MemoryStream>(index_json());
    const auto digest = digest_of_blob_name(name);
    if (!digest) throw ImageError(describe() + ": a registry serves no blob named " + name);
    if (is_manifest(*digest)) return std::make_unique<detail::MemoryStream>(manifest(*digest).bytes);
    auto producer = std::make_shared<Producer>(client_, ref_.repo, *digest);
    active_ = producer;
    return std::make_unique<BlobStream>(std::move(producer), describe() + ": blob " + *digest);
  }

 private:
  // The registry client is not thread-safe: no call while a download runs.
  void stop_active() {
    if (auto p = active_.lock()) p->stop();
  }

  // A registry call from the reader's thread; its errors name this image.
  template <class Fn>
  auto ask(Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const std::exception& e) {
      throw ImageError(describe() + ": " + registry_failure(e));
    }
  }

  // The reference's manifest, described by a one-entry OCI index.
  std::string index_json() {
    const registry::Manifest& top = manifest(ref_.ref());
    json desc = {{"digest", top.digest}, {"size", top.bytes.size()}};
    if (!top.media_type.empty()) desc["mediaType"] = top.media_type;
    if (!ref_.tag.empty()) desc["annotations"] = {{"org.opencontainers.image.ref.name", ref_.tag}};
    return json{{"schemaVersion", 2}, {"mediaType", registry::media::oci_index}, {"manifests", json::array({desc})}}.dump();
  }

  bool is_manifest(const std::string& digest) const {
    return by_ref_.count(digest) > 0 || listed_.count(digest) > 0;
  }

  // A manifest by tag or digest, fetched once; the digests an index lists
  // become manifests this source serves.
  const registry::Manifest& manifest(const std::string& ref) {
    if (auto it = by_ref_.find(ref); it != by_ref_.end()) return it->second;
    registry::Manifest m = ask([&] { return client_->get_manifest(ref_.repo, ref); });
    remember_children(m);
    by_ref_.emplace(m.digest, m);  // a tag never looks like a digest
    return by_ref_.emplace(ref, std::move(m)).first->second;
  }

  void remember_children(const registry::Manifest& m) {
    const json j = json::parse(m.bytes, nullptr, false);
    if (!j.is_object()) return;  // the reader reports bad JSON, naming the blob
    auto children = j.find("manifests");
    if (children == j.end() || !children->is_array()) return;
    for (const auto& d : *children)
      if (d.is_object() && d.contains("digest") && d["digest"].is_string()) listed_.insert(d["digest"].get<std::string>());
  }

  registry::Reference ref_;
  std::shared_ptr<registry::Client> client_;  // shared with the producer thread, used by one at a time
  std::map<std::string, registry::Manifest> by_ref_;  // tag and digest -> fetched manifest
  std::set<std::string> listed_;                      // digests listed by fetched indexes
  std::weak_ptr<Producer> active_;                    // the download of the last stream opened
};

}  // namespace

std::shared_ptr<BlobSource> registry_source(const registry::Reference& ref, registry::Options opts) {
  return std::make_shared<RegistrySource>(ref, std::move(opts));
}

}  // namespace kiln::image
