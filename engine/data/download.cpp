// engine/data/download.cpp: libcurl download into a temporary file, MD5 check, rename into place.
#include "engine/data/download.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <vector>

#include "engine/data/hash.hpp"

namespace octa::data {
namespace fs = std::filesystem;

namespace {

void init_curl_once() {
  // curl_global_init is not thread-safe; do it once, before any handle exists.
  static std::once_flag flag;
  std::call_once(flag, [] {
    const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
      throw DownloadError(fmt::format("libcurl cannot initialise: {}", curl_easy_strerror(rc)),
                          false);
    }
  });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// The temporary file: removed on destruction unless released after the rename.
class TempFile {
 public:
  explicit TempFile(const fs::path& dest) {
    const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
    const std::string pattern =
        (dir / fmt::format(".{}.part-XXXXXX", dest.filename().string())).string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    const int fd = ::mkstemp(buf.data());
    if (fd < 0) {
      throw DownloadError(fmt::format("{}: cannot create a temporary file in {}: {}", dest.string(),
                                      dir.string(), std::strerror(errno)),
                          false);
    }
    path_ = fs::path(buf.data());
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      ::close(fd);
      std::error_code ec;
      fs::remove(path_, ec);
      throw DownloadError(fmt::format("{}: cannot open temporary file {}: {}", dest.string(),
                                      path_.string(), std::strerror(errno)),
                          false);
    }
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!released_) {
      std::error_code ec;
      fs::remove(path_, ec);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  std::FILE* file() const { return file_; }
  const fs::path& path() const { return path_; }

  // Flushes to disk and closes; false (errno set) when the data did not all reach the disk.
  bool close() {
    bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    ok = std::fclose(file_) == 0 && ok;
    file_ = nullptr;
    return ok;
  }
  void release() { released_ = true; }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
  bool released_ = false;
};

struct Sink {
  std::FILE* file;
  Hasher md5{HashAlgo::kMd5};
  bool write_failed = false;
  int write_errno = 0;
};

std::size_t write_callback(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t n = size * nmemb;
  if (std::fwrite(data, 1, n, sink->file) != n) {
    sink->write_failed = true;
    sink->write_errno = errno;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  sink->md5.update(data, n);
  return n;
}

// The directories download_file had to create for its destination; unless kept, removed again
// (deepest first, only while empty) so a failed download leaves no empty folders behind.
class CreatedDirs {
 public:
  explicit CreatedDirs(const fs::path& dir) {
    std::error_code ec;
    for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      created_.push_back(p);
      if (p == p.parent_path()) break;
    }
  }
  ~CreatedDirs() {
    std::error_code ec;
    for (const fs::path& p : created_) {
      if (!fs::is_empty(p, ec) || ec || !fs::remove(p, ec)) break;
    }
  }
  CreatedDirs(const CreatedDirs&) = delete;
  CreatedDirs& operator=(const CreatedDirs&) = delete;
  void keep() { created_.clear(); }

 private:
  std::vector<fs::path> created_;  // deepest first
};

bool is_unreachable(CURLcode rc) {
  return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY ||
         rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT;
}

}  // namespace

void download_file(const std::string& url, const fs::path& dest, const DownloadOptions& options) {
  init_curl_once();
  const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  std::error_code ec;
  CreatedDirs created(dir);
  fs::create_directories(dir, ec);
  if (ec) {
    throw DownloadError(fmt::format("{}: cannot create directory {}: {}", dest.string(),
                                    dir.string(), ec.message()),
                        false);
  }

  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) throw DownloadError("libcurl cannot create a handle", false);
  TempFile tmp(dest);
  Sink sink{tmp.file()};
  char errbuf[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_callback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // an HTTP 404 page is not the file
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: safe in threaded apps
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, options.timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes_per_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options.low_speed_time_s);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "octa/0.1 (libcurl)");

  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    std::string cause = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    if (rc == CURLE_WRITE_ERROR && sink.write_failed) {
      cause =
          fmt::format("cannot write {}: {}", tmp.path().string(), std::strerror(sink.write_errno));
    }
    throw DownloadError(fmt::format("{}: download to {} failed: {}", url, dest.string(), cause),
                        is_unreachable(rc));
  }
  if (!tmp.close()) {
    throw DownloadError(fmt::format("{}: cannot write {} (disk full?): {}", url,
                                    tmp.path().string(), std::strerror(errno)),
                        false);
  }
  const std::string md5 = sink.md5.hex();
  if (!options.expected_md5.empty() && md5 != options.expected_md5) {
    throw DownloadError(
        fmt::format("{}: MD5 mismatch for {} downloaded from {}: got {}, expected "
                    "{}; the download was discarded",
                    dest.filename().string(), dest.string(), url, md5, options.expected_md5),
        false);
  }
  fs::rename(tmp.path(), dest, ec);
  if (ec) {
    throw DownloadError(fmt::format("{}: cannot rename the downloaded file into place: {}",
                                    dest.string(), ec.message()),
                        false);
  }
  tmp.release();
  created.keep();
  // Make the rename itself durable (best effort: some filesystems refuse to open directories).
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace octa::data
