// engine/data/hash.hpp: MD5 and SHA-256 as lowercase hex (OpenSSL EVP), over bytes or a file, and
// an incremental hasher for data that streams past (a download, a file being decompressed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

namespace octa::data {

enum class HashAlgo { kMd5, kSha256 };

// Feed bytes with update(), then read the digest once with hex(). Throws octa::Error when OpenSSL
// fails (which in practice means the algorithm is disabled, e.g. MD5 under a FIPS-only policy).
class Hasher {
 public:
  explicit Hasher(HashAlgo algo);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(std::span<const std::uint8_t> bytes);
  void update(const void* data, std::size_t size);
  // Finishes the digest; the hasher cannot be updated afterwards.
  std::string hex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string md5_hex(std::span<const std::uint8_t> bytes);
std::string sha256_hex(std::span<const std::uint8_t> bytes);

// Hash of a file's bytes as stored (no decompression). Throws octa::Error naming the file.
std::string md5_file_hex(const std::filesystem::path& path);
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace octa::data
