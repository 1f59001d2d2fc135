// apps/train_gpu.cpp: train the tutorial's "is it an 8?" CNN on MNIST (or any class against the
// rest, or every class at once, of MNIST, Fashion-MNIST, KMNIST or any IDX dataset), evaluate it,
// save it.
// The GPU is the point; without one (no driver, no device, or a CPU-only build) `--device auto`
// says so plainly and trains on the fast CPU backend (--device cpu-ref: the plain CPU reference).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/core/gpu_module.hpp"
#include "engine/core/log.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/data/datasets.hpp"
#include "engine/data/holdout.hpp"
#include "engine/data/mnist.hpp"
#include "engine/data/transform.hpp"
#include "engine/dist/communicator.hpp"
#include "engine/dist/data_parallel.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/report/class_report.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/run_report.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/exports.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/interrupt.hpp"
#include "engine/train/memory_check.hpp"
#include "engine/train/progress.hpp"
#include "engine/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;

struct Args {
  std::string data_dir = "./data";
  std::string dataset = "mnist";
  std::string task = "binary";
  std::string target_class;  // --target-class: an index or a class name
  float label_smoothing = 0.0f;
  std::vector<float> class_weights;
  bool no_download = false;
  std::string model = "a";
  int epochs = 5;
  double lr = 1e-3;
  std::string lr_schedule = "constant";  // --lr-schedule; --lr-step-size, --lr-gamma, --lr-min
  int lr_step_size = 0;
  double lr_gamma = 0.1, lr_min = 0.0;
  bool lr_schedule_given = false;  // any of those four on the command line
  int batch_size = 64;
  int test_batch_size = 1000;
  std::uint64_t seed = 0;
  int target_digit = 8;
  std::string optimizer = "adam";
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8, weight_decay = 0.0;
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  float pos_weight = 1.0f;
  std::size_t max_train = 0, max_test = 0;
  bool drop_last = false;
  std::string device = "auto";
  std::string conv = "auto";
  bool no_check = false;
  int threads = 0;
  int loader_threads = 0;
  std::string checkpoint;  // default: runs/model_<a|b>.safetensors
  bool no_checkpoint = false;
  std::string resume;
  std::string init_from;
  std::string metrics_out;
  std::string export_init, export_order, export_losses;
  bool eval_every_epoch = false;
  bool overwrite = false;
  std::string log_level = "info";
  int val_size = 0;
  std::string report;  // default: beside the checkpoint
  bool no_report = false;
  bool sync_bn = false;                                     // --sync-bn: SyncBatchNorm under mpirun
  bool target_digit_given = false, val_size_given = false;  // on the command line
  bool pos_weight_given = false;
  std::set<std::string> optimizer_flags_given;  // --optimizer, --lr, --beta1, ... on the line
};

const char* kExamples = R"(
Examples:
  train_gpu                                    model A, 5 epochs, MNIST from ./data (or ./data/MNIST/raw)
  train_gpu --model b --epochs 10              the tutorial's final model and schedule
  train_gpu --device cpu --max-train 10000 --epochs 1
                                               a quick run on the CPU
  train_gpu --task multiclass                  which digit is it? (ten classes, softmax
                                               cross-entropy, fc2 with ten outputs)
  train_gpu --dataset fashion-mnist --task multiclass --label-smoothing 0.1
                                               Fashion-MNIST's ten kinds of clothing
  train_gpu --dataset fashion-mnist --target-class Bag
                                               "is it a bag?" (a class by name or index)
  train_gpu --dataset idx --data-dir my_idx --task multiclass
                                               any four IDX files of 28x28 images in my_idx
                                               (*train-images-idx3-ubyte, ...; K from the labels)
  train_gpu --task multiclass --lr-schedule cosine
                                               the lr annealed to 0 over the run's epochs
                                               (PyTorch's CosineAnnealingLR, stepped per epoch);
                                               --lr-schedule step --lr-step-size 2: StepLR
  train_gpu --metrics-out runs/metrics.json    metrics as JSON as well
  train_gpu --conv fused-fp32                  octa's convolutions on the CUDA cores only (no
                                               tensor cores); --conv cudnn: cuDNN's
  train_gpu --conv fused --no-check            that path without the start-up kernel check
                                               (benchmarking; the default, --conv auto, checks
                                               every path and takes the fastest that passes)
  train_gpu --resume runs/model_a.safetensors --epochs 8
                                               continue a run from its last checkpoint
  train_gpu --val-size 5000                    hold out 5,000 training images to choose the
                                               threshold on (never the test split)
  train_gpu --report runs/report.html          the HTML report (by default it goes beside the
                                               checkpoint: runs/model_a.report.html)
  octa_report runs/metrics.json                the report again later, without retraining
Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint there (mid-epoch) and
prints the command that resumes it, exiting with 130 or 143; a second signal stops at once.
Load the weights in PyTorch:
  model.load_state_dict(safetensors.torch.load_file("runs/model_a.safetensors"))
)";

