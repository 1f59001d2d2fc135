// engine/io/checkpoint.cpp: ParamTable <-> safetensors, for weights and for resumable training.
#include "engine/io/checkpoint.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/io/safetensors.hpp"

namespace octa {
namespace fs = std::filesystem;

namespace {

std::string num_batches_tracked_name(const std::string& bn) {
  return bn + ".num_batches_tracked";
}

// Reads a tensor that must exist with the given dtype and shape into dst.
void read_tensor(const io::SafetensorsFile& file, const fs::path& path, const std::string& name,
                 io::DType dtype, const std::vector<std::int64_t>& shape, void* dst) {
  const io::Tensor* t = file.find(name);
  if (!t) throw Error(fmt::format("{}: missing tensor '{}'", path.string(), name));
  if (t->dtype != dtype) {
    throw Error(fmt::format("{}: tensor '{}' has dtype {}, expected {}", path.string(), name,
                            io::dtype_name(t->dtype), io::dtype_name(dtype)));
  }
  if (t->shape != shape) {
    throw Error(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", path.string(), name,
                            fmt::join(t->shape, ", "), fmt::join(shape, ", ")));
  }
  std::memcpy(dst, t->data.data(), t->data.size());
}

const std::string& metadata_at(const io::SafetensorsFile& file, const fs::path& path,
                               const std::string& key) {
  const auto it = file.metadata.find(key);
  if (it == file.metadata.end()) {
    throw Error(
        fmt::format("{}: not an octa checkpoint (no '{}' in its metadata)", path.string(), key));
  }
  return it->second;
}

// A non-negative decimal integer that fits Int: no sign, no spaces, nothing after it.
template <class Int>
Int parse_metadata_int(const fs::path& path, const std::string& key, const std::string& s) {
  Int v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || s[0] == '-' || ec != std::errc() || end != s.data() + s.size()) {
    throw Error(fmt::format("{}: metadata '{}' is not a non-negative integer{}: '{}'",
                            path.string(), key,
                            ec == std::errc::result_out_of_range ? " in range" : "", s));
  }
  return v;
}

template <class Int>
Int metadata_int(const io::SafetensorsFile& file, const fs::path& path, const std::string& key) {
  return parse_metadata_int<Int>(path, key, metadata_at(file, path, key));
}

// An optional key (absent in checkpoints of older octa versions): fallback when absent.
template <class Int>
Int metadata_int_or(const std::map<std::string, std::string>& metadata, const fs::path& path,
                    const std::string& key, Int fallback) {
  const auto it = metadata.find(key);
  return it == metadata.end() ? fallback : parse_metadata_int<Int>(path, key, it->second);
}

double parse_metadata_double(const fs::path& path, const std::string& key, const std::string& s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    throw Error(
        fmt::format("{}: metadata '{}' is not a finite number: '{}'", path.string(), key, s));
  }
  return v;
}

double metadata_double(const io::SafetensorsFile& file, const fs::path& path,
                       const std::string& key) {
  return parse_metadata_double(path, key, metadata_at(file, path, key));
}

void check_arch(const io::SafetensorsFile& file, const fs::path& path, const ParamTable& table) {
  const auto it = file.metadata.find("octa.arch");
  if (it != file.metadata.end() && it->second != arch_name(table.arch())) {
    throw Error(fmt::format("{}: holds model {}, but model {} was asked for (--model)",
                            path.string(), it->second, arch_name(table.arch())));
  }
  // The task: fc2.weight is [K, 128], K = 1 for the binary task. Checked from the tensor itself,
  // so that files without octa's metadata (a PyTorch export) get the same clear error.
  const auto describe = [](std::int64_t k) {
    return k == 1 ? std::string("a binary model (one output, fc2.weight [1, 128])")
                  : fmt::format("a multi-class model of {} classes (fc2.weight [{}, 128])", k, k);
  };
  for (const io::Tensor& t : file.tensors) {
    if (t.name != "fc2.weight" || t.shape.size() != 2) continue;
    const std::int64_t want = table.num_classes();
    if (t.shape[0] != want) {
      throw Error(fmt::format(
          "{}: holds {}, but this run needs {} ({}); a checkpoint trains on or evaluates only "
          "the task it was made for",
          path.string(), describe(t.shape[0]), describe(want),
          want == 1 ? "--task binary" : "--task multiclass on a dataset of that many classes"));
    }
  }
}

}  // namespace

