#!/usr/bin/env bash
# scripts/sanitize.sh: the CPU test suite under the sanitizers, each in a build directory of its
# own (the CPU engine: -DOCTA_ENABLE_CUDA=OFF; the kernels have tests/emulation/run_sanitized.sh).
#
#   scripts/sanitize.sh address     # ASan + UBSan + LSan over every CPU test, in ./build-asan
#   scripts/sanitize.sh thread      # TSan over the loader threads (prefetcher, trainer), ./build-tsan
#   scripts/sanitize.sh             # both
#   JOBS=2 scripts/sanitize.sh address -R checkpoint   # extra arguments go to ctest
#
# Every report of every process (the tests, and the train_gpu children they start) is written to
# a file under BUILD/sanitizer-reports instead of stderr; the stage fails when ctest fails or when
# any report file exists, so a report inside a child whose exit status a test expected to be
# non-zero is still counted. OpenBLAS and OpenMP run one thread under TSan: they are not
# instrumented, and TSan would take their correct hand-offs for races.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${JOBS:-$(nproc)}
stages=()
case "${1:-}" in
  -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
  address | thread) stages=("$1"); shift ;;
  "" | -*) stages=(address thread) ;;
  *) echo "sanitize.sh: unknown sanitizer '$1' (address or thread)" >&2; exit 2 ;;
esac

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

run_stage() {
  local sanitizer=$1
  shift
  local dir short
  case "$sanitizer" in
    address) short=asan ;;
    thread) short=tsan ;;
  esac
  dir=${BUILD_DIR_PREFIX:-$root/build}-$short
  local start=$SECONDS
  echo "== sanitize.sh $sanitizer: configuring and building in $dir"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCTA_ENABLE_CUDA=OFF \
    -DOCTA_BUILD_BENCH=OFF -DOCTA_SANITIZE="$sanitizer" "${launcher[@]}" >/dev/null || return 1
  local targets=()
  local ctest_filter=()
  if [ "$sanitizer" = thread ]; then
    # The code with threads of its own: the loader threads (Prefetcher) and the training loop
    # that drives them, with several loader threads.
    targets=(--target test_data_prefetcher test_data_loader test_train test_interrupt)
    ctest_filter=(-R "prefetcher|loader|loader threads|interrupt")
  fi
  cmake --build "$dir" -j "$jobs" "${targets[@]}" || return 1
  local build_s=$((SECONDS - start))
  # A test executable that crashes before main lists no tests, so ctest would just see none of
  # its cases: each one built must list its cases.
  local exe
  for exe in "$dir"/tests/test_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    if [ -z "$(OCTA_NO_BLAS_REEXEC=1 "$exe" --list-test-names-only 2>/dev/null)" ]; then
      echo "sanitize.sh $sanitizer: $exe lists no test cases (it crashed at start?)" >&2
      return 1
    fi
  done

  local reports=$dir/sanitizer-reports
  rm -rf "$reports" && mkdir -p "$reports"
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:log_path=$reports/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
  export LSAN_OPTIONS="log_path=$reports/lsan"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan"
  if [ "$sanitizer" = thread ]; then
    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
  fi
  echo "== sanitize.sh $sanitizer: ctest in $dir"
  ctest --test-dir "$dir" --output-on-failure --timeout 1800 -j "$jobs" "${ctest_filter[@]}" "$@"
  local rc=$?
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS OPENBLAS_NUM_THREADS OMP_NUM_THREADS
  local found
  found=$(find "$reports" -type f | wc -l)
  if [ "$found" -gt 0 ]; then
    echo "sanitize.sh $sanitizer: $found sanitizer report(s):" >&2
    for f in "$reports"/*; do
      echo "--- $f" >&2
      head -n 60 "$f" >&2
    done
    rc=1
  fi
  echo "== sanitize.sh $sanitizer: ctest exit $rc, $found reports; build ${build_s} s, tests $((SECONDS - start - build_s)) s"
  return $rc
}

status=0
for s in "${stages[@]}"; do
  run_stage "$s" "$@" || status=1
done
exit $status