// --help's word on data-parallel training: whether this build can.
std::string data_parallel_help() {
  return octa::dist::mpi_built_in()
             ? "Data-parallel on N processes (MPI built in): each rank trains its share of "
               "every batch,\ngradients summed in rank order; rank 0 writes the files:\n"
               "  mpirun -np 4 train_gpu --device cpu\n"
               "  mpirun -np 4 train_gpu --device cpu --model b --sync-bn   BatchNorm over the "
               "global batch\n"
               "  mpirun -np 2 train_gpu --device cuda --model b --sync-bn  the same on 2 GPUs "
               "(NCCL)\n"
             : "Data-parallel training (mpirun -np N train_gpu): MPI is not built in (CMake found "
               "no MPI, or\n-DOCTA_ENABLE_MPI=OFF; install libopenmpi-dev, as scripts/setup.sh "
               "does, and rebuild).\n";
}

// config.lr_schedule of the metrics JSON (bench/pytorch/reference.py writes the same).
nlohmann::json lr_schedule_json(const octa::LrSchedule& s) {
  nlohmann::json j = {{"kind", octa::lr_schedule_name(s.kind)}};
  if (s.kind == octa::LrScheduleKind::kStep) {
    j["step_size"] = s.step_size;
    j["gamma"] = s.gamma;
  } else if (s.kind == octa::LrScheduleKind::kCosine) {
    j["t_max"] = s.t_max;
    j["eta_min"] = s.eta_min;
  }
  return j;
}

std::string make_run_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

