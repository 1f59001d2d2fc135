// fuzz/fuzz_checkpoint.cpp: the checkpoint-pair loader (engine/io/checkpoint.hpp), for both
// models: the weights file, its optimiser state and the temporary an interrupted save leaves
// (which the loader may take as the weights). The input is three files, framed as
//   [u32 LE n1][n1 bytes: weights][u32 LE n2][n2 bytes: optimiser state][rest: temporary]
// (lengths taken modulo what is left; a zero length means the file is absent), as
// fuzz_make_seeds writes them.
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "engine/core/error.hpp"
#include "engine/io/checkpoint.hpp"
#include "fuzz/fuzz_files.hpp"

namespace {

// The next framed part: its bytes within [data, data + size), advancing past it.
std::pair<const std::uint8_t*, std::size_t> take(const std::uint8_t*& data, std::size_t& size) {
  std::uint32_t n = 0;
  if (size >= 4) {
    std::memcpy(&n, data, 4);
    data += 4;
    size -= 4;
  }
  const std::size_t len = size == 0 ? 0 : n % (size + 1);
  const auto part = std::make_pair(data, len);
  data += len;
  size -= len;
  return part;
}

void put(const std::filesystem::path& dir, const std::string& name,
         std::pair<const std::uint8_t*, std::size_t> part) {
  std::error_code ec;
  std::filesystem::remove(dir / name, ec);
  if (part.second > 0) octa::fuzz::write_input(name, part.first, part.second);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using octa::fuzz::require;
  const auto& dir = octa::fuzz::scratch_dir();
  const auto weights = take(data, size);
  const auto optim = take(data, size);
  put(dir, "c.safetensors", weights);
  put(dir, "c.optim.safetensors", optim);
  // A temporary of a process that cannot be running (pid 2^31 - 1 is above any pid_max).
  put(dir, ".c.safetensors.tmp-2147483647-0123abcd", {data, size});
  for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
    const octa::ParamTable table = octa::ParamTable::for_arch(arch);
    try {
      const octa::Checkpoint ck = octa::load_checkpoint(dir / "c.safetensors", table);
      require(ck.model.values.size() == table.num_total(), "model state size");
      require(ck.training.optimizer_state.m.size() == table.num_trainable(), "optimiser state");
      require(ck.training.epochs_done >= 0 && ck.training.within_epoch.batches_done >= 0,
              "position in the run");
    } catch (const octa::Error&) {
    }
    try {
      const octa::ModelState m = octa::load_weights(dir / "c.safetensors", table);
      require(m.values.size() == table.num_total(), "weights size");
    } catch (const octa::Error&) {
    }
  }
  return 0;
}
