// sha256 over streamed bytes (OpenSSL EVP), as lowercase hex.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace kiln {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finishes the digest

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(std::string_view data);
// "sha256:<hex>" of `data`: a manifest's, a blob's or a file's digest.
std::string sha256_digest(std::string_view data);

// "sha256:<64 lowercase hex>", the only digest form kiln reads or writes:
// anything else (another algorithm, upper case, "../") would otherwise
// become a blob path, a cache file name or a manifest reference.
bool is_sha256_digest(std::string_view digest);

}  // namespace kiln
