// tests/test_app_reliability.cpp: train_gpu as a child process that the test signals and kills:
// SIGINT/SIGTERM stop it cleanly mid-epoch with a resumable checkpoint (the printed command
// resumes to the uninterrupted result bit for bit), a second signal stops it at once, a kill -9
// campaign never leaves a checkpoint pair that does not load; and what it refuses up front: files
// octa did not write, impossible batch sizes, nonsensical numbers. Every wait is bounded; the data
// are small synthetic IDX files, so nothing here needs the real MNIST.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/mnist_dir.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using octa::test::ChildProcess;
using octa::test::TempDir;

// A run's arguments: CPU, one thread (ctest runs two tests at once on two cores), synthetic data;
// --checkpoint unless `checkpoint` is empty.
std::vector<std::string> train_args(const fs::path& data, const fs::path& checkpoint,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> a = {
      OCTA_TRAIN_GPU_EXE, "--device", "cpu",           "--threads",  "1",
      "--seed",           "7",        "--no-download", "--data-dir", data.string()};
  if (!checkpoint.empty()) a.insert(a.end(), {"--checkpoint", checkpoint.string()});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

struct Finished {
  int status = -1;
  std::string output;
};

Finished run_to_end(const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout = 300s) {
  ChildProcess child(argv);
  Finished f;
  f.status = child.wait_exit(timeout);
  f.output = child.output();
  return f;
}

// Runs train_gpu until it logs `line` (the end of an epoch: its checkpoint is being written),
// lets the next epoch get under way, sends sig, and waits for the end.
Finished signalled_after(const std::vector<std::string>& argv, const std::string& line, int sig) {
  ChildProcess child(argv);
  Finished f;
  if (child.wait_for(line, 120s)) {
    std::this_thread::sleep_for(300ms);
    child.signal(sig);
    f.status = child.wait_exit(120s);
  }
  f.output = child.output();
  return f;
}

// Every tensor's bytes, by name.
std::map<std::string, std::vector<std::byte>> tensors_of(const fs::path& path) {
  std::map<std::string, std::vector<std::byte>> m;
  for (auto& t : octa::io::read_safetensors(path).tensors) m[t.name] = t.data;
  return m;
}

std::string metadata_of(const fs::path& path, const std::string& key) {
  const auto meta = octa::io::read_safetensors_metadata(path);
  const auto it = meta.find(key);
  return it == meta.end() ? std::string() : it->second;
}

// The octa temporaries beside the checkpoint (atomic_file.hpp's naming), stale or not.
std::vector<std::string> temporaries_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if ((name.starts_with(".m.safetensors.tmp-") ||
         name.starts_with(".m.optim.safetensors.tmp-")) &&
        name.find("decoy") == std::string::npos) {
      found.push_back(name);
    }
  }
  return found;
}

// The command train_gpu printed after "resume with:".
std::string printed_resume_command(const std::string& output) {
  const std::string marker = "resume with:\n";
  const auto at = output.find(marker);
  if (at == std::string::npos) return {};
  const auto begin = output.find_first_not_of(' ', at + marker.size());
  return output.substr(begin, output.find('\n', begin) - begin);
}

}  // namespace

