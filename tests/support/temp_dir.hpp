// tests/support/temp_dir.hpp: a fresh, uniquely named directory for one test, removed afterwards.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace octa::test {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test") {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            fmt::format("octa-{}-{}-{:08x}", tag, ::getpid(), rd());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace octa::test