int run(Args a, octa::dist::Communicator& comm) {
  const auto started = std::chrono::steady_clock::now();
  // --- configuration, validated before any work -------------------------------------------------
  const octa::Arch arch = octa::parse_arch(a.model);
  octa::OptimizerConfig opt;
  opt.kind = octa::parse_optimizer(a.optimizer);
  opt.lr = a.lr;
  opt.beta1 = a.beta1;
  opt.beta2 = a.beta2;
  opt.eps = a.adam_eps;
  opt.weight_decay = a.weight_decay;
  opt.momentum = a.momentum;
  opt.dampening = a.dampening;
  opt.nesterov = a.nesterov;
  opt.validate();
  const octa::LrScheduleKind schedule_kind = octa::parse_lr_schedule(a.lr_schedule);
  const octa::LrSchedule schedule = schedule_kind == octa::LrScheduleKind::kStep
                                        ? octa::LrSchedule::step_lr(a.lr_step_size, a.lr_gamma)
                                    : schedule_kind == octa::LrScheduleKind::kCosine
                                        ? octa::LrSchedule::cosine(a.epochs, a.lr_min)
                                        : octa::LrSchedule{};
  OCTA_CHECK(
      schedule.kind == octa::LrScheduleKind::kStep || (a.lr_step_size == 0 && a.lr_gamma == 0.1),
      "--lr-step-size and --lr-gamma belong to --lr-schedule step");
  OCTA_CHECK(schedule.kind == octa::LrScheduleKind::kCosine || a.lr_min == 0.0,
             "--lr-min belongs to --lr-schedule cosine");
  schedule.validate(opt.lr);
  OCTA_CHECK(a.pos_weight > 0.0f, "--pos-weight: must be positive, got {}", a.pos_weight);
  OCTA_CHECK(a.resume.empty() || a.init_from.empty(),
             "--resume and --init-from exclude each other");
  OCTA_CHECK(a.batch_size > 0, "--batch-size: must be positive, got {}", a.batch_size);
  OCTA_CHECK(a.test_batch_size > 0, "--test-batch-size: must be positive, got {}",
             a.test_batch_size);
  OCTA_CHECK(a.target_digit >= 0 && a.target_digit <= 9, "--target-digit: must be 0..9, got {}",
             a.target_digit);
  const octa::data::DatasetSpec& dataset_spec = octa::data::dataset_by_id(a.dataset);
  OCTA_CHECK(a.task == "binary" || a.task == "multiclass",
             "--task: '{}' is not a task (binary: one class against the rest; multiclass: every "
             "class)",
             a.task);
  const bool multiclass = a.task == "multiclass";
  OCTA_CHECK(!a.target_digit_given || a.target_class.empty(),
             "--target-digit and --target-class name the same thing; give one");
  OCTA_CHECK(!multiclass || (!a.target_digit_given && a.target_class.empty()),
             "--task multiclass learns every class: --target-digit and --target-class belong to "
             "--task binary");
  OCTA_CHECK(!multiclass || !a.pos_weight_given,
             "--pos-weight belongs to --task binary (the multi-class loss has --class-weights)");
  OCTA_CHECK(multiclass || (a.class_weights.empty() && a.label_smoothing == 0.0f),
             "--class-weights and --label-smoothing belong to --task multiclass (the binary task "
             "has --pos-weight)");
  OCTA_CHECK(
      std::isfinite(a.label_smoothing) && a.label_smoothing >= 0.0f && a.label_smoothing <= 1.0f,
      "--label-smoothing: must be in [0, 1], got {}", a.label_smoothing);

  // --- device ---------------------------------------------------------------------------------
  bool use_gpu = false;
  int gpu_device = 0;
  const bool cpu_ref = a.device == "cpu-ref";  // the reference path, for comparisons
  if (a.device != "cpu" && !cpu_ref) {
    // Only here is the GPU module loaded (engine/core/gpu_module.hpp): a CPU run never maps
    // cuBLAS and cuDNN.
    const octa::DeviceProbe probe = octa::probe_cuda_device();
    if (probe.available) {
      use_gpu = true;
      // Data-parallel ranks on one machine take one GPU each.
      const char* local_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
      if (local_rank != nullptr && probe.device_count > 0) {
        gpu_device = std::max(0, std::atoi(local_rank)) % probe.device_count;
      }
    } else {
      OCTA_CHECK(a.device != "cuda", "--device cuda: {}", probe.reason);
      spdlog::warn("No GPU: {}. Training on the CPU instead (slower; see --device).", probe.reason);
    }
  }
  if (a.threads > 0) octa::set_cpu_threads(a.threads);
  const bool data_parallel = octa::dist::launched_by_mpi();  // mpirun: even with one rank
  OCTA_CHECK(!a.sync_bn || arch == octa::Arch::kB,
             "--sync-bn: model A has no BatchNorm layers to synchronise (model B has: --model b)");
  if (a.sync_bn && !data_parallel) {
    // As PyTorch's SyncBatchNorm without a process group: plain BatchNorm.
    spdlog::info(
        "--sync-bn: one process (not under mpirun), so BatchNorm's batch is already the "
        "whole batch: nothing to synchronise");
  }
  const bool writer = comm.rank() == 0;  // the one rank that writes files and shows progress
  if (data_parallel && a.threads == 0 && !use_gpu) {
    // The ranks on this machine share its cores.
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks_here = local != nullptr ? std::max(1, std::atoi(local)) : 1;
    octa::set_cpu_threads(
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here));
  }

  // --- model, optimiser, optional resume --------------------------------------------------------
  octa::BackendConfig bc;
  bc.arch = arch;
  bc.optimizer = opt;
  bc.max_batch = std::max(a.batch_size, a.test_batch_size);
  bc.train_batch = a.batch_size;
  bc.seed = a.seed;
  bc.pos_weight = a.pos_weight;
  bc.class_weights = a.class_weights;
  bc.label_smoothing = a.label_smoothing;
  octa::TrainOptions to;
  to.epochs = a.epochs;
  to.batch_size = a.batch_size;
  to.test_batch_size = a.test_batch_size;
  to.drop_last = a.drop_last;
  to.seed = a.seed;
  to.optimizer = opt;
  to.lr_schedule = schedule;
  to.run_id = make_run_id();
  to.interactive = writer && octa::stderr_is_terminal();
  if (!a.no_checkpoint) {
    to.checkpoint = a.checkpoint.empty()
                        ? fs::path("runs") / fmt::format("model_{}.safetensors", a.model)
                        : fs::path(a.checkpoint);
  }

  // The GPU reads the loss every 100 steps (a read waits for the device); the CPU every step.
  to.loss_sync_every = use_gpu ? 100 : 1;
  to.loader_threads =
      a.loader_threads > 0 ? a.loader_threads : octa::default_loader_threads(use_gpu);

  // --- limits and outputs, checked before anything is allocated ----------------------------------
  // (With the binary model's one output: K classes add K floats per image, a rounding error
  // beside the activations, and K is known only once the labels are read.)
  const octa::ParamTable binary_table = octa::ParamTable::for_arch(arch);
  const int ring_slots = std::max(4, 2 * to.loader_threads);  // host_batch_ring's slots
  const octa::HostModel host_model = use_gpu   ? octa::HostModel::kNone
                                     : cpu_ref ? octa::HostModel::kReference
                                               : octa::HostModel::kFast;
  octa::check_batch_memory("--batch-size", a.batch_size, binary_table, host_model, ring_slots);
  // The GPU stages and allocates for the larger batch; the CPU backends evaluate in pieces of the
  // training batch, and their evaluation ring holds at most the test split.
  if (use_gpu) {
    octa::check_batch_memory("--test-batch-size", a.test_batch_size, binary_table, host_model, 4);
  }
  if (!to.checkpoint.empty()) {
    octa::check_output_path(to.checkpoint, octa::OutputKind::kSafetensors, "--checkpoint",
                            a.overwrite);
    octa::check_output_path(octa::optimizer_state_path(to.checkpoint),
                            octa::OutputKind::kSafetensors, "--checkpoint", a.overwrite);
  }
  using octa::OutputKind;
  for (const auto& [flag, file, kind] :
       {std::tuple{"--metrics-out", a.metrics_out, OutputKind::kJson},
        std::tuple{"--export-init", a.export_init, OutputKind::kSafetensors},
        std::tuple{"--export-order", a.export_order, OutputKind::kSafetensors},
        std::tuple{"--export-losses", a.export_losses, OutputKind::kJson}}) {
    if (!file.empty()) octa::check_output_path(file, kind, flag, a.overwrite);
  }
  // --conv: on the GPU, the kernel self-check of the model's shapes picks (auto) or vets the path
  // (engine/gpu/conv_select.hpp); on the CPU path there is nothing to choose.
  nlohmann::json conv_choice = {
      {"requested", a.conv}, {"chosen", nullptr}, {"why", "the CPU path is in use"}};
  if (!use_gpu) {
    spdlog::info(
        "--conv {}: the CPU path is in use, so there is no GPU convolution path "
        "to choose or check",
        a.conv);
  }
  // --- data (before the model: the number of classes and their names come from it) -------------
  // (A checkpoint that is not there is said before the data is looked for.)
  for (const auto& [flag, file] : {std::pair{"--resume", a.resume}, {"--init-from", a.init_from}}) {
    OCTA_CHECK(file.empty() || fs::exists(file), "{} {}: no such file", flag, file);
  }
  octa::data::FindOptions find;
  find.allow_download = !a.no_download;
  octa::data::Dataset dataset = octa::data::load_dataset(dataset_spec, a.data_dir, find);
  if (multiclass) {
    bc.num_classes = dataset.num_classes;
    to.target_digit = octa::data::kClassIndexTarget;
  } else {
    const bool by_class = !a.target_class.empty();
    try {
      a.target_digit = to.target_digit = octa::data::resolve_class(
          dataset, by_class ? a.target_class : std::to_string(a.target_digit));
    } catch (const octa::Error& e) {
      throw octa::Error(
          fmt::format("{}: {}", by_class ? "--target-class" : "--target-digit", e.what()));
    }
  }
  const std::vector<std::string> class_names = dataset.class_names;
  to.class_names = class_names;  // the metrics' (K classes) and the checkpoint's record
  bc.validate_loss();
  const octa::ParamTable table = octa::ParamTable::for_arch(arch, bc.num_classes);
  const auto make_backend = [&](const octa::BackendConfig& config) {
    if (use_gpu) {
      octa::GpuBackendRequest gpu;
      gpu.conv = a.conv;
      gpu.check = !a.no_check;
      gpu.batch_size = a.batch_size;
      gpu.device = gpu_device;
      return octa::make_gpu_backend(config, gpu, &conv_choice);
    }
    return cpu_ref ? octa::make_cpu_backend(config) : octa::make_fast_cpu_backend(config);
  };

  int epochs_done = 0;
  std::unique_ptr<octa::TrainingBackend> backend;
  if (!a.resume.empty()) {
    const octa::Checkpoint ck = octa::load_checkpoint(a.resume, table);
    if (ck.training.seed != a.seed) {
      spdlog::info("--resume: continuing with the checkpoint's seed {}", ck.training.seed);
    }
    bc.seed = to.seed = ck.training.seed;
    // The digit and the held-out images are part of the run: a resumed run keeps them.
    if (ck.training.target_digit && *ck.training.target_digit != a.target_digit) {
      OCTA_CHECK(!a.target_digit_given && a.target_class.empty(),
                 "--target-digit {}: {} was trained to recognise the digit {}; a resumed run "
                 "keeps it",
                 a.target_digit, a.resume, *ck.training.target_digit);
      a.target_digit = to.target_digit = *ck.training.target_digit;
    }
    if (ck.training.val_size != a.val_size) {
      OCTA_CHECK(!a.val_size_given,
                 "--val-size {}: {} held out {} validation images; a resumed run must hold out "
                 "the same ones (leave --val-size out)",
                 a.val_size, a.resume, ck.training.val_size);
      spdlog::info("--resume: holding out the checkpoint's {} validation images",
                   ck.training.val_size);
      a.val_size = ck.training.val_size;
    }
    // The optimiser too, as PyTorch's optimizer.load_state_dict restores its param_groups: the
    // checkpoint's hyperparameters, each unless its flag gives another value (said in the log);
    // another optimiser cannot continue this one's state.
    const octa::OptimizerConfig& saved = ck.training.optimizer;
    const auto given = [&](const char* flag) { return a.optimizer_flags_given.contains(flag); };
    OCTA_CHECK(!given("--optimizer") || opt.kind == saved.kind,
               "--optimizer {}: {} was trained with {}, whose state cannot continue as another "
               "optimiser's (leave --optimizer out)",
               a.optimizer, a.resume, octa::optimizer_name(saved.kind));
    opt.kind = saved.kind;
    for (const auto& [flag, value, recorded] :
         {std::tuple{"--lr", &opt.lr, saved.lr},
          {"--beta1", &opt.beta1, saved.beta1},
          {"--beta2", &opt.beta2, saved.beta2},
          {"--adam-eps", &opt.eps, saved.eps},
          {"--weight-decay", &opt.weight_decay, saved.weight_decay},
          {"--momentum", &opt.momentum, saved.momentum},
          {"--dampening", &opt.dampening, saved.dampening}}) {
      if (!given(flag)) {
        *value = recorded;
      } else if (*value != recorded) {
        spdlog::info("--resume: {} {} replaces the checkpoint's {}", flag, *value, recorded);
      }
    }
    if (!given("--nesterov")) opt.nesterov = saved.nesterov;
    opt.validate();
    bc.optimizer = to.optimizer = opt;
    // The schedule is part of the run too: flags that name another one are an error, none keeps
    // the checkpoint's (T_max included: cosine's is the epochs the run was started with).
    if (ck.training.lr_schedule != to.lr_schedule) {
      OCTA_CHECK(!a.lr_schedule_given,
                 "--lr-schedule: {} was trained with the lr schedule {}; this command gives {} "
                 "(leave the --lr-schedule flags out to continue the checkpoint's)",
                 a.resume, octa::describe(ck.training.lr_schedule), octa::describe(to.lr_schedule));
      to.lr_schedule = ck.training.lr_schedule;
      to.lr_schedule.validate(opt.lr);
      if (to.lr_schedule.kind != octa::LrScheduleKind::kConstant) {
        spdlog::info("--resume: continuing the checkpoint's lr schedule {}",
                     octa::describe(to.lr_schedule));
      }
    }
    to.run_id = ck.training.run_id;
    epochs_done = ck.training.epochs_done;
    to.resume_within_epoch = ck.training.within_epoch;
    backend = make_backend(bc);
    backend->load(ck.model, &ck.training.optimizer_state);
    spdlog::info("resumed {} at epoch {} of {}{}", a.resume, epochs_done, a.epochs,
                 to.resume_within_epoch.batches_done > 0
                     ? fmt::format(", batch {}", to.resume_within_epoch.batches_done)
                     : std::string());
  } else {
    backend = make_backend(bc);
    if (!a.init_from.empty()) {
      backend->load(octa::load_weights(a.init_from, table), nullptr);
      spdlog::info("initial weights from {}", a.init_from);
    }
  }

  // Under mpirun every rank trains its share of each batch (engine/dist/data_parallel.hpp), from
  // the same initial state (checked), and rank 0 alone writes the checkpoints.
  octa::dist::DataParallelBackend* ranks = nullptr;
  if (data_parallel) {
    auto dp =
        std::make_unique<octa::dist::DataParallelBackend>(std::move(backend), comm, a.sync_bn);
    ranks = dp.get();
    backend = std::move(dp);
    ranks->check_replicas("at the start");
    to.agree_on_signal = [ranks](int sig) { return ranks->agree_on_signal(sig); };
    to.after_epoch = [ranks](int epochs) {
      ranks->check_replicas(fmt::format("after epoch {}", epochs));
    };
    if (!writer) to.checkpoint.clear();
  }

  // --val-size images held out of the whole training split (seeded), then --max-train and
  // --max-test (0 mean "all"). Moved in: a copy of the splits would be another 55 MB.
  const octa::data::RunSplits splits =
      octa::data::run_splits(std::move(dataset), a.val_size, to.seed, a.max_train, a.max_test);
  const octa::data::Split& train_split = splits.train;
  const octa::data::Split& test_split = splits.test;
  spdlog::info("{}: {} training, {} validation and {} test images ({})", dataset_spec.title,
               train_split.count, splits.validation.count, test_split.count,
               multiclass ? fmt::format("{} classes", bc.num_classes)
                          : fmt::format("class {} ({}) vs rest", a.target_digit,
                                        class_names.at(static_cast<std::size_t>(a.target_digit))));

  // From here on SIGINT/SIGTERM stop the run cleanly (engine/train/interrupt.hpp).
  const octa::InterruptHandler interrupt_handler;
  spdlog::info("model {}: {} trainable parameters; {} on {}; batch {}, {} epochs", a.model,
               table.num_trainable(), octa::optimizer_name(opt.kind), backend->description(),
               a.batch_size, a.epochs);

  // --- exports for replaying the run elsewhere (bench/pytorch/parity.py)
  // --------------------------
  if (writer && !a.export_init.empty()) {
    octa::save_weights(a.export_init, table, backend->model_state());
  }
  if (writer && !a.export_order.empty()) {
    octa::export_batch_order(a.export_order, train_split, to.seed, epochs_done, a.epochs);
  }
  to.record_step_losses = !a.export_losses.empty();
  to.val_size = a.val_size;
  // The report draws test accuracy per epoch: the binary task's page (thresholds, ROC) or the K
  // classes' (per class, the KxK confusion matrix).
  const std::filesystem::path report_path = !a.report.empty() ? fs::path(a.report)
                                            : a.no_report || to.checkpoint.empty()
                                                ? fs::path()
                                                : octa::report::default_report_path(to.checkpoint);
  to.eval_every_epoch = a.eval_every_epoch || !report_path.empty();
  if (!report_path.empty()) {
    octa::check_output_path(report_path, octa::OutputKind::kHtml, "--report", a.overwrite);
  }

  // --- train, evaluate, report ------------------------------------------------------------------
  const octa::TrainReport report = octa::train(*backend, train_split, test_split, to, epochs_done);
  if (writer) {
    const std::string summary =
        multiclass ? octa::format_report(report.test_classes)
                   : octa::format_report(report.test,
                                         class_names.at(static_cast<std::size_t>(a.target_digit)));
    std::printf("%s\n", summary.c_str());
  }
  if (writer && !a.export_losses.empty()) {
    octa::export_step_losses(a.export_losses, report.step_losses);
  }
  if (!to.checkpoint.empty()) {
    spdlog::info("weights: {} (optimiser state: {})", to.checkpoint.string(),
                 octa::optimizer_state_path(to.checkpoint).string());
  }
  const auto evaluated = std::chrono::steady_clock::now();
  // The binary task's threshold analysis (engine/report/evaluation.hpp); K classes: the
  // validation split's metrics.
  std::optional<octa::report::SplitEvaluation> test_eval, val_eval;
  std::optional<octa::MulticlassMetrics> val_classes;
  if (multiclass && splits.validation.count > 0) {
    val_classes =
        octa::evaluate_classes(*backend, splits.validation, a.test_batch_size, class_names);
  }
  if (!multiclass) {
    test_eval = octa::report::evaluate_split(octa::report::kTestSplit, report.test_logits,
                                             test_split, a.target_digit);
  }
  if (!multiclass && splits.validation.count > 0) {
    std::vector<float> logits;
    octa::evaluate(*backend, splits.validation, a.test_batch_size, a.target_digit, &logits);
    val_eval = octa::report::evaluate_split(octa::report::kValidationSplit, std::move(logits),
                                            splits.validation, a.target_digit);
  }
  {  // The metrics JSON; the report's figures are read from it.
    nlohmann::json j;
    j["device"] = backend->description();
    j["model"] = octa::arch_name(arch);
    j["trainable_parameters"] = table.num_trainable();
    j["ranks"] = comm.size();
    j["config"] = {{"epochs", a.epochs},
                   {"batch_size", a.batch_size},
                   {"test_batch_size", a.test_batch_size},
                   {"lr", opt.lr},
                   {"lr_schedule", lr_schedule_json(to.lr_schedule)},
                   {"optimizer", octa::optimizer_name(opt.kind)},
                   {"betas", {opt.beta1, opt.beta2}},
                   {"eps", opt.eps},
                   {"weight_decay", opt.weight_decay},
                   {"momentum", opt.momentum},
                   {"dampening", opt.dampening},
                   {"nesterov", opt.nesterov},
                   {"seed", to.seed},
                   {"dataset", dataset_spec.id},
                   {"task", a.task},
                   {"num_classes", bc.num_classes},
                   {"class_names", class_names},
                   {"train_images", train_split.count},
                   {"test_images", test_split.count},
                   {"val_size", a.val_size},
                   {"validation_images", splits.validation.count},
                   {"data_dir", fs::absolute(a.data_dir).lexically_normal().string()},
                   {"run_id", to.run_id}};
    if (multiclass) {
      j["config"]["label_smoothing"] = a.label_smoothing;
      j["config"]["class_weights"] = a.class_weights;
    } else {
      j["config"]["target_digit"] = a.target_digit;
      j["config"]["target_class"] = class_names.at(static_cast<std::size_t>(a.target_digit));
      j["config"]["pos_weight"] = a.pos_weight;
    }
    j["epochs"] = nlohmann::json::array();
    for (const auto& e : report.epochs) j["epochs"].push_back(octa::to_json(e));
    j["test"] = multiclass ? octa::to_json(report.test_classes) : octa::to_json(report.test);
    j["conv"] = conv_choice;
    if (!to.checkpoint.empty()) j["checkpoint"] = to.checkpoint.string();
    octa::mark_octa_json(j, "metrics-1");  // engine/io/output_guard.hpp
    // Which split every figure is from: "test", "validation", and the thresholds' own "split".
    if (test_eval)
      j.update(octa::report::evaluation_json(*test_eval, val_eval ? &*val_eval : nullptr));
    if (val_classes) j["validation"] = octa::to_json(*val_classes);
    const auto seconds = [](auto from, auto to_) {
      return std::chrono::duration<double>(to_ - from).count();
    };
    double train_seconds = 0;
    for (const auto& e : report.epochs) train_seconds += e.seconds;
    j["timings"] = {{"train_seconds", train_seconds},
                    {"evaluation_seconds", seconds(evaluated, std::chrono::steady_clock::now())},
                    {"total_seconds", seconds(started, std::chrono::steady_clock::now())}};
    j["finished_at"] = utc_now();
    if (test_eval) {
      const nlohmann::json& best = j["thresholds"]["best_f1"];
      spdlog::info(
          "best-F1 threshold on the {} split: {:.4f} (F1 {:.4f}); on the test split it gives "
          "F1 {:.4f}",
          j["thresholds"]["split"].get<std::string>(), best["threshold"].get<double>(),
          best["f1"].get<double>(), j["test_at_best_f1_threshold"]["f1"].get<double>());
    }
    if (!report_path.empty()) j["report"] = report_path.string();
    if (writer && !a.metrics_out.empty()) {
      octa::write_file_atomically(a.metrics_out, j.dump(2) + "\n");
      spdlog::info("metrics: {}", a.metrics_out);
    }
    if (writer && !report_path.empty() && multiclass) {
      octa::report::ClassReportInputs in;
      in.metrics = &j;
      in.test_logits = report.test_logits;
      in.test_images = &test_split;
      in.made_by = "train_gpu";
      octa::report::write_report(report_path, octa::report::build_class_page(in));
      spdlog::info("report: {}", report_path.string());
    } else if (writer && !report_path.empty()) {
      octa::report::RunReportInputs in;
      in.metrics = &j;
      in.test = &*test_eval;
      in.validation = val_eval ? &*val_eval : nullptr;
      in.test_images = &test_split;
      in.made_by = "train_gpu";
      octa::report::write_report(report_path, octa::report::build_run_page(in));
      spdlog::info("report: {}", report_path.string());
    }
  }
  if (const int sig = octa::pending_interrupt()) {
    spdlog::warn("{} came during the final evaluation; the run had finished",
                 octa::signal_name(sig));
    return octa::interrupt_exit_status(sig);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  Args a;
  CLI::App app{
      "train_gpu: train the MNIST \"is it an 8?\" CNN (the PyTorch tutorial's model A or "
      "B) with octa's CUDA engine, or on the CPU where there is no GPU; or any class of "
      "Fashion-MNIST, KMNIST or an IDX dataset against the rest, or all of its classes at once "
      "(--task multiclass)."};
  app.footer(std::string(kExamples) + data_parallel_help());
  app.get_formatter()->column_width(34);
  app.add_option("--data-dir", a.data_dir,
                 "Dataset directory: the four IDX files (.gz or not), or torchvision's "
                 "<Folder>/raw below it (MNIST/raw, FashionMNIST/raw, KMNIST/raw); for --dataset "
                 "idx, the directory of any four IDX files of 28x28 images")
      ->capture_default_str();
  app.add_option("--dataset", a.dataset,
                 "mnist, fashion-mnist, kmnist (each found or downloaded with its official "
                 "checksums) or idx (any four IDX files in --data-dir; never downloaded)")
      ->check(CLI::IsMember({"mnist", "fashion-mnist", "kmnist", "idx"}))
      ->capture_default_str();
  app.add_option("--task", a.task,
                 "binary (one class against the rest: --target-class, one logit, BCE) or "
                 "multiclass (every class in the labels: one logit per class, softmax "
                 "cross-entropy, prediction by argmax)")
      ->check(CLI::IsMember({"binary", "multiclass"}))
      ->capture_default_str();
  app.add_option("--target-class", a.target_class,
                 "--task binary: the class to recognise, an index or a class name (e.g. Bag for "
                 "Fashion-MNIST) [8]");
  app.add_option("--label-smoothing", a.label_smoothing,
                 "--task multiclass: CrossEntropyLoss's label_smoothing, in [0, 1]")
      ->capture_default_str();
  app.add_option("--class-weights", a.class_weights,
                 "--task multiclass: CrossEntropyLoss's weight, one per class in class order, "
                 "comma-separated (e.g. 1,1,2,1,...)")
      ->delimiter(',');
  app.add_flag("--no-download", a.no_download, "Never download missing dataset files");
  app.add_option("--model", a.model, "a: the tutorial's CNN; b: BatchNorm + GAP + dropout")
      ->capture_default_str();
  app.add_option("--epochs", a.epochs, "Total epochs (a resumed run continues to this)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--lr", a.lr, "Learning rate")->capture_default_str();
  app.add_option("--lr-schedule", a.lr_schedule,
                 "constant, step (StepLR) or cosine (CosineAnnealingLR, T_max = --epochs); "
                 "stepped after each epoch, as PyTorch's schedulers")
      ->capture_default_str();
  app.add_option("--lr-step-size", a.lr_step_size, "StepLR: epochs between decays");
  app.add_option("--lr-gamma", a.lr_gamma, "StepLR: the decay factor")->capture_default_str();
  app.add_option("--lr-min", a.lr_min, "CosineAnnealingLR: eta_min, the lr it anneals to")
      ->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "Training batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--test-batch-size", a.test_batch_size, "Evaluation batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--drop-last", a.drop_last, "Drop the last incomplete training batch");
  app.add_flag("--sync-bn", a.sync_bn,
               "Under mpirun, model B: BatchNorm normalises with the whole global batch's "
               "statistics (PyTorch's SyncBatchNorm: per-channel sums all-reduced in rank order, "
               "forward and backward), so N ranks train as one process does, up to rounding; "
               "without it, each rank's own (DDP's default). One process: nothing to do. On the "
               "GPU (NCCL, octa's default kernels; not with --conv cudnn): each layer's "
               "per-channel statistics and backward sums all-gathered and merged in rank order on "
               "the device (not yet run on a GPU)");
  app.add_option("--seed", a.seed, "Seed for weights, shuffling and dropout")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--target-digit", a.target_digit,
                 "The digit to recognise (--task binary; the same as --target-class)")
      ->capture_default_str();
  app.add_option("--optimizer", a.optimizer, "adam or sgd")->capture_default_str();
  app.add_option("--beta1", a.beta1, "Adam beta1")->capture_default_str();
  app.add_option("--beta2", a.beta2, "Adam beta2")->capture_default_str();
  app.add_option("--adam-eps", a.adam_eps, "Adam epsilon")->capture_default_str();
  app.add_option("--weight-decay", a.weight_decay, "L2 penalty added to the gradient")
      ->capture_default_str();
  app.add_option("--momentum", a.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--dampening", a.dampening, "SGD dampening")->capture_default_str();
  app.add_flag("--nesterov", a.nesterov, "SGD with Nesterov momentum");
  app.add_option("--pos-weight", a.pos_weight,
                 "BCEWithLogitsLoss pos_weight (about 9 balances 8s against the rest)")
      ->capture_default_str();
  app.add_option("--max-train", a.max_train, "Use only the first N training images (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-test", a.max_test, "Use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", a.device,
                 "auto (GPU if usable, else CPU), cuda, cpu (the fast CPU backend) or cpu-ref "
                 "(the plain CPU reference the others are checked against; slower)")
      ->check(CLI::IsMember({"auto", "cuda", "cpu", "cpu-ref"}))
      ->capture_default_str();
  app.add_option("--conv", a.conv,
                 "GPU convolutions: auto (the fastest of the paths whose kernel cases pass on "
                 "this GPU, checked at start-up), fused (octa's kernels, conv2 on the tensor "
                 "cores in 3xTF32), fused-fp32 (octa's kernels, all on the CUDA cores in FP32) "
                 "or cudnn; a named path is checked too, and the run stops if it fails")
      ->check(CLI::IsMember({"auto", "fused", "fused-fp32", "cudnn"}))
      ->capture_default_str();
  app.add_flag("--no-check", a.no_check,
               "Skip the start-up kernel self-check of a named --conv path (benchmarking)");
  app.add_option("--threads", a.threads, "CPU threads for the CPU path (0: all cores)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--loader-threads", a.loader_threads,
                 "Threads that shuffle and transform batches ahead of training (0: auto, 1 on "
                 "the CPU path, up to 4 on the GPU)")
      ->check(CLI::Range(0, 256));
  app.add_option("--checkpoint", a.checkpoint,
                 "Weights file written after every epoch [runs/model_<a|b>.safetensors]; the "
                 "optimiser state goes beside it as *.optim.safetensors");
  app.add_flag("--no-checkpoint", a.no_checkpoint, "Do not write checkpoints");
  app.add_option("--resume", a.resume, "Continue the run saved in this checkpoint");
  app.add_option("--init-from", a.init_from,
                 "Start from these weights (safetensors, e.g. exported from PyTorch)");
  app.add_option("--metrics-out", a.metrics_out, "Also write all metrics as JSON here");
  app.add_option("--val-size", a.val_size,
                 "Hold out this many training images (seeded) as a validation split: the "
                 "threshold table and best-F1 threshold come from it, never from the test split")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--report", a.report,
                 "Write the HTML report here [beside the checkpoint: <checkpoint>.report.html]");
  app.add_flag("--no-report", a.no_report, "Write no HTML report");
  app.add_flag("--eval-every-epoch", a.eval_every_epoch,
               "Evaluate on the test split after every epoch (metrics JSON: test_accuracy); on "
               "whenever a report is written");
  app.add_option("--export-init", a.export_init,
                 "Write the initial weights (before the first step) as safetensors");
  app.add_option("--export-order", a.export_order,
                 "Write every epoch's batch order (I64 tensor \"order\" [epochs, images])");
  app.add_option("--export-losses", a.export_losses,
                 "Write every training step's mean loss as JSON (reads the loss every step)");
  app.add_flag("--overwrite", a.overwrite,
               "Let output flags replace existing files that octa did not write (octa's own "
               "checkpoints, metrics and exports are replaced without it)");
  app.add_option("--log-level", a.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  a.target_digit_given = app.count("--target-digit") > 0;
  a.val_size_given = app.count("--val-size") > 0;
  a.pos_weight_given = app.count("--pos-weight") > 0;
  for (const char* flag : {"--lr-schedule", "--lr-step-size", "--lr-gamma", "--lr-min"}) {
    a.lr_schedule_given = a.lr_schedule_given || app.count(flag) > 0;
  }
  for (const char* flag : {"--optimizer", "--lr", "--beta1", "--beta2", "--adam-eps",
                           "--weight-decay", "--momentum", "--dampening", "--nesterov"}) {
    if (app.count(flag) > 0) a.optimizer_flags_given.insert(flag);
  }

  std::unique_ptr<octa::dist::Communicator> comm;
  try {
    octa::init_logging(octa::parse_log_level(a.log_level));
    comm = octa::dist::make_communicator();
    if (comm->rank() != 0) {
      // One voice: rank 0 reports the run; the others say only what goes wrong.
      const spdlog::level::level_enum level = octa::parse_log_level(a.log_level);
      octa::init_logging(std::max(level, spdlog::level::warn));
    }
    return run(a, *comm);
  } catch (const octa::Interrupted& stop) {
    if (comm && comm->rank() != 0) return octa::interrupt_exit_status(stop.signal());
    std::fprintf(stderr, "train_gpu: %s\n", stop.what());
    if (!stop.checkpoint().empty()) {
      std::fprintf(stderr, "train_gpu: resume with:\n  %s\n",
                   octa::resume_command({argv, argv + argc}, stop.checkpoint(),
                                        comm && octa::dist::launched_by_mpi()
                                            ? fmt::format("mpirun -np {}", comm->size())
                                            : std::string())
                       .c_str());
    }
    return octa::interrupt_exit_status(stop.signal());
  } catch (const std::exception& e) {
    if (comm && comm->size() > 1) {
      // Every rank's message, then the whole job ends: no rank waits for a failed one.
      std::fprintf(stderr, "train_gpu: rank %d of %d: error: %s\n", comm->rank(), comm->size(),
                   e.what());
      std::fflush(stderr);
      comm->abort_all(1);
    }
    std::fprintf(stderr, "train_gpu: error: %s\n", e.what());
    return 1;
  }
}
