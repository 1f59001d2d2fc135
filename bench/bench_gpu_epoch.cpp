// bench/bench_gpu_epoch.cpp: the CUDA engine's speed on the real MNIST, end to end and by phase.
//
//   bench_gpu_epoch [--model a|b] [--batch-size 64] [--conv fused|fused-fp32|cudnn] [--epochs 3]
//                   [--timed-steps 200] [--profile-steps 0] [--no-graph] [--unfused-bn]
//                   [--json PATH]
//
// --conv as train_gpu's: fused (octa's kernels, conv2 on the tensor cores in 3xTF32), fused-fp32
// (octa's kernels, all on the CUDA cores) or cudnn. fused and fused-fp32 name their phases alike,
// so their tables line up row by row. --unfused-bn: model B's BatchNorm on its separate kernels
// instead of fused with the convolution, ReLU and pool (CudaBackendOptions::fuse_batchnorm), to
// time the two against each other.
//
// (a) Epochs: octa::train (the loop train_gpu runs: loader threads, pinned staging, graph-captured
//     step) over the 60,000 training images for --epochs epochs; the figure is the median epoch
//     time of the epochs after the first (the first pays for cuDNN/cuBLAS set-up and the capture).
// (b) Phases: a second backend with CudaBackendOptions::time_phases runs --timed-steps steps on
//     real batches, eagerly, with a CUDA event pair around every phase; the table gives each
//     phase's median device time. Event pairs and the lost overlap make their sum larger than the
//     graph step of (a), which is printed beside it.
// (c) --profile-steps K: only a profiling window for Nsight Compute / Nsight Systems
//     (scripts/profile/ncu.sh, nsys.sh): warm-up steps until the step is graph-captured, then
//     cudaProfilerStart, K steps inside the NVTX range "profiled_steps", cudaProfilerStop.
//
// Exit status: 0 done, 1 error (message on stderr), 2 no usable CUDA device.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "engine/data/mnist.hpp"
#include "engine/data/prefetcher.hpp"
#include "engine/gpu/cuda_backend.hpp"
#include "engine/model/param_table.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPhaseWarmup = 10;   // samples of each phase dropped before the median (b)
constexpr int kProfileWarmup = 8;  // steps before the profiling window (c): the engine runs 3
                                   // eager steps, then captures one graph per input slot (2)
constexpr int kTestBatch = 1000;   // as train_gpu

struct Args {
  std::string model = "a";
  int batch_size = 64;
  std::string conv = "fused";
  int epochs = 3;
  int timed_steps = 200;
  int profile_steps = 0;
  bool no_graph = false;
  bool unfused_bn = false;
  std::string data_dir = "./data";
  std::uint64_t seed = 0;
  std::string json;
};

const char* kExamples = R"(
Modes:
  default            (a) --epochs full epochs through octa::train (graph on unless --no-graph),
                     then (b) --timed-steps eager steps with per-phase CUDA-event timing.
                     --epochs 0 skips (a); --timed-steps 0 skips (b).
  --profile-steps K  only (c): 8 warm-up steps (graph-captured by the 5th), then
                     cudaProfilerStart, K steps in the NVTX range "profiled_steps",
                     cudaDeviceSynchronize, cudaProfilerStop. For ncu --profile-from-start off and
                     nsys --capture-range=cudaProfilerApi (scripts/profile/ncu.sh, nsys.sh).

Examples:
  bench_gpu_epoch                                  model A, fused convolutions, batch 64
  bench_gpu_epoch --conv fused-fp32                the same without tensor cores
  bench_gpu_epoch --model b --conv cudnn --batch-size 1024 --json runs/bench_b_cudnn_1024.json
  bench_gpu_epoch --epochs 0 --timed-steps 500     the phase table only
  bench_gpu_epoch --no-graph --timed-steps 0       eager epochs, to see what the graph saves
  ncu --profile-from-start off --nvtx --set full -o step bench_gpu_epoch --profile-steps 1

Exit status: 0 done; 1 error; 2 no usable CUDA device.
)";

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 == 1 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

octa::CudaBackendOptions cuda_options(const Args& a, bool time_phases) {
  octa::CudaBackendOptions o;
  o.conv = octa::parse_conv_path(a.conv);
  o.use_graph = !a.no_graph;
  o.fuse_batchnorm = !a.unfused_bn;
  o.time_phases = time_phases;
  return o;
}

octa::BackendConfig backend_config(const Args& a, int max_batch) {
  octa::BackendConfig bc;
  bc.arch = octa::parse_arch(a.model);
  bc.max_batch = max_batch;
  bc.seed = a.seed;
  return bc;  // Adam, lr 1e-3, pos_weight 1: train_gpu's defaults
}

