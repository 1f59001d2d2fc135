// engine/data/idx.cpp: the IDX reader. Every size the header claims is checked against what the
// file can really hold before memory is committed to it; gzip files are inflated incrementally.
#include "engine/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>

#include "engine/core/error.hpp"
#include "engine/data/hash.hpp"

namespace octa::data {
namespace fs = std::filesystem;

namespace {

// deflate never expands data by more than 1032:1 (zlib's documented maximum ratio), so a gzip file
// of N bytes cannot decompress to more than 1032 N bytes whatever its header says.
constexpr std::uint64_t kMaxDeflateRatio = 1032;
// Below this a gzip file cannot even hold its own header and trailer.
constexpr std::uint64_t kMinGzipBytes = 18;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint64_t mul_saturate(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return a * b;
}

// The file's content, decompressed on the fly when it is gzip. Every byte delivered also goes
// through a SHA-256, so the checksum costs no second pass.
class ContentStream {
 public:
  explicit ContentStream(const fs::path& path) : path_(path), hasher_(HashAlgo::kSha256) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
      throw Error(fmt::format("{}: cannot open: {}", path.string(),
                              ec ? ec.message() : std::string("no such file")));
    }
    if (!fs::is_regular_file(status)) {
      throw Error(fmt::format("{}: not a regular file", path.string()));
    }
    file_size_ = fs::file_size(path, ec);
    if (ec) throw Error(fmt::format("{}: cannot read its size: {}", path.string(), ec.message()));
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) {
      throw Error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
    }
    std::array<std::uint8_t, 2> magic{};
    gzip_ =
        std::fread(magic.data(), 1, 2, file_.get()) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip_ && file_size_ >= kMinGzipBytes) {
      // ISIZE: the last four bytes, little-endian, the uncompressed size mod 2^32 (of the last
      // member only, and garbage when the file is truncated: a hint, never a verdict).
      std::array<std::uint8_t, 4> t{};
      if (std::fseek(file_.get(), -4, SEEK_END) == 0 &&
          std::fread(t.data(), 1, 4, file_.get()) == 4) {
        isize_ = std::uint32_t{t[0]} | (std::uint32_t{t[1]} << 8) | (std::uint32_t{t[2]} << 16) |
                 (std::uint32_t{t[3]} << 24);
      }
    }
    if (std::fseek(file_.get(), 0, SEEK_SET) != 0) {
      throw Error(fmt::format("{}: cannot seek: {}", path.string(), std::strerror(errno)));
    }
    if (gzip_) {
      in_.resize(1 << 16);
      // 16 + MAX_WBITS: gzip wrapper only (no zlib or raw deflate), CRC-32 and ISIZE verified.
      if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
        throw Error(fmt::format("{}: zlib cannot start decompression", path.string()));
      }
      zs_open_ = true;
    }
  }

  ~ContentStream() {
    if (zs_open_) inflateEnd(&zs_);
  }
  ContentStream(const ContentStream&) = delete;
  ContentStream& operator=(const ContentStream&) = delete;

  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }
  std::uint32_t isize() const { return isize_; }
  std::uint64_t delivered() const { return delivered_; }
  std::string sha256() { return hasher_.hex(); }

  // Reads up to n content bytes; fewer only at the clean end of the content. Throws on a read
  // error and on a truncated or corrupt gzip stream.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    const std::size_t got = gzip_ ? read_gzip(dst, n) : read_raw(dst, n);
    hasher_.update(dst, got);
    delivered_ += got;
    return got;
  }

 private:
  std::size_t read_raw(std::uint8_t* dst, std::size_t n) {
    const std::size_t got = std::fread(dst, 1, n, file_.get());
    if (got < n && std::ferror(file_.get())) {
      throw Error(fmt::format("{}: read error: {}", path_.string(), std::strerror(errno)));
    }
    return got;
  }

  bool refill() {
    if (input_eof_) return false;
    const std::size_t got = std::fread(in_.data(), 1, in_.size(), file_.get());
    if (got < in_.size()) {
      if (std::ferror(file_.get())) {
        throw Error(fmt::format("{}: read error: {}", path_.string(), std::strerror(errno)));
      }
      input_eof_ = true;
    }
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(got);
    return got > 0;
  }

  std::size_t read_gzip(std::uint8_t* dst, std::size_t n) {
    std::size_t produced = 0;
    while (produced < n) {
      if (zs_.avail_in == 0 && !refill() && member_end_) return produced;  // clean end of file
      if (member_end_) {
        // gzip allows several members back to back (what `cat a.gz b.gz` makes); anything else
        // after a member is not gzip data.
        if (zs_.next_in[0] != 0x1f) {
          throw Error(fmt::format(
              "{}: corrupt gzip file: unexpected bytes after the end of the gzip stream",
              path_.string()));
        }
        if (inflateReset(&zs_) != Z_OK) {
          throw Error(fmt::format("{}: zlib cannot restart decompression", path_.string()));
        }
        member_end_ = false;
      }
      const std::size_t want = std::min<std::size_t>(n - produced, UINT_MAX);
      zs_.next_out = dst + produced;
      zs_.avail_out = static_cast<uInt>(want);
      const uInt in_before = zs_.avail_in;
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      const std::size_t out = want - zs_.avail_out;
      produced += out;
      if (ret == Z_STREAM_END) {
        member_end_ = true;
        continue;
      }
      if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT) {
        throw Error(fmt::format("{}: corrupt gzip stream: {} (after {} decompressed bytes)",
                                path_.string(), zs_.msg ? zs_.msg : "invalid data",
                                delivered_ + produced));
      }
      if (ret == Z_MEM_ERROR) {
        throw Error(fmt::format("{}: zlib ran out of memory while decompressing", path_.string()));
      }
      // Z_OK or Z_BUF_ERROR: more input needed, unless the input is exhausted for good.
      const bool progress = out > 0 || zs_.avail_in != in_before;
      if (!progress && zs_.avail_in == 0 && input_eof_) {
        throw Error(fmt::format(
            "{}: truncated gzip stream: the compressed data ends after {} decompressed bytes, "
            "before the end of the stream",
            path_.string(), delivered_ + produced));
      }
    }
    return produced;
  }

  fs::path path_;
  FilePtr file_;
  std::uint64_t file_size_ = 0;
  bool gzip_ = false;
  std::uint32_t isize_ = 0;
  z_stream zs_{};
  bool zs_open_ = false;
  std::vector<std::uint8_t> in_;
  bool input_eof_ = false;
  bool member_end_ = false;
  std::uint64_t delivered_ = 0;
  Hasher hasher_;
};

