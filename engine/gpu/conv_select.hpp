// engine/gpu/conv_select.hpp: train_gpu's --conv choice. Before it trains on a GPU, the engine
// proves the kernels it is about to use on that GPU: it runs the case table's cases for the
// chosen model's shapes (engine/selfcheck/case_table.hpp: the models' layers at batch 64 against
// the CPU reference) on each convolution path, times one training step of each path whose cases
// pass, and takes the fastest of those. A path that fails is never used silently: the log names
// the case and its error; a path asked for by name (--conv fused) that fails its cases stops the
// run with that message, unless the check is skipped (--no-check, for benchmarking).
//
// Which cases a path runs (conv_path_uses): every case that is no convolution (pooling,
// BatchNorm, the head, the optimisers, the cuBLAS layers: shared by all three paths, run once);
// for fused, octa's CUDA-core convolutions below gpu::kTensorCoreMinCin input channels (conv1) and
// its tensor-core ones from there (conv2); for fused-fp32, the CUDA-core ones; for cudnn, cuDNN's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/gpu/cuda_backend.hpp"
#include "engine/selfcheck/kernel_cases.hpp"

namespace octa {

bool conv_path_uses(ConvPath path, const selfcheck::KernelCase& c);

struct ConvCheckOptions {
  bool check = true;    // false: --no-check (a named path only)
  int batch_size = 64;  // the training step that is timed
  int device = 0;
  // The launchers the cases call. Only tests pass others (a deliberately broken one, to prove
  // that --conv auto rejects its path); train_gpu uses the defaults, octa's real launchers.
  selfcheck::CaseOptions cases;
};

// The cases one path (or all paths: the shared ones) ran, and how they went.
struct ConvCaseTally {
  int cases = 0, failed = 0;
  std::vector<std::string> failures;  // "<case>: <its error or worst mismatches>"
  bool passed() const { return failed == 0; }
};

struct ConvPathCheck {
  ConvPath path = ConvPath::kFused;
  ConvCaseTally cases;            // its convolution cases
  std::optional<double> step_ms;  // one training step, measured (--conv auto)
  std::string step_error;         // why the step could not be timed
  bool usable(const ConvCaseTally& shared) const {
    return shared.passed() && cases.passed() && step_error.empty();
  }
};

struct ConvChoice {
  std::string requested;  // "auto", "fused", "fused-fp32" or "cudnn"
  std::string model;      // "A" or "B": whose shapes the cases had
  ConvPath path = ConvPath::kFused;
  bool checked = false;              // the cases ran (false with --no-check)
  std::string why;                   // what the log says about the choice
  ConvCaseTally shared;              // the cases every path uses
  std::vector<ConvPathCheck> paths;  // the paths checked, in kConvPaths order
  double check_seconds = 0.0;        // the whole check, cases and timed steps
};

// Runs the check for `config` (its model and optimiser) and chooses: `requested` is "auto" or a
// path's name. Throws octa::Error when the named path fails its cases, when no path passes
// (auto), or for --conv auto with the check off; each message names the failing cases.
ConvChoice choose_conv_path(const BackendConfig& config, std::string_view requested,
                            const ConvCheckOptions& options);

// The decision from the checks' results alone (what choose_conv_path does after running them):
// a named path must pass; auto takes the fastest usable path. Sets path and why; throws as above.
void decide_conv_path(ConvChoice& choice);

nlohmann::json to_json(const ConvChoice& choice);

}  // namespace octa