// The loader threads over enough shuffled epochs of full batches for `steps` steps, feeding the
// backend's own (pinned) host batches, as octa::train does.
std::unique_ptr<octa::data::Prefetcher> make_batches(const octa::data::Split& split,
                                                     octa::TrainingBackend& backend, const Args& a,
                                                     int steps) {
  const int per_epoch = split.count / a.batch_size;
  OCTA_CHECK(per_epoch > 0, "--batch-size {}: larger than the {} training images", a.batch_size,
             split.count);
  octa::data::PrefetchOptions po;
  po.batch_size = a.batch_size;
  po.shuffle = true;
  po.drop_last = true;  // every step at the same batch size (one graph, comparable phases)
  po.seed = a.seed;
  po.last_epoch = static_cast<std::uint64_t>((steps + per_epoch - 1) / per_epoch);
  po.threads = octa::default_loader_threads(/*gpu=*/true);
  return std::make_unique<octa::data::Prefetcher>(
      split, po, octa::host_batch_ring(a.batch_size, split.count, po.threads, &backend));
}

void train_steps(octa::TrainingBackend& backend, octa::data::Prefetcher& batches, int count,
                 std::int64_t& step) {
  for (int i = 0; i < count; ++i, ++step) {
    const octa::data::Prefetcher::Item item = batches.next();
    backend.train_step_staged(*item.batch, item.n, step);
  }
}

// --- (a) epochs ---------------------------------------------------------------------------------
nlohmann::json run_epochs(const Args& a, const octa::data::Mnist& mnist, double& graph_step_us) {
  auto backend = octa::make_cuda_backend(backend_config(a, std::max(a.batch_size, kTestBatch)),
                                         cuda_options(a, /*time_phases=*/false));
  std::printf("(a) %d epoch(s) of %d images through octa::train, %s, graph %s\n", a.epochs,
              mnist.train.count, backend->description().c_str(), a.no_graph ? "off" : "on");
  octa::TrainOptions to;
  to.epochs = a.epochs;
  to.batch_size = a.batch_size;
  to.test_batch_size = kTestBatch;
  to.seed = a.seed;
  to.loss_sync_every = 100;  // as train_gpu on the GPU: a loss read waits for the device
  to.loader_threads = octa::default_loader_threads(/*gpu=*/true);
  const octa::TrainReport r = octa::train(*backend, mnist.train, mnist.test, to);

  const int steps_per_epoch = (mnist.train.count + a.batch_size - 1) / a.batch_size;
  std::vector<double> later;
  nlohmann::json epochs = nlohmann::json::array();
  std::printf("  %-6s %10s %12s %10s %10s\n", "epoch", "seconds", "images/s", "ms/step",
              "mean loss");
  for (const octa::EpochStats& e : r.epochs) {
    std::printf("  %-6d %10.4f %12.0f %10.4f %10.5f\n", e.epoch, e.seconds, e.images_per_second,
                1000.0 * e.seconds / steps_per_epoch, e.mean_loss);
    if (e.epoch > 1) later.push_back(e.seconds);
    epochs.push_back(octa::to_json(e));
  }
  const bool only_first = later.empty();
  const double sec = only_first ? r.epochs.front().seconds : median(later);
  graph_step_us = 1e6 * sec / steps_per_epoch;
  std::printf(
      "  median epoch%s: %.4f s = %.0f images/s = %.2f us/step (%d steps); test accuracy "
      "%.4f\n",
      only_first ? " (only epoch 1, which includes warm-up and capture)" : " (epochs 2..)", sec,
      mnist.train.count / sec, graph_step_us, steps_per_epoch, r.test.accuracy);
  return {{"device", backend->description()},
          {"steps_per_epoch", steps_per_epoch},
          {"epochs", epochs},
          {"median_epoch_seconds", sec},
          {"median_of", only_first ? "epoch 1 only" : "epochs after the first"},
          {"images_per_second", mnist.train.count / sec},
          {"us_per_step", graph_step_us},
          {"test", octa::to_json(r.test)}};
}

