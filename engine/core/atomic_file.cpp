// engine/core/atomic_file.cpp: temporary file + fsync + rename, so outputs are never half-written.
#include "engine/core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "engine/core/error.hpp"

namespace octa {
namespace {

void fsync_path(const std::filesystem::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create directory '{}': {}", path.string(),
                                  dir.string(), ec.message()));
  std::random_device rd;
  const fs::path tmp = dir / fmt::format(".{}.tmp-{:08x}", path.filename().string(), rd());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) {
        throw Error(fmt::format("{}: cannot open temporary file '{}' for writing: {}",
                                path.string(), tmp.string(), std::strerror(errno)));
      }
      write(out);
      out.flush();
      if (!out) {
        throw Error(fmt::format("{}: write failed (disk full?): {}", path.string(),
                                std::strerror(errno)));
      }
    }
    fsync_path(tmp, false);
    fs::rename(tmp, path, ec);
    if (ec) {
      throw Error(fmt::format("{}: cannot rename temporary file into place: {}", path.string(),
                              ec.message()));
    }
    fsync_path(dir, true);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  });
}

}  // namespace octa
