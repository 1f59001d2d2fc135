# shellcheck shell=bash
# scripts/gpu/sanitize.sh: compute-sanitizer over octa's GPU test executables, for first-light.sh
# and second-light.sh (sourced after env.sh and stages.sh; used inside a stage, so every run is
# under tmo's timeout and lands in commands.tsv):
#
#   sanitize TOOL DIR EXE [CASE]               one run (a whole executable, or one Catch2 case);
#                                              its log is $work/DIR/NN_<exe>_<case>.log
#   sanitize_cases TOOL DIR EXE [--only] PATTERN...
#                                              EXE's cases one by one: those matching the patterns
#                                              (grep -E, in that order) first, then the rest (not
#                                              with --only), while the stage has 10 s or more left
#                                              (then stage_note says where it stopped)
#
# TOOL: memcheck, racecheck, initcheck or synccheck. A run exits 99 when the tool reports an error
# (--error-exitcode 99); scripts/gpu/summarize.py reads each log's "ERROR SUMMARY: N errors".
# SANITIZE_CASE_S (default 150) caps one run.

# shellcheck disable=SC2154  # work: stages.sh's

# catch_spec NAME: a Catch2 test name escaped for its command line (',' '[' ']' '\' are special).
catch_spec() { printf '%s' "$1" | sed -e 's/[][\\,]/\\&/g'; }

# The OpenBLAS core family the executables would re-execute themselves with (engine/cpu/blas.cpp):
# set up front under the sanitizer, so that no process re-executes itself there.
openblas_core() {
  local f
  f=$(grep -m1 '^flags' /proc/cpuinfo)
  if [[ $f == *avx512f* && $f == *avx512bw* && $f == *avx512vl* && $f == *avx512dq* ]]; then
    echo SkylakeX
  elif [[ $f == *avx2* && $f == *fma* ]]; then
    echo Haswell
  fi
}

# sanitize TOOL DIR EXE [CASE]: one compute-sanitizer run, its log in $work/DIR/.
sanitize() {
  local tool=$1 dir=$2 exe=$3 case_name=${4:-} san n label log core args=()
  san=$(find_tool compute-sanitizer) || return 1
  label="$tool $(basename "$exe")${case_name:+: $case_name}"
  n=$(find "$work/$dir" -name '*.log' | wc -l)
  log=$work/$dir/$(printf '%02d' $((n + 1)))_$(file_name "$(basename "$exe")${case_name:+_$case_name}").log
  [ -n "$case_name" ] && args=("$(catch_spec "$case_name")")
  core=$(openblas_core)
  echo "=== $label -> $(basename "$log")"
  # (no stdbuf preload under the sanitizer: it injects itself into the program)
  TMO_NO_STDBUF=1 tmo "$label" "${SANITIZE_CASE_S:-150}" env ${core:+OPENBLAS_CORETYPE=$core} \
    OCTA_NO_BLAS_REEXEC=1 "$san" --tool "$tool" --error-exitcode 99 --print-limit 30 "$exe" \
    "${args[@]}" >"$log" 2>&1
  local rc=$?
  tail -n 8 "$log"
  return $rc
}

# sanitize_cases TOOL DIR EXE [--only] PATTERN...: EXE's test cases one by one, those matching the
# patterns (grep -E, in that order of priority) first, then the rest (with --only: not the rest).
sanitize_cases() {
  local tool=$1 dir=$2 exe=$3 rest=.
  shift 3
  [ "${1:-}" = --only ] && { rest=""; shift; }
  local names ordered=() p
  names=$("$exe" --list-test-names-only 2>/dev/null | sed -e 's/^ *//' -e '/^$/d' | grep -v 'test cases$')
  for p in "$@" $rest; do
    while read -r t; do
      [ -n "$t" ] || continue
      local seen=0 o
      for o in "${ordered[@]}"; do [ "$o" = "$t" ] && seen=1 && break; done
      [ $seen -eq 0 ] && ordered+=("$t")
    done < <(echo "$names" | grep -E -- "$p")
  done
  local rc=0 t
  for t in "${ordered[@]}"; do
    if [ "$(stage_left)" -lt 10 ]; then
      # As far as time allows: what ran stands; the note says where it stopped.
      stage_note="time ran out before $(basename "$exe"): $t"
      echo "$stage_note"
      return $rc
    fi
    sanitize "$tool" "$dir" "$exe" "$t" || rc=$?
  done
  return $rc
}

