#!/usr/bin/env bash
# scripts/test.sh: run the whole test suite (ctest over every Catch2 case), then list each skipped
# case with its reason (no GPU, no real MNIST, no Python safetensors). Extra arguments go to ctest,
# e.g. scripts/test.sh -L gpu, scripts/test.sh -R Adam.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
exit $rc
