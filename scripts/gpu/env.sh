# shellcheck shell=bash
# scripts/gpu/env.sh: sourced, not run, on the lent GPU machine by scripts/gpu/{build,first-light,
# second-light}.sh and scripts/profile/{ncu,nsys}.sh:
#   source scripts/gpu/env.sh && deps_env
#
# deps_env
#   - unpacks the carried Debian packages (.gpu-deps/, from scripts/gpu/prepare.sh) once into
#     $prefix (scripts/gpu/unpack_debs.py: Python's standard library, so no dpkg is needed there);
#   - puts the CUDA toolkit's bin/ on PATH where nvcc is not on it yet;
#   - finds cuDNN: the system's where FindCUDNN would find it (cudnn_version.h and an unversioned
#     libcudnn.so), else PyTorch's wheel (nvidia-cudnn-cu13: site-packages/nvidia/.../include and
#     lib/libcudnn.so.9, which has no unversioned libcudnn.so, so find_library alone cannot find
#     it): sets cudnn_include and cudnn_library (both empty when the system's is used);
#   - LD_LIBRARY_PATH: cuDNN's lib/, the CUDA toolkit's lib64, then the carried packages' libraries
#     (after anything already on it). The value before is kept in octa_orig_ld_library_path, for
#     programs that must not see these (PyTorch, which brings its own cuDNN and cuBLAS).
# octa_cmake_configure BUILD_DIR [more cmake args]: configures octa for sm_90 against all of that
# (Ninja where it exists, else Makefiles; Release).
# find_tool NAME: compute-sanitizer, ncu, ... on PATH or in their usual folders.
# profile_args: the profile scripts' shared arguments (below).
#
# Sets prefix, arch_lib, octa_python (python3, else /opt/torch/.venv/bin/python3) for the caller.
prefix=${OCTA_DEPS_PREFIX:-/tmp/octa-deps}
arch_lib=usr/lib/x86_64-linux-gnu
octa_env_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
octa_python=$(command -v python3 || echo /opt/torch/.venv/bin/python3)
export octa_orig_ld_library_path=${octa_orig_ld_library_path-${LD_LIBRARY_PATH-}}  # (children too)
cudnn_include=""
cudnn_library=""

# The CUDA toolkit's root (from nvcc), printed; empty where there is no nvcc.
cuda_root() {
  local nvcc
  nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] && (cd "$(dirname "$(readlink -f "$nvcc")")/.." && pwd)
}

# PyTorch's cuDNN wheel, as two lines: its include directory and its libcudnn.so*; nothing where
# there is no wheel. Searches every sys.path entry's nvidia/ folder (the wheel's layout has changed
# between CUDA majors, so no fixed path is assumed).
find_cudnn_wheel() {
  "$octa_python" - <<'EOF' 2>/dev/null || true
import glob, os, sys
for base in sys.path:
    root = os.path.join(base or ".", "nvidia")
    if not os.path.isdir(root):
        continue
    for header in sorted(glob.glob(os.path.join(root, "**", "cudnn_version.h"), recursive=True)):
        inc = os.path.dirname(header)
        libdir = os.path.join(os.path.dirname(inc), "lib")
        libs = sorted(glob.glob(os.path.join(libdir, "libcudnn.so*")), key=len)
        if libs:
            print(inc)
            print(libs[0])
            sys.exit(0)
EOF
}

