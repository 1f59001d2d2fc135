# shellcheck shell=bash
# scripts/gpu/env.sh: sourced, not run, on the lent GPU machine by scripts/gpu/run.sh and
# scripts/profile/{ncu,nsys}.sh:
#   source scripts/gpu/env.sh && deps_env
# deps_env unpacks the carried Debian packages (.gpu-deps/, from scripts/gpu/prepare.sh) once into
# $prefix, puts their libraries on LD_LIBRARY_PATH after the system's, and, where the system has no
# cuDNN headers, finds PyTorch's cuDNN wheel: it sets cudnn_root (empty when the system's cuDNN is
# used) and puts its lib/ first on LD_LIBRARY_PATH. Sets prefix and arch_lib for the caller.
prefix=/tmp/octa-deps
arch_lib=usr/lib/x86_64-linux-gnu
octa_env_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

deps_env() {
  # Carried Debian packages, unpacked once into a prefix (only what the machine lacks is used:
  # the prefix comes after the system in the loader path).
  if [ -d "$octa_env_root/.gpu-deps" ] && [ ! -f "$prefix/.unpacked" ]; then
    mkdir -p "$prefix"
    for f in "$octa_env_root"/.gpu-deps/*.deb; do dpkg -x "$f" "$prefix"; done
    touch "$prefix/.unpacked"
  fi
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$prefix/$arch_lib:$prefix/$arch_lib/openblas-pthread"
  cudnn_root=""
  # (the places cmake/FindCUDNN.cmake looks first)
  if [ ! -e /usr/include/cudnn_version.h ] && [ ! -e /usr/local/cuda/include/cudnn_version.h ]; then
    # PyTorch's wheel of cuDNN: headers and libraries under site-packages/nvidia/cudnn.
    cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
    if [ -n "$cudnn_root" ]; then export LD_LIBRARY_PATH="$cudnn_root/lib:$LD_LIBRARY_PATH"; fi
  fi
  return 0  # callers may run under set -e
}

# For scripts/profile/*.sh: their positional arguments [model a|b] [conv fused|fused-fp32|cudnn]
# [batch] and environment (BUILD_DIR, DATA_DIR) -> model, conv, batch, build, data, bench
# (bench_gpu_epoch).
# The caller shifts the three positional arguments itself.
# shellcheck disable=SC2034  # the variables are for the caller
profile_args() {
  model=${1:-a}
  conv=${2:-fused}
  batch=${3:-64}
  build=${BUILD_DIR:-$octa_env_root/build-gpu}
  data=${DATA_DIR:-$octa_env_root/data}
  bench=$build/bench/bench_gpu_epoch
}
