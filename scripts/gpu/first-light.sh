#!/usr/bin/env bash
# scripts/gpu/first-light.sh: the first run of octa on a GPU (issue 10), in ONE device-tool call,
# time-boxed to 9 minutes on a fresh 16-core machine; it continues past any failing stage and keeps
# everything it learned. Run from the repository root with data/ and .gpu-deps/ carried
# (docs/GPU_RUNBOOK.md has the exact call):
#
#   OCTA_COMMIT=<sha> bash scripts/gpu/first-light.sh            # every stage
#   OCTA_COMMIT=<sha> bash scripts/gpu/first-light.sh tests train # only these (env, build always)
#
# Stages, in this order, each under its own deadline (scripts/gpu/stages.sh):
#   env       nvidia-smi, driver, CUDA runtime, cuDNN and cuBLAS versions, compute capability
#             (scripts/gpu/probe_env.py), tools, the carried packages unpacked
#   build     only what the run needs: octa, train_gpu, bench_gpu_epoch, every test_gpu_* and
#             octa_selftest where the tree defines it (scripts/gpu/build.sh; ninja, all cores)
#   tests     every [gpu] test (ctest -L gpu: one process per test case, JUnit XML with each one's
#             output)
#   selftest  octa_selftest --json, where it exists
#   train     train_gpu, models A and B, 5 epochs, --eval-every-epoch, metrics JSON, for
#             --conv fused and --conv cudnn (FL_TRAIN_RUNS="a:fused b:fused a:cudnn b:cudnn")
#   bench     bench_gpu_epoch, A and B, batch 64 and 1024, every --conv path it offers (except
#             auto), 3 epochs each (FL_BENCH_CONVS, FL_BENCH_BATCHES, FL_BENCH_EPOCHS)
#   torch     PyTorch eager, data resident on the GPU, model A, batch 64, 3 epochs
#             (bench/pytorch/reference.py)
#   memcheck  compute-sanitizer memcheck over test_gpu_train's cases one by one (the training-step
#             comparisons first), then other test_gpu_* executables, while time lasts
#
# Output: $OUT/summary.md (read it first), $OUT/summary.json (shaped as docs/gpu-runs/ records),
# $OUT/first-light.tar.gz (every log and JSON: gpu-out/first-light/ here), $OUT/progress.log;
# all rewritten after every stage. The end of stdout is summary.md.
# Environment: FL_TOTAL_S (default 540), BUILD_DIR (default build-gpu/), BUILD_JOBS, OCTA_COMMIT
# (the commit, where the machine has no git checkout), FL_CTEST_ARGS (more ctest arguments, e.g.
# "-R conv"), SANITIZE_CASE_S (default 150: the most one sanitized run may take).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/gpu/stages.sh
source "$root/scripts/gpu/stages.sh"  # (and env.sh, sanitize.sh)
build=${BUILD_DIR:-$root/build-gpu}
data=$root/data

stage_env() {
  mkdir -p "$work/env"
  local e=$work/env
  deps_env >"$e/deps.txt" 2>&1  # (not in a pipeline: it sets this shell's variables)
  {
    echo "prefix: $prefix ($(find "$prefix" -type f 2>/dev/null | wc -l) files)"
    echo "cudnn_include: ${cudnn_include:-the system one}"
    echo "cudnn_library: ${cudnn_library:-the system one}"
    echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
    echo "PATH: $PATH"
  } >>"$e/deps.txt"
  cat "$e/deps.txt"
  local cuda rc=0
  cuda=$(cuda_root)
  # (nvidia-smi's query comes last in probe_machine: where the device is in a bad state it may
  # hang, and its limit ends it; the full nvidia-smi calls below are made only where it answered)
  probe_machine "$e" || rc=$?
  {
    echo "== nvcc: $(command -v nvcc) -> $(readlink -f "$(command -v nvcc)" 2>/dev/null)"
    nvcc --version 2>&1
    echo "== cmake: $(command -v cmake)"; cmake --version 2>&1 | head -n 1
    echo "== ninja: $(command -v ninja || echo none)"; ninja --version 2>&1
    echo "== c++: $(command -v c++)"; c++ --version 2>&1 | head -n 1
    echo "== python3: $octa_python"; "$octa_python" --version 2>&1
    echo "== glibc"; ldd --version 2>&1 | head -n 1
    echo "== kernel"; uname -a
    echo "== os"; head -n 4 /etc/os-release 2>/dev/null
    echo "== cpu"; grep -m1 'model name' /proc/cpuinfo; echo "cores: $(nproc)"
    echo "== memory"; free -g 2>&1 | head -n 2
    echo "== disk"; df -h "$root" 2>&1 | tail -n 1
    echo "== toolkit libraries (${cuda:-no toolkit})"
    local f
    for f in "$cuda"/lib64/lib{cudart,cublas,cudnn,nvrtc}*; do [ -e "$f" ] && printf '%s ' "${f##*/}"; done
    echo
    echo "== tools"
    local t
    for t in compute-sanitizer ncu nsys cuobjdump cuda-gdb; do echo "$t: $(find_tool "$t" || echo 'not found')"; done
  } >"$e/versions.txt" 2>&1
  cat "$e/versions.txt"
  if [ "$(command_status nvidia-smi-query)" = ok ]; then
    tmo nvidia-smi 20 nvidia-smi >"$e/nvidia-smi.txt" 2>&1
    cat "$e/nvidia-smi.txt"
    tmo nvidia-smi-q 20 nvidia-smi -q >"$e/nvidia-smi-q.txt" 2>&1
  fi
  return $rc
}

