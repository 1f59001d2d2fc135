// bench/bench_cpu_epoch.cpp: the CPU reference path's speed. Times the phases of one training step
// of model A or B at a batch size (median of many steps after warm-up), then one full epoch of the
// real MNIST through the same training loop train_gpu uses.
//
//   bench_cpu_epoch [--model a|b] [--batch-size 64] [--steps 50] [--data-dir DIR] [--no-epoch]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "engine/core/log.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/data/mnist.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/optim/optimizer.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  std::string model = "a", data_dir = "./data";
  int batch = 64, steps = 50;
  bool no_epoch = false;
  CLI::App app{"bench_cpu_epoch: time the CPU reference path (per-phase step time, one epoch)"};
  app.add_option("--model", model, "a or b")->capture_default_str();
  app.add_option("--batch-size", batch, "Batch size")->capture_default_str();
  app.add_option("--steps", steps, "Timed steps (after 5 warm-up steps)")->capture_default_str();
  app.add_option("--data-dir", data_dir, "MNIST directory for the epoch")->capture_default_str();
  app.add_flag("--no-epoch", no_epoch, "Skip the full-epoch measurement");
  CLI11_PARSE(app, argc, argv);
  try {
    octa::init_logging(spdlog::level::warn);
    const octa::ParamTable table = octa::ParamTable::for_arch(octa::parse_arch(model));
    const auto info = octa::cpu::blas_info();
    std::printf("OpenBLAS core %s, %d threads; model %s, batch %d\n", info.core.c_str(),
                info.threads, octa::arch_name(table.arch()), batch);

    // --- per-phase step time on random data ----------------------------------------------------
    std::vector<float> state(table.num_total()), grads(table.num_trainable());
    octa::init_parameters(table, state.data(), 0);
    const auto n = static_cast<std::size_t>(batch);
    std::vector<float> x(n * 28 * 28), y(n), z(n), dz(n);
    octa::PhiloxStream rng(1, 2);
    for (auto& v : x) v = 2.0f * rng.next_uniform01() - 1.0f;
    for (auto& v : y) v = rng.next_uniform01() < 0.1f ? 1.0f : 0.0f;
    octa::CpuModel<float> net(table, batch);
    octa::Optimizer opt(octa::OptimizerConfig{}, table.num_trainable());
    std::vector<double> fwd, bwd, upd, total;
    for (int i = 0; i < steps + 5; ++i) {
      const auto t0 = Clock::now();
      net.forward(state.data(), x.data(), batch, true, 0, static_cast<std::uint64_t>(i), z.data());
      octa::cpu::bce_with_logits(dz.data(), z.data(), y.data(), batch, 1.0f);
      const double f = ms_since(t0);
      const auto t1 = Clock::now();
      net.backward(state.data(), dz.data(), grads.data());
      const double b = ms_since(t1);
      const auto t2 = Clock::now();
      opt.step(state.data(), grads.data());
      const double u = ms_since(t2);
      if (i >= 5) {
        fwd.push_back(f);
        bwd.push_back(b);
        upd.push_back(u);
        total.push_back(ms_since(t0));
      }
    }
    const double step_ms = median(total);
    std::printf(
        "step (median of %d): forward+loss %.2f ms, backward %.2f ms, Adam %.2f ms, "
        "total %.2f ms = %.0f images/s; 938 steps ~ %.1f s\n",
        steps, median(fwd), median(bwd), median(upd), step_ms, 1000.0 * batch / step_ms,
        938.0 * step_ms / 1000.0);

    // --- one epoch of the real data through the training loop ---------------------------------
    if (!no_epoch) {
      octa::data::FindOptions find;
      find.allow_download = false;
      const auto mnist = octa::data::load_mnist(data_dir, find);
      octa::BackendConfig bc;
      bc.arch = table.arch();
      bc.max_batch = std::max(batch, 1000);
      auto backend = octa::make_cpu_backend(bc);
      octa::TrainOptions to;
      to.epochs = 1;
      to.batch_size = batch;
      const auto r = octa::train(*backend, mnist.train, mnist.test, to);
      std::printf(
          "epoch of %d images: %.2f s (%.0f images/s), mean loss %.4f; test accuracy %.4f\n",
          mnist.train.count, r.epochs[0].seconds, r.epochs[0].images_per_second,
          r.epochs[0].mean_loss, r.test.accuracy);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_epoch: error: %s\n", e.what());
    return 1;
  }
}