fs::path optimizer_state_path(const fs::path& weights_path) {
  fs::path p = weights_path;
  if (p.extension() == ".safetensors") p.replace_extension();
  p += ".optim.safetensors";
  return p;
}

namespace {

std::string encode_weights(const fs::path& path, const ParamTable& table, const ModelState& model,
                           const std::map<std::string, std::string>& metadata) {
  OCTA_CHECK(model.values.size() == table.num_total(),
             "{}: model state has {} values, model {} needs {}", path.string(), model.values.size(),
             arch_name(table.arch()), table.num_total());
  // 8-byte tensors first, so each starts 8-byte aligned (as the reference writer arranges).
  std::vector<io::TensorRef> tensors;
  for (const std::string& bn : table.batchnorm_layers()) {
    tensors.push_back(
        {num_batches_tracked_name(bn), io::DType::kI64, {}, &model.num_batches_tracked});
  }
  for (const ParamEntry& e : table.entries()) {
    tensors.push_back({e.name, io::DType::kF32, e.shape, model.values.data() + e.offset});
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";  // what safetensors.torch.save_file writes
  meta[kSafetensorsMarkerKey] = kSafetensorsFormat;
  meta["octa.arch"] = arch_name(table.arch());
  meta["octa.task"] = table.multiclass() ? "multiclass" : "binary";
  meta["octa.num_classes"] = std::to_string(table.num_classes());
  return io::encode_safetensors(path, tensors, meta);
}

}  // namespace

void save_weights(const fs::path& path, const ParamTable& table, const ModelState& model,
                  const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, encode_weights(path, table, model, metadata));
}

namespace {

ModelState weights_from(const io::SafetensorsFile& file, const fs::path& path,
                        const ParamTable& table) {
  check_arch(file, path, table);
  ModelState model;
  model.values.assign(table.num_total(), 0.0f);
  std::size_t expected = 0;
  for (const ParamEntry& e : table.entries()) {
    read_tensor(file, path, e.name, io::DType::kF32, e.shape, model.values.data() + e.offset);
    ++expected;
  }
  for (const std::string& bn : table.batchnorm_layers()) {
    std::int64_t count = 0;
    read_tensor(file, path, num_batches_tracked_name(bn), io::DType::kI64, {}, &count);
    model.num_batches_tracked = count;
    ++expected;
  }
  if (file.tensors.size() != expected) {
    for (const io::Tensor& t : file.tensors) {
      const bool known = table.contains(t.name) ||
                         (t.name.ends_with(".num_batches_tracked") && table.arch() == Arch::kB);
      if (!known) {
        throw Error(
            fmt::format("{}: unexpected tensor '{}' for model {} (is this the other model?)",
                        path.string(), t.name, arch_name(table.arch())));
      }
    }
  }
  return model;
}

}  // namespace

ModelState load_weights(const fs::path& path, const ParamTable& table) {
  return weights_from(io::read_safetensors(path), path, table);
}

namespace {

// What ties a checkpoint's two files together: the run and the point in it.
struct PairKey {
  std::string run_id, epochs_done, batches_done;
  bool operator==(const PairKey&) const = default;
  std::string str() const {
    return fmt::format("run {} epoch {} batch {}", run_id, epochs_done, batches_done);
  }
};

PairKey pair_key(const std::map<std::string, std::string>& metadata) {
  const auto get = [&](const char* key, const char* absent) {
    const auto it = metadata.find(key);
    return it == metadata.end() ? std::string(absent) : it->second;
  };
  // Older checkpoints hold no batch: they were all written at epoch boundaries.
  return {get("octa.run_id", "?"), get("octa.epochs_done", "?"), get("octa.batches_done", "0")};
}

// What both files record of the run: the pair's key, and the task (--target-digit, --val-size).
std::map<std::string, std::string> pair_metadata(const TrainingState& training) {
  std::map<std::string, std::string> m = {
      {"octa.run_id", training.run_id},
      {"octa.epochs_done", std::to_string(training.epochs_done)},
      {"octa.batches_done", std::to_string(training.within_epoch.batches_done)},
      {"octa.val_size", std::to_string(training.val_size)}};
  if (training.target_digit) m["octa.target_digit"] = std::to_string(*training.target_digit);
  if (!training.class_names.empty()) {
    m["octa.class_names"] = nlohmann::json(training.class_names).dump();
  }
  return m;
}

// The weights of an interrupted save that belong with the optimiser state `want`: a complete
// temporary a killed save left beside the weights file (see save_checkpoint). nullopt if none.
std::optional<ModelState> weights_of_interrupted_save(const fs::path& path, const PairKey& want,
                                                      const ParamTable& table) {
  for (const fs::path& tmp : stale_temporaries(path)) {
    try {
      const io::SafetensorsFile file = io::read_safetensors(tmp);
      if (pair_key(file.metadata) != want) continue;
      ModelState model = weights_from(file, tmp, table);
      spdlog::warn(
          "{}: its last save was interrupted between writing the optimiser state and the "
          "weights; using the complete weights that save left in {} (the next save replaces "
          "both)",
          path.string(), tmp.string());
      return model;
    } catch (const Error&) {
      // Incomplete or foreign: not the one.
    }
  }
  return std::nullopt;
}

}  // namespace

