#!/usr/bin/env bash
# scripts/gpu/run.sh: run ON THE LENT GPU MACHINE (device tool, carry ["data", ".gpu-deps"]):
#   bash scripts/gpu/run.sh build     # unpack carried dependencies, configure, build (sm_90)
#   bash scripts/gpu/run.sh test      # the whole ctest suite, GPU tests included
#   bash scripts/gpu/run.sh sanitize  # every test_gpu_* under compute-sanitizer memcheck/racecheck/initcheck
#                                     # (SANITIZE_TESTS=test_gpu_train SANITIZE_TOOLS=memcheck to narrow)
#   bash scripts/gpu/run.sh train     # train_gpu: models A and B, 5 epochs each, metrics JSON
#   bash scripts/gpu/run.sh all       # build test sanitize train, in that order
#   bash scripts/gpu/run.sh bench     # bench_gpu_epoch: A and B x fused, fused-fp32 and cudnn x batch
#                                     # 64 and 1024, JSON each into $OUT (BENCH_CONVS="fused cudnn" to
#                                     # narrow); bench_kernels --json $OUT/kernels.json
#   bash scripts/gpu/run.sh profile   # scripts/profile/ncu.sh and nsys.sh: model A, fused, batch 64
# (bench and profile are not part of all; name them.) Library paths: scripts/gpu/env.sh.
# Each stage appends to $OUT/<stage>.log (the device tool brings $OUT back). A fresh machine keeps
# nothing between sessions, and a warm one keeps the build: stages can go in separate calls.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
build=$root/build-gpu
# shellcheck source=scripts/gpu/env.sh
source "$root/scripts/gpu/env.sh"  # deps_env; prefix, arch_lib, cudnn_root

stage_build() {
  nvidia-smi; nvcc --version | tail -n 2; cmake --version | head -n 1; g++ --version | head -n 1
  local extra=()
  [ -n "$cudnn_root" ] && extra+=("-DCUDNN_ROOT=$cudnn_root")
  if [ -f "$prefix/$arch_lib/openblas-pthread/libopenblas.so" ] && ! ldconfig -p | grep -q libopenblas; then
    extra+=("-DBLAS_LIBRARIES=$prefix/$arch_lib/openblas-pthread/libopenblas.so")
  fi
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix/usr" \
    -DCMAKE_CUDA_ARCHITECTURES=90 "${extra[@]}" &&
  cmake --build "$build" -j "$(nproc)"
}

stage_test() {
  BUILD_DIR=$build OCTA_MNIST_DIR=$root/data scripts/test.sh -j 8
}

stage_sanitize() {
  # SANITIZE_TESTS (a glob under tests/, default test_gpu_*) and SANITIZE_TOOLS narrow a run that
  # would not fit one device call.
  local rc=0
  for t in "$build"/tests/${SANITIZE_TESTS:-test_gpu_*}; do
    [ -x "$t" ] || continue
    for tool in ${SANITIZE_TOOLS:-memcheck racecheck initcheck}; do
      echo "=== compute-sanitizer --tool $tool $(basename "$t")"
      compute-sanitizer --tool "$tool" --error-exitcode 99 "$t" || rc=1
    done
  done
  return $rc
}

stage_train() {
  for m in a b; do
    "$build"/apps/train_gpu --model $m --epochs 5 --data-dir "$root/data" --no-download \
      --metrics-out "$out/train_$m.json" --checkpoint "$out/model_$m.safetensors" --log-level info
  done
}

stage_bench() {
  local rc=0
  for m in a b; do
    for conv in ${BENCH_CONVS:-fused fused-fp32 cudnn}; do
      for b in 64 1024; do
        echo "=== bench_gpu_epoch --model $m --conv $conv --batch-size $b"
        "$build"/bench/bench_gpu_epoch --model "$m" --conv "$conv" --batch-size "$b" \
          --data-dir "$root/data" --json "$out/bench_${m}_${conv}_b$b.json" || rc=1
      done
    done
  done
  if [ -x "$build/bench/bench_kernels" ]; then
    echo "=== bench_kernels"
    "$build"/bench/bench_kernels --json "$out/kernels.json" || rc=1
  fi
  return "$rc"
}

stage_profile() {
  local rc=0
  OUT=$out BUILD_DIR=$build DATA_DIR=$root/data bash scripts/profile/ncu.sh a fused 64 || rc=1
  OUT=$out BUILD_DIR=$build DATA_DIR=$root/data bash scripts/profile/nsys.sh a fused 64 || rc=1
  return "$rc"
}

deps_env
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(all)
[ "${stages[0]}" = all ] && stages=(build test sanitize train)
status=0
for s in "${stages[@]}"; do
  echo "##### stage $s ($(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?))"
  "stage_$s" 2>&1 | tee -a "$out/$s.log"
  rc=${PIPESTATUS[0]}
  echo "##### stage $s: exit $rc"
  [ $rc -eq 0 ] || status=1
done
exit $status