const char* kind_name(int ndim) {
  return ndim == 3 ? "images" : "labels";
}
std::uint32_t magic_for(int ndim) {
  return ndim == 3 ? kIdxImagesMagic : kIdxLabelsMagic;
}

struct IdxContent {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
  std::string sha256;
};

// Reads an IDX file of unsigned bytes with `ndim` dimensions, checking every claim of the header.
IdxContent read_idx(const fs::path& path, int ndim) {
  const std::string name = path.string();
  ContentStream in(path);
  const char* kind = kind_name(ndim);
  const std::uint32_t want_magic = magic_for(ndim);
  if (in.file_size() == 0) {
    throw Error(fmt::format("{}: empty file (0 bytes); expected an IDX {} file", name, kind));
  }
  const auto holds = [&](std::uint64_t bytes) {
    return in.gzip() ? fmt::format("file holds {} (after decompression)", bytes)
                     : fmt::format("file holds {}", bytes);
  };

  // --- magic -------------------------------------------------------------------------------------
  const std::uint64_t header_bytes = 4 + 4 * static_cast<std::uint64_t>(ndim);
  std::array<std::uint8_t, 16> header{};
  std::size_t got = in.read(header.data(), 4);
  if (got < 4) {
    throw Error(fmt::format("{}: truncated: the IDX {} header needs {} bytes, {}", name, kind,
                            header_bytes, holds(got)));
  }
  const std::uint32_t magic = be32(header.data());
  if (magic != want_magic) {
    if (header[0] != 0 || header[1] != 0) {
      throw Error(fmt::format(
          "{}: not an IDX file: wrong magic number {} (bytes {:02x} {:02x} {:02x} {:02x}); an IDX "
          "{} "
          "file starts with magic {} (00 00 08 {:02x})",
          name, magic, header[0], header[1], header[2], header[3], kind, want_magic, ndim));
    }
    if (header[2] != 0x08) {
      throw Error(
          fmt::format("{}: wrong magic number {}: IDX data type 0x{:02x} is not unsigned byte "
                      "(0x08); an IDX {} "
                      "file has magic {}",
                      name, magic, header[2], kind, want_magic));
    }
    const int file_ndim = header[3];
    if (file_ndim == 1 || file_ndim == 3) {
      throw Error(fmt::format(
          "{}: wrong magic number {}: this is an IDX {} file, expected an IDX {} file (magic {})",
          name, magic, kind_name(file_ndim), kind, want_magic));
    }
    throw Error(fmt::format(
        "{}: wrong number of dimensions: {} (magic {}); an IDX {} file has {} (magic {})", name,
        file_ndim, magic, kind, ndim, want_magic));
  }

  // --- dimensions --------------------------------------------------------------------------------
  got = in.read(header.data() + 4, static_cast<std::size_t>(4 * ndim));
  if (got < static_cast<std::size_t>(4 * ndim)) {
    throw Error(fmt::format("{}: truncated: the IDX {} header needs {} bytes, {}", name, kind,
                            header_bytes, holds(4 + got)));
  }
  IdxContent content;
  std::uint64_t data_bytes = 1;
  for (int d = 0; d < ndim; ++d) {
    content.dims.push_back(be32(header.data() + 4 + 4 * d));
    data_bytes = mul_saturate(data_bytes, content.dims.back());
  }
  const std::string claim = ndim == 3 ? fmt::format("{} images of {}x{}", content.dims[0],
                                                    content.dims[1], content.dims[2])
                                      : fmt::format("{} labels", content.dims[0]);
  if (ndim == 3 && (content.dims[1] == 0 || content.dims[2] == 0)) {
    throw Error(fmt::format("{}: header claims images of {}x{} pixels; an image cannot be empty",
                            name, content.dims[1], content.dims[2]));
  }
  // The sizes are ints to callers (IdxImages, IdxLabels); a dimension above that is no MNIST file
  // (found by fuzzing: 0 images of 654311678x4278190108 were accepted, as negative ints).
  for (const std::uint32_t d : content.dims) {
    if (d > static_cast<std::uint32_t>(std::numeric_limits<int>::max())) {
      throw Error(
          fmt::format("{}: header claims {}: a dimension of {} is more than this reader "
                      "accepts ({})",
                      name, claim, d, std::numeric_limits<int>::max()));
    }
  }
  const std::uint64_t implied =
      data_bytes > std::numeric_limits<std::uint64_t>::max() - header_bytes
          ? std::numeric_limits<std::uint64_t>::max()
          : header_bytes + data_bytes;

  // --- sizes against the file --------------------------------------------------------------------
  if (!in.gzip()) {
    // A plain file's length is known exactly, so the header can be held to it before reading.
    if (implied > in.file_size()) {
      throw Error(fmt::format("{}: truncated: header implies {} bytes ({}), file holds {}", name,
                              implied, claim, in.file_size()));
    }
    if (implied < in.file_size()) {
      throw Error(fmt::format(
          "{}: trailing bytes: header implies {} bytes ({}), file holds {} ({} bytes too many)",
          name, implied, claim, in.file_size(), in.file_size() - implied));
    }
  }
  if (data_bytes > kMaxIdxDataBytes) {
    throw Error(fmt::format(
        "{}: header claims {} ({} bytes of data), more than this reader accepts ({} bytes); the "
        "header is wrong or this is not an MNIST-sized file",
        name, claim, data_bytes, kMaxIdxDataBytes));
  }
  std::size_t reserve = static_cast<std::size_t>(data_bytes);
  if (in.gzip()) {
    const std::uint64_t most = mul_saturate(in.file_size(), kMaxDeflateRatio);
    if (implied > most) {
      throw Error(fmt::format(
          "{}: truncated or wrong header: header implies {} bytes ({}), but a {}-byte gzip file "
          "cannot hold more than {} (deflate compresses at most {}:1)",
          name, implied, claim, in.file_size(), most, kMaxDeflateRatio));
    }
    // Only when the gzip trailer agrees with the header is the whole claim reserved up front;
    // otherwise the buffer grows with the data that really arrives.
    if (static_cast<std::uint32_t>(implied) != in.isize()) {
      reserve = std::min<std::size_t>(reserve, std::size_t{1} << 20);
    }
  }

  // --- data --------------------------------------------------------------------------------------
  content.data.reserve(reserve);
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  while (content.data.size() < data_bytes) {
    const std::size_t old = content.data.size();
    const std::size_t want = std::min<std::size_t>(kChunk, data_bytes - old);
    content.data.resize(old + want);
    const std::size_t n = in.read(content.data.data() + old, want);
    content.data.resize(old + n);
    if (n < want) {
      throw Error(fmt::format("{}: truncated: header implies {} bytes ({}), {}", name, implied,
                              claim, holds(header_bytes + content.data.size())));
    }
  }
  // Read on to the end: for gzip this is also what verifies the CRC-32 and length trailer.
  std::array<std::uint8_t, 4096> rest{};
  std::uint64_t extra = 0;
  while (const std::size_t n = in.read(rest.data(), rest.size())) extra += n;
  if (extra > 0) {
    throw Error(
        fmt::format("{}: trailing bytes: header implies {} bytes ({}), {} ({} bytes too many)",
                    name, implied, claim, holds(implied + extra), extra));
  }
  content.sha256 = in.sha256();
  return content;
}

}  // namespace

