// engine/train/trainer.cpp: epochs, loss bookkeeping, the divergence guard, checkpoints,
// evaluation.
#include "engine/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/data/prefetcher.hpp"
#include "engine/data/transform.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/train/interrupt.hpp"
#include "engine/train/progress.hpp"

namespace octa {

std::vector<std::unique_ptr<data::HostBatch>> host_batch_ring(int batch_size, int count,
                                                              int threads,
                                                              TrainingBackend* backend) {
  const int capacity = std::max(1, std::min(batch_size, count));
  const int slots = std::max(4, 2 * threads);
  std::vector<std::unique_ptr<data::HostBatch>> ring;
  for (int i = 0; i < slots; ++i) {
    ring.push_back(backend ? backend->make_host_batch(capacity)
                           : std::make_unique<data::PageableHostBatch>(
                                 capacity, static_cast<std::size_t>(kImageSize) * kImageSize));
  }
  return ring;
}

namespace {

// Eval-mode logits (n, K) of a split in order, and each image's target (as the loader gives it).
void predict_split(TrainingBackend& backend, const data::Split& split, int batch_size,
                   int target_digit, std::vector<float>& all_logits,
                   std::vector<float>& all_targets) {
  const auto k = static_cast<std::size_t>(backend.table().num_classes());
  data::PrefetchOptions po;
  po.batch_size = batch_size;
  po.shuffle = false;
  po.target_digit = target_digit;
  data::Prefetcher batches(split, po, host_batch_ring(batch_size, split.count, 1, nullptr));
  all_logits.reserve(static_cast<std::size_t>(split.count) * k);
  all_targets.reserve(static_cast<std::size_t>(split.count));
  std::vector<float> logits(static_cast<std::size_t>(std::min(batch_size, split.count)) * k);
  for (std::size_t b = 0; b < batches.total_batches(); ++b) {
    const data::Prefetcher::Item item = batches.next();
    backend.predict(item.batch->images(), item.n, logits.data());
    all_logits.insert(all_logits.end(), logits.begin(),
                      logits.begin() + static_cast<std::ptrdiff_t>(item.n * k));
    all_targets.insert(all_targets.end(), item.batch->targets(), item.batch->targets() + item.n);
  }
}

}  // namespace

BinaryMetrics evaluate(TrainingBackend& backend, const data::Split& split, int batch_size,
                       int target_digit, std::vector<float>* logits_out) {
  OCTA_CHECK(!backend.table().multiclass(),
             "evaluate: a model of {} classes has no binary metrics (evaluate_classes)",
             backend.table().num_classes());
  std::vector<float> all_logits, all_targets;
  predict_split(backend, split, batch_size, target_digit, all_logits, all_targets);
  BinaryMetrics metrics = compute_binary_metrics(all_logits, all_targets);
  if (logits_out) *logits_out = std::move(all_logits);
  return metrics;
}

MulticlassMetrics evaluate_classes(TrainingBackend& backend, const data::Split& split,
                                   int batch_size, std::vector<std::string> class_names,
                                   std::vector<float>* logits_out) {
  const int k = backend.table().num_classes();
  OCTA_CHECK(k > 1, "evaluate_classes: the model has one output (the binary task: evaluate)");
  std::vector<float> all_logits, all_targets;
  predict_split(backend, split, batch_size, data::kClassIndexTarget, all_logits, all_targets);
  MulticlassMetrics metrics =
      compute_multiclass_metrics(all_logits, all_targets, k, std::move(class_names));
  if (logits_out) *logits_out = std::move(all_logits);
  return metrics;
}

namespace {

// A mid-epoch checkpoint continues with the very batches it stopped in: same batch size,
// drop_last and training set, else the order and the step numbering would differ.
void check_mid_epoch_resume(const EpochPosition& start, const TrainOptions& opt,
                            const data::Split& train_split, int epochs_done) {
  OCTA_CHECK(epochs_done < opt.epochs,
             "--resume: the checkpoint stopped in epoch {}, after --epochs {}", epochs_done + 1,
             opt.epochs);
  OCTA_CHECK(start.batch_size == opt.batch_size,
             "--batch-size: the checkpoint stopped mid-epoch at batch size {}; resume it with "
             "--batch-size {} (got {})",
             start.batch_size, start.batch_size, opt.batch_size);
  OCTA_CHECK(start.drop_last == opt.drop_last,
             "--drop-last: the checkpoint stopped mid-epoch {} --drop-last; resume it the same way",
             start.drop_last ? "with" : "without");
  OCTA_CHECK(
      start.train_images == train_split.count,
      "--max-train: the checkpoint stopped mid-epoch on {} training images, this run has {}; "
      "resume it with the same training set",
      start.train_images, train_split.count);
  OCTA_CHECK(start.images_done > 0 && start.images_done <= train_split.count &&
                 std::isfinite(start.loss_sum) && start.loss_sum >= 0.0,
             "--resume: the checkpoint's position in its epoch is inconsistent ({} batches, {} "
             "images, loss sum {})",
             start.batches_done, start.images_done, start.loss_sum);
}

// What a run stopped by a signal before batch b of epoch (0-based) says.
std::string stop_message(int sig, int epoch, const TrainOptions& opt, std::int64_t b,
                         std::int64_t steps_per_epoch) {
  return fmt::format("stopped by {} {}; {}", signal_name(sig),
                     b == 0 ? fmt::format("at the start of epoch {}/{}", epoch + 1, opt.epochs)
                            : fmt::format("in epoch {}/{} after {} of its {} batches", epoch + 1,
                                          opt.epochs, b, steps_per_epoch),
                     opt.checkpoint.empty()
                         ? std::string("no checkpoint written (checkpoints are off)")
                         : fmt::format("checkpoint written: {}", opt.checkpoint.string()));
}

// User + system CPU time of the whole process so far, in seconds.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

}  // namespace

TrainReport train(TrainingBackend& backend, const data::Split& train_split,
                  const data::Split& test_split, const TrainOptions& opt, int epochs_done) {
  OCTA_CHECK(opt.epochs > 0, "--epochs: must be positive, got {}", opt.epochs);
  OCTA_CHECK(train_split.count > 0 && test_split.count > 0,
             "nothing to do: {} training and {} test images", train_split.count, test_split.count);
  OCTA_CHECK(epochs_done >= 0 && epochs_done <= opt.epochs,
             "--resume: the checkpoint has {} epochs done, more than --epochs {}", epochs_done,
             opt.epochs);
  OCTA_CHECK(opt.batch_size > 0, "--batch-size: must be positive, got {}", opt.batch_size);
  const bool multiclass = backend.table().multiclass();
  OCTA_CHECK(multiclass == (opt.target_digit == data::kClassIndexTarget),
             "train: a model of {} outputs with target {} (the multi-class task trains on class "
             "indices, the binary one on a target class)",
             backend.table().num_classes(), opt.target_digit);
  opt.lr_schedule.validate(opt.optimizer.lr);
  OCTA_CHECK(
      opt.lr_schedule.kind != LrScheduleKind::kCosine || opt.epochs <= opt.lr_schedule.t_max,
      "--epochs {}: the cosine schedule anneals over T_max = {} epochs; a run cannot go past "
      "it (PyTorch's CosineAnnealingLR would raise the lr again)",
      opt.epochs, opt.lr_schedule.t_max);
  const EpochPosition& start = opt.resume_within_epoch;
  if (start.batches_done > 0) check_mid_epoch_resume(start, opt, train_split, epochs_done);
  data::PrefetchOptions po;
  po.batch_size = opt.batch_size;
  po.shuffle = true;
  po.drop_last = opt.drop_last;
  po.seed = opt.seed;
  po.target_digit = opt.target_digit;
  po.first_epoch = static_cast<std::uint64_t>(epochs_done);
  po.last_epoch = static_cast<std::uint64_t>(opt.epochs);
  po.threads = opt.loader_threads;
  po.first_batch = static_cast<std::size_t>(start.batches_done);
  // The loader threads run through every remaining epoch, up to the ring's size ahead.
  data::Prefetcher batches(train_split, po,
                           host_batch_ring(opt.batch_size, train_split.count,
                                           std::max(1, opt.loader_threads), &backend));
  const auto steps_per_epoch = static_cast<std::int64_t>(batches.batches_per_epoch());
  OCTA_CHECK(steps_per_epoch > 0, "--drop-last: no full batch of {} in {} training images",
             opt.batch_size, train_split.count);
  OCTA_CHECK(start.batches_done < steps_per_epoch,
             "--resume: the checkpoint is {} batches into an epoch of {}", start.batches_done,
             steps_per_epoch);
  const int sync_every = opt.record_step_losses ? 1 : std::max(1, opt.loss_sync_every);
  TrainReport report;
  const auto save = [&](int epochs, const EpochPosition& within) {
    if (opt.checkpoint.empty()) return;
    TrainingState ts;
    ts.epochs_done = epochs;
    ts.within_epoch = within;
    ts.within_epoch.batch_size = opt.batch_size;
    ts.within_epoch.drop_last = opt.drop_last;
    ts.within_epoch.train_images = train_split.count;
    ts.seed = opt.seed;
    ts.run_id = opt.run_id;
    ts.optimizer = opt.optimizer;
    ts.lr_schedule = opt.lr_schedule;
    ts.optimizer_state = backend.optimizer_state();
    if (opt.target_digit != data::kClassIndexTarget) ts.target_digit = opt.target_digit;
    ts.val_size = opt.val_size;
    ts.class_names = opt.class_names;
    save_checkpoint(opt.checkpoint, backend.table(), backend.model_state(), ts);
    spdlog::debug("checkpoint written: {}", opt.checkpoint.string());
  };

  for (int epoch = epochs_done; epoch < opt.epochs; ++epoch) {
    const bool resumed_epoch = epoch == epochs_done && start.batches_done > 0;
    const std::int64_t first_batch = resumed_epoch ? start.batches_done : 0;
    const std::int64_t resumed_images = resumed_epoch ? start.images_done : 0;
    std::int64_t epoch_images = resumed_images;
    double loss_sum = resumed_epoch ? start.loss_sum : 0.0;
    // The epoch's lr follows from its index alone, so a resumed run continues the schedule.
    const double lr = scheduled_lr(opt.lr_schedule, opt.optimizer.lr, epoch);
    if (opt.lr_schedule.kind != LrScheduleKind::kConstant) backend.set_learning_rate(lr);
    const double cpu0 = process_cpu_seconds();
    Progress progress(
        fmt::format(
            "epoch {}/{}{}, lr {:.4g}", epoch + 1, opt.epochs,
            resumed_epoch ? fmt::format(" (resumed at batch {})", first_batch + 1) : std::string(),
            lr),
        static_cast<std::int64_t>(train_split.count) - resumed_images, opt.interactive);
    for (std::int64_t b = first_batch; b < steps_per_epoch; ++b) {
      const int pending = pending_interrupt();
      if (const int sig = opt.agree_on_signal ? opt.agree_on_signal(pending) : pending) {
        // The steps so far are done (their loss is read below); save where the run stands.
        progress.finish();
        loss_sum += backend.take_loss_sum();
        OCTA_CHECK(std::isfinite(loss_sum),
                   "training diverged: the loss became {} in epoch {} by step {} (lower --lr?); "
                   "stopped by {} without saving this state",
                   loss_sum, epoch + 1, b, signal_name(sig));
        save(epoch, {b, epoch_images, loss_sum});
        throw Interrupted(sig, stop_message(sig, epoch, opt, b, steps_per_epoch), opt.checkpoint);
      }
      const data::Prefetcher::Item item = batches.next();
      const int n = item.n;
      const std::int64_t step = epoch * steps_per_epoch + b;
      backend.train_step_staged(*item.batch, n, step);
      epoch_images += n;
      if ((b + 1) % sync_every == 0 || b + 1 == steps_per_epoch) {
        const double synced = backend.take_loss_sum();
        loss_sum += synced;
        if (opt.record_step_losses) report.step_losses.push_back(synced / n);
        if (!std::isfinite(loss_sum)) {
          progress.finish();
          throw Error(fmt::format(
              "training diverged: the loss became {} in epoch {} by step {} (lower --lr?); {}",
              loss_sum, epoch + 1, b + 1,
              opt.checkpoint.empty() || epoch == epochs_done
                  ? std::string("no checkpoint of this run was written")
                  : fmt::format("the last good checkpoint (epoch {}) is kept at {}", epoch,
                                opt.checkpoint.string())));
        }
        progress.update(epoch_images - resumed_images,
                        loss_sum / static_cast<double>(epoch_images));
      }
    }
    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.lr = lr;
    stats.seconds = progress.finish();
    stats.cpu_seconds = process_cpu_seconds() - cpu0;
    stats.mean_loss = epoch_images > 0 ? loss_sum / static_cast<double>(epoch_images) : NAN;
    stats.images_per_second = static_cast<double>(epoch_images - resumed_images) / stats.seconds;
    if (opt.eval_every_epoch) {
      stats.test_accuracy =
          multiclass
              ? evaluate_classes(backend, test_split, opt.test_batch_size, opt.class_names).accuracy
              : evaluate(backend, test_split, opt.test_batch_size, opt.target_digit).accuracy;
    }
    spdlog::info("epoch {}/{}: mean loss {:.6f}, lr {:.6g}, {:.2f} s, {:.0f} images/s{}",
                 stats.epoch, opt.epochs, stats.mean_loss, stats.lr, stats.seconds,
                 stats.images_per_second,
                 opt.eval_every_epoch ? fmt::format(", test accuracy {:.4f}", stats.test_accuracy)
                                      : std::string());
    report.epochs.push_back(stats);

    if (opt.after_epoch) opt.after_epoch(epoch + 1);
    save(epoch + 1, {});
  }
  if (multiclass) {
    report.test_classes = evaluate_classes(backend, test_split, opt.test_batch_size,
                                           opt.class_names, &report.test_logits);
  } else {
    report.test =
        evaluate(backend, test_split, opt.test_batch_size, opt.target_digit, &report.test_logits);
  }
  return report;
}

int default_loader_threads(bool gpu) {
  if (!gpu) return 1;
  return std::clamp(static_cast<int>(std::thread::hardware_concurrency()) / 4, 1, 4);
}

nlohmann::json to_json(const EpochStats& e) {
  nlohmann::json j = {{"epoch", e.epoch},
                      {"mean_loss", e.mean_loss},
                      {"seconds", e.seconds},
                      {"cpu_seconds", e.cpu_seconds},
                      {"images_per_second", e.images_per_second}};
  if (std::isfinite(e.lr)) j["lr"] = e.lr;
  if (std::isfinite(e.test_accuracy)) j["test_accuracy"] = e.test_accuracy;
  return j;
}

}  // namespace octa
