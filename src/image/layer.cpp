// Walking a layer blob through a nested libarchive reader. A streamed blob
// is hashed on the way, so the digest is checked without a second read; a
// blob that lies in a file is walked with seeks and hashed on other threads.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <mutex>
#include <thread>

#include "image/internal.h"

namespace kiln::image::detail {

std::string read_blob(BlobSource& src, const std::string& name, std::size_t limit, const std::string& digest) {
  auto s = src.open(name);
  std::string out;
  std::array<std::byte, 1 << 16> buf;
  while (std::size_t n = s->read(buf.data(), buf.size())) {
    if (out.size() + n > limit) throw ImageError(src.describe() + ": " + name + " is larger than " + std::to_string(limit) + " bytes");
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  if (!digest.empty()) {
    Sha256 h;
    h.update(out.data(), out.size());
    if (const auto got = "sha256:" + h.hex(); got != digest)
      throw ImageError(src.describe() + ": " + name + ": digest mismatch: expected " + digest + ", got " + got);
  }
  return out;
}

namespace {

std::string size_text(std::uint64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llu bytes (%.1f MiB)", static_cast<unsigned long long>(n), double(n) / (1 << 20));
  return buf;
}

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

}  // namespace

void Budget::fail(const std::string& what) const {
  throw ImageError(where_ + (member_.empty() ? "" : ": member '" + member_ + "'") + ": " + what);
}

void Budget::next_member(archive_entry* e) {
  const char* p = archive_entry_pathname(e);
  member_ = p ? p : "?";
  member_bytes_ = 0;
}

void Budget::start_reading(archive* a, archive_entry* e) {
  const std::uint64_t size = archive_entry_size_is_set(e) ? std::uint64_t(std::max<la_int64_t>(0, archive_entry_size(e))) : 0;
  if (size > limits_.max_member_size)
    fail("claims " + size_text(size) + ", over the limit of " + size_text(limits_.max_member_size) +
         " a member may hand out (--max-member-size raises it); refused before reading");
  if (archive_entry_sparse_reset(e) > 0) {  // holes: bytes the member expands to that the layer does not store
    std::uint64_t stored = 0;
    la_int64_t off = 0, len = 0;
    while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) stored = saturating_add(stored, std::uint64_t(std::max<la_int64_t>(0, len)));
    holes_ = saturating_add(holes_, size > stored ? size - stored : 0);
  }
  check_expansion(a);
}

void Budget::hand_out(archive* a, std::uint64_t n) {
  member_bytes_ = saturating_add(member_bytes_, n);
  if (member_bytes_ > limits_.max_member_size)
    fail("hands out more than " + size_text(limits_.max_member_size) + " (--max-member-size raises it)");
  if (total_) {
    *total_ = saturating_add(*total_, n);
    if (*total_ > limits_.max_total_size)
      fail("the members read so far hand out more than " + size_text(limits_.max_total_size) + " in all (--max-total-size raises it)");
  }
  check_expansion(a);
}

void Budget::check_expansion(archive* a) const {
  const la_int64_t out = archive_filter_bytes(a, 0), in = archive_filter_bytes(a, -1);
  const std::uint64_t expanded = saturating_add(std::uint64_t(std::max<la_int64_t>(0, out)), holes_);
  const std::uint64_t stored = std::uint64_t(std::max<la_int64_t>(0, in));
  const std::uint64_t bound = saturating_add(limits_.expansion_floor, saturating_mul(limits_.max_expansion, stored));
  if (expanded > bound)
    fail("has expanded to " + size_text(expanded) + " from " + size_text(stored) + " stored" +
         (holes_ ? " (sparse holes included)" : "") + ": over " + std::to_string(limits_.max_expansion) + "x + " +
         size_text(limits_.expansion_floor) + "; refused as a decompression bomb (--max-expansion raises the ratio)");
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> body_place(archive* a, archive_entry* e) {
  // After next_header the format has consumed exactly the header blocks, so
  // the position of the stream it reads is the body's first byte.
  if (archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE || archive_entry_sparse_count(e) > 0 ||
      !archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
    return std::nullopt;
  const la_int64_t at = archive_filter_bytes(a, 0);
  if (at < 0) return std::nullopt;
  return std::pair(static_cast<std::uint64_t>(at), static_cast<std::uint64_t>(archive_entry_size(e)));
}

namespace {

// pread() until `n` bytes or the end of the file; returns what was read.
std::size_t read_at(int fd, std::byte* buf, std::size_t n, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      throw ImageError(std::string("read failed: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(r);
  }
  return done;
}

// sha256 runs at about 1-1.4 GB/s a core (SHA-NI), and the copy out of the
// page cache costs another fifth of that: a reader thread fills a ring of
// small buffers while this thread hashes, so the hash is all it waits for
// (on 16 cores, a 4.5 GB layer: 4.1-4.7 s read and hashed on one thread,
// 3.7-4.0 s with the ring; bench/audit.sh).
class ChunkRing {
 public:
  static constexpr std::size_t kSlots = 4, kChunk = 1u << 20;

  ChunkRing(const FileRegion& r, const std::atomic<bool>& cancel) : r_(r), cancel_(cancel), reader_([this] { fill(); }) {}
  ~ChunkRing() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    reader_.join();
  }
  ChunkRing(const ChunkRing&) = delete;
  ChunkRing& operator=(const ChunkRing&) = delete;

  // The next chunk, empty at the end; throws what the reader hit.
  std::span<const std::byte> next() {
    std::unique_lock lock(mu_);
    if (taken_) {  // the previous chunk is hashed: its slot is free again
      ++head_;
      taken_ = false;
      cv_.notify_all();
    }
    cv_.wait(lock, [&] { return tail_ > head_ || done_; });
    if (tail_ == head_) {
      if (error_) std::rethrow_exception(error_);
      return {};
    }
    taken_ = true;
    const Slot& s = slots_[head_ % kSlots];
    return {s.buf.data(), s.n};
  }

 private:
  struct Slot {
    std::array<std::byte, kChunk> buf;
    std::size_t n = 0;
  };

  void fill() {
    std::exception_ptr error;
    try {
      for (std::uint64_t at = 0; at < r_.size;) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return tail_ - head_ < kSlots || stop_; });
        if (stop_ || cancel_) break;
        Slot& s = slots_[tail_ % kSlots];
        lock.unlock();  // the slot is the reader's until tail_ moves past it
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, r_.size - at));
        s.n = read_at(r_.file->fd(), s.buf.data(), want, r_.offset + at);
        at += s.n;
        lock.lock();
        ++tail_;
        cv_.notify_all();
        if (s.n < want) break;  // the file ends early: the size check reports it
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(mu_);
    done_ = true;
    error_ = error;
    cv_.notify_all();
  }

  const FileRegion& r_;
  const std::atomic<bool>& cancel_;
  std::array<Slot, kSlots> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t head_ = 0, tail_ = 0;  // chunks hashed, chunks read
  bool taken_ = false, done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread reader_;  // last: starts once everything above exists
};

RegionHasher::Result hash_region(const FileRegion& r, const std::atomic<bool>& cancel) {
  RegionHasher::Result out;
  Sha256 h;
  ::posix_fadvise(r.file->fd(), static_cast<off_t>(r.offset), static_cast<off_t>(r.size), POSIX_FADV_SEQUENTIAL);
  try {
    auto ring = std::make_unique<ChunkRing>(r, cancel);  // 4 MiB: not on the stack
    while (!cancel) {
      const auto chunk = ring->next();
      if (chunk.empty()) break;
      h.update(chunk.data(), chunk.size());
      out.size += chunk.size();
    }
  } catch (const ImageError& e) {
    out.error = e.what();
  }
  out.digest = "sha256:" + h.hex();
  return out;
}

}  // namespace