stage_build() {
  mkdir -p "$work/build"
  tmo build "$(stage_left)" env BUILD_DIR="$build" bash "$root/scripts/gpu/build.sh" \
    octa train_gpu bench_gpu_epoch 'test_gpu_*' octa_selftest >"$work/build/build.log" 2>&1
  local rc=$?
  cat "$work/build/build.log"
  [ -f "$build/.ninja_log" ] && cp "$build/.ninja_log" "$work/build/ninja_log.txt"
  grep -E '^(CMAKE_(CXX|CUDA)_COMPILER|CMAKE_CUDA_ARCHITECTURES|CMAKE_GENERATOR|CUDAToolkit_(BIN_DIR|LIBRARY_DIR)|CUDNN_(INCLUDE_DIR|LIBRARY)|BLAS_LIBRARIES|[A-Za-z0-9_]+_DIR):' \
    "$build/CMakeCache.txt" >"$work/build/cache.txt" 2>/dev/null
  return $rc
}

stage_tests() {
  [ -f "$build/CTestTestfile.cmake" ] || { stage_skip "no build in $build"; return; }
  mkdir -p "$work/tests"
  local left per_test
  left=$(stage_left)
  per_test=$((left > 240 ? 120 : left / 2))
  # shellcheck disable=SC2086  # FL_CTEST_ARGS: extra ctest arguments, split at spaces
  tmo ctest "$left" ctest --test-dir "$build" -L gpu -j 8 --timeout "$per_test" --output-on-failure \
    --test-output-size-passed 65536 --test-output-size-failed 1048576 \
    --output-junit "$work/tests/ctest-junit.xml" ${FL_CTEST_ARGS:-} >"$work/tests/ctest.log" 2>&1
  local rc=$?
  tail -n 60 "$work/tests/ctest.log"
  return $rc
}

stage_selftest() {
  local exe
  exe=$(find "$build" -name octa_selftest -type f -perm -u+x 2>/dev/null | head -n 1)
  [ -n "$exe" ] || { stage_skip "no octa_selftest in this build (the tree defines no such target)"; return; }
  mkdir -p "$work/selftest"
  tmo selftest "$(stage_left)" "$exe" --json "$work/selftest/selftest.json" >"$work/selftest/selftest.log" 2>&1
  local rc=$?
  cat "$work/selftest/selftest.log"
  return $rc
}

# share N MIN: the next of N remaining runs gets a fair share of the stage's time left, but at least
# MIN seconds (where that much is left): the runs come in order of importance, and an early run cut
# short of what it needs learns nothing, while the last ones may be dropped.
share() {
  local s=$(($(stage_left) / $1))
  echo $((s > $2 ? s : $2))
}

