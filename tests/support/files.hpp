// tests/support/files.hpp: writing test files byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include <catch2/catch.hpp>

namespace octa::test {

using Bytes = std::vector<std::uint8_t>;

// Writes b to path (creating its directory) and returns path.
inline std::filesystem::path write_bytes(const std::filesystem::path& path, const Bytes& b) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
  return path;
}

}  // namespace octa::test