void save_checkpoint(const fs::path& path, const ParamTable& table, const ModelState& model,
                     const TrainingState& training) {
  const OptimizerState& os = training.optimizer_state;
  const std::size_t n = table.num_trainable();
  const bool adam = training.optimizer.kind == OptimizerKind::kAdam;
  OCTA_CHECK(os.m.size() == n && (!adam || os.v.size() == n),
             "{}: optimiser state does not match model {} ({} parameters)", path.string(),
             arch_name(table.arch()), n);
  std::vector<io::TensorRef> tensors = {{"step", io::DType::kI64, {}, &os.step}};  // aligned first
  const char* m_name = adam ? "exp_avg." : "momentum_buffer.";
  for (const ParamEntry& e : table.entries()) {
    if (!e.trainable()) continue;
    tensors.push_back({m_name + e.name, io::DType::kF32, e.shape, os.m.data() + e.offset});
    if (adam) {
      tensors.push_back({"exp_avg_sq." + e.name, io::DType::kF32, e.shape, os.v.data() + e.offset});
    }
  }
  const OptimizerConfig& c = training.optimizer;
  const EpochPosition& w = training.within_epoch;
  std::map<std::string, std::string> meta = pair_metadata(training);
  meta.insert({
      {kSafetensorsMarkerKey, kSafetensorsFormat},
      {"octa.arch", arch_name(table.arch())},
      {"octa.seed", std::to_string(training.seed)},
      {"octa.images_done", std::to_string(w.images_done)},
      {"octa.epoch_loss_sum", fmt::format("{}", w.loss_sum)},
      {"octa.batch_size", std::to_string(w.batch_size)},
      {"octa.drop_last", w.drop_last ? "1" : "0"},
      {"octa.train_images", std::to_string(w.train_images)},
      {"optimizer", optimizer_name(c.kind)},
      {"lr", fmt::format("{}", c.lr)},
      {"beta1", fmt::format("{}", c.beta1)},
      {"beta2", fmt::format("{}", c.beta2)},
      {"eps", fmt::format("{}", c.eps)},
      {"weight_decay", fmt::format("{}", c.weight_decay)},
      {"momentum", fmt::format("{}", c.momentum)},
      {"dampening", fmt::format("{}", c.dampening)},
      {"nesterov", c.nesterov ? "1" : "0"},
  });
  const LrSchedule& sched = training.lr_schedule;
  meta.insert({{"lr_schedule", lr_schedule_name(sched.kind)},
               {"lr_step_size", std::to_string(sched.step_size)},
               {"lr_gamma", fmt::format("{}", sched.gamma)},
               {"lr_t_max", std::to_string(sched.t_max)},
               {"lr_min", fmt::format("{}", sched.eta_min)}});
  const fs::path opath = optimizer_state_path(path);
  // Both complete on disk before either is renamed: see the header.
  PendingFile optim(opath, io::encode_safetensors(opath, tensors, meta));
  PendingFile weights(path, encode_weights(path, table, model, pair_metadata(training)));
  optim.commit();
  weights.commit();
}

