// fuzz/fuzz_files.hpp: shared by the fuzz targets. octa's readers take paths, so each input is
// written to a file first, in a scratch directory of this process's own (under /dev/shm where
// there is one: memory, not the disk), removed at exit. A broken invariant aborts (a finding).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace octa::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / fmt::format("octa-fuzz-{}", ::getpid());
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(scratch_dir(), ignored);
    });
    spdlog::set_level(spdlog::level::off);  // the mended-checkpoint warning, once per input
    return d;
  }();
  return dir;
}

// Writes bytes to scratch_dir()/name (an empty input makes an empty file).
inline std::filesystem::path write_input(const std::string& name, const std::uint8_t* data,
                                         std::size_t size) {
  const std::filesystem::path p = scratch_dir() / name;
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return p;
}

// Aborts with a message when an invariant of a successfully parsed input does not hold.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace octa::fuzz
