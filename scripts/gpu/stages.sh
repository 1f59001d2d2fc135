# shellcheck shell=bash
# scripts/gpu/stages.sh: the time-boxed stage runner of first-light.sh and second-light.sh
# (sourced, not run). A run is a list of stages, each a shell function stage_NAME run under its
# own deadline; every command in it runs under `timeout`, so no stage can overrun its budget and a
# slow one cannot eat a later one's minutes. After each stage everything is summarised and packed
# into $OUT, so a run stopped at any moment still returns what it had learned.
#
#   stages_init NAME TOTAL_S       work folder gpu-out/NAME/ (emptied), $OUT (default
#                                  gpu-out/NAME-out/), the deadline TOTAL_S from now
#   plan NAME WANT_S FLOOR_S       declare the next stage: it wants WANT_S at most; FLOOR_S, the
#                                  least it needs to be worth running, is kept free for it by
#                                  every stage before it
#   run_plan [NAME...]             run the declared stages in order (with names: only those, and
#                                  env and build, which always run), packing after each
#   tmo LABEL CAP_S CMD...         (in a stage) CMD under timeout for min(CAP_S, the stage's time
#                                  left), stdout line-buffered; its outcome goes to commands.tsv
#                                  and the progress log
#   stage_left                     (in a stage) seconds until the stage's deadline
#   command_status LABEL           (in a stage) ok, failed, timeout or skipped: the last tmo LABEL
#   stage_skip REASON              (in a stage) return 125 with a reason: the stage is "skipped"
#   note TEXT                      a line on stdout and in progress.log
#
# Budget of stage i: min(WANT_i, time left - the FLOOR_j of every later selected stage - the
# packing reserve), but at least its own FLOOR_i while that much time is left (the stages come in
# order of importance); below half its floor (5 s at least) the stage is skipped ("no time"), as it
# could only time out. A stage function returns 0 (ok),
# 124 (something in it timed out), 125 (skipped, with stage_note saying why) or anything else
# (failed). Files written (all inside the work folder, packed into $OUT/NAME.tar.gz):
#   meta.tsv       key<TAB>value: script, started, commit, budget, stages asked for, overrides
#   stages.tsv     name status rc seconds budget note        (one line per stage, as each ends)
#   commands.tsv   stage label status rc seconds limit       (one line per tmo command)
#   progress.log   what was printed on stdout, with seconds since the start
#   logs/NN-NAME.log  each stage's whole output
# and summary.md + summary.json (scripts/gpu/summarize.py), copied beside the archive.
#
#   probe_machine DIR              (in a stage) DIR/probe.json (scripts/gpu/probe_env.py: driver,
#                                  runtime, cuBLAS and cuDNN versions, the device) and DIR/gpu.csv
#                                  (nvidia-smi's query; a hung one is stopped at 20 s)
# Sourcing this sources scripts/gpu/env.sh (first) and scripts/gpu/sanitize.sh (last) too.
_stages_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/gpu/env.sh
source "$_stages_dir/env.sh"
# shellcheck disable=SC2154  # octa_env_root, octa_python, octa_orig_ld_library_path: env.sh's
sl_pack_reserve=15

note() { printf '[%4ds] %s\n' "$(($(date +%s) - sl_t0))" "$*" | tee -a "$work/progress.log" >&3; }