IdxImages read_idx_images(const fs::path& path) {
  IdxContent c = read_idx(path, 3);
  IdxImages out;
  // kMaxIdxDataBytes < 2^31 and no dimension is 0, so every dimension fits in an int.
  out.count = static_cast<int>(c.dims[0]);
  out.rows = static_cast<int>(c.dims[1]);
  out.cols = static_cast<int>(c.dims[2]);
  out.pixels = std::move(c.data);
  out.sha256 = std::move(c.sha256);
  return out;
}

IdxLabels read_idx_labels(const fs::path& path, int max_label) {
  IdxContent c = read_idx(path, 1);
  for (std::size_t i = 0; i < c.data.size(); ++i) {
    if (int{c.data[i]} > max_label) {
      throw Error(fmt::format("{}: label {} at index {} is outside 0..{}", path.string(),
                              int{c.data[i]}, i, max_label));
    }
  }
  IdxLabels out;
  out.count = static_cast<int>(c.dims[0]);
  out.labels = std::move(c.data);
  out.sha256 = std::move(c.sha256);
  return out;
}

bool is_gzip_file(const fs::path& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::array<std::uint8_t, 2> magic{};
  return std::fread(magic.data(), 1, 2, f.get()) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes, int level) {
  OCTA_CHECK(bytes.size() <= UINT_MAX, "gzip_compress: {} bytes is more than one call handles",
             bytes.size());
  z_stream zs{};
  OCTA_CHECK(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "gzip_compress: zlib cannot start compression at level {}", level);
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(bytes.size())));
  // zlib's interface is not const-correct; deflate only reads next_in.
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&zs, Z_FINISH);
  const std::size_t n = out.size() - zs.avail_out;
  deflateEnd(&zs);
  OCTA_CHECK(ret == Z_STREAM_END, "gzip_compress: zlib failed to compress {} bytes", bytes.size());
  out.resize(n);
  return out;
}

}  // namespace octa::data