stage_train() {
  local exe=$build/apps/train_gpu
  [ -x "$exe" ] || { stage_skip "train_gpu not built"; return; }
  mkdir -p "$work/train"
  local runs convs
  read -r -a runs <<<"${FL_TRAIN_RUNS:-a:fused b:fused a:cudnn b:cudnn}"
  convs=$(conv_choices "$exe")
  local rc=0 i=0 r
  for r in "${runs[@]}"; do
    local m=${r%%:*} c=${r#*:}
    i=$((i + 1))
    if ! echo "$convs" | grep -qx -- "$c"; then
      echo "train_gpu offers no --conv $c (it lists: $(echo "$convs" | tr '\n' ' ')): not run"
      rc=1
      continue
    fi
    tmo "train ${m^^} $c" "$(share $((${#runs[@]} - i + 1)) 75)" "$exe" --device cuda --model "$m" --conv "$c" \
      --epochs 5 --eval-every-epoch --metrics-out "$work/train/${m}_$c.json" --no-checkpoint \
      --data-dir "$data" --no-download --log-level info >"$work/train/${m}_$c.log" 2>&1 || rc=$?
    tail -n 25 "$work/train/${m}_$c.log"
  done
  return $rc
}

stage_bench() {
  local exe=$build/bench/bench_gpu_epoch
  [ -x "$exe" ] || { stage_skip "bench_gpu_epoch not built"; return; }
  mkdir -p "$work/bench"
  local convs batches models=(a b) epochs=${FL_BENCH_EPOCHS:-3}
  read -r -a convs <<<"${FL_BENCH_CONVS:-$(conv_choices "$exe" | tr '\n' ' ')}"
  read -r -a batches <<<"${FL_BENCH_BATCHES:-64 1024}"
  [ ${#convs[@]} -gt 0 ] || { echo "bench_gpu_epoch --help lists no --conv paths"; return 1; }
  local runs=() b m c
  for b in "${batches[@]}"; do
    for m in "${models[@]}"; do
      for c in "${convs[@]}"; do runs+=("$m:$c:$b"); done
    done
  done
  local rc=0 i=0 r
  for r in "${runs[@]}"; do
    IFS=: read -r m c b <<<"$r"
    i=$((i + 1))
    tmo "bench ${m^^} $c b$b" "$(share $((${#runs[@]} - i + 1)) 40)" "$exe" --model "$m" --conv "$c" \
      --batch-size "$b" --epochs "$epochs" --data-dir "$data" --json "$work/bench/${m}_${c}_b$b.json" \
      >"$work/bench/${m}_${c}_b$b.log" 2>&1 || rc=$?
    tail -n 30 "$work/bench/${m}_${c}_b$b.log"
  done
  return $rc
}

stage_torch() {
  mkdir -p "$work/torch"
  # PyTorch brings its own cuDNN and cuBLAS: it runs without the build's library path.
  tmo "torch eager A b64" "$(stage_left)" env LD_LIBRARY_PATH="$octa_orig_ld_library_path" \
    PYTHONUNBUFFERED=1 "$octa_python" "$root/bench/pytorch/reference.py" --model a --variant eager \
    --epochs 3 --batch-size 64 --eval-every-epoch --data-dir "$data" \
    --out "$work/torch/eager_a_b64.json" >"$work/torch/eager_a_b64.log" 2>&1
  local rc=$?
  cat "$work/torch/eager_a_b64.log"
  return $rc
}

stage_memcheck() {
  find_tool compute-sanitizer >/dev/null || { stage_skip "compute-sanitizer not found"; return; }
  local train=$build/tests/test_gpu_train
  [ -x "$train" ] || { stage_skip "test_gpu_train not built"; return; }
  mkdir -p "$work/memcheck"
  local rc=0
  sanitize_cases memcheck memcheck "$train" 'model A, fused kernels' 'model A, cuDNN' \
    'model B, fused kernels' 'model B, cuDNN' 'fused-fp32' 'deterministic' || rc=$?
  local t
  for t in test_gpu_kernels test_gpu_conv test_gpu_library; do
    [ -x "$build/tests/$t" ] || continue
    [ -z "$stage_note" ] || break  # time ran out above
    if [ "$(stage_left)" -lt 20 ]; then
      stage_note="time ran out before $t"
      break
    fi
    sanitize memcheck memcheck "$build/tests/$t" || rc=$?
  done
  return $rc
}

stages_init first-light "${FL_TOTAL_S:-540}"
#    stage     wants  floor (seconds; floor: kept free for it by every stage before it)
plan env       45     10
plan build     330    60
plan tests     150    30
plan selftest  60     10
plan train     180    45
plan bench     150    40
plan torch     90     30
plan memcheck  600    20
run_plan "$@"
# The device tool's reply holds the end of the output: the summary, then a digest of it.
cat "$work/summary.md" >&3
env LD_LIBRARY_PATH="$octa_orig_ld_library_path" "$octa_python" "$root/scripts/gpu/summarize.py" \
  --digest "$work" >&3 2>&1
