// bench/bench_cpu_epoch.cpp: the CPU paths' speed. For the fast backend (the default) or the
// reference: the SGEMM rate at conv2's shape on these cores (the floor every phase is measured
// against), training steps of model A or B at a batch size through the backend train_gpu uses
// (median of many after warm-up, with user and system CPU time), the fast model's per-phase
// times with their FLOP rates, batch-1000 evaluation, then optionally one full epoch of the real
// MNIST through the same training loop train_gpu uses.
//
//   bench_cpu_epoch [--backend fast|ref] [--model a|b] [--batch-size 64] [--steps 50]
//                   [--threads N] [--data-dir DIR] [--no-epoch] [--json FILE]
#include <sys/resource.h>

#include <ctime>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/log.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cpu_fast/fast_model.hpp"
#include "engine/cpu_fast/parallel.hpp"
#include "engine/data/mnist.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/trainer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct CpuTimes {
  double user = 0, sys = 0;  // seconds
};

CpuTimes cpu_times() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  return {s(u.ru_utime), s(u.ru_stime)};
}

// FLOPs per image (2 x multiply-adds) of the fast model's phases, by the names it reports.
std::map<std::string, double> phase_flops(octa::Arch arch) {
  const double conv1 = 2.0 * 32 * 784 * 9, conv2 = 2.0 * 64 * 196 * 288;
  if (arch == octa::Arch::kA) {
    const double fc1 = 2.0 * 3136 * 128;
    return {{"conv1+relu+pool1+conv2+relu+pool2", conv1 + conv2},
            {"fc1+relu", fc1},
            {"fc1.backward", 2 * fc1},
            {"pool2+relu+conv2+pool1+relu+conv1.backward", 2 * conv2 + conv1}};
  }
  return {{"conv1 (+bn1 sums)", conv1},
          {"bn1+relu+pool1+conv2 (+bn2 sums)", conv2},
          {"pool2+relu+bn2+conv2.backward (+bn1 sums)", 2 * conv2},
          {"pool1+relu+bn1+conv1.backward", conv1}};
}

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return 1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
}

