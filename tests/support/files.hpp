// tests/support/files.hpp: writing test files byte for byte, and reading back a JSON file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

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

// The JSON document in path (a metrics file, predict's --json, ...).
inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace octa::test
