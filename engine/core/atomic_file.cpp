// engine/core/atomic_file.cpp: temporary file + fsync + rename, so outputs are never half-written;
// and the clean-up of temporaries that killed writers left behind.
#include "engine/core/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "engine/core/error.hpp"

namespace octa {
namespace fs = std::filesystem;

namespace {

// Temporaries in the older naming (no pid) count as stale once this old: a write takes far less.
constexpr std::chrono::seconds kLegacyStaleAge{60};

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

fs::path directory_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

std::string temporary_prefix(const fs::path& path) {
  return fmt::format(".{}.tmp-", path.filename().string());
}

bool is_hex8(std::string_view s) {
  if (s.size() != 8) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The writer's pid of a temporary named "<prefix><pid>-<hex8>"; 0 for the older "<prefix><hex8>";
// nullopt for any other name.
std::optional<long> temporary_writer(std::string_view name, std::string_view prefix) {
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view rest = name.substr(prefix.size());
  const std::size_t dash = rest.find('-');
  if (dash == std::string_view::npos) {
    if (is_hex8(rest)) return 0;
    return std::nullopt;
  }
  const std::string_view digits = rest.substr(0, dash);
  if (digits.empty() || digits.size() > 10 || digits[0] == '0' || !is_hex8(rest.substr(dash + 1))) {
    return std::nullopt;
  }
  long pid = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    pid = pid * 10 + (c - '0');
  }
  return pid;
}

bool process_running(long pid) {
  if (pid == static_cast<long>(::getpid())) return true;  // ours: another thread may be writing
  if (pid > static_cast<long>(INT32_MAX)) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

PendingFile::PendingFile(const fs::path& path, const std::function<void(std::ostream&)>& write)
    : path_(path) {
  const fs::path dir = directory_of(path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Error(fmt::format("{}: cannot create directory '{}': {}", path.string(), dir.string(),
                            ec.message()));
  }
  std::random_device rd;
  tmp_ = dir / fmt::format("{}{}-{:08x}", temporary_prefix(path), ::getpid(), rd());
  try {
    std::ofstream out(tmp_, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw Error(fmt::format("{}: cannot open temporary file '{}' for writing: {}", path.string(),
                              tmp_.string(), std::strerror(errno)));
    }
    write(out);
    out.close();
    if (!out) {
      throw Error(
          fmt::format("{}: write failed (disk full?): {}", path.string(), std::strerror(errno)));
    }
    fsync_path(tmp_, false);
  } catch (...) {
    fs::remove(tmp_, ec);
    throw;
  }
}

PendingFile::PendingFile(const fs::path& path, std::string_view content)
    : PendingFile(path, [&](std::ostream& out) {
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
      }) {}

PendingFile::~PendingFile() {
  if (committed_) return;
  std::error_code ec;
  fs::remove(tmp_, ec);
}

void PendingFile::commit() {
  OCTA_CHECK(!committed_, "{}: already committed", path_.string());
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) {
    throw Error(fmt::format("{}: cannot rename temporary file into place: {}", path_.string(),
                            ec.message()));
  }
  committed_ = true;
  fsync_path(directory_of(path_), true);
  remove_stale_temporaries(path_);
}

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  PendingFile(path, write).commit();
}

void write_file_atomically(const fs::path& path, std::string_view content) {
  PendingFile(path, content).commit();
}

std::vector<fs::path> stale_temporaries(const fs::path& path) {
  std::vector<fs::path> stale;
  const std::string prefix = temporary_prefix(path);
  std::error_code ec;
  fs::directory_iterator it(directory_of(path), ec);
  if (ec) return stale;
  const auto now = fs::file_time_type::clock::now();
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    const std::optional<long> writer = temporary_writer(name, prefix);
    if (!writer || !entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
    if (*writer == 0) {
      const auto written = entry.last_write_time(ec);
      if (ec || now - written < kLegacyStaleAge) continue;
    } else if (process_running(*writer)) {
      continue;
    }
    stale.push_back(entry.path());
  }
  return stale;
}

std::size_t remove_stale_temporaries(const fs::path& path) {
  std::size_t removed = 0;
  for (const fs::path& p : stale_temporaries(path)) {
    std::error_code ec;
    if (fs::remove(p, ec)) ++removed;
  }
  return removed;
}

}  // namespace octa
