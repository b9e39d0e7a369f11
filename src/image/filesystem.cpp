// Applying layers in order (OCI whiteouts) into one path -> entry map, and
// reading selected files back by streaming only the layers that hold them.
#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <sys/stat.h>

#include "image/internal.h"

namespace kiln::image {
namespace {

using detail::stream_layer;

// One layer's changes, gathered first and applied at the end: per the OCI
// spec, whiteouts act on lower layers only, whatever the member order.
struct LayerChanges {
  std::vector<std::string> opaque_dirs;
  std::vector<std::string> whiteouts;
  std::vector<std::pair<std::string, FileEntry>> adds;
  std::map<std::string, std::size_t> last_add;  // path -> index in adds (hardlink targets)
};

std::string parent_of(const std::string& p) {
  const auto s = p.rfind('/');
  return s == std::string::npos ? std::string() : p.substr(0, s);
}
std::string base_of(const std::string& p) {
  const auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}
std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// Removes `dir`'s descendants (not `dir` itself).
void erase_children(std::map<std::string, FileEntry>& files, const std::string& dir) {
  if (dir.empty()) {  // opaque root: nothing below survives
    files.clear();
    return;
  }
  const std::string prefix = dir + "/";
  auto it = files.lower_bound(prefix);
  while (it != files.end() && it->first.starts_with(prefix)) it = files.erase(it);
}

FileType type_of(archive_entry* e) {
  if (archive_entry_hardlink(e)) return FileType::hardlink;
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return FileType::regular;
    case AE_IFDIR: return FileType::directory;
    case AE_IFLNK: return FileType::symlink;
    default: return FileType::other;
  }
}

class Builder {
 public:
  Builder(const ReadOptions& opt, std::map<std::string, FileEntry>& files, std::vector<std::string>& warnings)
      : opt_(opt), files_(files), warnings_(warnings) {}

  void member(const std::string& where, archive_entry* e, std::size_t layer, std::size_t member) {
    const char* raw = archive_entry_pathname(e);
    if (!raw) throw ImageError(where + ": member " + std::to_string(member) + " has no name");
    auto path = normalize_path(raw);
    if (!path) return unsafe(where, std::string("entry '") + raw + "' climbs out of the image root with ..");
    if (path->empty()) return;  // "./": the root itself
    const std::string base = base_of(*path);
    if (base == ".wh..wh..opq") return ch_.opaque_dirs.push_back(parent_of(*path));
    if (base.starts_with(".wh.")) {
      if (base.size() == 4) return unsafe(where, "whiteout with no name: " + *path);
      return ch_.whiteouts.push_back(join(parent_of(*path), base.substr(4)));
    }
    FileEntry f;
    f.type = type_of(e);
    f.size = archive_entry_size_is_set(e) ? static_cast<std::uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e))) : 0;
    f.mode = archive_entry_perm(e);
    f.layer = layer;
    f.member = member;
    if (f.type == FileType::symlink) {
      const char* t = archive_entry_symlink(e);
      f.link_target = t ? t : "";
    } else if (f.type == FileType::hardlink && !hardlink(where, archive_entry_hardlink(e), f)) {
      return;
    }
    ch_.last_add[*path] = ch_.adds.size();
    ch_.adds.emplace_back(std::move(*path), std::move(f));
  }

  // What this layer gathered so far, for a layer cache (before apply()).
  LayerRecord record() const { return {ch_.opaque_dirs, ch_.whiteouts, ch_.adds, {}, {}}; }
  // A layer read before: its changes as they were gathered then.
  void replay(LayerRecord&& r, std::size_t layer) {
    ch_.opaque_dirs = std::move(r.opaque_dirs);
    ch_.whiteouts = std::move(r.whiteouts);
    ch_.adds = std::move(r.adds);
    for (auto& [path, f] : ch_.adds) f.layer = layer;
  }

  void apply() {
    for (const auto& d : ch_.opaque_dirs) erase_children(files_, d);
    for (const auto& w : ch_.whiteouts) {
      files_.erase(w);
      erase_children(files_, w);
    }
    for (auto& [path, f] : ch_.adds) {
      // A non-directory hides everything below its path, even where the
      // lower directory was only implied by its children.
      if (f.type != FileType::directory) erase_children(files_, path);
      files_[path] = std::move(f);
      if (files_.size() > opt_.max_entries)
        throw ImageError("image has more than " + std::to_string(opt_.max_entries) + " files");
    }
    ch_ = {};
  }

 private:
  // A tar hardlink names an earlier member of the same layer; its bytes are
  // that member's.
  bool hardlink(const std::string& where, const char* raw, FileEntry& f) {
    auto target = normalize_path(raw);
    if (!target) return unsafe(where, std::string("hardlink target '") + raw + "' climbs out of the image root"), false;
    f.link_target = *target;
    auto it = ch_.last_add.find(*target);
    if (it == ch_.last_add.end() || ch_.adds[it->second].second.type != FileType::regular) {
      warnings_.push_back(where + ": hardlink to '" + *target + "' which this layer does not hold as a file");
      return true;
    }
    f.size = ch_.adds[it->second].second.size;
    f.member = ch_.adds[it->second].second.member;
    return true;
  }

  void unsafe(const std::string& where, const std::string& what) {
    if (!opt_.skip_unsafe_entries) throw ImageError(where + ": unsafe path: " + what);
    warnings_.push_back(where + ": skipped unsafe path: " + what);
  }

  const ReadOptions& opt_;
  std::map<std::string, FileEntry>& files_;
  std::vector<std::string>& warnings_;
  LayerChanges ch_;
};

