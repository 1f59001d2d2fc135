// engine/data/download.hpp: fetching one file over HTTP(S) or file:// with libcurl, atomically:
// the bytes go to a temporary file beside the destination, are verified, and only then renamed.
#pragma once

#include <filesystem>
#include <string>

#include "engine/core/error.hpp"

namespace octa::data {

struct DownloadOptions {
  long connect_timeout_s = 10;  // an offline machine fails in seconds, not minutes
  long timeout_s = 300;         // the whole transfer
  // A transfer slower than low_speed_bytes_per_s for low_speed_time_s is abandoned: a stalled
  // server fails early instead of holding the overall timeout.
  long low_speed_bytes_per_s = 1024;
  long low_speed_time_s = 30;
  std::string expected_md5;  // lowercase hex; empty = do not check
};

// Thrown by download_file. unreachable is true when the server could not be reached at all (name
// resolution, connection, timeout), as opposed to a missing file or a bad checksum: a caller trying
// several files on one mirror can skip a mirror that is down instead of waiting on it again.
class DownloadError : public Error {
 public:
  DownloadError(const std::string& what, bool unreachable)
      : Error(what), unreachable_(unreachable) {}
  bool unreachable() const { return unreachable_; }

 private:
  bool unreachable_;
};

// Downloads url (http, https or file) to dest. On success dest holds the complete, verified file.
// On failure dest is untouched (an older file there stays as it was), no temporary is left behind,
// and DownloadError names the URL, the destination and the cause (an MD5 mismatch names both sums).
void download_file(const std::string& url, const std::filesystem::path& dest,
                   const DownloadOptions& options = {});

}  // namespace octa::data