struct RegionHasher::State {
  std::mutex mu;
  std::condition_variable done;
  std::vector<std::optional<Result>> results;
  std::atomic<bool> cancel{false};
  std::atomic<std::size_t> next{0};
  std::vector<std::size_t> order;  // largest region first: the longest hash starts at once
  std::vector<std::thread> workers;
};

RegionHasher::RegionHasher(std::vector<std::optional<FileRegion>> regions)
    : regions_(std::move(regions)), state_(std::make_shared<State>()) {
  State& st = *state_;
  st.results.resize(regions_.size());
  for (std::size_t i = 0; i < regions_.size(); ++i)
    if (regions_[i]) st.order.push_back(i);
  std::stable_sort(st.order.begin(), st.order.end(),
                   [&](std::size_t a, std::size_t b) { return regions_[a]->size > regions_[b]->size; });
  // One core stays with the walk; on one or two cores, one hashing thread.
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  const std::size_t n = std::min<std::size_t>(st.order.size(), cores - 1);
  for (std::size_t w = 0; w < n; ++w)
    st.workers.emplace_back([&st, this] {
      for (std::size_t k; (k = st.next++) < st.order.size() && !st.cancel;) {
        const std::size_t i = st.order[k];
        Result r = hash_region(*regions_[i], st.cancel);
        std::lock_guard lock(st.mu);
        st.results[i] = std::move(r);
        st.done.notify_all();
      }
    });
}

