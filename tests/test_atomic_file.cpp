// tests/test_atomic_file.cpp: atomic writes (engine/core/atomic_file.hpp): a pending file is
// invisible until committed and gone if never committed; a write removes exactly the stale
// temporaries that killed writers of the same file left (octa's naming, a dead process), never
// another file.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::test::dead_pid;
using octa::test::TempDir;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void touch(const fs::path& p, const std::string& content = "x") {
  std::ofstream(p, std::ios::binary) << content;
}

std::size_t entries_in(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), {}));
}

}  // namespace

TEST_CASE("atomic file: a pending file appears only when committed, and vanishes if not",
          "[core][atomic]") {
  TempDir dir("atomic");
  const fs::path p = dir / "out.bin";
  touch(p, "old");
  {
    octa::PendingFile pending(p, "new");
    CHECK(fs::exists(pending.temporary()));
    CHECK(pending.temporary().parent_path() == dir.path());
    CHECK_THAT(pending.temporary().filename().string(),
               Catch::StartsWith(fmt::format(".out.bin.tmp-{}-", ::getpid())));
    CHECK(read_all(p) == "old");
  }
  CHECK(read_all(p) == "old");
  CHECK(entries_in(dir.path()) == 1);  // the temporary is gone
  {
    octa::PendingFile pending(p, "new");
    pending.commit();
    CHECK_FALSE(fs::exists(pending.temporary()));
  }
  CHECK(read_all(p) == "new");
  CHECK(entries_in(dir.path()) == 1);
  // A writer that throws leaves nothing behind and the old content in place.
  CHECK_THROWS_WITH(
      octa::write_file_atomically(p, [](std::ostream&) { throw octa::Error("disk on fire"); }),
      Catch::Contains("disk on fire"));
  CHECK(read_all(p) == "new");
  CHECK(entries_in(dir.path()) == 1);
}

TEST_CASE("atomic file: a write removes its own stale temporaries and nothing else",
          "[core][atomic]") {
  TempDir dir("stale");
  const fs::path p = dir / "m.safetensors";
  const pid_t dead = dead_pid();
  const pid_t live = ::getppid();  // the test runner's parent: running
  const auto name = [](pid_t pid, const char* hex) {
    return fmt::format(".m.safetensors.tmp-{}-{}", pid, hex);
  };
  const std::vector<std::string> stale = {name(dead, "0123abcd"), name(dead, "ffffffff"),
                                          ".m.safetensors.tmp-89abcdef"};  // older naming, old
  const std::vector<std::string> kept = {
      name(live, "0123abcd"),           // its writer is running
      name(::getpid(), "0123abcd"),     // ours: another thread may be writing it
      ".m.safetensors.tmp-0badc0de",    // older naming, but written just now
      name(dead, "0123ABCD"),           // not octa's (upper-case hex)
      name(dead, "0123abcd") + ".bak",  // not octa's: more after the pattern
      name(dead, "0123abc"),            // 7 digits
      fmt::format(".m.safetensors.tmp-0{}-0123abcd", dead),     // a leading zero
      ".m.safetensors.tmp-notes",                               // a user's file
      fmt::format("m.safetensors.tmp-{}-0123abcd", dead),       // no leading dot
      fmt::format(".other.safetensors.tmp-{}-0123abcd", dead),  // another file's temporary
      fmt::format(".m.safetensors.optim.tmp-{}-0123abcd", dead),
      "m.safetensors.bak",
  };
  for (const auto& n : stale) touch(dir / n);
  for (const auto& n : kept) touch(dir / n);
  fs::create_directory(dir / name(dead, "deadbeef"));  // a directory is not a temporary
  const auto old = fs::file_time_type::clock::now() - std::chrono::minutes(5);
  fs::last_write_time(dir / ".m.safetensors.tmp-89abcdef", old);

  const auto found = octa::stale_temporaries(p);
  CHECK(found.size() == stale.size());
  octa::write_file_atomically(p, "weights");
  for (const auto& n : stale) CHECK_FALSE(fs::exists(dir / n));
  for (const auto& n : kept) {
    INFO(n);
    CHECK(fs::exists(dir / n));
  }
  CHECK(fs::is_directory(dir / name(dead, "deadbeef")));
  CHECK(read_all(p) == "weights");
  CHECK(octa::stale_temporaries(p).empty());
  CHECK(octa::remove_stale_temporaries(dir / "absent-dir" / "x") == 0);
}