stages_init() {
  sl_name=$1
  sl_total=$2
  sl_t0=$(date +%s)
  sl_deadline=$((sl_t0 + sl_total))
  work=$octa_env_root/gpu-out/$sl_name
  out=${OUT:-$octa_env_root/gpu-out/$sl_name-out}
  rm -rf "$work" && mkdir -p "$work/logs" "$out"
  rm -f "$out/$sl_name.tar.gz" "$out"/summary.* "$out"/*.part
  : >"$work/stages.tsv"
  : >"$work/commands.tsv"
  exec 3>&1  # fd 3: the run's own stdout (the device tool returns its end); stages log to files
  plan_names=()
  plan_want=()
  plan_floor=()
  local commit commit_source
  if commit=$(git -C "$octa_env_root" rev-parse HEAD 2>/dev/null); then
    commit_source=git
    [ -n "${OCTA_COMMIT:-}" ] && [ "${OCTA_COMMIT}" != "$commit" ] &&
      commit_source="git (OCTA_COMMIT=$OCTA_COMMIT differs)"
  elif [ -n "${OCTA_COMMIT:-}" ]; then
    commit=$OCTA_COMMIT
    commit_source="OCTA_COMMIT (no git checkout here)"
  else
    commit=unknown
    commit_source="none (no git checkout here, no OCTA_COMMIT)"
  fi
  local dirty=""
  dirty=$(git -C "$octa_env_root" status --porcelain --untracked-files=no 2>/dev/null | head -n 20 | tr '\n' ' ')
  {
    printf 'script\t%s\n' "scripts/gpu/$sl_name.sh"
    printf 'started\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'commit\t%s\n' "$commit"
    printf 'commit_source\t%s\n' "$commit_source"
    printf 'dirty\t%s\n' "$dirty"
    printf 'budget_s\t%s\n' "$sl_total"
    printf 'host\t%s\n' "$(hostname 2>/dev/null || echo '?')"
    printf 'overrides\t%s\n' "$(env | grep -E '^(FL_|SL_|BUILD_|NCU_|OCTA_)' | sort | tr '\n' ' ')"
  } >"$work/meta.tsv"
  note "$sl_name: budget ${sl_total}s, commit $commit ($commit_source), work $work, OUT $out"
  pack  # so that even a run stopped in its first stage returns its meta data
}

plan() {
  plan_names+=("$1")
  plan_want+=("$2")
  plan_floor+=("$3")
}

stage_left() { echo $((stage_deadline - $(date +%s))); }

command_status() {
  awk -F'\t' -v s="$sl_stage" -v l="$1" '$1 == s && $2 == l {st = $3} END {print st}' "$work/commands.tsv"
}

stage_skip() {
  stage_note=$1
  echo "skipped: $1"
  return 125
}

tmo() {
  local label=$1 cap=$2
  shift 2
  local left limit
  left=$(stage_left)
  limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 3 ]; then
    echo "tmo: $label: not run, ${left}s left in the stage"
    printf '%s\t%s\tskipped\t125\t0\t0\n' "$sl_stage" "$label" >>"$work/commands.tsv"
    note "  $label: not run (no time left in the stage)"
    return 125
  fi
  echo "+ [$label, limit ${limit}s] $*"
  # Line-buffered stdout, so that a program stopped at its limit leaves what it had printed
  # (C stdio buffers whole blocks when writing to a file). TMO_NO_STDBUF=1: not for this command.
  local pre=()
  [ -z "${TMO_NO_STDBUF:-}" ] && command -v stdbuf >/dev/null && pre=(stdbuf -oL -eL)
  local t0 rc status
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "${pre[@]}" "$@" </dev/null
  rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  local secs
  secs=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sl_stage" "$label" "$status" "$rc" "$secs" "$limit" >>"$work/commands.tsv"
  echo "tmo: $label: $status (exit $rc) after ${secs}s of ${limit}s"
  note "  $label: $status (exit $rc), ${secs}s of ${limit}s"
  return $rc
}

# pack: summary.md/json and the archive of the work folder into $OUT, each written beside its
# final name and renamed (a run killed mid-write leaves the previous complete copy).
pack() {
  local py_env=(env LD_LIBRARY_PATH="${octa_orig_ld_library_path:-}")
  if ! "${py_env[@]}" timeout 30 "$octa_python" "$octa_env_root/scripts/gpu/summarize.py" "$work" \
    >>"$work/logs/summarize.log" 2>&1; then
    # No summary from Python: at least the stage table.
    {
      echo "# $sl_name: summarize.py failed (logs/summarize.log); the stage table"
      echo
      echo '```'
      cat "$work/stages.tsv"
      echo '```'
    } >"$work/summary.md"
  fi
  local f
  for f in summary.md summary.json progress.log; do
    [ -f "$work/$f" ] && cp "$work/$f" "$out/$f.part" && mv -f "$out/$f.part" "$out/$f"
  done
  local tarball=$out/$sl_name.tar.gz
  tar -czf "$tarball.part" -C "$(dirname "$work")" --exclude='*.safetensors' --exclude='*.ncu-rep' \
    "$(basename "$work")" 2>/dev/null
  # The device tool brings back files of 16 MiB at most: leave out the largest files if need be.
  if [ "$(stat -c %s "$tarball.part" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
    find "$work" -type f -size +1M -printf '%P\n' >"$work/left-out-of-archive.txt"
    tar -czf "$tarball.part" -C "$(dirname "$work")" --exclude='*.safetensors' --exclude='*.ncu-rep' \
      --exclude-from=<(sed "s|^|$(basename "$work")/|" "$work/left-out-of-archive.txt") \
      "$(basename "$work")" 2>/dev/null
  fi
  mv -f "$tarball.part" "$tarball"
}

run_plan() {
  local asked=("$@") i n=${#plan_names[@]}
  printf 'stages_asked\t%s\n' "${asked[*]:-all}" >>"$work/meta.tsv"
  selected() {  # stage NAME runs: nothing asked (all), asked by name, or always (env, build)
    [ ${#asked[@]} -eq 0 ] && return 0
    local a
    for a in "${asked[@]}" env build; do [ "$a" = "$1" ] && return 0; done
    return 1
  }
  local planned=()
  for ((i = 0; i < n; i++)); do selected "${plan_names[i]}" && planned+=("${plan_names[i]}"); done
  printf 'plan\t%s\n' "${planned[*]}" >>"$work/meta.tsv"
  pack  # a run stopped in its first stage still says which planned stages it never reached
  for ((i = 0; i < n; i++)); do
    local name=${plan_names[i]} want=${plan_want[i]} floor=${plan_floor[i]}
    sl_stage=$name
    stage_note=""
    if ! selected "$name"; then
      printf '%s\tnot-asked\t-\t0\t0\t%s\n' "$name" "not among the stages asked for" >>"$work/stages.tsv"
      continue
    fi
    local reserve=0 j
    for ((j = i + 1; j < n; j++)); do
      selected "${plan_names[j]}" && reserve=$((reserve + plan_floor[j]))
    done
    local now left budget
    now=$(date +%s)
    left=$((sl_deadline - now - sl_pack_reserve))
    budget=$((left - reserve))
    [ "$budget" -lt "$floor" ] && budget=$floor  # its own floor first: the stages come in order
    [ "$budget" -gt "$left" ] && budget=$left    # of importance
    [ "$budget" -gt "$want" ] && budget=$want
    # Too little for anything useful (less than half its floor): skip rather than time out.
    local least=$((floor / 2 > 5 ? floor / 2 : 5))
    if [ "$budget" -lt "$least" ]; then
      printf '%s\tskipped\t-\t0\t%s\t%s\n' "$name" "$budget" \
        "no time: ${left}s left, it needs ${least}s or more" >>"$work/stages.tsv"
      note "stage $name: skipped (no time: ${left}s left, it needs ${least}s or more)"
      pack
      continue
    fi
    stage_deadline=$((now + budget))
    local log
    log=$work/logs/$(printf '%02d' $((i + 1)))-$name.log
    note "stage $name: budget ${budget}s (wants ${want}s; ${left}s left, ${reserve}s kept for later stages)"
    "stage_$name" >>"$log" 2>&1
    local rc=$? status
    case $rc in
      0) status=ok ;;
      124 | 137) status=timeout ;;
      125) status=skipped ;;
      *) status=failed ;;
    esac
    # A stage that failed because one of its commands ran out of time timed out.
    [ "$status" = failed ] && awk -F'\t' -v s="$name" '$1 == s && $3 == "timeout" {f = 1} END {exit !f}' \
      "$work/commands.tsv" && status=timeout
    local secs=$(($(date +%s) - now))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$budget" "$stage_note" >>"$work/stages.tsv"
    note "stage $name: $status after ${secs}s${stage_note:+ ($stage_note)}"
    pack
  done
  note "$sl_name: done after $(($(date +%s) - sl_t0))s of ${sl_total}s; \$OUT: $(find "$out" -maxdepth 1 -type f -printf '%f ')"
}

probe_machine() {
  local dir=$1 cuda rc=0
  cuda=$(cuda_root)
  tmo probe 30 "$octa_python" "$octa_env_root/scripts/gpu/probe_env.py" ${cuda:+--cuda-lib "$cuda/lib64"} \
    ${cudnn_library:+--cudnn "$cudnn_library"} --out "$dir/probe.json" || rc=$?
  tmo nvidia-smi-query 20 nvidia-smi --format=csv \
    --query-gpu=name,driver_version,compute_cap,memory.total,pci.bus_id,clocks.max.sm,clocks.max.mem,clocks.sm,power.limit,persistence_mode,mig.mode.current,ecc.mode.current \
    >"$dir/gpu.csv" 2>&1 || rc=$?
  return $rc
}

# A name for files from a label: letters, digits, '.', '_' and '-' only.
file_name() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-80; }

# The --conv choices a binary's --help lists (CLI11 prints them as {a,b,c}), minus auto.
conv_choices() {
  "$1" --help 2>/dev/null | grep -- '--conv' | grep -o '{[^}]*}' | head -n 1 | tr -d '{}' |
    tr ',' '\n' | grep -vx auto
}

# shellcheck source=scripts/gpu/sanitize.sh
source "$_stages_dir/sanitize.sh"