RegionHasher::~RegionHasher() {
  state_->cancel = true;
  for (auto& t : state_->workers) t.join();
}

RegionHasher::Result RegionHasher::wait(std::size_t i) {
  std::unique_lock lock(state_->mu);
  state_->done.wait(lock, [&] { return state_->results[i].has_value(); });
  return *state_->results[i];
}

namespace {

// libarchive pulls from here; C callbacks must not throw, so an exception is
// parked and rethrown once control is back in C++.
struct HashingReader {
  ByteStream* in;
  const Budget* budget = nullptr;
  Sha256 hash;
  std::uint64_t total = 0;
  std::array<std::byte, 1 << 16> buf;
  std::exception_ptr error;

  std::size_t pull() {
    const std::size_t n = in->read(buf.data(), buf.size());
    hash.update(buf.data(), n);
    total += n;
    return n;
  }
  void drain() { while (pull()) {} }
};

la_ssize_t read_cb(archive* a, void* ctx, const void** out) {
  auto* r = static_cast<HashingReader*>(ctx);
  try {
    if (r->budget) r->budget->check_expansion(a);  // before more is decompressed from it
    const std::size_t n = r->pull();
    *out = r->buf.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    r->error = std::current_exception();
    archive_set_error(a, EIO, "blob read failed");
    return -1;
  }
}

// A layer that lies in a file: read with pread, bodies nobody reads skipped
// without touching them. Small reads: after a skip libarchive only needs
// the next header.
struct RegionReader {
  FileRegion region;
  const Budget* budget = nullptr;
  std::uint64_t pos = 0;
  std::array<std::byte, 1 << 16> buf;
  std::exception_ptr error;
};

la_ssize_t region_read_cb(archive* a, void* ctx, const void** out) {
  auto* r = static_cast<RegionReader*>(ctx);
  try {
    if (r->budget) r->budget->check_expansion(a);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(r->buf.size(), r->region.size - r->pos));
    const std::size_t n = read_at(r->region.file->fd(), r->buf.data(), want, r->region.offset + r->pos);
    r->pos += n;
    *out = r->buf.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    r->error = std::current_exception();
    archive_set_error(a, EIO, "blob read failed");
    return -1;
  }
}