TEST_CASE(
    "SIGINT mid-epoch: exit 130, a mid-epoch checkpoint, and the printed command resumes "
    "to the uninterrupted run bit for bit",
    "[cpu][app][signal]") {
  TempDir dir("sigint");
  octa::test::write_synthetic_mnist(dir / "data", 2000, 100);
  const std::vector<std::string> run = {"--epochs", "2", "--max-test", "100"};

  const Finished straight = run_to_end(train_args(dir / "data", dir / "straight.safetensors", run));
  INFO(straight.output);
  REQUIRE(straight.status == 0);

  const Finished stopped =
      signalled_after(train_args(dir / "data", dir / "m.safetensors", run), "epoch 1/2:", SIGINT);
  INFO(stopped.output);
  CHECK(stopped.status == 130);
  CHECK_THAT(stopped.output, Catch::Contains("SIGINT: finishing this step") &&
                                 Catch::Contains("stopped by SIGINT in epoch 2/2 after") &&
                                 Catch::Contains("resume with:"));
  const fs::path optim = dir / "m.optim.safetensors";
  CHECK(std::stoi(metadata_of(optim, "octa.epochs_done")) == 1);
  const int batches = std::stoi(metadata_of(optim, "octa.batches_done"));
  CHECK(batches > 0);
  CHECK(batches < 32);  // 2000 images in batches of 64
  CHECK(temporaries_in(dir.path()).empty());

  const std::string resume = printed_resume_command(stopped.output);
  REQUIRE_THAT(resume, Catch::Contains("--resume") && Catch::Contains("m.safetensors"));
  const Finished resumed = run_to_end({"/bin/sh", "-c", resume});
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK_THAT(resumed.output, Catch::Contains(fmt::format("batch {}", batches)));
  CHECK(tensors_of(dir / "m.safetensors") == tensors_of(dir / "straight.safetensors"));
  CHECK(tensors_of(optim) == tensors_of(dir / "straight.optim.safetensors"));
}

TEST_CASE("SIGTERM mid-epoch: exit 143 and a checkpoint that loads", "[cpu][app][signal]") {
  TempDir dir("sigterm");
  octa::test::write_synthetic_mnist(dir / "data", 2000, 100);
  const Finished stopped = signalled_after(
      train_args(dir / "data", dir / "m.safetensors", {"--epochs", "3", "--model", "b"}),
      "epoch 1/3:", SIGTERM);
  INFO(stopped.output);
  CHECK(stopped.status == 143);
  CHECK_THAT(stopped.output, Catch::Contains("stopped by SIGTERM") && Catch::Contains("--resume") &&
                                 Catch::Contains("m.safetensors"));
  const auto ck =
      octa::load_checkpoint(dir / "m.safetensors", octa::ParamTable::for_arch(octa::Arch::kB));
  CHECK(ck.training.epochs_done >= 1);
  CHECK(ck.training.within_epoch.batch_size == 64);
}

TEST_CASE("A second signal stops at once and keeps the last complete checkpoint",
          "[cpu][app][signal]") {
  TempDir dir("sig2");
  octa::test::write_synthetic_mnist(dir / "data", 2000, 100);
  // Batches of 1000: each step takes long enough for the second signal to land inside it.
  ChildProcess child(
      train_args(dir / "data", dir / "m.safetensors", {"--epochs", "5", "--batch-size", "1000"}));
  REQUIRE(child.wait_for("epoch 1/5:", 180s));
  std::this_thread::sleep_for(300ms);  // the epoch-1 checkpoint is written by now
  child.signal(SIGINT);
  REQUIRE(child.wait_for("SIGINT: finishing this step", 30s));
  child.signal(SIGINT);
  const auto sent = ChildProcess::Clock::now();
  const int status = child.wait_exit(60s);
  const double seconds = std::chrono::duration<double>(ChildProcess::Clock::now() - sent).count();
  INFO(child.output());
  CHECK(status == 130);
  CHECK_THAT(child.output(), Catch::Contains("SIGINT again: stopping at once") &&
                                 !Catch::Contains("stopped by SIGINT in"));
  CHECK(seconds < 5.0);
  const auto ck =
      octa::load_checkpoint(dir / "m.safetensors", octa::ParamTable::for_arch(octa::Arch::kA));
  CHECK(ck.training.epochs_done >= 1);
}

