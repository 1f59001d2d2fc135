// engine/core/atomic_file.hpp: write a file so that readers see either the old content or the
// complete new content, never a partial file: write to a temporary beside it, flush, fsync, rename.
//
// Temporaries are named ".<name>.tmp-<pid>-<8 hex digits>" in the destination's directory (<pid>:
// the writing process). A process killed while writing (SIGKILL, power loss) leaves its temporary
// behind; the next write of the same destination removes the ones whose process is gone, and
// nothing else: no other name, no temporary of a live process. Older octa versions named them
// ".<name>.tmp-<8 hex digits>"; those are removed once they are a minute old.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>
#include <vector>

namespace octa {

// A complete, fsynced temporary file that becomes `path` when committed. Files that must change
// together (a checkpoint's weights and optimiser state) are each prepared first, then committed
// one after the other, so the window in which they disagree is two renames long.
class PendingFile {
 public:
  // Calls write(stream) on a fresh temporary beside path, then flushes and fsyncs it. On failure
  // (an exception from write included) the temporary is removed and octa::Error names path and
  // the cause.
  PendingFile(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
  PendingFile(const std::filesystem::path& path, std::string_view content);
  // Removes the temporary unless it was committed.
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  // Renames the temporary over path and fsyncs the directory; then removes path's stale
  // temporaries (above). Throws octa::Error naming path when the rename fails.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temporary() const { return tmp_; }

 private:
  std::filesystem::path path_, tmp_;
  bool committed_ = false;
};

// PendingFile(path, write).commit(): path is left as it was on any failure.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

// Convenience overload for content already in memory.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

// The temporaries beside path that killed writers left: octa's naming pattern for exactly this
// file name, regular files only, and the writing process no longer running (or, for the older
// pattern, a minute old). Never throws; an unreadable directory yields none.
std::vector<std::filesystem::path> stale_temporaries(const std::filesystem::path& path);

// Removes stale_temporaries(path); returns how many were removed.
std::size_t remove_stale_temporaries(const std::filesystem::path& path);

}  // namespace octa
