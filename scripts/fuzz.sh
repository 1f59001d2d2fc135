#!/usr/bin/env bash
# scripts/fuzz.sh: builds the libFuzzer targets (fuzz/, with clang, in ./build-fuzz) and runs them
# one after the other, never two at once, each from its seeds (fuzz/seeds/, plus the checkpoint
# pairs and images fuzz_make_seeds writes) and its corpus from earlier runs (build-fuzz/corpus/,
# not in git).
#
#   scripts/fuzz.sh                            # every target for 30 s (what .ci/run does)
#   scripts/fuzz.sh --seconds 600 idx          # one target for 10 minutes
#   scripts/fuzz.sh --seconds 900 --runs 1000000 --jobs checkpoint
#                                              # a long campaign: until 10^6 executions or the
#                                              # time, as one libFuzzer job (-jobs=1), its log in
#                                              # build-fuzz/logs/<target>/fuzz-0.log
#
# Every run uses -rss_limit_mb=2048 -timeout=10. It fails when a target finds anything (a crash,
# a leak, a sanitizer report, an input running over 10 s or a process over 2 GB): the input is
# kept in build-fuzz/artifacts/<target>/; `build-fuzz/fuzz_<target> FILE` replays it, and it
# becomes a regression test in the Catch2 suite once fixed (docs/RELIABILITY.md).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
all_targets=(idx idx_gzip safetensors checkpoint predict_image)
seconds=30
runs=0
use_jobs=0
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) use_jobs=1; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

# --- build ---------------------------------------------------------------------------------------
cxx=${OCTA_FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null; then cxx=$c; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz.sh: no clang++ (install clang-14 and libclang-rt-14-dev: scripts/setup.sh)" >&2
  exit 1
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$SECONDS
cmake -S "$root/fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" >/dev/null || exit 1
cmake --build "$build" -j "${JOBS:-$(nproc)}" || exit 1
"$build/fuzz_make_seeds" "$build/seeds" >/dev/null || exit 1
echo "== fuzz.sh: built in $((SECONDS - start)) s ($cxx)"

# --- run -----------------------------------------------------------------------------------------
status=0
summary=()
for t in "${targets[@]}"; do
  case "$t" in
    idx | idx_gzip) seeds=("$root/fuzz/seeds/idx"); dict=() ;;
    safetensors) seeds=("$root/fuzz/seeds/safetensors"); dict=(-dict="$root/fuzz/safetensors.dict") ;;
    checkpoint) seeds=("$build/seeds/checkpoint"); dict=(-dict="$root/fuzz/safetensors.dict") ;;
    predict_image) seeds=("$build/seeds/predict_image"); dict=(-dict="$root/fuzz/image.dict") ;;
    *) echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2 ;;
  esac
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  logs=$build/logs/$t
  mkdir -p "$corpus" "$artifacts" "$logs"
  flags=(-rss_limit_mb=2048 -timeout=10 -max_total_time="$seconds" -print_final_stats=1
         -artifact_prefix="$artifacts/" "${dict[@]}")
  ((runs > 0)) && flags+=(-runs="$runs")
  log=$logs/last.log
  limit="${seconds} s"
  ((runs > 0)) && limit="$limit or $runs runs"
  echo "== fuzz.sh: $t for $limit: fuzz_$t ${flags[*]} $corpus ${seeds[*]}"
  t0=$SECONDS
  if ((use_jobs)); then
    # One job: libFuzzer runs it as a child process, its output in fuzz-0.log in the cwd, and
    # prints that log when the job ends.
    echo "   (as one job: -jobs=1 -workers=1, in $logs)"
    (cd "$logs" && rm -f fuzz-0.log && "$build/fuzz_$t" -jobs=1 -workers=1 "${flags[@]}" \
      "$corpus" "${seeds[@]}" >"$log" 2>&1)
    rc=$?
  else
    "$build/fuzz_$t" "${flags[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1
    rc=$?
  fi
  execs=$(grep -h "stat::number_of_executed_units" "$log" | tail -n 1 | awk '{print $2}')
  found=$(find "$artifacts" -type f | wc -l)
  line="$t: ${execs:-?} executions in $((SECONDS - t0)) s, corpus $(find "$corpus" -type f | wc -l) inputs, exit $rc, $found findings (crash/leak/timeout/oom files in $artifacts)"
  summary+=("$line")
  if ((rc != 0 || found > 0)); then
    status=1
    echo "fuzz.sh: $t FOUND SOMETHING; the end of its log ($log):" >&2
    tail -n 60 "$log" >&2
  fi
  echo "   $line"
done
echo "== fuzz.sh summary"
printf '   %s\n' "${summary[@]}"
exit $status
