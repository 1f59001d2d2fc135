// fuzz/make_seeds.cpp: writes the fuzz seeds that octa's own writers make, into DIR/checkpoint/
// (model B checkpoint pairs, framed as fuzz_checkpoint.cpp reads them: at an epoch boundary,
// mid-epoch, with SGD, and one interrupted between its renames, whose weights only its temporary
// holds). Model A's pairs (5 MB) are too large to be good seeds; B's files exercise the same code
// (and model A's table rejects them, which is exercised too). And DIR/predict_image/: the image
// seeds of fuzz_predict_image (fuzz/image_seeds.hpp). Run by scripts/fuzz.sh.
//
//   fuzz_make_seeds DIR
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "engine/io/checkpoint.hpp"
#include "engine/model/param_table.hpp"
#include "fuzz/image_seeds.hpp"

namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string framed(const std::string& part) {
  const auto n = static_cast<std::uint32_t>(part.size());
  std::string s(reinterpret_cast<const char*>(&n), 4);
  return s + part;
}

// A model B checkpoint saved into tmp, as one framed seed (plus a temporary's bytes).
void write_seed(const fs::path& out, const fs::path& tmp, octa::OptimizerKind kind,
                std::int64_t batches_done, bool interrupted) {
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kB);
  octa::ModelState model;
  model.values.assign(table.num_total(), 0.0f);
  octa::init_parameters(table, model.values.data(), 1);
  model.num_batches_tracked = 12;
  octa::TrainingState ts;
  ts.epochs_done = 2;
  ts.within_epoch = {
      batches_done, batches_done * 64, 0.25 * static_cast<double>(batches_done), 64, false, 60000};
  ts.seed = 1;
  ts.run_id = "0123456789abcdef";
  ts.optimizer.kind = kind;
  ts.optimizer_state.m.assign(table.num_trainable(), 0.01f);
  if (kind == octa::OptimizerKind::kAdam) ts.optimizer_state.v.assign(table.num_trainable(), 1e-4f);
  ts.optimizer_state.step = 2 * 938 + batches_done;
  const fs::path ck = tmp / "c.safetensors";
  octa::save_checkpoint(ck, table, model, ts);
  std::string weights = read_all(ck), optim = read_all(octa::optimizer_state_path(ck));
  std::string temporary;
  if (interrupted) {
    temporary = weights;  // the complete new weights, still in their temporary
    octa::save_weights(
        ck, table, model,
        {{"octa.run_id", ts.run_id}, {"octa.epochs_done", "2"}, {"octa.batches_done", "0"}});
    weights = read_all(ck);  // the old weights, still under the file's name
  }
  std::ofstream(out, std::ios::binary) << framed(weights) << framed(optim) << temporary;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  const fs::path dir = fs::path(argv[1]) / "checkpoint";
  const fs::path tmp = fs::path(argv[1]) / "checkpoint-scratch";
  fs::create_directories(dir);
  fs::create_directories(tmp);
  write_seed(dir / "b_adam_epoch", tmp, octa::OptimizerKind::kAdam, 0, false);
  write_seed(dir / "b_adam_mid_epoch", tmp, octa::OptimizerKind::kAdam, 17, false);
  write_seed(dir / "b_sgd_epoch", tmp, octa::OptimizerKind::kSgd, 0, false);
  write_seed(dir / "b_sgd_interrupted_save", tmp, octa::OptimizerKind::kSgd, 5, true);
  fs::remove_all(tmp);
  std::printf("fuzz_make_seeds: 4 checkpoint seeds in %s\n", dir.c_str());
  const fs::path images = fs::path(argv[1]) / "predict_image";
  const int n = octa::fuzz::write_image_seeds(images);
  std::printf("fuzz_make_seeds: %d image seeds in %s\n", n, images.c_str());
  return 0;
}
