#!/usr/bin/env bash
# scripts/gpu/run.sh: run ON THE LENT GPU MACHINE (device tool, carry ["data", ".gpu-deps"]):
#   bash scripts/gpu/run.sh build     # unpack carried dependencies, configure, build (sm_90)
#   bash scripts/gpu/run.sh test      # the whole ctest suite, GPU tests included
#   bash scripts/gpu/run.sh sanitize  # every test_gpu_* under compute-sanitizer memcheck/racecheck/initcheck
#   bash scripts/gpu/run.sh train     # train_gpu: models A and B, 5 epochs each, metrics JSON
#   bash scripts/gpu/run.sh all       # all of the above in order
# Each stage appends to $OUT/<stage>.log (the device tool brings $OUT back). A fresh machine keeps
# nothing between sessions, and a warm one keeps the build: stages can go in separate calls.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
build=$root/build-gpu
prefix=/tmp/octa-deps
arch_lib=usr/lib/x86_64-linux-gnu

deps_env() {
  # Carried Debian packages, unpacked once into a prefix (only what the machine lacks is used:
  # the prefix comes after the system in the loader path).
  if [ -d .gpu-deps ] && [ ! -f "$prefix/.unpacked" ]; then
    mkdir -p "$prefix"
    for f in .gpu-deps/*.deb; do dpkg -x "$f" "$prefix"; done
    touch "$prefix/.unpacked"
  fi
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$prefix/$arch_lib:$prefix/$arch_lib/openblas-pthread"
  cudnn_root=""
  if ! ls /usr/include/cudnn_version.h /usr/local/cuda/include/cudnn_version.h >/dev/null 2>&1; then
    # PyTorch's wheel of cuDNN: headers and libraries under site-packages/nvidia/cudnn.
    cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
    [ -n "$cudnn_root" ] && export LD_LIBRARY_PATH="$cudnn_root/lib:$LD_LIBRARY_PATH"
  fi
}

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
  local rc=0
  for t in "$build"/tests/test_gpu_*; do
    [ -x "$t" ] || continue
    for tool in memcheck racecheck initcheck; do
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
