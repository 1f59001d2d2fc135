#!/usr/bin/env bash
# tests/emulation/run_sanitized.sh: builds the kernel emulation test (emul_kernels_test) with a
# sanitizer, in a build directory of its own, and runs every emulated kernel test under it. Not
# part of CI (ASan takes a few minutes, TSan longer); run it after changing a kernel or the
# emulator.
#
#   tests/emulation/run_sanitized.sh address            # ASan + UBSan, in ./build-emul-address
#   tests/emulation/run_sanitized.sh thread             # TSan, in ./build-emul-thread
#   tests/emulation/run_sanitized.sh thread "[conv]"    # only some cases (a Catch2 test spec)
#   tests/emulation/run_sanitized.sh thread "[small]"   # the case table's small cases only (its
#                                                       # model-size ones take long under TSan)
#   BUILD_DIR=/tmp/san JOBS=2 tests/emulation/run_sanitized.sh address
#
# Under TSan, two blocks of each launch run at once (OCTA_EMUL_BLOCKS_IN_FLIGHT=2), so it also
# sees races between blocks (two blocks writing one element), not only within a block. OpenBLAS
# runs on one thread: its own threads are not instrumented, and TSan would report its (correct)
# hand-offs as races in the CPU reference. The exit status is the test's: non-zero on the first
# sanitizer report (halt_on_error) or a failed check.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sanitizer=${1:-}
case "$sanitizer" in
  address | thread) ;;
  *)
    sed -n '2,19p' "$0"
    exit 2
    ;;
esac
shift
build_dir=${BUILD_DIR:-$root/build-emul-$sanitizer}
jobs=${JOBS:-$(nproc)}

cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCTA_BUILD_BENCH=OFF \
  -DOCTA_EMUL_SANITIZE="$sanitizer" >/dev/null
cmake --build "$build_dir" -j "$jobs" --target emul_kernels_test

export OPENBLAS_NUM_THREADS=1
export OCTA_EMUL_WATCHDOG_S=${OCTA_EMUL_WATCHDOG_S:-900}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
if [ "$sanitizer" = thread ]; then
  export OCTA_EMUL_BLOCKS_IN_FLIGHT=${OCTA_EMUL_BLOCKS_IN_FLIGHT:-2}
fi
echo "run_sanitized.sh: $sanitizer: $build_dir/tests/emul_kernels_test $*"
exec "$build_dir/tests/emul_kernels_test" --durations yes "$@"
