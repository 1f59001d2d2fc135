#!/usr/bin/env bash
# scripts/gpu/second-light.sh: the minutes left after first-light.sh (issue 10), in one device-tool
# call, with the same output discipline: every stage time-boxed, everything packed into $OUT after
# each stage. On a warm machine it reuses first-light's build (only bench_kernels is new); on a
# fresh one it builds what it needs first (scripts/gpu/build.sh: a few minutes of the budget).
#
#   OCTA_COMMIT=<sha> SL_TOTAL_S=180 bash scripts/gpu/second-light.sh          # every stage
#   OCTA_COMMIT=<sha> bash scripts/gpu/second-light.sh kernels ncu            # only these
#
# Stages, in this order:
#   env        nvidia-smi, the carried packages (unpacked again only on a fresh machine)
#   build      test_gpu_train, test_gpu_conv, test_gpu_kernels, bench_kernels, bench_gpu_epoch
#   racecheck  compute-sanitizer racecheck: test_gpu_train's fused steps (models A and B), then the
#              tensor-core convolution cases of test_gpu_conv
#   initcheck  compute-sanitizer initcheck: test_gpu_train's fused and cuDNN steps
#   kernels    bench_kernels --json: each kernel against cuDNN/cuBLAS and the card's peaks
#   compile    PyTorch torch.compile (reduce-overhead), model A, batch 64, 3 epochs
#              (bench/pytorch/reference.py --variant compiled)
#   ncu        Nsight Compute on one training step (scripts/profile/ncu.sh a fused 64, with
#              --clock-control none; NCU_SET default detailed here, full where there is time)
#
# Output: $OUT/summary.md, summary.json, second-light.tar.gz, progress.log, and the ncu report
# (ncu_a_fused_b64.ncu-rep) beside them when it is under 16 MiB.
# Environment: SL_TOTAL_S (default 240), BUILD_DIR (default build-gpu/), BUILD_JOBS, OCTA_COMMIT,
# SANITIZE_CASE_S (default 90 here), NCU_SET.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/gpu/stages.sh
source "$root/scripts/gpu/stages.sh"  # (and env.sh, sanitize.sh)
build=${BUILD_DIR:-$root/build-gpu}
data=$root/data
export SANITIZE_CASE_S=${SANITIZE_CASE_S:-90}

stage_env() {
  mkdir -p "$work/env"
  deps_env >"$work/env/deps.txt" 2>&1  # (not in a pipeline: it sets this shell's variables)
  local rc=0
  probe_machine "$work/env" || rc=$?
  {
    echo "== tools"
    local t
    for t in compute-sanitizer ncu; do echo "$t: $(find_tool "$t" || echo 'not found')"; done
    echo "== build: $build ($([ -f "$build/CMakeCache.txt" ] && echo 'present: warm machine' || echo 'absent: fresh machine'))"
  } >"$work/env/versions.txt" 2>&1
  cat "$work/env/versions.txt"
  return $rc
}

stage_build() {
  mkdir -p "$work/build"
  tmo build "$(stage_left)" env BUILD_DIR="$build" bash "$root/scripts/gpu/build.sh" \
    octa test_gpu_train test_gpu_conv test_gpu_kernels bench_kernels bench_gpu_epoch \
    >"$work/build/build.log" 2>&1
  local rc=$?
  cat "$work/build/build.log"
  return $rc
}

stage_racecheck() {
  find_tool compute-sanitizer >/dev/null || { stage_skip "compute-sanitizer not found"; return; }
  mkdir -p "$work/racecheck"
  local rc=0
  [ -x "$build/tests/test_gpu_train" ] &&
    { sanitize_cases racecheck racecheck "$build/tests/test_gpu_train" --only \
      'model A, fused kernels' 'model B, fused kernels' || rc=$?; }
  [ -x "$build/tests/test_gpu_conv" ] &&
    { sanitize_cases racecheck racecheck "$build/tests/test_gpu_conv" --only 'conv3x3_tc' || rc=$?; }
  return $rc
}

stage_initcheck() {
  find_tool compute-sanitizer >/dev/null || { stage_skip "compute-sanitizer not found"; return; }
  [ -x "$build/tests/test_gpu_train" ] || { stage_skip "test_gpu_train not built"; return; }
  mkdir -p "$work/initcheck"
  sanitize_cases initcheck initcheck "$build/tests/test_gpu_train" --only \
    'model A, fused kernels' 'model B, fused kernels' 'model A, cuDNN' 'model B, cuDNN'
}

stage_kernels() {
  local exe=$build/bench/bench_kernels
  [ -x "$exe" ] || { stage_skip "bench_kernels not built"; return; }
  mkdir -p "$work/kernels"
  tmo bench_kernels "$(stage_left)" "$exe" --json "$work/kernels/bench_kernels.json" \
    >"$work/kernels/bench_kernels.log" 2>&1
  local rc=$?
  tail -n 80 "$work/kernels/bench_kernels.log"
  return $rc
}

stage_compile() {
  mkdir -p "$work/torch"
  # PyTorch brings its own cuDNN and cuBLAS: it runs without the build's library path.
  tmo "torch compiled A b64" "$(stage_left)" env LD_LIBRARY_PATH="$octa_orig_ld_library_path" \
    PYTHONUNBUFFERED=1 "$octa_python" "$root/bench/pytorch/reference.py" --model a \
    --variant compiled --epochs 3 --batch-size 64 --eval-every-epoch --data-dir "$data" \
    --out "$work/torch/compiled_a_b64.json" >"$work/torch/compiled_a_b64.log" 2>&1
  local rc=$?
  tail -n 40 "$work/torch/compiled_a_b64.log"
  return $rc
}

stage_ncu() {
  find_tool ncu >/dev/null || { stage_skip "ncu not found"; return; }
  [ -x "$build/bench/bench_gpu_epoch" ] || { stage_skip "bench_gpu_epoch not built"; return; }
  mkdir -p "$work/ncu"
  tmo "ncu A fused b64" "$(stage_left)" env OUT="$work/ncu" BUILD_DIR="$build" DATA_DIR="$data" \
    NCU_SET="${NCU_SET:-detailed}" bash "$root/scripts/profile/ncu.sh" a fused 64 \
    >"$work/ncu/ncu.log" 2>&1
  local rc=$?
  tail -n 60 "$work/ncu/ncu.log"
  # The report itself goes beside the archive (it may be too large for it).
  local rep
  for rep in "$work"/ncu/*.ncu-rep; do
    [ -f "$rep" ] || continue
    if [ "$(stat -c %s "$rep")" -lt $((16 * 1024 * 1024)) ]; then
      cp "$rep" "$out/$(basename "$rep").part" && mv -f "$out/$(basename "$rep").part" "$out/$(basename "$rep")"
    else
      echo "$(basename "$rep") is $(stat -c %s "$rep") bytes: over the 16 MiB a returned file may have"
    fi
  done
  return $rc
}

stages_init second-light "${SL_TOTAL_S:-240}"
#    stage      wants  floor (seconds; floor: kept free for it by every stage before it)
plan env        30     10
plan build      330    60
plan racecheck  90     20
plan initcheck  60     15
plan kernels    90     30
plan compile    150    90
plan ncu        150    40
run_plan "$@"
# The device tool's reply holds the end of the output: the summary, then a digest of it.
cat "$work/summary.md" >&3
env LD_LIBRARY_PATH="$octa_orig_ld_library_path" "$octa_python" "$root/scripts/gpu/summarize.py" \
  --digest "$work" >&3 2>&1
