// engine/core/atomic_file.hpp: write a file so that readers see either the old content or the
// complete new content, never a partial file: write to a temporary beside it, flush, fsync, rename.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

namespace octa {

// Calls write(stream) on a temporary file in path's directory, then renames it over path. On any
// failure (including an exception from write) the temporary is removed, path is left as it was, and
// octa::Error names the path and the cause.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

// Convenience overload for content already in memory.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace octa