TEST_CASE(
    "kill -9 at random moments never leaves a checkpoint pair that does not load, and the "
    "next run removes the temporaries",
    "[cpu][app][signal][kill9]") {
  TempDir dir("kill9");
  octa::test::write_synthetic_mnist(dir / "data", 64,
                                    64);  // one step per epoch: saves all the time
  const fs::path ck = dir / "m.safetensors";
  const fs::path optim = dir / "m.optim.safetensors";
  // Files that only look like octa's temporaries: never touched.
  for (const char* decoy : {".m.safetensors.tmp-decoy", ".m.safetensors.tmp-1-decoy0000",
                            "m.safetensors.tmp-123-0123abcd", ".n.safetensors.tmp-1-0123abcd"}) {
    std::ofstream(dir / decoy) << "not octa's";
  }
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kA);
  std::mt19937 rng(20240601);
  // Counted from the line train_gpu logs just before its first step, so that a slow start (a
  // loaded machine, a sanitizer build) does not turn every kill into one before training.
  std::uniform_int_distribution<int> delay_ms(0, 600);
  const auto campaign_end = ChildProcess::Clock::now() + 120s;
  int kills = 0, resumed = 0;
  std::size_t left_behind = 0;  // temporaries found after the kills (each removed by a later save)
  std::string run_id;
  for (; kills < 20 && ChildProcess::Clock::now() < campaign_end; ++kills) {
    std::vector<std::string> extra = {"--epochs", "100000", "--max-test", "64"};
    if (fs::exists(optim)) {
      extra.insert(extra.end(), {"--resume", ck.string()});
      ++resumed;
    }
    {
      ChildProcess child(train_args(dir / "data", ck, extra));
      REQUIRE(child.wait_for("trainable parameters", 60s));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      child.signal(SIGKILL);
      CHECK(child.wait_exit(30s) == 128 + SIGKILL);
    }
    left_behind += temporaries_in(dir.path()).size();
    if (!fs::exists(optim)) continue;  // killed before its first checkpoint
    INFO("after kill " << kills + 1);
    octa::Checkpoint loaded;
    REQUIRE_NOTHROW(loaded = octa::load_checkpoint(ck, table));
    if (run_id.empty()) run_id = loaded.training.run_id;
    CHECK(loaded.training.run_id == run_id);  // resumed runs continue the first run
  }
  INFO(kills << " kills, " << resumed << " of the runs resumed, " << left_behind
             << " temporaries seen after them");
  std::cout << "kill -9 campaign: " << kills << " kills, " << resumed << " resumed runs, "
            << left_behind << " temporaries seen after the kills\n";
  CHECK(kills >= 10);
  REQUIRE(fs::exists(optim));
  const auto before = octa::load_checkpoint(ck, table);
  const int total = before.training.epochs_done + 1;
  const Finished last = run_to_end(
      train_args(dir / "data", ck,
                 {"--epochs", std::to_string(total), "--max-test", "64", "--resume", ck.string()}));
  INFO(last.output);
  REQUIRE(last.status == 0);
  CHECK(temporaries_in(dir.path()).empty());
  for (const char* decoy : {".m.safetensors.tmp-decoy", ".m.safetensors.tmp-1-decoy0000",
                            "m.safetensors.tmp-123-0123abcd", ".n.safetensors.tmp-1-0123abcd"}) {
    CHECK(fs::exists(dir / decoy));
  }
  CHECK(octa::load_checkpoint(ck, table).training.epochs_done == total);
}