// The SGEMM rate at conv2's forward shape (64 x 196 x 288, one image), as the fast backend runs
// it: single-threaded BLAS on every thread at once, each on its own matrices. GFLOP/s: with one
// thread from that thread's CPU time (what it gets whatever else runs on the machine), with more
// from wall time.
double sgemm_rate(int threads_used) {
  octa::cpu::set_blas_threads(1);
  constexpr int M = 64, N = 196, K = 288, kCalls = 400;
  std::vector<std::vector<float>> a(static_cast<std::size_t>(threads_used)), b(a.size()),
      c(a.size());
  for (std::size_t t = 0; t < a.size(); ++t) {
    a[t].assign(M * K, 0.5f);
    b[t].assign(K * N, 0.25f);
    c[t].assign(M * N, 0.0f);
  }
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_ms();
    octa::cpu_fast::parallel_for(threads_used, [&](int t) {
      const auto i = static_cast<std::size_t>(t);
      for (int k = 0; k < kCalls; ++k) {
        octa::cpu::gemm<float>(false, false, M, N, K, 1.0f, a[i].data(), K, b[i].data(), N, 0.0f,
                               c[i].data(), N);
      }
    });
    best = std::min(best, threads_used == 1 ? thread_cpu_ms() - c0 : ms_since(t0));
  }
  return 2.0 * M * N * K * kCalls * threads_used / (best * 1e-3) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  std::string model = "a", backend_name = "fast", data_dir = "./data", json_out;
  int batch = 64, steps = 50, threads = 0, eval_batch = 1000;
  bool no_epoch = false;
  CLI::App app{
      "bench_cpu_epoch: time the CPU paths (SGEMM floor, step, phases, evaluation, epoch)"};
  app.add_option("--backend", backend_name, "fast (train_gpu --device cpu) or ref (cpu-ref)")
      ->check(CLI::IsMember({"fast", "ref"}))
      ->capture_default_str();
  app.add_option("--model", model, "a or b")->capture_default_str();
  app.add_option("--batch-size", batch, "Training batch size")->capture_default_str();
  app.add_option("--eval-batch", eval_batch, "Evaluation batch size")->capture_default_str();
  app.add_option("--steps", steps, "Timed steps (after 5 warm-up steps)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: all cores)");
  app.add_option("--data-dir", data_dir, "MNIST directory for the epoch")->capture_default_str();
  app.add_flag("--no-epoch", no_epoch, "Skip the full-epoch measurement");
  app.add_option("--json", json_out, "Also write the figures as JSON here");
  CLI11_PARSE(app, argc, argv);
  try {
    octa::init_logging(spdlog::level::warn);
    if (threads > 0) octa::set_cpu_threads(threads);
    const bool fast = backend_name == "fast";
    const octa::Arch arch = octa::parse_arch(model);
    const octa::ParamTable table = octa::ParamTable::for_arch(arch);
    const auto info = octa::cpu::blas_info();
    const int nthreads = octa::cpu_fast::thread_count();
    nlohmann::json j = {{"backend", backend_name},
                        {"model", octa::arch_name(arch)},
                        {"batch", batch},
                        {"threads", nthreads},
                        {"openblas_core", info.core}};
    const double rate1 = sgemm_rate(1), rate_all = sgemm_rate(nthreads);
    std::printf(
        "OpenBLAS core %s; %s backend, %d threads; model %s, batch %d\n"
        "SGEMM 64x196x288 (conv2 forward, one image), single-threaded BLAS: %.1f GFLOP/s on one "
        "thread (its CPU time), %.1f GFLOP/s on %d at once (wall time)\n",
        info.core.c_str(), backend_name.c_str(), nthreads, octa::arch_name(arch), batch, rate1,
        rate_all, nthreads);
    j["sgemm_gflops_1_thread"] = rate1;
    j["sgemm_gflops_all_threads"] = rate_all;

    // --- training steps through the backend, random data ---------------------------------------
    octa::BackendConfig bc;
    bc.arch = arch;
    bc.max_batch = std::max(batch, eval_batch);
    bc.train_batch = batch;
    auto backend = fast ? octa::make_fast_cpu_backend(bc) : octa::make_cpu_backend(bc);
    const auto n = static_cast<std::size_t>(batch);
    std::vector<float> x(n * 784), y(n);
    octa::PhiloxStream rng(1, 2);
    for (auto& v : x) v = 2.0f * rng.next_uniform01() - 1.0f;
    for (auto& v : y) v = rng.next_uniform01() < 0.1f ? 1.0f : 0.0f;
    std::vector<double> step_ms;
    CpuTimes c0{};
    Clock::time_point w0;
    for (int i = 0; i < steps + 5; ++i) {
      if (i == 5) {
        c0 = cpu_times();
        w0 = Clock::now();
      }
      const auto t0 = Clock::now();
      backend->train_step(x.data(), y.data(), batch, i);
      backend->take_loss_sum();
      if (i >= 5) step_ms.push_back(ms_since(t0));
    }
    const double wall = ms_since(w0) / 1e3;
    const CpuTimes c1 = cpu_times();
    const double user = c1.user - c0.user, sys = c1.sys - c0.sys;
    const double step = median(step_ms);
    double per_image_flops = 0;  // the convolutions and fc1 (A): all but a few kFLOP
    for (const auto& [name, f] : phase_flops(arch)) per_image_flops += f;
    std::printf(
        "train step (median of %d): %.2f ms = %.0f images/s, %.1f GFLOP/s (%.0f%% of the SGEMM "
        "rate on %d threads); spread %.2f..%.2f ms\n"
        "CPU time over the timed steps: user %.2f s, system %.3f s (%.1f%% system) in %.2f s "
        "wall\n",
        steps, step, 1000.0 * batch / step, per_image_flops * batch / (step * 1e-3) / 1e9,
        100.0 * per_image_flops * batch / (step * 1e-3) / 1e9 / rate_all, nthreads,
        *std::min_element(step_ms.begin(), step_ms.end()),
        *std::max_element(step_ms.begin(), step_ms.end()), user, sys,
        100.0 * sys / std::max(1e-9, user + sys), wall);
    j["step_ms_median"] = step;
    j["step_ms_min"] = *std::min_element(step_ms.begin(), step_ms.end());
    j["step_ms_max"] = *std::max_element(step_ms.begin(), step_ms.end());
    j["images_per_second"] = 1000.0 * batch / step;
    j["user_seconds"] = user;
    j["system_seconds"] = sys;

    // --- the fast model's phases ----------------------------------------------------------------
    if (fast) {
      octa::cpu_fast::FastModel net(table, batch);
      std::vector<float> state(table.num_total()), grads(table.num_trainable()), z(n), dz(n);
      octa::init_parameters(table, state.data(), 0);
      octa::cpu::set_blas_threads(1);
      for (int i = 0; i < steps + 5; ++i) {
        if (i == 5) net.set_timing(true);
        net.forward(state.data(), x.data(), batch, true, 0, static_cast<std::uint64_t>(i),
                    z.data());
        octa::cpu::bce_with_logits(dz.data(), z.data(), y.data(), batch, 1.0f);
        net.backward(state.data(), dz.data(), grads.data());
      }
      const auto flops = phase_flops(arch);
      // With one thread the main thread's CPU time is each phase's cost whatever else runs.
      const bool by_cpu = nthreads == 1;
      std::printf(
          "phases (mean of %d steps; wall ms, then the main thread's CPU ms; the rate from %s "
          "against %.1f GFLOP/s):\n",
          steps, by_cpu ? "CPU time" : "wall time", rate_all);
      nlohmann::json pj = nlohmann::json::array();
      for (const auto& p : net.phases()) {
        const double ms = p.ms / p.calls, cpu_ms = p.cpu_ms / p.calls;
        const auto f = flops.find(p.name);
        std::string rate;
        if (f != flops.end()) {
          const double g = f->second * batch / ((by_cpu ? cpu_ms : ms) * 1e-3) / 1e9;
          rate = fmt::format("{:7.1f} GFLOP/s ({:3.0f}%)", g, 100.0 * g / rate_all);
        }
        std::printf("  %-46s %7.3f ms %7.3f ms  %s\n", p.name.c_str(), ms, cpu_ms, rate.c_str());
        pj.push_back({{"phase", p.name}, {"ms", ms}, {"cpu_ms", cpu_ms}});
      }
      j["phases"] = pj;
    }

    // --- evaluation at eval_batch ---------------------------------------------------------------
    {
      const auto m = static_cast<std::size_t>(eval_batch);
      std::vector<float> xe(m * 784), ze(m);
      for (auto& v : xe) v = 2.0f * rng.next_uniform01() - 1.0f;
      std::vector<double> ms;
      CpuTimes e0{};
      for (int i = 0; i < 8; ++i) {
        if (i == 2) e0 = cpu_times();
        const auto t0 = Clock::now();
        backend->predict(xe.data(), eval_batch, ze.data());
        if (i >= 2) ms.push_back(ms_since(t0));
      }
      const CpuTimes e1 = cpu_times();
      j["eval_cpu_ms_mean"] =
          1e3 * ((e1.user - e0.user) + (e1.sys - e0.sys)) / static_cast<double>(ms.size());
      std::printf("evaluation, batch %d (median of %zu): %.2f ms = %.0f images/s\n", eval_batch,
                  ms.size(), median(ms), 1000.0 * eval_batch / median(ms));
      j["eval_batch"] = eval_batch;
      j["eval_ms_median"] = median(ms);
      j["eval_images_per_second"] = 1000.0 * eval_batch / median(ms);
    }

    // --- one epoch of the real data through the training loop ---------------------------------
    if (!no_epoch) {
      octa::data::FindOptions find;
      find.allow_download = false;
      const auto mnist = octa::data::load_mnist(data_dir, find);
      auto epoch_backend = fast ? octa::make_fast_cpu_backend(bc) : octa::make_cpu_backend(bc);
      octa::TrainOptions to;
      to.epochs = 1;
      to.batch_size = batch;
      const auto r = octa::train(*epoch_backend, mnist.train, mnist.test, to);
      std::printf(
          "epoch of %d images: %.2f s (%.0f images/s), mean loss %.4f; test accuracy %.4f\n",
          mnist.train.count, r.epochs[0].seconds, r.epochs[0].images_per_second,
          r.epochs[0].mean_loss, r.test.accuracy);
      j["epoch_seconds"] = r.epochs[0].seconds;
      j["epoch_images_per_second"] = r.epochs[0].images_per_second;
      j["test_accuracy"] = r.test.accuracy;
    }
    if (!json_out.empty()) octa::write_file_atomically(json_out, j.dump(2) + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_epoch: error: %s\n", e.what());
    return 1;
  }
}