la_int64_t region_skip_cb(archive*, void* ctx, la_int64_t request) {
  auto* r = static_cast<RegionReader*>(ctx);
  const auto n = static_cast<la_int64_t>(std::min<std::uint64_t>(static_cast<std::uint64_t>(std::max<la_int64_t>(0, request)),
                                                                  r->region.size - r->pos));
  r->pos += static_cast<std::uint64_t>(n);
  return n;
}

ArchivePtr new_layer_reader() {
  ArchivePtr a(archive_read_new());
  archive_read_support_filter_all(a.get());  // gzip, zstd, xz, bzip2, lz4 as built
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  return a;
}

}  // namespace

bool stream_layer(BlobSource& src, const LayerInfo& layer, const std::string& where, const std::string& diff_id, bool verify,
                  const MemberFn& fn, const std::function<bool()>& stop, const LayerWalk& walk) {
  // Seek only where the digest is not needed or is being computed elsewhere.
  const bool seek = walk.region && (!verify || (walk.hasher && walk.hasher->has(walk.index)));
  std::unique_ptr<ByteStream> in;
  std::optional<HashingReader> hashing;
  std::optional<RegionReader> direct;
  ArchivePtr a = new_layer_reader();
  auto parked = [&] { return hashing ? hashing->error : direct->error; };
  auto check = [&](int r) {
    if (auto e = parked()) std::rethrow_exception(e);
    if (r == ARCHIVE_FATAL || r == ARCHIVE_RETRY || r == ARCHIVE_FAILED) {
      const char* s = archive_error_string(a.get());
      throw ImageError(where + ": " + (s ? s : "unreadable tar"));
    }
  };
  if (seek) {
    direct.emplace();
    direct->region = *walk.region;
    direct->budget = walk.budget;
    archive_read_set_read_callback(a.get(), region_read_cb);
    archive_read_set_skip_callback(a.get(), region_skip_cb);
    archive_read_set_callback_data(a.get(), &*direct);
    check(archive_read_open1(a.get()));
  } else {
    in = src.open(layer.blob);
    hashing.emplace();
    hashing->in = in.get();
    hashing->budget = walk.budget;
    check(archive_read_open(a.get(), &*hashing, nullptr, read_cb, nullptr));
  }
  archive_entry* e = nullptr;
  std::size_t member = 0;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) {
      if (walk.budget) walk.budget->check_expansion(a.get());  // the last member's skipped body
      break;
    }
    check(r);
    if (walk.budget) {
      walk.budget->check_expansion(a.get());  // the previous member's body, skipped on the way here, counts too
      walk.budget->next_member(e);
    }
    std::optional<FileRegion> body;
    if (seek)
      if (auto place = body_place(a.get(), e))
        body = FileRegion{walk.region->file, walk.region->offset + place->first, place->second};
    fn(a.get(), e, member++, body);
    check(ARCHIVE_OK);
    if (stop && stop()) return false;
  }
  if (!verify) return false;
  std::string got;
  std::uint64_t total = 0;
  if (seek) {
    const auto h = walk.hasher->wait(walk.index);
    if (!h.error.empty()) throw ImageError(where + ": " + h.error);
    got = h.digest;
    total = h.size;
  } else {
    try {
      hashing->drain();  // tar padding after the end marker counts toward the digest
    } catch (const ImageError& ex) {
      throw ImageError(where + ": " + ex.what());
    }
    got = "sha256:" + hashing->hash.hex();
    total = hashing->total;
  }
  const bool plain = archive_filter_code(a.get(), 0) == ARCHIVE_FILTER_NONE;
  const std::string& want = !layer.digest.empty() ? layer.digest : (plain ? diff_id : layer.digest);
  if (layer.size && total != layer.size)
    throw ImageError(where + ": size mismatch: expected " + std::to_string(layer.size) + " bytes, read " + std::to_string(total));
  if (want.empty()) return false;
  if (got != want) throw ImageError(where + ": digest mismatch: expected " + want + ", got " + got);
  return true;
}

}  // namespace kiln::image::detail