std::vector<std::string> split(std::string_view p) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string join_all(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out = join(out, p);
  return out;
}

// A member's bytes as a ByteStream, failing with the layer's name. Every
// byte handed out is counted against the budget (ReadOptions::limits); a
// member that claims more than a member may hand out is refused at its
// first read, before a byte is held or written.
class MemberStream : public ByteStream {
 public:
  MemberStream(archive* a, archive_entry* e, detail::Budget& budget, const std::optional<FileRegion>& body)
      : a_(a), e_(e), budget_(budget), body_(body) {}
  std::size_t read(std::byte* buf, std::size_t n) override {
    start();
    la_ssize_t got = archive_read_data(a_, buf, n);
    if (got < 0) fail();
    budget_.hand_out(a_, static_cast<std::uint64_t>(got));
    return static_cast<std::size_t>(got);
  }
  std::optional<FileRegion> region() const override { return body_; }
  bool sparse() const override { return archive_entry_sparse_count(e_) > 0; }
  // libarchive's data blocks: a sparse member's holes are skipped, and only
  // the stored bytes count as handed out.
  std::size_t read_run(std::byte* buf, std::size_t n, std::uint64_t& offset) override {
    start();
    while (block_left_ == 0) {
      const void* p = nullptr;
      std::size_t size = 0;
      la_int64_t at = 0;
      const int r = archive_read_data_block(a_, &p, &size, &at);
      if (r == ARCHIVE_EOF) return 0;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail();
      block_ = static_cast<const std::byte*>(p);
      block_left_ = size;
      block_at_ = static_cast<std::uint64_t>(std::max<la_int64_t>(0, at));
    }
    n = std::min(n, block_left_);
    std::memcpy(buf, block_, n);
    offset = block_at_;
    block_ += n;
    block_left_ -= n;
    block_at_ += n;
    budget_.hand_out(a_, n);
    return n;
  }

 private:
  void start() {
    if (started_) return;
    started_ = true;
    budget_.start_reading(a_, e_);
  }
  [[noreturn]] void fail() {
    const char* s = archive_error_string(a_);
    throw ImageError(budget_.where() + ": " + (s ? s : "read error"));
  }
  archive* a_;
  archive_entry* e_;
  detail::Budget& budget_;
  const std::optional<FileRegion>& body_;
  bool started_ = false;
  const std::byte* block_ = nullptr;
  std::size_t block_left_ = 0;
  std::uint64_t block_at_ = 0;
};


// "SRC: layer 2 (blobs/sha256/<hex>)"; a blob named otherwise ("<id>/layer.tar")
// gets its digest added, so an error always names the layer's digest.
std::string layer_where(const BlobSource& src, const LayerInfo& l, std::size_t i, const std::string& diff_id = {}) {
  const std::string& digest = !l.digest.empty() ? l.digest : diff_id;
  const bool named = digest.size() > 7 && l.blob.find(digest.substr(7)) != std::string::npos;
  return src.describe() + ": layer " + std::to_string(i) + " (" + l.blob + (named || digest.empty() ? "" : ", " + digest) + ")";
}

}  // namespace