TEST_CASE(
    "Output flags (--report too) refuse to replace files octa did not write, unless "
    "--overwrite",
    "[cpu][app][overwrite]") {
  TempDir dir("overwrite");
  octa::test::write_synthetic_mnist(dir / "data", 128, 32);
  const std::string foreign = "my notes, not octa's\n";
  struct Case {
    std::string flag, file;
  };
  const Case cases[] = {
      {"--metrics-out", "metrics.json"},     {"--checkpoint", "weights.safetensors"},
      {"--export-init", "init.safetensors"}, {"--export-order", "order.safetensors"},
      {"--export-losses", "losses.json"},    {"--report", "report.html"}};
  for (const Case& c : cases) {
    INFO(c.flag);
    std::ofstream(dir / c.file) << foreign;
    const bool checkpoint_case = c.flag == "--checkpoint";
    std::vector<std::string> args =
        train_args(dir / "data", checkpoint_case ? fs::path() : dir / "ck.safetensors",
                   {"--epochs", "1", c.flag, (dir / c.file).string()});
    const Finished refused = run_to_end(args);
    INFO(refused.output);
    CHECK(refused.status == 1);
    CHECK_THAT(refused.output, Catch::Contains(c.flag) && Catch::Contains(c.file) &&
                                   Catch::Contains("octa did not write it") &&
                                   Catch::Contains("--overwrite"));
    std::ifstream in(dir / c.file);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == foreign);

    args.push_back("--overwrite");
    const Finished replaced = run_to_end(args);
    INFO(replaced.output);
    CHECK(replaced.status == 0);
    // Now octa's: a second run replaces it without --overwrite.
    args.pop_back();
    const Finished again = run_to_end(args);
    INFO(again.output);
    CHECK(again.status == 0);
  }
  // The optimiser-state file beside a checkpoint is guarded too.
  std::ofstream(dir / "ck2.optim.safetensors") << foreign;
  const Finished optim =
      run_to_end(train_args(dir / "data", dir / "ck2.safetensors", {"--epochs", "1"}));
  CHECK(optim.status == 1);
  CHECK_THAT(optim.output, Catch::Contains("ck2.optim.safetensors"));
  // A directory is never replaced, --overwrite or not.
  fs::create_directories(dir / "adir.json");
  const Finished directory = run_to_end(
      train_args(dir / "data", dir / "ck.safetensors",
                 {"--epochs", "1", "--metrics-out", (dir / "adir.json").string(), "--overwrite"}));
  CHECK(directory.status == 1);
  CHECK_THAT(directory.output, Catch::Contains("adir.json") && Catch::Contains("directory"));
}

TEST_CASE("Impossible batch sizes and nonsensical numbers are refused up front, naming the flag",
          "[cpu][app][limits]") {
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"--batch-size 2000000000", "--batch-size 2000000000: a batch this large needs about"},
      {"--device cpu-ref --batch-size 2000000000", "--batch-size 2000000000: a batch this large"},
      {"--device cpu --batch-size 2000000000 --model b", "--batch-size 2000000000"},
      {"--threads -3", "--threads"},
      {"--epochs 0", "--epochs"},
      {"--batch-size 0", "--batch-size"},
      {"--test-batch-size -5", "--test-batch-size"},
      {"--max-train -5", "--max-train"},
      {"--max-test -1", "--max-test"},
      {"--seed -1", "--seed"},
  };
  TempDir dir("limits");
  for (const Case& c : cases) {
    std::vector<std::string> argv = {OCTA_TRAIN_GPU_EXE, "--no-download", "--data-dir",
                                     (dir / "none").string(), "--no-checkpoint"};
    std::istringstream words(c.args);
    for (std::string w; words >> w;) argv.push_back(w);
    const Finished r = run_to_end(argv, 60s);
    INFO(c.args << "\n" << r.output);
    CHECK(r.status != 0);
    CHECK(r.status < 128);  // an error, not a crash
    CHECK_THAT(r.output, Catch::Contains(c.expect));
    CHECK_THAT(r.output, !Catch::Contains("bad_alloc") && !Catch::Contains("MNIST not found"));
  }
}

TEST_CASE("A huge --test-batch-size on the CPU is evaluated in pieces, not allocated",
          "[cpu][app][limits]") {
  // The CPU backends size their buffers for the training batch and evaluate in pieces of it, and
  // the evaluation ring holds at most the test split: nothing of 2*10^9 images is allocated. (On
  // a GPU the staging batches are sized for it: refused there, like --batch-size.)
  TempDir dir("testbatch");
  octa::test::write_synthetic_mnist(dir / "data", 128, 50);
  const Finished r = run_to_end(train_args(
      dir / "data", {}, {"--no-checkpoint", "--epochs", "1", "--test-batch-size", "2000000000"}));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("50 images"));
}
