// engine/io/checkpoint.cpp: ParamTable <-> safetensors, for weights and for resumable training.
#include "engine/io/checkpoint.hpp"

#include <cstring>

#include "engine/core/error.hpp"
#include "engine/io/safetensors.hpp"

namespace octa {
namespace fs = std::filesystem;

namespace {

constexpr const char* kOctaFormat = "octa-1";

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

template <class Int>
Int metadata_int(const io::SafetensorsFile& file, const fs::path& path, const std::string& key) {
  const std::string& s = metadata_at(file, path, key);
  try {
    std::size_t used = 0;
    const auto v = std::stoull(s, &used);
    if (used != s.size()) throw std::invalid_argument(s);
    return static_cast<Int>(v);
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: metadata '{}' is not a number: '{}'", path.string(), key, s));
  }
}

double metadata_double(const io::SafetensorsFile& file, const fs::path& path,
                       const std::string& key) {
  const std::string& s = metadata_at(file, path, key);
  try {
    return std::stod(s);
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: metadata '{}' is not a number: '{}'", path.string(), key, s));
  }
}

void check_arch(const io::SafetensorsFile& file, const fs::path& path, const ParamTable& table) {
  const auto it = file.metadata.find("octa.arch");
  if (it != file.metadata.end() && it->second != arch_name(table.arch())) {
    throw Error(fmt::format("{}: holds model {}, but model {} was asked for (--model)",
                            path.string(), it->second, arch_name(table.arch())));
  }
}

}  // namespace

fs::path optimizer_state_path(const fs::path& weights_path) {
  fs::path p = weights_path;
  if (p.extension() == ".safetensors") p.replace_extension();
  p += ".optim.safetensors";
  return p;
}

void save_weights(const fs::path& path, const ParamTable& table, const ModelState& model,
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
  meta["octa.format"] = kOctaFormat;
  meta["octa.arch"] = arch_name(table.arch());
  io::write_safetensors(path, tensors, meta);
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
  const std::map<std::string, std::string> meta = {
      {"octa.format", kOctaFormat},
      {"octa.arch", arch_name(table.arch())},
      {"octa.run_id", training.run_id},
      {"octa.epochs_done", std::to_string(training.epochs_done)},
      {"octa.seed", std::to_string(training.seed)},
      {"optimizer", optimizer_name(c.kind)},
      {"lr", fmt::format("{}", c.lr)},
      {"beta1", fmt::format("{}", c.beta1)},
      {"beta2", fmt::format("{}", c.beta2)},
      {"eps", fmt::format("{}", c.eps)},
      {"weight_decay", fmt::format("{}", c.weight_decay)},
      {"momentum", fmt::format("{}", c.momentum)},
      {"dampening", fmt::format("{}", c.dampening)},
      {"nesterov", c.nesterov ? "1" : "0"},
  };
  std::map<std::string, std::string> run_meta = {
      {"octa.run_id", training.run_id},
      {"octa.epochs_done", std::to_string(training.epochs_done)},
      {"octa.val_size", std::to_string(training.val_size)}};
  if (training.target_digit) run_meta["octa.target_digit"] = std::to_string(*training.target_digit);
  std::map<std::string, std::string> optim_meta = meta;
  optim_meta.insert(run_meta.begin(), run_meta.end());
  io::write_safetensors(optimizer_state_path(path), tensors, optim_meta);
  save_weights(path, table, model, run_meta);
}

Checkpoint load_checkpoint(const fs::path& path, const ParamTable& table) {
  Checkpoint ck;
  const io::SafetensorsFile weights_meta = io::read_safetensors(path);
  ck.model = weights_from(weights_meta, path, table);
  const fs::path opath = optimizer_state_path(path);
  std::error_code ec;
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
  const auto wrun = weights_meta.metadata.find("octa.run_id");
  const auto wepoch = weights_meta.metadata.find("octa.epochs_done");
  if (wrun == weights_meta.metadata.end() || wepoch == weights_meta.metadata.end() ||
      wrun->second != ts.run_id || wepoch->second != std::to_string(ts.epochs_done)) {
    throw Error(fmt::format(
        "{} and {} do not belong together (run {} epoch {} vs run {} epoch {}); was a save "
        "interrupted?",
        path.string(), opath.string(), wrun != weights_meta.metadata.end() ? wrun->second : "?",
        wepoch != weights_meta.metadata.end() ? wepoch->second : "?", ts.run_id, ts.epochs_done));
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
