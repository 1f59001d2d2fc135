#!/usr/bin/env bash
# scripts/test.sh: run the whole test suite (ctest over every Catch2 case), then list each skipped
# case with its reason (no GPU, no real MNIST, no Python safetensors). Extra arguments go to ctest,
# e.g. scripts/test.sh -L gpu, scripts/test.sh -R Adam.
#
# scripts/test.sh --full (what .ci/run runs) then adds the reliability stages (docs/RELIABILITY.md):
# the CPU suite under ASan + UBSan + LSan and the loader threads under TSan (scripts/sanitize.sh),
# and 30 s of every fuzz target (scripts/fuzz.sh). Each stage runs even when one before failed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
full=0
if [ "${1:-}" = --full ]; then
  full=1
  shift
fi
build_dir=${BUILD_DIR:-$root/build}
if [ ! -f "$build_dir/CTestTestfile.cmake" ]; then
  echo "test.sh: no build in $build_dir: run scripts/setup.sh first" >&2
  exit 2
fi
ctest --test-dir "$build_dir" --output-on-failure --timeout 1800 -j "$(nproc)" "$@"
rc=$?
log="$build_dir/Testing/Temporary/LastTest.log"
if [ -f "$log" ] && grep -q "^SKIPPED:" "$log"; then
  echo
  echo "Skipped test cases and why:"
  grep -h "^SKIPPED:" "$log" | sort | uniq -c | sed 's/^/  /'
fi
if ((full)); then
  stages=("ctest: exit $rc")
  for stage in "sanitize.sh address" "sanitize.sh thread" "fuzz.sh"; do
    echo
    echo "== test.sh --full: scripts/$stage"
    t0=$SECONDS
    # shellcheck disable=SC2086  # the stage's words
    "$root"/scripts/$stage
    stage_rc=$?
    stages+=("$stage: exit $stage_rc, $((SECONDS - t0)) s")
    ((stage_rc == 0)) || rc=1
  done
  echo
  echo "test.sh --full:"
  printf '  %s\n' "${stages[@]}"
fi
exit $rc