Checkpoint load_checkpoint(const fs::path& path, const ParamTable& table) {
  Checkpoint ck;
  const fs::path opath = optimizer_state_path(path);
  std::error_code ec;
  // The weights are read first (their errors name the file a user gave); a weights file that is
  // missing or unreadable may still be mended below, by the save that was writing it.
  std::optional<PairKey> weights_key;  // set when the weights file was read and is complete
  std::string weights_error;
  try {
    const io::SafetensorsFile weights_file = io::read_safetensors(path);
    ck.model = weights_from(weights_file, path, table);
    weights_key = pair_key(weights_file.metadata);
  } catch (const Error& e) {
    if (!fs::exists(opath, ec)) throw;
    weights_error = e.what();
  }
  if (!fs::exists(opath, ec)) {
    throw Error(
        fmt::format("{}: cannot resume: its optimiser state '{}' is missing (a weights-only "
                    "file can be loaded with --init-from instead)",
                    path.string(), opath.string()));
  }
  const io::SafetensorsFile file = io::read_safetensors(opath);
  check_arch(file, opath, table);
  TrainingState& ts = ck.training;
  ts.run_id = metadata_at(file, opath, "octa.run_id");
  ts.epochs_done = metadata_int<int>(file, opath, "octa.epochs_done");
  ts.seed = metadata_int<std::uint64_t>(file, opath, "octa.seed");
  EpochPosition& w = ts.within_epoch;
  const auto& m = file.metadata;
  w.batches_done = metadata_int_or<std::int64_t>(m, opath, "octa.batches_done", 0);
  w.images_done = metadata_int_or<std::int64_t>(m, opath, "octa.images_done", 0);
  if (const auto it = m.find("octa.epoch_loss_sum"); it != m.end()) {
    w.loss_sum = parse_metadata_double(opath, it->first, it->second);
  }
  w.batch_size = metadata_int_or<int>(m, opath, "octa.batch_size", 0);
  w.drop_last = metadata_int_or<int>(m, opath, "octa.drop_last", 0) != 0;
  w.train_images = metadata_int_or<std::int64_t>(m, opath, "octa.train_images", 0);

  const PairKey want = pair_key(m);
  if (!weights_key || *weights_key != want) {
    // (A weights file that parsed but failed the table's checks was once taken as loaded, with
    // no values at all: found by fuzz_checkpoint.)
    std::optional<ModelState> mended = weights_of_interrupted_save(path, want, table);
    if (!mended && !weights_key) throw Error(weights_error);
    if (!mended) {
      throw Error(
          fmt::format("{} and {} do not belong together ({} vs {}); was a save interrupted?",
                      path.string(), opath.string(), weights_key->str(), want.str()));
    }
    ck.model = std::move(*mended);
  }
  OptimizerConfig& c = ts.optimizer;
  c.kind = parse_optimizer(metadata_at(file, opath, "optimizer"));
  c.lr = metadata_double(file, opath, "lr");
  c.beta1 = metadata_double(file, opath, "beta1");
  c.beta2 = metadata_double(file, opath, "beta2");
  c.eps = metadata_double(file, opath, "eps");
  c.weight_decay = metadata_double(file, opath, "weight_decay");
  c.momentum = metadata_double(file, opath, "momentum");
  c.dampening = metadata_double(file, opath, "dampening");
  c.nesterov = metadata_at(file, opath, "nesterov") == "1";
  if (m.contains("lr_schedule")) {
    LrSchedule& sched = ts.lr_schedule;
    try {
      sched.kind = parse_lr_schedule(m.at("lr_schedule"));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: metadata 'lr_schedule': {}", opath.string(), e.what()));
    }
    sched.step_size = metadata_int<int>(file, opath, "lr_step_size");
    sched.gamma = metadata_double(file, opath, "lr_gamma");
    sched.t_max = metadata_int<int>(file, opath, "lr_t_max");
    sched.eta_min = metadata_double(file, opath, "lr_min");
  }
  const bool adam = c.kind == OptimizerKind::kAdam;
  OptimizerState& os = ts.optimizer_state;
  os.m.assign(table.num_trainable(), 0.0f);
  os.v.assign(adam ? table.num_trainable() : 0, 0.0f);
  for (const ParamEntry& e : table.entries()) {
    if (!e.trainable()) continue;
    read_tensor(file, opath, (adam ? "exp_avg." : "momentum_buffer.") + e.name, io::DType::kF32,
                e.shape, os.m.data() + e.offset);
    if (adam) {
      read_tensor(file, opath, "exp_avg_sq." + e.name, io::DType::kF32, e.shape,
                  os.v.data() + e.offset);
    }
  }
  read_tensor(file, opath, "step", io::DType::kI64, {}, &os.step);
  if (file.metadata.contains("octa.target_digit")) {
    ts.target_digit = metadata_int<int>(file, opath, "octa.target_digit");
  }
  if (file.metadata.contains("octa.val_size")) {
    ts.val_size = metadata_int<int>(file, opath, "octa.val_size");
  }
  return ck;
}

}  // namespace octa
