// tests/test_checkpoint_recovery.cpp: a checkpoint pair under crashes (engine/io/checkpoint.hpp):
// a save killed between its two renames is mended from the complete weights it left in a
// temporary (and only from the matching one), the next save removes the temporaries, and
// metadata that is not a plain number is refused instead of being read as garbage.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::Arch;
using octa::ParamTable;
using octa::test::dead_pid;
using octa::test::TempDir;

// A training state at (epochs, batches) whose weights are all `value`.
struct Saved {
  octa::ModelState model;
  octa::TrainingState training;
};
Saved state_at(const ParamTable& t, int epochs, std::int64_t batches, float value) {
  Saved s;
  s.model.values.assign(t.num_total(), value);
  s.training.epochs_done = epochs;
  s.training.within_epoch = {batches, batches * 32, 1.5 * static_cast<double>(batches),
                             32,      false,        200};
  s.training.run_id = std::string(1, 'r');  // (GCC 12 -Wrestrict misfires on = "r")
  s.training.optimizer_state.m.assign(t.num_trainable(), value);
  s.training.optimizer_state.v.assign(t.num_trainable(), value);
  s.training.optimizer_state.step = epochs * 7 + batches;
  return s;
}

void save(const fs::path& p, const ParamTable& t, const Saved& s) {
  octa::save_checkpoint(p, t, s.model, s.training);
}

}  // namespace

TEST_CASE("checkpoint: a save killed between its two renames is mended from its temporary",
          "[cpu][checkpoint][crash]") {
  TempDir dir("mend");
  const ParamTable t = ParamTable::for_arch(Arch::kA);
  const fs::path ck = dir / "c.safetensors";
  const fs::path optim = octa::optimizer_state_path(ck);
  save(ck, t, state_at(t, 1, 0, 1.0f));
  // The killed save of (epoch 1, batch 3): its optimiser state was renamed into place, its
  // complete weights still lie in a temporary of the dead process.
  TempDir other("mend-src");
  save(other / "c.safetensors", t, state_at(t, 1, 3, 2.0f));
  fs::copy_file(other / "c.optim.safetensors", optim, fs::copy_options::overwrite_existing);
  const fs::path tmp = dir / fmt::format(".c.safetensors.tmp-{}-0123abcd", dead_pid());
  fs::copy_file(other / "c.safetensors", tmp);
  // A temporary of another save (epoch 2) beside it must not be taken for it.
  save(other / "c.safetensors", t, state_at(t, 2, 0, 3.0f));
  fs::copy_file(other / "c.safetensors",
                dir / fmt::format(".c.safetensors.tmp-{}-89abcdef", dead_pid()));

  const octa::Checkpoint ck1 = octa::load_checkpoint(ck, t);
  CHECK(ck1.training.epochs_done == 1);
  CHECK(ck1.training.within_epoch.batches_done == 3);
  CHECK(ck1.model.values == std::vector<float>(t.num_total(), 2.0f));
  CHECK(fs::exists(tmp));  // loading changes nothing on disk

  // The weights file itself missing (the very first save was killed): mended the same way.
  fs::remove(ck);
  CHECK(octa::load_checkpoint(ck, t).model.values == std::vector<float>(t.num_total(), 2.0f));

  // The next save leaves a consistent pair and no temporaries.
  save(ck, t, state_at(t, 1, 4, 5.0f));
  CHECK(octa::stale_temporaries(ck).empty());
  CHECK(octa::stale_temporaries(optim).empty());
  CHECK(std::distance(fs::directory_iterator(dir.path()), {}) == 2);
  CHECK(octa::load_checkpoint(ck, t).training.within_epoch.batches_done == 4);
}

TEST_CASE("checkpoint: a mismatched pair with no matching temporary is refused",
          "[cpu][checkpoint][crash]") {
  TempDir dir("nomend");
  const ParamTable t = ParamTable::for_arch(Arch::kA);
  const fs::path ck = dir / "c.safetensors";
  save(ck, t, state_at(t, 1, 0, 1.0f));
  TempDir other("nomend-src");
  save(other / "c.safetensors", t, state_at(t, 1, 3, 2.0f));
  fs::copy_file(other / "c.optim.safetensors", octa::optimizer_state_path(ck),
                fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH(octa::load_checkpoint(ck, t),
                    Catch::Contains("do not belong together") &&
                        Catch::Contains("run r epoch 1 batch 0 vs run r epoch 1 batch 3"));
  // A truncated temporary of the right save is no mend either.
  const fs::path tmp = dir / fmt::format(".c.safetensors.tmp-{}-0123abcd", dead_pid());
  fs::copy_file(other / "c.safetensors", tmp);
  fs::resize_file(tmp, fs::file_size(tmp) - 4);
  CHECK_THROWS_WITH(octa::load_checkpoint(ck, t), Catch::Contains("do not belong together"));
  fs::remove(ck);
  CHECK_THROWS_WITH(octa::load_checkpoint(ck, t), Catch::Contains("c.safetensors"));
}

TEST_CASE("checkpoint: metadata numbers must be plain non-negative numbers", "[cpu][checkpoint]") {
  TempDir dir("meta");
  const ParamTable t = ParamTable::for_arch(Arch::kB);
  const fs::path ck = dir / "c.safetensors";
  save(ck, t, state_at(t, 2, 0, 1.0f));
  const fs::path optim = octa::optimizer_state_path(ck);
  const auto with_metadata = [&](const std::string& key, const std::string& value) {
    octa::io::SafetensorsFile f = octa::io::read_safetensors(optim);
    f.metadata[key] = value;
    std::vector<octa::io::TensorRef> refs;
    for (const auto& tensor : f.tensors) {
      refs.push_back({tensor.name, tensor.dtype, tensor.shape, tensor.data.data()});
    }
    octa::io::write_safetensors(dir / "bad.optim.safetensors", refs, f.metadata);
    fs::copy_file(ck, dir / "bad.safetensors", fs::copy_options::overwrite_existing);
    return dir / "bad.safetensors";
  };
  // std::stoull read "-1" as 2^64 - 1 and " 2" as 2: both are refused now.
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"octa.epochs_done", "-1"},
                                                        {"octa.epochs_done", " 2"},
                                                        {"octa.epochs_done", "2x"},
                                                        {"octa.epochs_done", "99999999999"},
                                                        {"octa.seed", "-3"},
                                                        {"octa.batches_done", "+1"},
                                                        {"lr", "abc"},
                                                        {"lr", "nan"},
                                                        {"lr", "inf"},
                                                        {"octa.epoch_loss_sum", "1e999"}}) {
    INFO(key << " = '" << value << "'");
    CHECK_THROWS_WITH(octa::load_checkpoint(with_metadata(key, value), t),
                      Catch::Contains(key) && Catch::Contains("bad.optim.safetensors"));
  }
  CHECK_NOTHROW(octa::load_checkpoint(with_metadata("octa.epochs_done", "2"), t));
}
