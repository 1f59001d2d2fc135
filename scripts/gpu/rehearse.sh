#!/usr/bin/env bash
# scripts/gpu/rehearse.sh: rehearse the lent-GPU scripts HERE (a Debian development machine with
# the CUDA toolkit and no GPU), so that the GPU's minutes are not spent on a typo.
#
#   bash scripts/gpu/rehearse.sh            # all of the below, in this order
#   bash scripts/gpu/rehearse.sh size       # working tree + carry against the device tool's 64 MiB
#   bash scripts/gpu/rehearse.sh unpack     # unpack_debs.py gives the same tree as dpkg -x
#   bash scripts/gpu/rehearse.sh build      # build.sh against the carried packages only (below)
#   bash scripts/gpu/rehearse.sh first      # first-light.sh end to end (every GPU stage fails or
#                                           # skips), then checks its $OUT
#   bash scripts/gpu/rehearse.sh second     # second-light.sh on that build, then checks its $OUT
#   bash scripts/gpu/rehearse.sh budget     # the time box: a hanging nvidia-smi under FL_TOTAL_S=120,
#                                           # then a run killed from outside mid-stage (2.5 minutes)
#   bash scripts/gpu/rehearse.sh summary    # summarize.py on fake stage logs shaped like success
#                                           # (tests/python/test_gpu_summary.py), kept for reading
#   bash scripts/gpu/rehearse.sh shell      # a shell inside the namespace below, to poke around
#
# "The carried packages only": build, first and second run in a private mount namespace
# (unshare -m, root) in which this machine's own copies of the carried Debian packages (.gpu-deps/:
# the -dev packages, catch2, spdlog's, fmt's, OpenBLAS's, gfortran's and curl's libraries) are
# hidden: each folder that holds their files (/usr/include, /usr/lib/x86_64-linux-gnu, ...) is
# replaced by a hard-link copy without them. The toolkit's cuDNN is hidden the same way and offered
# only as PyTorch's wheel lays it out (site-packages/nvidia/cudnn/{include,lib/libcudnn.so.9}, no
# unversioned libcudnn.so), which is what the GPU machine has. So configure, compile, link and the
# test binaries' loader must find everything under the prefix and the wheel, as they must there.
# Nothing outside the namespace changes. The build goes to build-rehearse/ with 2 jobs (this
# machine's share); outputs under gpu-out/rehearse/.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
scratch=${REHEARSE_SCRATCH:-/tmp/octa-rehearse}
outs=$root/gpu-out/rehearse
build=$root/build-rehearse
say() { printf '\033[1m[rehearse]\033[0m %s\n' "$*"; }
fail=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, says PASS or FAIL
  if "${@:2}"; then say "PASS: $1"; else say "FAIL: $1"; fail=1; fi
}

