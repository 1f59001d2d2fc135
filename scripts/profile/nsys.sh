#!/usr/bin/env bash
# scripts/profile/nsys.sh: an Nsight Systems timeline of 20 training steps of bench_gpu_epoch on
# the lent GPU machine (after scripts/gpu/build.sh), with kernel and NVTX summaries as CSV:
#   bash scripts/profile/nsys.sh [model a|b] [conv fused|fused-fp32|cudnn] [batch] [more bench_gpu_epoch flags]
#   bash scripts/profile/nsys.sh a fused 64              # the defaults
#   NSYS_STEPS=100 bash scripts/profile/nsys.sh b cudnn 1024
# Writes into $OUT (default ./profiles): nsys_<model>_<conv>_b<batch>.nsys-rep (open it in
# nsys-ui), <same>_<report>.csv for each statistics report below and <same>.summary.txt (the same
# reports as tables). Environment: BUILD_DIR (default build-gpu/), DATA_DIR (default data/),
# NSYS_STEPS (default 20), OUT. Where nsys is not installed it says so and exits 0: the Nsight
# Compute script (ncu.sh) does not depend on it.
#
# Collection: bench_gpu_epoch --profile-steps N runs 8 warm-up steps (the graph is captured by the
# 5th), then N steps between cudaProfilerStart and cudaProfilerStop; --capture-range=
# cudaProfilerApi records only that window and --capture-range-end=stop lets the program finish
# normally (the json and exit status intact).
# --cuda-graph-trace=node shows each kernel of a graph replay on the GPU rows (the default, graph,
# shows a replay as one block). osrt adds the OS runtime calls, where the loader thread's waits
# show. The statistics report names changed across nsys versions: each is tried under its current
# name, then its older ones.
set -euo pipefail
out_dir=${OUT:-$PWD/profiles}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/gpu/env.sh
source "$root/scripts/gpu/env.sh"
profile_args "$@"  # model conv batch build data bench
shift $(($# < 3 ? $# : 3))
steps=${NSYS_STEPS:-20}
deps_env

nsys=$(command -v nsys || true)
if [ -z "$nsys" ]; then
  for c in /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys \
    /usr/local/cuda/nsight-systems-*/bin/nsys; do
    if [ -x "$c" ]; then nsys=$c; break; fi
  done
fi
if [ -z "$nsys" ]; then
  echo "nsys.sh: Nsight Systems (nsys) is not installed on this machine: no timeline taken." \
    "(Looked on PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-systems.)"
  exit 0
fi
if [ ! -x "$bench" ]; then
  echo "nsys.sh: $bench not built (bash scripts/gpu/build.sh, or set BUILD_DIR)" >&2
  exit 1
fi
mkdir -p "$out_dir"
base=$out_dir/nsys_${model}_${conv}_b${batch}
"$nsys" --version

set -x
"$nsys" profile --capture-range=cudaProfilerApi --capture-range-end=stop \
  --trace=cuda,nvtx,osrt --cuda-graph-trace=node -o "$base" -f true \
  "$bench" --model "$model" --conv "$conv" --batch-size "$batch" --profile-steps "$steps" \
  --data-dir "$data" "$@"
set +x

# stats NAME...: the first report name this nsys knows, as CSV (<base>_<name>.csv) and as a
# table appended to <base>.summary.txt. Fails when none works.
stats() {
  local r
  for r in "$@"; do
    if "$nsys" stats --force-export=true --report "$r" --format csv --output "$base" \
      "$base.nsys-rep" >>"$base.stats.log" 2>&1; then
      {
        echo "##### $r"
        "$nsys" stats --report "$r" "$base.nsys-rep" 2>&1
      } >>"$base.summary.txt"
      echo "nsys.sh: report $r -> ${base}_$r.csv"
      return 0
    fi
  done
  echo "nsys.sh: none of the reports $* worked (see $base.stats.log)" >&2
  return 1
}
: >"$base.summary.txt"
: >"$base.stats.log"
rc=0
stats cuda_gpu_kern_sum gpukernsum || rc=1            # time per kernel name
stats nvtx_sum nvtx_pushpop_sum nvtxsum || rc=1       # time per NVTX range (host side)
stats cuda_gpu_trace gputrace || rc=1                 # every kernel and copy with its start: gaps
stats nvtx_gpu_proj_sum || echo "nsys.sh: (nvtx_gpu_proj_sum needs a newer nsys; skipped)"
cat "$base.summary.txt"
exit $rc
