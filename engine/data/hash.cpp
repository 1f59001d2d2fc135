// engine/data/hash.cpp: MD5 / SHA-256 through OpenSSL's EVP interface.
#include "engine/data/hash.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <vector>

#include "engine/core/error.hpp"

namespace octa::data {

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  const char* name = "";
  bool finished = false;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(HashAlgo algo) : impl_(std::make_unique<Impl>()) {
  const EVP_MD* md = algo == HashAlgo::kMd5 ? EVP_md5() : EVP_sha256();
  impl_->name = algo == HashAlgo::kMd5 ? "MD5" : "SHA-256";
  impl_->ctx = EVP_MD_CTX_new();
  OCTA_CHECK(
      impl_->ctx != nullptr && md != nullptr && EVP_DigestInit_ex(impl_->ctx, md, nullptr) == 1,
      "OpenSSL cannot start a {} digest (is the algorithm disabled?)", impl_->name);
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, std::size_t size) {
  OCTA_CHECK(!impl_->finished, "{} hasher updated after hex()", impl_->name);
  if (size == 0) return;
  OCTA_CHECK(EVP_DigestUpdate(impl_->ctx, data, size) == 1, "OpenSSL {} update failed",
             impl_->name);
}

void Hasher::update(std::span<const std::uint8_t> bytes) {
  update(bytes.data(), bytes.size());
}

std::string Hasher::hex() {
  OCTA_CHECK(!impl_->finished, "{} hasher finished twice", impl_->name);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  OCTA_CHECK(EVP_DigestFinal_ex(impl_->ctx, digest.data(), &len) == 1, "OpenSSL {} final failed",
             impl_->name);
  impl_->finished = true;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

namespace {

std::string hash_bytes(HashAlgo algo, std::span<const std::uint8_t> bytes) {
  Hasher h(algo);
  h.update(bytes);
  return h.hex();
}

std::string hash_file(HashAlgo algo, const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  OCTA_CHECK(in.is_open(), "{}: cannot open for hashing", path.string());
  Hasher h(algo);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = in.gcount();
    if (got > 0) h.update(buf.data(), static_cast<std::size_t>(got));
  }
  OCTA_CHECK(in.eof(), "{}: read error while hashing", path.string());
  return h.hex();
}

}  // namespace

std::string md5_hex(std::span<const std::uint8_t> bytes) {
  return hash_bytes(HashAlgo::kMd5, bytes);
}
std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  return hash_bytes(HashAlgo::kSha256, bytes);
}
std::string md5_file_hex(const std::filesystem::path& path) {
  return hash_file(HashAlgo::kMd5, path);
}
std::string sha256_file_hex(const std::filesystem::path& path) {
  return hash_file(HashAlgo::kSha256, path);
}

}  // namespace octa::data