# --- the namespace -------------------------------------------------------------------------------
# Packages of .gpu-deps whose files are hidden here: the development packages and the libraries a
# machine without Debian's packages would lack. Base libraries the toolchain itself runs on (zlib,
# OpenSSL, zstd, gnutls, ...) stay visible, as they would be there.
hidden_packages() {
  local deb p
  for deb in .gpu-deps/*.deb; do
    p=$(dpkg-deb -f "$deb" Package)
    case "$p" in
      *-dev | catch2 | libspdlog1.10 | libfmt9 | libopenblas0-pthread | libgfortran5 | libcurl4) ;;
      *) continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && echo "$p"
  done
}

# shadow ROOT FILE...: bind-mount over ROOT a hard-link copy of it without FILEs.
shadow() {
  local dir=$1 copy
  shift
  copy=$scratch/shadow/$(echo "$dir" | tr / _)
  rm -rf "$copy" && mkdir -p "$(dirname "$copy")" && cp -al "$dir" "$copy" || return 1
  local f
  for f in "$@"; do rm -f "$copy${f#"$dir"}"; done
  # Folders left empty go too (so find_package(X CONFIG) does not find an empty X/ folder).
  find "$copy" -mindepth 1 -type d -empty -delete 2>/dev/null
  mount --bind "$copy" "$dir"
}

inside() {  # runs in the new mount namespace: hide, then exec "$@"
  mount --make-rprivate / || return 1
  local roots=(/usr/include /usr/lib/x86_64-linux-gnu /usr/lib/cmake /usr/share/cmake
    /usr/share/pkgconfig /usr/lib/pkgconfig)
  local files r
  files=$(hidden_packages | xargs -r dpkg -L 2>/dev/null | sort -u |
    while read -r f; do [ -f "$f" ] || [ -L "$f" ] && echo "$f"; done)
  for r in "${roots[@]}"; do
    local mine
    mine=$(echo "$files" | grep "^$r/" || true)
    # shellcheck disable=SC2086  # one path per line, no spaces in Debian's paths
    [ -n "$mine" ] && { shadow "$r" $mine || return 1; }
  done
  # cuDNN: only as PyTorch's wheel has it.
  local cuda wheel=$scratch/site/nvidia/cudnn
  cuda=$(readlink -f /usr/local/cuda)
  rm -rf "$scratch/site" && mkdir -p "$wheel/include" "$wheel/lib"
  cp -l "$cuda"/include/cudnn*.h "$wheel/include/"
  for f in "$cuda"/lib/libcudnn*.so.9; do cp -l "$(readlink -f "$f")" "$wheel/lib/$(basename "$f")"; done
  # shellcheck disable=SC2046
  shadow "$cuda/include" $(ls "$cuda"/include/cudnn*.h) || return 1
  # shellcheck disable=SC2046
  shadow "$cuda/lib" $(ls "$cuda"/lib/libcudnn*) || return 1
  export PYTHONPATH=$scratch/site${PYTHONPATH:+:$PYTHONPATH}
  export OCTA_DEPS_PREFIX=$scratch/deps
  exec "$@"
}

in_namespace() { unshare -m -- bash "$root/scripts/gpu/rehearse.sh" _inside "$@"; }

# --- stand-ins for the GPU machine's tools ------------------------------------------------------
# This machine has no compute-sanitizer and no ncu, so the scripts' code that drives them would go
# unrehearsed. These stand-ins take the same command lines, say loudly that they are stand-ins, and
# only run the program (compute-sanitizer) or run it and write a placeholder report (ncu): they
# check the plumbing (arguments, escaping, file names, timeouts, packing), never a result.
# A hanging nvidia-smi (for the timeout rehearsal) is one more.
make_fakes() {
  local bin=$scratch/fakebin
  rm -rf "$bin" && mkdir -p "$bin"
  cat >"$bin/compute-sanitizer" <<'FAKE'
#!/usr/bin/env bash
# rehearse.sh stand-in for compute-sanitizer: parses its options, runs the program, reports 0 errors.
echo "========= REHEARSAL STAND-IN for compute-sanitizer (no GPU here): $*"
while [ $# -gt 0 ]; do
  case $1 in --tool | --error-exitcode | --print-limit) shift 2 ;; --*) shift ;; *) break ;; esac
done
"$@"
rc=$?
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
FAKE
  cat >"$bin/ncu" <<'FAKE'
#!/usr/bin/env bash
# rehearse.sh stand-in for ncu: --version, --import (prints a placeholder), or runs the program and
# writes a placeholder report at -o.
echo "REHEARSAL STAND-IN for ncu (no GPU here): $*" >&2
case " $* " in
  *" --version "*) echo "NVIDIA (R) Nsight Compute Command Line Profiler (rehearsal stand-in)"; exit 0 ;;
  *" --import "*) echo "placeholder: no report (rehearsal stand-in)"; exit 0 ;;
esac
o=""
while [ $# -gt 0 ]; do
  case $1 in
    -o) o=$2; shift 2 ;;
    -f) shift ;;
    --profile-from-start | --graph-profiling | --set | --clock-control | --target-processes) shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
[ -n "$o" ] && echo "rehearsal placeholder, not a report" >"$o.ncu-rep"
"$@"
FAKE
  cat >"$bin/nvidia-smi-hangs" <<'FAKE'
#!/usr/bin/env bash
# rehearse.sh stand-in for an nvidia-smi that never answers (the timeout rehearsal).
echo "REHEARSAL STAND-IN: an nvidia-smi that hangs"
sleep 600
FAKE
  chmod +x "$bin"/*
}

# --- the parts -------------------------------------------------------------------------------------
part_size() {
  # What the device tool sends: tracked and untracked-not-ignored files, plus the carried paths.
  local tree carry total limit=$((64 * 1024 * 1024))
  tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null) |
    awk '{s += $1} END {print s + 0}')
  carry=$(du -sb data/MNIST .gpu-deps 2>/dev/null | awk '{s += $1} END {print s + 0}')
  total=$((tree + carry))
  say "working tree $((tree / 1024)) KiB + carry (data/MNIST, .gpu-deps) $((carry / 1024)) KiB =" \
    "$((total / 1024 / 1024)) MiB of the device tool's 64 MiB"
  check "working tree + carry under 64 MiB" test "$total" -lt "$limit"
}

part_unpack() {
  local a=$scratch/unpack-py b=$scratch/unpack-dpkg f
  rm -rf "$a" "$b" && mkdir -p "$b"
  python3 scripts/gpu/unpack_debs.py "$a" .gpu-deps/*.deb || { say "FAIL: unpack_debs.py"; fail=1; return; }
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$b"; done
  listing() { (cd "$1" && find . -printf '%p %y %l %s %m\n' | sort); }
  check "unpack_debs.py extracts the same tree as dpkg -x ($(listing "$a" | wc -l) entries)" \
    cmp -s <(listing "$a") <(listing "$b")
}

part_build() {
  say "build.sh in the namespace (carried packages only, cuDNN as the wheel), 2 jobs -> $build"
  mkdir -p "$outs"
  local t0=$SECONDS
  in_namespace env BUILD_DIR="$build" BUILD_JOBS=2 bash scripts/gpu/build.sh 2>&1 |
    tee "$outs/build.log" | grep -E '^(build\.sh|\+ |CMake Error|.*error:|-- octa)' | cut -c1-300
  check "build.sh built every defined target ($((SECONDS - t0)) s)" \
    bash -c "! grep -q 'build.sh: target .* failed\|build.sh: .*configure failed' '$outs/build.log'"
  local cache=$build/CMakeCache.txt
  check "configure took cuDNN from the wheel layout" \
    grep -q "^CUDNN_LIBRARY:.*=$scratch/site/nvidia/cudnn/lib/libcudnn.so.9$" "$cache"
  # Every carried package was found under the prefix, none on this machine's own paths.
  check "configure found spdlog, fmt, CLI11, nlohmann_json, Catch2, zlib, OpenSSL, curl and BLAS under the prefix" \
    bash -c "for v in spdlog_DIR fmt_DIR CLI11_DIR nlohmann_json_DIR Catch2_DIR ZLIB_INCLUDE_DIR \
               OPENSSL_INCLUDE_DIR CURL_INCLUDE_DIR BLAS_LIBRARIES OCTA_CBLAS_INCLUDE_DIR; do
               grep -q \"^\$v:.*=$scratch/deps/\" '$cache' || { echo \"  not under the prefix: \$(grep \"^\$v:\" '$cache')\"; exit 1; }
             done"
  # train_gpu opens the GPU module (cuDNN, cuBLAS, cudart) only for a GPU run: its libraries too.
  in_namespace bash -c "source scripts/gpu/env.sh && deps_env && ldd '$build/apps/train_gpu' '$build/engine/libocta_gpu.so' '$build/tests/test_gpu_train'" \
    >"$outs/ldd.txt" 2>&1
  check "train_gpu, the GPU module and test_gpu_train load spdlog, fmt, curl and OpenBLAS from the prefix" \
    bash -c "grep -E 'libspdlog|libfmt|libcurl|libopenblas' '$outs/ldd.txt' | grep -v '$scratch/deps' | { ! grep -q .; } &&
             [ \$(grep -cE 'libspdlog.*$scratch/deps' '$outs/ldd.txt') -ge 1 ]"
  check "no library is missing at run time" bash -c "! grep -q 'not found' '$outs/ldd.txt'"
  if [ -f "$build/.ninja_log" ]; then
    # Compile time per output, to budget the build on the 16-core machine (noisy here: 2 shared cores).
    awk 'NR > 1 {t = ($2 - $1) / 1000; s += t; if (t > m) {m = t; n = $4}} END {
      printf "[rehearse] ninja log: %.0f s of compile/link in all (about %.0f s on 16 cores if it\n", s, s / 16
      printf "[rehearse]   parallelised perfectly), the longest step %.0f s: %s\n", m, n}' "$build/.ninja_log"
  fi
}

# run_light NAME BUDGET: NAME.sh (first-light or second-light) end to end in the namespace, on the
# rehearsal build, with the stand-in tools; then the checks of its $OUT (check_out).
run_light() {
  local name=$1 budget=$2 out=$outs/$1
  rm -rf "$out" && mkdir -p "$out"
  say "$name.sh in the namespace (build reused from $build), OUT=$out"
  make_fakes
  local t0=$SECONDS
  in_namespace env PATH="$scratch/fakebin:$PATH" OUT="$out" BUILD_DIR="$build" BUILD_JOBS=2 \
    OCTA_COMMIT="$(git rev-parse HEAD)" bash "scripts/gpu/$name.sh" >"$outs/$name.stdout" 2>&1
  local rc=$? took=$((SECONDS - t0))
  tail -n 30 "$outs/$name.stdout"
  check_out "$name" "$out" "$rc" "$took" "$budget"
}

part_first() {
  rm -rf "$scratch/deps"  # unpacked again in the env stage, as on a fresh machine
  run_light first-light 540
  local w=$root/gpu-out/first-light
  check "first-light: memcheck ran every test_gpu_train case, then the other executables" \
    bash -c "[ \$(ls '$w/memcheck' | wc -l) -eq \$((\$('$build/tests/test_gpu_train' --list-test-names-only | grep -c .) + 3)) ]"
  check "first-light: every stage ended (none killed, none left unreached)" \
    python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r['complete'] else 1)" "$outs/first-light/summary.json"
}

part_second() {
  run_light second-light 240
  local w=$root/gpu-out/second-light
  check "second-light: the ncu stage's report went beside the archive" test -f "$outs/second-light/ncu_a_fused_b64.ncu-rep"
  check "second-light: racecheck and initcheck ran each planned case through the sanitizer" \
    bash -c "[ \$(ls '$w/racecheck' | wc -l) -ge 3 ] && [ \$(ls '$w/initcheck' | wc -l) -eq 4 ]"
}

# The time box: a hanging nvidia-smi and a short budget (FL_TOTAL_S=120) must end the run in time,
# with the hung command killed at its limit and the later stages squeezed or skipped, not lost;
# then a run killed from outside (as the device tool kills a command at its limit) must leave the
# last complete summary and archive in $OUT.
part_budget() {
  make_fakes
  local hang=$scratch/fakebin-hang out=$outs/budget t0 took rc
  rm -rf "$hang" && mkdir -p "$hang" && cp "$scratch/fakebin/nvidia-smi-hangs" "$hang/nvidia-smi"
  rm -rf "$out" && mkdir -p "$out"
  say "first-light.sh with FL_TOTAL_S=120 and an nvidia-smi that hangs"
  t0=$SECONDS
  in_namespace env PATH="$hang:$scratch/fakebin:$PATH" OUT="$out" BUILD_DIR="$build" BUILD_JOBS=2 \
    FL_TOTAL_S=120 bash scripts/gpu/first-light.sh >"$outs/budget.stdout" 2>&1
  rc=$?
  took=$((SECONDS - t0))
  cat "$out/progress.log"
  check_out "first-light" "$out" "$rc" "$took" 125
  check "budget: the hung nvidia-smi was stopped at its limit and the env stage timed out" \
    python3 -c "import json, sys; r = json.load(open(sys.argv[1])); s = {x['name']: x['status'] for x in r['stages']}
c = [x for x in r['commands'] if x['label'] == 'nvidia-smi-query']
sys.exit(0 if s['env'] == 'timeout' and c and c[0]['status'] == 'timeout' else 1)" "$out/summary.json"
  check "budget: the build and tests stages still ran after it" \
    python3 -c "import json, sys; r = json.load(open(sys.argv[1])); s = {x['name']: x['status'] for x in r['stages']}
sys.exit(0 if s['build'] == 'ok' and s['tests'] == 'ok' else 1)" "$out/summary.json"

  local kout=$outs/killed
  rm -rf "$kout" && mkdir -p "$kout"
  say "first-light.sh killed from outside 8 s into its env stage (the hanging nvidia-smi holds it 20 s)"
  touch "$scratch/killed.t0"
  sleep 1  # a whole second between the mark and the work folder's log (-nt compares seconds)
  setsid bash -c "unshare -m -- bash '$root/scripts/gpu/rehearse.sh' _inside env PATH='$hang:$scratch/fakebin:$PATH' \
    OUT='$kout' BUILD_DIR='$build' BUILD_JOBS=2 bash scripts/gpu/first-light.sh" >"$outs/killed.stdout" 2>&1 &
  local sid=$!
  disown "$sid"
  # Mid-stage whatever this machine's speed (a fixed delay from the start let a warm build and
  # fast-failing GPU stages finish the whole run before the kill): 8 s after this run's own work
  # folder (first-light.sh remakes it at its start; $OUT gets the log only at stage ends) says
  # the env stage began.
  local live=$root/gpu-out/first-light/progress.log waited=0
  until { [ "$live" -nt "$scratch/killed.t0" ] && grep -q "stage env:" "$live"; } ||
    [ $waited -ge 120 ]; do
    sleep 1
    waited=$((waited + 1))
  done
  sleep 8
  ps -o pid= -s "$sid" | xargs -r kill -KILL 2>/dev/null
  sleep 1
  say "after the kill \$OUT holds: $(cd "$kout" && find . -type f -printf '%P ')"
  check "killed: summary.md, summary.json and the archive survive in \$OUT" \
    test -s "$kout/summary.md" -a -s "$kout/summary.json" -a -s "$kout/first-light.tar.gz"
  check "killed: no half-written file (*.part) left as the only copy" \
    bash -c "for f in '$kout'/*.part; do [ -e \"\$f\" ] || continue; [ -e \"\${f%.part}\" ] || exit 1; done"
  check "killed: the summary says the run did not end and which stages were not reached (all of them: killed in the first)" \
    python3 -c "import json, sys; r = json.load(open(sys.argv[1]))
sys.exit(0 if not r['complete'] and any(s['status'] == 'not-reached' for s in r['stages']) else 1)" "$kout/summary.json"
}

# check_out NAME OUT RC SECONDS BUDGET: what the device tool would bring back, and its shape.
check_out() {
  local name=$1 out=$2 rc=$3 took=$4 budget=$5
  say "$name: exit $rc after $took s (budget $budget s); \$OUT holds:"
  (cd "$out" && find . -type f -printf '  %P  %s bytes\n' | sort)
  local n
  n=$(find "$out" -type f | wc -l)
  check "$name: at most 8 files in \$OUT ($n)" test "$n" -le 8
  check "$name: names of letters, digits, . _ - only, at most 2 folders deep" \
    bash -c "! (cd '$out' && find . -mindepth 1 | sed 's|^\./||' | grep -vE '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,2}$')"
  check "$name: every file under 16 MiB" bash -c "! find '$out' -type f -size +16M | grep -q ."
  check "$name: finished within its budget" test "$took" -le "$budget"
  check "$name: summary.md, summary.json and $name.tar.gz" \
    test -s "$out/summary.md" -a -s "$out/summary.json" -a -s "$out/$name.tar.gz"
  check "$name: summary.json parses" python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$out/summary.json"
  check "$name: the archive lists its stage logs" bash -c "tar tzf '$out/$name.tar.gz' | grep -q 'stages.tsv'"
}

part_summary() {
  local out=$outs/summary-fake
  say "tests/python/test_gpu_summary.py (summarize.py on fake stage logs shaped like success)"
  check "summary unit tests" python3 tests/python/test_gpu_summary.py -v
  rm -rf "$out"
  python3 tests/python/test_gpu_summary.py --write "$out" >/dev/null &&
    say "fake work folder and its summary kept for reading: $out/work/summary.md"
}

case "${1:-all}" in
  _inside) shift; inside "$@" ;;
  shell) in_namespace bash ;;
  size) part_size ;;
  unpack) part_unpack ;;
  build) part_build ;;
  first) part_first ;;
  second) part_second ;;
  budget) part_budget ;;
  summary) part_summary ;;
  all) part_size; part_unpack; part_build; part_first; part_second; part_budget; part_summary ;;
  -h | --help) sed -n '2,26p' "$0" ;;
  *) echo "rehearse.sh: unknown part '$1' (try --help)" >&2; exit 2 ;;
esac
if [ "${1:-all}" != _inside ]; then
  if [ $fail -eq 0 ]; then say "all checks passed"; else say "SOME CHECKS FAILED"; fi
fi
exit $fail
