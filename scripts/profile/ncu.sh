#!/usr/bin/env bash
# scripts/profile/ncu.sh: Nsight Compute on one training step of bench_gpu_epoch, every kernel of
# it with the full metric set, on the lent GPU machine (after scripts/gpu/build.sh; it is also
# scripts/gpu/second-light.sh's ncu stage):
#   bash scripts/profile/ncu.sh [model a|b] [conv fused|fused-fp32|cudnn] [batch] [more bench_gpu_epoch flags]
#   bash scripts/profile/ncu.sh a fused 64                # the defaults
#   NCU_SET=detailed bash scripts/profile/ncu.sh b cudnn 1024
# Writes into $OUT (default ./profiles): ncu_<model>_<conv>_b<batch>.ncu-rep (open it in ncu-ui),
# .summary.txt (each metric per kernel name: --print-summary per-kernel), .details.txt (every
# section of every kernel as text) and .raw.csv (every metric, one row per kernel). Environment:
# BUILD_DIR (default build-gpu/), DATA_DIR (default data/), NCU_SET (default full), OUT.
#
# The window: bench_gpu_epoch --profile-steps 1 runs 8 warm-up steps (3 eager, then the step is
# captured as a CUDA graph for each of the two input slots) and then one step between cudaProfilerStart and cudaProfilerStop, which is
# all that --profile-from-start off lets ncu profile. That step is a graph replay: ncu profiles
# the graph's kernel nodes one by one (--graph-profiling node, its default, spelled out here), each
# replayed once per metric pass with memory saved and restored in between. --nvtx records the NVTX
# stack of each result: for graph nodes that is the stack at cudaGraphLaunch
# (profiled_steps/train_step/graph_replay); the per-phase ranges exist only in eager steps (add
# --no-graph to see them; docs/PROFILING.md).
#
# --clock-control none: ncu's default (base) locks the GPU's clocks to their base values for the
# run; the lent machine's clocks are left as they are (and the kernels are timed as they run).
#
# Why --set full: it has every section (speed of light and roofline charts, occupancy, memory
# tables, scheduler and warp-state statistics, source counters), and one step is only a few dozen
# small kernels, so its many replay passes per kernel should stay affordable (not yet timed).
# If it is too slow, NCU_SET=detailed or NCU_SET=basic collect subsets in fewer passes.
set -euo pipefail
out_dir=${OUT:-$PWD/profiles}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/gpu/env.sh
source "$root/scripts/gpu/env.sh"
profile_args "$@"  # model conv batch build data bench
shift $(($# < 3 ? $# : 3))
deps_env

ncu=$(command -v ncu || true)
[ -z "$ncu" ] && [ -x /usr/local/cuda/bin/ncu ] && ncu=/usr/local/cuda/bin/ncu
if [ -z "$ncu" ]; then
  echo "ncu.sh: ncu (Nsight Compute) not found on PATH or in /usr/local/cuda/bin" >&2
  exit 1
fi
if [ ! -x "$bench" ]; then
  echo "ncu.sh: $bench not built (bash scripts/gpu/build.sh, or set BUILD_DIR)" >&2
  exit 1
fi
mkdir -p "$out_dir"
base=$out_dir/ncu_${model}_${conv}_b${batch}
"$ncu" --version | tail -n 1

set -x
"$ncu" --profile-from-start off --graph-profiling node --nvtx --set "${NCU_SET:-full}" \
  --clock-control none \
  --target-processes all -o "$base" -f \
  "$bench" --model "$model" --conv "$conv" --batch-size "$batch" --profile-steps 1 \
  --data-dir "$data" "$@"
"$ncu" --import "$base.ncu-rep" --print-summary per-kernel >"$base.summary.txt"
"$ncu" --import "$base.ncu-rep" --page details >"$base.details.txt"
"$ncu" --import "$base.ncu-rep" --page raw --csv >"$base.raw.csv"
set +x
cat "$base.summary.txt"
echo "ncu.sh: $base.{ncu-rep,summary.txt,details.txt,raw.csv}"