deps_env() {
  # Carried Debian packages, unpacked once (the marker names the package set, so a changed
  # .gpu-deps/ is unpacked again).
  if [ -d "$octa_env_root/.gpu-deps" ]; then
    local stamp
    stamp=$(cd "$octa_env_root/.gpu-deps" && printf '%s\n' *.deb | cksum | cut -d' ' -f1)
    if [ "$(cat "$prefix/.unpacked" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$prefix" && mkdir -p "$prefix"
      if "$octa_python" "$octa_env_root/scripts/gpu/unpack_debs.py" "$prefix" \
        "$octa_env_root"/.gpu-deps/*.deb; then
        echo "$stamp" >"$prefix/.unpacked"
      else
        echo "env.sh: unpacking .gpu-deps into $prefix failed (see above)" >&2
      fi
    fi
  fi
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
  local cuda lib_path=""
  cuda=$(cuda_root)
  # The system's cuDNN where cmake/FindCUDNN.cmake finds it: cudnn_version.h in an include folder
  # it searches and an unversioned libcudnn.so in a library folder it searches.
  local d sys_header="" sys_lib=""
  for d in /usr/include /usr/local/cuda/include /usr/include/x86_64-linux-gnu ${cuda:+"$cuda/include"}; do
    [ -e "$d/cudnn_version.h" ] && sys_header=$d
  done
  for d in /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64 ${cuda:+"$cuda/lib64"}; do
    [ -e "$d/libcudnn.so" ] && sys_lib=$d
  done
  if [ -z "$sys_header" ] || [ -z "$sys_lib" ]; then
    local found
    found=$(find_cudnn_wheel)
    if [ -n "$found" ]; then
      cudnn_include=$(echo "$found" | sed -n 1p)
      cudnn_library=$(echo "$found" | sed -n 2p)
      lib_path=$(dirname "$cudnn_library")
    fi
  fi
  if [ -n "$cuda" ]; then
    for d in "$cuda/lib64" "$cuda/targets/x86_64-linux/lib"; do
      [ -d "$d" ] && lib_path=${lib_path:+$lib_path:}$d && break
    done
  fi
  lib_path=${lib_path:+$lib_path:}$prefix/$arch_lib:$prefix/$arch_lib/openblas-pthread
  export LD_LIBRARY_PATH="${octa_orig_ld_library_path:+$octa_orig_ld_library_path:}$lib_path"
  return 0  # callers may run under set -e
}

# find_tool NAME: NAME on PATH, else in the CUDA toolkit's and Nsight's usual folders; prints its
# path (nothing where none exists).
find_tool() {
  local c
  c=$(command -v "$1" 2>/dev/null) && { echo "$c"; return 0; }
  for c in /usr/local/cuda/bin/"$1" /usr/local/cuda/compute-sanitizer/"$1" \
    /opt/nvidia/nsight-compute/*/"$1" /usr/local/cuda/nsight-compute-*/"$1"; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

# octa_cmake_configure BUILD_DIR [cmake args...]: configure for the lent GPU (after deps_env).
octa_cmake_configure() {
  local build=$1
  shift
  local args=(-S "$octa_env_root" -B "$build" -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$prefix/usr")
  local ninja
  ninja=$(command -v ninja || true)
  [ -z "$ninja" ] && [ -x /opt/torch/.venv/bin/ninja ] && ninja=/opt/torch/.venv/bin/ninja
  if [ -f "$build/CMakeCache.txt" ]; then
    :  # keep the generator the build directory was made with
  elif [ -n "$ninja" ]; then
    args+=(-G Ninja -DCMAKE_MAKE_PROGRAM="$ninja")
  fi
  # Debian keeps some headers in the multiarch folder (openssl/configuration.h, curl/, zconf.h,
  # cblas.h), which the compiler searches only under /usr, not under the prefix.
  if [ -d "$prefix/usr/include/x86_64-linux-gnu" ]; then
    args+=(-DCMAKE_CXX_FLAGS="-isystem $prefix/usr/include/x86_64-linux-gnu"
      -DCMAKE_CUDA_FLAGS="-isystem $prefix/usr/include/x86_64-linux-gnu")
  fi
  # Debian's OpenBLAS lives in openblas-pthread/ (its libopenblas.so in the usual folder is an
  # update-alternatives link, which unpacking does not make).
  local blas=$prefix/$arch_lib/openblas-pthread/libopenblas.so
  [ -e "$blas" ] && args+=(-DBLAS_LIBRARIES="$blas")
  [ -n "$cudnn_include" ] && args+=(-DCUDNN_INCLUDE_DIR="$cudnn_include"
    -DCUDNN_LIBRARY="$cudnn_library")
  printf '+ cmake'
  printf ' %q' "${args[@]}" "$@"
  echo
  cmake "${args[@]}" "$@"
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