// --- (b) phases ---------------------------------------------------------------------------------
nlohmann::json run_phases(const Args& a, const octa::data::Mnist& mnist, double graph_step_us) {
  auto backend = octa::make_cuda_backend(backend_config(a, a.batch_size),
                                         cuda_options(a, /*time_phases=*/true));
  std::printf("\n(b) %d eager steps with per-phase CUDA events (median after %d warm-up), %s\n",
              a.timed_steps, kPhaseWarmup, backend->description().c_str());
  auto batches = make_batches(mnist.train, *backend, a, a.timed_steps);
  std::vector<double> wall_us;
  std::int64_t step = 0;
  for (int i = 0; i < a.timed_steps; ++i, ++step) {
    const octa::data::Prefetcher::Item item = batches->next();
    const auto t0 = Clock::now();
    backend->train_step_staged(*item.batch, item.n, step);  // waits for the step's events
    if (i >= kPhaseWarmup) {
      wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  (void)backend->take_loss_sum();

  struct Row {
    std::string name;
    double us;
    std::size_t samples;
  };
  std::vector<Row> rows;
  double sum = 0.0;
  for (const octa::TrainingBackend::PhaseTimes& p : backend->phase_times()) {
    std::vector<double> us;
    for (std::size_t i = kPhaseWarmup; i < p.ms.size(); ++i) us.push_back(1000.0 * p.ms[i]);
    if (us.empty()) continue;
    rows.push_back({p.name, median(us), us.size()});
    sum += rows.back().us;
  }
  OCTA_CHECK(!rows.empty(), "time_phases: the backend recorded no phase times");

  nlohmann::json phases = nlohmann::json::array();
  std::printf("  %-24s %12s %8s\n", "phase", "median us", "share");
  for (const Row& r : rows) {
    std::printf("  %-24s %12.2f %7.1f%%\n", r.name.c_str(), r.us, 100.0 * r.us / sum);
    phases.push_back(
        {{"name", r.name}, {"median_us", r.us}, {"share", r.us / sum}, {"samples", r.samples}});
  }
  const double wall = median(wall_us);
  std::printf("  %-24s %12.2f\n", "sum of medians", sum);
  std::printf("  %-24s %12.2f  (host wall clock per eager step, events and sync included)\n",
              "eager step (host)", wall);
  nlohmann::json j = {{"device", backend->description()},
                      {"steps", a.timed_steps},
                      {"warmup_samples_dropped", kPhaseWarmup},
                      {"phases", phases},
                      {"sum_of_medians_us", sum},
                      {"eager_step_host_median_us", wall}};
  if (graph_step_us > 0.0) {
    std::printf("  %-24s %12.2f  (median epoch / steps per epoch; sum of medians is %.2fx)\n",
                a.no_graph ? "eager step (from (a))" : "graph step (from (a))", graph_step_us,
                sum / graph_step_us);
    j["step_from_epochs_us"] = graph_step_us;
  }
  return j;
}

// --- (c) a profiling window ---------------------------------------------------------------------
nlohmann::json run_profile(const Args& a, const octa::data::Mnist& mnist) {
  auto backend = octa::make_cuda_backend(backend_config(a, a.batch_size),
                                         cuda_options(a, /*time_phases=*/false));
  std::printf("(c) %d warm-up steps, then %d profiled step(s), %s, graph %s\n", kProfileWarmup,
              a.profile_steps, backend->description().c_str(), a.no_graph ? "off" : "on");
  auto batches = make_batches(mnist.train, *backend, a, kProfileWarmup + a.profile_steps);
  std::int64_t step = 0;
  train_steps(*backend, *batches, kProfileWarmup, step);
  OCTA_CUDA_CHECK(cudaDeviceSynchronize());
  const auto t0 = Clock::now();
  OCTA_CUDA_CHECK(cudaProfilerStart());
  {
    // Inside the capture window, so that nsys --capture-range=cudaProfilerApi records the push.
    octa::cuda::NvtxRange range("profiled_steps");
    train_steps(*backend, *batches, a.profile_steps, step);
    OCTA_CUDA_CHECK(cudaDeviceSynchronize());
  }
  OCTA_CUDA_CHECK(cudaProfilerStop());
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  (void)backend->take_loss_sum();
  std::printf("  profiled window: %.3f ms wall clock (under a profiler: not a speed figure)\n", ms);
  return {{"device", backend->description()},
          {"warmup_steps", kProfileWarmup},
          {"profiled_steps", a.profile_steps},
          {"window_ms", ms}};
}

int run(const Args& a) {
  OCTA_CHECK(a.batch_size > 0, "--batch-size: must be positive, got {}", a.batch_size);
  OCTA_CHECK(a.epochs >= 0, "--epochs: must be 0 or more, got {}", a.epochs);
  OCTA_CHECK(a.timed_steps == 0 || a.timed_steps > kPhaseWarmup,
             "--timed-steps: must be more than {} (the first {} are warm-up), or 0 to skip; got {}",
             kPhaseWarmup, kPhaseWarmup, a.timed_steps);
  OCTA_CHECK(a.profile_steps >= 0, "--profile-steps: must be 0 or more, got {}", a.profile_steps);
  const octa::Arch arch = octa::parse_arch(a.model);
  (void)octa::parse_conv_path(a.conv);

  const octa::DeviceProbe probe = octa::probe_cuda_device();
  if (!probe.available) {
    std::fprintf(stderr, "bench_gpu_epoch: no GPU to benchmark: %s\n", probe.reason.c_str());
    return 2;
  }
  cudaDeviceProp prop{};
  OCTA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));

  octa::data::FindOptions find;
  find.allow_download = false;
  const octa::data::Mnist mnist = octa::data::load_mnist(a.data_dir, find);
  std::printf("%s (sm_%d%d); model %s, batch %d, --conv %s\n", prop.name, prop.major, prop.minor,
              octa::arch_name(arch), a.batch_size, a.conv.c_str());

  nlohmann::json j;
  j["tool"] = "bench_gpu_epoch";
  j["date"] = utc_now();
  j["device"] = {{"name", prop.name},
                 {"compute_capability", fmt::format("{}.{}", prop.major, prop.minor)},
                 {"sm_count", prop.multiProcessorCount},
                 {"global_memory_bytes", prop.totalGlobalMem}};
  j["options"] = {{"model", octa::arch_name(arch)},
                  {"batch_size", a.batch_size},
                  {"conv", a.conv},
                  {"epochs", a.epochs},
                  {"timed_steps", a.timed_steps},
                  {"profile_steps", a.profile_steps},
                  {"graph", !a.no_graph},
                  {"fuse_batchnorm", !a.unfused_bn},
                  {"seed", a.seed},
                  {"train_images", mnist.train.count},
                  {"test_images", mnist.test.count}};

  if (a.profile_steps > 0) {
    j["profile"] = run_profile(a, mnist);
  } else {
    double graph_step_us = 0.0;
    if (a.epochs > 0) j["epochs"] = run_epochs(a, mnist, graph_step_us);
    if (a.timed_steps > 0) j["phases"] = run_phases(a, mnist, graph_step_us);
  }
  if (!a.json.empty()) {
    octa::write_file_atomically(a.json, j.dump(2) + "\n");
    std::printf("json: %s\n", a.json.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "bench_gpu_epoch: time octa's CUDA engine on the real MNIST: (a) full epochs through the "
      "training loop, (b) a per-phase table of one step, or (c) a profiling window for "
      "ncu/nsys."};
  app.footer(kExamples);
  app.get_formatter()->column_width(30);
  app.add_option("--model", a.model, "a: the tutorial's CNN; b: BatchNorm + GAP + dropout")
      ->check(CLI::IsMember({"a", "b", "A", "B"}))
      ->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "Training batch size")->capture_default_str();
  app.add_option("--conv", a.conv,
                 "Convolutions: fused (octa's kernels, conv2 on the tensor cores), fused-fp32 "
                 "(octa's kernels on the CUDA cores only) or cudnn")
      ->check(CLI::IsMember({"fused", "fused-fp32", "cudnn"}))
      ->capture_default_str();
  app.add_option("--epochs", a.epochs,
                 "(a) epochs to run; the figure is the median of those after the first "
                 "(0: skip (a))")
      ->capture_default_str();
  app.add_option("--timed-steps", a.timed_steps,
                 "(b) eager steps with per-phase timing; the first 10 are warm-up (0: skip (b))")
      ->capture_default_str();
  app.add_option("--profile-steps", a.profile_steps,
                 "(c) K > 0: only a profiling window of K steps after warm-up (no (a), (b))")
      ->capture_default_str();
  app.add_flag("--no-graph", a.no_graph,
               "Run (a) and (c) eagerly instead of replaying the captured CUDA graph");
  app.add_flag("--unfused-bn", a.unfused_bn,
               "Model B on octa's kernels: BatchNorm on its separate kernels, not fused with the "
               "convolution, ReLU and pool (for comparison)");
  app.add_option("--data-dir", a.data_dir,
                 "MNIST directory: the four IDX files (.gz or not), or torchvision's MNIST/raw "
                 "below it (never downloads)")
      ->capture_default_str();
  app.add_option("--seed", a.seed, "Seed for weights, shuffling and dropout")
      ->capture_default_str();
  app.add_option("--json", a.json, "Also write everything as JSON here (atomically)");
  CLI11_PARSE(app, argc, argv);

  try {
    octa::init_logging(spdlog::level::warn);
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_epoch: error: %s\n", e.what());
    return 1;
  }
}
