#!/usr/bin/env bash
# scripts/gpu/build.sh: configure (sm_90, Release, Ninja) and build only what a GPU run needs, on
# the lent GPU machine, against the carried packages (scripts/gpu/env.sh). Used by first-light.sh
# and second-light.sh; also on its own:
#   bash scripts/gpu/build.sh                      # octa, train_gpu, bench_gpu_epoch, bench_kernels,
#                                                  # every test_gpu_* and octa_selftest (where they exist)
#   bash scripts/gpu/build.sh train_gpu 'test_gpu_*'  # only these targets (and what they need);
#                                                  # * matches any target name part
# Environment: BUILD_DIR (default build-gpu/), BUILD_JOBS (default: all cores), OCTA_CMAKE_ARGS
# (more cmake arguments for the first configure, e.g. -DOCTA_PTXAS_VERBOSE=ON). Targets that the
# build tree does not define are named and skipped (octa_selftest exists only from issue 11 on).
# Prints "build.sh: target NAME built|failed|not-defined" for each target, then exits 0 only when
# every defined target was built. Where the build fails only on warnings made errors (a compiler
# that CI does not use), it builds again with warnings as warnings and says so (WARNINGS-NOT-ERRORS
# FALLBACK; BUILD_WERROR_FALLBACK=0 to turn off).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
build=${BUILD_DIR:-$root/build-gpu}
jobs=${BUILD_JOBS:-$(nproc)}
# shellcheck source=scripts/gpu/env.sh
source "$root/scripts/gpu/env.sh"
deps_env

echo "build.sh: nvcc $(command -v nvcc || echo 'not found'); cmake $(command -v cmake || echo 'not found');" \
  "cuDNN ${cudnn_library:-from the system}; $jobs jobs"
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
  # shellcheck disable=SC2086  # OCTA_CMAKE_ARGS: extra cmake arguments, split at spaces
  octa_cmake_configure "$build" ${OCTA_CMAKE_ARGS:-} || { echo "build.sh: configure failed"; exit 1; }
else
  # Re-run configure so that new sources and targets (file(GLOB ... CONFIGURE_DEPENDS)) are seen;
  # its summary line says what was found.
  conf=$(cmake "$build" 2>&1) || { echo "$conf"; echo "build.sh: re-configure failed"; exit 1; }
  echo "$conf" | grep -E '^-- octa '
  echo "$conf" | grep -iE 'warning|error' | head -n 20
fi

defined=$(cmake --build "$build" --target help 2>/dev/null | sed -e 's/^\.\.\. //' -e 's/:.*//')
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(octa train_gpu bench_gpu_epoch bench_kernels octa_selftest 'test_gpu_*')
targets=()
for w in "${wanted[@]}"; do
  # A name, or a pattern with * (e.g. 'test_gpu_*': every such target the tree defines).
  found=$(echo "$defined" | grep -xE -- "$(printf '%s' "$w" | sed 's/\*/[A-Za-z0-9_]*/g')" | sort -u)
  if [ -n "$found" ]; then
    while read -r t; do targets+=("$t"); done <<<"$found"
  else
    echo "build.sh: target $w not-defined"
  fi
done
[ ${#targets[@]} -gt 0 ] || { echo "build.sh: nothing to build"; exit 1; }

keep_going=(-k 0)  # ninja: build everything that does not depend on a failed step
[ -f "$build/build.ninja" ] || keep_going=(-k)
echo "+ cmake --build $build -j $jobs --target ${targets[*]} -- ${keep_going[*]}"
log=$(mktemp)
cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- "${keep_going[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# Warnings made errors by a compiler CI does not use (the machine's gcc or nvcc may warn where
# Debian's do not): rather than lose the GPU run, build again with warnings left as warnings
# (scripts/gpu/no-werror.sh as the compiler launcher), and say so loudly; the warnings must then be
# fixed here. BUILD_WERROR_FALLBACK=0 turns this off.
werror='\[-Werror=[^]]*\]|error #[0-9]+-D|all warnings being treated as errors'
if [ "$rc" -ne 0 ] && [ "${BUILD_WERROR_FALLBACK:-1}" = 1 ] && grep -qE "$werror" "$log"; then
  echo "build.sh: the build failed on warnings made errors:"
  grep -E "$werror" "$log" | grep -v 'all warnings being treated' | sort -u | head -n 40 | sed 's/^/  /'
  echo "build.sh: WARNINGS-NOT-ERRORS FALLBACK: building again with -Werror dropped" \
    "(scripts/gpu/no-werror.sh); fix the warnings above before this counts as a clean build"
  launcher=$root/scripts/gpu/no-werror.sh
  cmake "$build" -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" -DCMAKE_CUDA_COMPILER_LAUNCHER="$launcher" \
    >/dev/null
  cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- "${keep_going[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
fi
# Which targets failed: every one where the whole build succeeded is built; otherwise a target
# failed when a failed step (ninja's "FAILED: [code=N] OUTPUT") belongs to it, to the library
# every target links (octa), to the GPU module (octa_gpu: the GPU executables link it, train_gpu
# loads it), or, for a test, to the tests' support library.
failed=$(sed -n 's/^FAILED: \(\[code=[0-9]*\] \)\{0,1\}//p' "$log")
rm -f "$log"
target_failed() {
  [ "$rc" -eq 0 ] && return 1
  [ -z "$failed" ] && return 0  # failed without naming a step (make, or cmake itself)
  local owners="octa octa_gpu $1"
  case $1 in test_*) owners="$owners octa_test_support" ;; esac
  local o
  for o in $owners; do
    echo "$failed" | grep -qE "(^|/)$o(\.dir/|$)|CMakeFiles/$o\.dir/|lib$o\.(a|so)$" && return 0
  done
  return 1
}
status=0
for t in "${targets[@]}"; do
  if target_failed "$t"; then
    echo "build.sh: target $t failed"
    status=1
  else
    echo "build.sh: target $t built"
  fi
done
[ "$rc" -eq 0 ] || echo "build.sh: the build exited $rc"
exit $status