ImageFs read_image(std::shared_ptr<BlobSource> source, const ReadOptions& options) {
  if (!source) throw ImageError("no image source");
  auto layout = detail::read_layout(*source, options);
  ImageFs fs;
  fs.source_ = source;
  fs.config_ = std::move(layout.config);
  fs.layers_ = std::move(layout.layers);
  fs.warnings_ = std::move(layout.warnings);
  fs.limits_ = options.limits;
  std::uint64_t handed_out = 0;  // by all members of this read (Limits::max_total_size)
  Builder b(options, fs.files_, fs.warnings_);
  // Layers that lie in a file are hashed on other threads, all at once,
  // while the walk below seeks over the bodies it does not need.
  // Layers a cache holds are neither read nor hashed: asked first, so the
  // hasher below starts on the others only.
  std::vector<std::optional<LayerRecord>> cached(fs.layers_.size());
  if (options.cached_layer)
    for (std::size_t i = 0; i < fs.layers_.size(); ++i)
      cached[i] = options.cached_layer(i, fs.layers_[i], i < fs.config_.diff_ids.size() ? fs.config_.diff_ids[i] : std::string());
  // region() of every layer, cached or not: it is also where a layout's blob
  // that is not a regular file (a FIFO, a device) is refused, unopened.
  std::vector<std::optional<FileRegion>> regions, to_hash(fs.layers_.size());
  for (std::size_t i = 0; i < fs.layers_.size(); ++i) {
    regions.push_back(source->region(fs.layers_[i].blob));
    if (options.verify_digests && !cached[i]) to_hash[i] = regions[i];
  }
  detail::RegionHasher hasher(to_hash);
  if (!options.verify_digests)
    fs.warnings_.push_back(source->describe() + ": layer digests not checked (trusted on request): the bytes read "
                           "may not be the image's");
  for (std::size_t i = 0; i < fs.layers_.size(); ++i) {
    auto& layer = fs.layers_[i];
    const std::string diff_id = i < fs.config_.diff_ids.size() ? fs.config_.diff_ids[i] : std::string();
    const std::string where = layer_where(*source, layer, i, diff_id);
    if (options.layer_start) options.layer_start(i, fs.layers_.size(), layer);
    if (auto& r = cached[i]) {
      for (auto& [m, bytes] : r->kept) fs.kept_[{i, m}] = std::move(bytes);
      fs.warnings_.insert(fs.warnings_.end(), r->warnings.begin(), r->warnings.end());
      b.replay(std::move(*r), i);
      r.reset();
      layer.verified = layer.from_cache = true;  // checked when its record was written
      b.apply();
      continue;
    }
    const std::size_t warned_before = fs.warnings_.size();
    detail::Budget budget(options.limits, where, &handed_out);
    auto on_member = [&](archive* a, archive_entry* e, std::size_t m, const std::optional<FileRegion>& body) {
      b.member(where, e, i, m);
      if ((!options.keep && !options.on_file) || archive_entry_hardlink(e) || archive_entry_filetype(e) != AE_IFREG) return;
      const char* raw = archive_entry_pathname(e);
      auto path = raw ? normalize_path(raw) : std::nullopt;
      if (!path || path->empty() || base_of(*path).starts_with(".wh.")) return;
      const std::uint64_t size = archive_entry_size_is_set(e) ? std::uint64_t(std::max<la_int64_t>(0, archive_entry_size(e))) : 0;
      MemberStream in(a, e, budget, body);
      if (options.keep && size <= (64u << 20) && options.keep(*path, size)) {
        std::string bytes;
        bytes.reserve(size);
        std::array<std::byte, 1 << 16> buf;
        while (std::size_t n = in.read(buf.data(), buf.size())) {
          if (bytes.size() + n > size) throw ImageError(where + ": " + *path + ": member larger than its header says");
          bytes.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        if (options.on_file) {
          detail::MemoryStream mem(bytes);
          options.on_file(*path, i, m, size, mem);
        }
        fs.kept_[{i, m}] = std::move(bytes);
        return;
      }
      if (options.on_file) options.on_file(*path, i, m, size, in);
    };
    layer.verified = stream_layer(*source, layer, where, diff_id, options.verify_digests, on_member, {}, {regions[i], &hasher, i, &budget});
    if (!layer.verified && options.verify_digests) fs.warnings_.push_back(where + ": no digest to verify against");
    if (options.layer_read) {
      LayerRecord r = b.record();
      for (auto it = fs.kept_.lower_bound({i, 0}); it != fs.kept_.end() && it->first.first == i; ++it)
        r.kept.emplace(it->first.second, it->second);
      r.warnings.assign(fs.warnings_.begin() + warned_before, fs.warnings_.end());
      options.layer_read(i, layer, diff_id, r);
    }
    b.apply();
  }
  return fs;
}

ImageFs read_image_archive(const std::filesystem::path& path, const ReadOptions& options) {
  return read_image(archive_source(path, options.limits), options);
}

std::string ImageFs::describe() const { return source_ ? source_->describe() : "<empty image>"; }

const FileEntry* ImageFs::find(std::string_view path) const {
  auto n = normalize_path(path);
  if (!n) return nullptr;
  auto it = files_.find(*n);
  return it == files_.end() ? nullptr : &it->second;
}

std::optional<std::string> ImageFs::resolve(std::string_view path) const {
  constexpr int kMaxHops = 40;  // as the kernel's ELOOP limit
  std::vector<std::string> todo_rev = split(path), out;
  std::reverse(todo_rev.begin(), todo_rev.end());
  int hops = 0;
  while (!todo_rev.empty()) {
    std::string c = std::move(todo_rev.back());
    todo_rev.pop_back();
    if (c == ".") continue;
    if (c == "..") {
      if (out.empty()) throw ImageError(describe() + ": path '" + std::string(path) + "' climbs out of the image root");
      out.pop_back();
      continue;
    }
    out.push_back(std::move(c));
    auto it = files_.find(join_all(out));
    if (it == files_.end() || it->second.type != FileType::symlink) continue;
    if (++hops > kMaxHops) throw ImageError(describe() + ": too many symlinks resolving '" + std::string(path) + "'");
    const std::string& target = it->second.link_target;
    out.pop_back();
    if (target.starts_with('/')) out.clear();  // absolute: from the image root
    auto parts = split(target);
    todo_rev.insert(todo_rev.end(), parts.rbegin(), parts.rend());
  }
  std::string r = join_all(out);
  if (r.empty() || files_.count(r)) return r;
  return std::nullopt;
}

namespace {


}  // namespace

void ImageFs::stream_files(const std::vector<std::string>& paths, const StreamFn& fn) const {
  // layer -> member -> requested paths served by that member
  std::map<std::size_t, std::map<std::size_t, std::vector<std::string>>> want;
  std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> sizes;
  std::map<std::pair<std::size_t, std::size_t>, std::vector<std::string>> in_memory;
  std::uint64_t handed_out = 0;
  for (const auto& p : paths) {
    auto r = resolve(p);
    if (!r) continue;
    const FileEntry* f = find(*r);
    if (!f || (f->type != FileType::regular && f->type != FileType::hardlink)) continue;
    if (kept_.count({f->layer, f->member})) {
      in_memory[{f->layer, f->member}].push_back(p);
      continue;
    }
    want[f->layer][f->member].push_back(p);
    sizes[{f->layer, f->member}] = std::max(sizes[{f->layer, f->member}], f->size);
  }
  auto from_memory = [&](std::size_t upto) {  // kept members of layers < upto, in layer order
    while (!in_memory.empty() && in_memory.begin()->first.first < upto) {
      const std::string& bytes = kept_.at(in_memory.begin()->first);
      detail::MemoryStream in(bytes);
      fn(in_memory.begin()->second, bytes.size(), in);
      in_memory.erase(in_memory.begin());
    }
  };
  for (auto& kv : want) {  // no structured binding: lambdas below capture these
    const std::size_t layer = kv.first;
    from_memory(layer + 1);
    auto& members = kv.second;
    std::size_t left = members.size();
    const std::string where = layer_where(*source_, layers_[layer], layer,
                                          layer < config_.diff_ids.size() ? config_.diff_ids[layer] : std::string());
    detail::Budget budget(limits_, where, &handed_out);
    auto on_member = [&](archive* a, archive_entry* e, std::size_t m, const std::optional<FileRegion>& body) {
      auto it = members.find(m);
      if (it == members.end()) return;
      MemberStream in(a, e, budget, body);
      fn(it->second, sizes[{layer, m}], in);
      --left;
    };
    stream_layer(*source_, layers_[layer], where, {}, false, on_member, [&] { return left == 0; },
                 {source_->region(layers_[layer].blob), nullptr, 0, &budget});
    if (left) throw ImageError(where + ": layer changed since it was read (members missing)");
  }
  from_memory(layers_.size());
}

void ImageFs::read_files(const std::vector<std::string>& paths, const FileFn& fn, std::uint64_t max_size) const {
  for (const auto& p : paths) {
    auto r = resolve(p);
    const FileEntry* f = r ? find(*r) : nullptr;
    if (f && f->size > max_size)
      throw ImageError(describe() + ": " + p + " is " + std::to_string(f->size) + " bytes, over the limit of " + std::to_string(max_size));
  }
  stream_files(paths, [&](const std::vector<std::string>& names, std::uint64_t size, ByteStream& in) {
    std::vector<std::byte> bytes;
    bytes.reserve(size);  // no doubling: a 500 MB library stays 500 MB
    std::array<std::byte, 1 << 16> buf;
    while (std::size_t n = in.read(buf.data(), buf.size())) {
      if (bytes.size() + n > max_size) throw ImageError(describe() + ": member larger than its header says");
      bytes.insert(bytes.end(), buf.begin(), buf.begin() + n);
    }
    for (const auto& p : names) fn(p, bytes);
  });
}

std::optional<std::string> ImageFs::read_file(std::string_view path, std::uint64_t max_size) const {
  std::optional<std::string> out;
  read_files({std::string(path)}, [&](const std::string&, std::span<const std::byte> b) {
    out.emplace(reinterpret_cast<const char*>(b.data()), b.size());
  }, max_size);
  return out;
}

}  // namespace kiln::image
