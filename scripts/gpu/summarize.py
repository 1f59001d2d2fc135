#!/usr/bin/env python3
"""scripts/gpu/summarize.py: summary.md and summary.json of one first-light or second-light run,
from the stage logs and JSON in its work folder (standard library only; Python 3.9+).

    python3 scripts/gpu/summarize.py WORK_DIR      # writes WORK_DIR/summary.md and summary.json
    python3 scripts/gpu/summarize.py --digest WORK_DIR   # also prints a digest of a few lines (the
                                                         # last thing a run prints)

WORK_DIR is what scripts/gpu/stages.sh lays out (gpu-out/first-light/ on the machine; the same
inside first-light.tar.gz): meta.tsv, stages.tsv, commands.tsv, env/, build/, tests/, selftest/,
train/, bench/, torch/, memcheck/ (second-light: racecheck/, initcheck/, kernels/, ncu/). Anything
missing is reported as missing; nothing is invented. summary.json is shaped as the record
docs/gpu-runs/<date>-<commit>.json (docs/gpu-runs/README.md): device name as the CUDA runtime
reports it, versions, commit, per-test results, accuracies after 5 epochs against the targets
(model A >= 99.6%, model B >= 99.0%), epoch times, images/s, and the PyTorch figure of the same run.
"""
from __future__ import annotations

import csv
import json
import os
import re
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SCHEMA = "octa-gpu-run/1"
TARGETS = {"A": 0.996, "B": 0.990}  # test accuracy after 5 epochs (issues 4 and 10)
TARGET_EPOCHS = 5


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def read_text(path: Path, limit: int = 2_000_000) -> str:
    try:
        return path.read_text(errors="replace")[:limit]
    except OSError:
        return ""


def load_json(path: Path):
    """The parsed JSON, or None when the file is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_tsv(path: Path, fields: list) -> list:
    rows = []
    for line in read_text(path).splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        parts += [""] * (len(fields) - len(parts))
        rows.append(dict(zip(fields, parts)))
    return rows


def read_meta(work: Path) -> dict:
    meta = {}
    for line in read_text(work / "meta.tsv").splitlines():
        key, _, value = line.partition("\t")
        if key:
            meta[key] = value.strip()
    return meta


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def tail(text: str, lines: int = 12, chars: int = 2000) -> str:
    """The last lines of a log, without tmo's framing lines."""
    body = [ln for ln in text.rstrip().splitlines()
            if not ln.startswith("+ [") and not ln.startswith("tmo: ")]
    return "\n".join(body[-lines:])[-chars:]


# A command's log, as tmo (scripts/gpu/stages.sh) frames it: "+ [LABEL, limit Ns] CMD" first and
# "tmo: LABEL: STATUS (exit RC) after Xs of Ys" last.
TMO_END = re.compile(r"^tmo: (?P<label>.*): (?P<status>ok|failed|timeout) \(exit (?P<rc>-?\d+)\) "
                     r"after (?P<seconds>[\d.]+)s of (?P<limit>\d+)s$", re.M)


def command_outcome(log_text: str) -> dict:
    m = None
    for m in TMO_END.finditer(log_text):
        pass
    if not m:
        return {"status": "unfinished" if log_text else "missing"}
    return {"status": m["status"], "exit": int(m["rc"]), "seconds": float(m["seconds"]),
            "limit_s": int(m["limit"])}


def error_lines(text: str, n: int = 5) -> list:
    """The lines of a log that say what went wrong (octa's "...: error: ..." and the like)."""
    pat = re.compile(r"error|Error|ERROR|FAILED|failed|No such|not found|Aborted|Segmentation")
    hits = [ln.strip() for ln in text.splitlines() if pat.search(ln) and not ln.startswith("tmo: ")
            and not ln.startswith("+ [")]
    return hits[-n:]


# --------------------------------------------------------------------------------------------------
# The parts
# --------------------------------------------------------------------------------------------------

def parse_machine(work: Path, bench_runs: list) -> dict:
    env = work / "env"
    probe = load_json(env / "probe.json") or {}
    m: dict = {"probe": probe or None}
    rows = list(csv.reader(read_text(env / "gpu.csv").splitlines()))
    smi = {}
    if len(rows) >= 2 and "," in read_text(env / "gpu.csv"):
        head = [h.strip() for h in rows[0]]
        smi = {h: v.strip() for h, v in zip(head, rows[1])}
    m["nvidia_smi"] = smi or None
    devices = (probe.get("driver") or {}).get("devices") or []
    dev0 = devices[0] if devices else {}
    # "As the runtime reports it": cudaGetDeviceProperties' name (bench_gpu_epoch's JSON), else the
    # driver's cuDeviceGetName (the same string), else nvidia-smi's.
    runtime_name = next((b["device"].get("name") for b in bench_runs
                         if isinstance(b.get("device"), dict) and b["device"].get("name")), None)
    m["device_name"] = runtime_name or dev0.get("name") or smi.get("name")
    m["device_name_source"] = ("cudaGetDeviceProperties (bench_gpu_epoch)" if runtime_name else
                               "cuDeviceGetName (probe_env.py)" if dev0.get("name") else
                               "nvidia-smi" if smi.get("name") else None)
    m["compute_capability"] = dev0.get("compute_capability") or smi.get("compute_cap")
    m["memory_bytes"] = dev0.get("total_memory_bytes")
    m["multiprocessors"] = dev0.get("multiprocessors")
    m["device_count"] = len(devices) if devices else None
    m["driver_version"] = smi.get("driver_version")
    m["driver_cuda_version"] = (probe.get("driver") or {}).get("cuda_version")
    m["cuda_runtime_version"] = (probe.get("runtime") or {}).get("version")
    m["cublas_version"] = (probe.get("cublas") or {}).get("version")
    m["cudnn_version"] = (probe.get("cudnn") or {}).get("version")
    m["cudnn_library"] = (probe.get("cudnn") or {}).get("library")
    versions = read_text(env / "versions.txt")
    nv = re.search(r"release ([\d.]+), V([\d.]+)", versions)
    m["nvcc_version"] = nv[2] if nv else None
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]*)', versions, re.M)
    m["os"] = os_name[1] if os_name else None
    cpu = re.search(r"model name\s*:\s*(.*)", versions)
    m["cpu"] = cpu[1].strip() if cpu else None
    cores = re.search(r"^cores: (\d+)", versions, re.M)
    m["cores"] = int(cores[1]) if cores else None
    cxx = re.search(r"^== c\+\+: .*\n(.*)", versions, re.M)
    m["cxx"] = cxx[1].strip() if cxx else None
    cm = re.search(r"cmake version ([\w.\-]+)", versions)
    m["cmake_version"] = cm[1] if cm else None
    tools = dict(re.findall(r"^(compute-sanitizer|ncu|nsys|cuobjdump|cuda-gdb): (.*)$", versions,
                            re.M))
    m["tools"] = tools or None
    errors = {k: v["error"] for k, v in probe.items() if isinstance(v, dict) and v.get("error")}
    m["probe_errors"] = errors or None
    return m


def parse_build(work: Path) -> dict | None:
    log = read_text(work / "build" / "build.log")
    if not log:
        return None
    targets = {}
    for name, state in re.findall(r"^build\.sh: target (\S+) (built|failed|not-defined)$", log,
                                  re.M):
        targets[name] = state
    conf = re.search(r"^-- (octa [\d.]+: build type .*)$", log, re.M)
    compiled_cudnn = re.search(r"cuDNN ([\d.]+), architectures", log)
    b = {"outcome": command_outcome(log), "targets": targets,
         "configure_summary": conf[1] if conf else None,
         "cudnn_compiled_against": compiled_cudnn[1] if compiled_cudnn else None,
         "generator": "Ninja" if " -G Ninja" in log or "build.ninja" in log else None}
    nlog = read_text(work / "build" / "ninja_log.txt")
    steps = []
    for line in nlog.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0].isdigit() and parts[1].isdigit():
            steps.append(((int(parts[1]) - int(parts[0])) / 1000.0, parts[3]))
    if steps:
        steps.sort(reverse=True)
        b["compile_seconds_total"] = round(sum(s for s, _ in steps), 1)
        b["slowest_steps"] = [{"seconds": round(s, 1), "output": o} for s, o in steps[:5]]
    if "WARNINGS-NOT-ERRORS FALLBACK" in log:
        b["werror_fallback"] = True
        b["warnings_made_errors"] = re.findall(r"^  (.*(?:\[-Werror=|error #\d+-D).*)$", log,
                                               re.M)[:40]
    errs = [ln for ln in log.splitlines() if re.search(r"error|FAILED|CMake Error", ln)]
    if errs:
        b["errors"] = errs[:20]
    return b


CTEST_LINE = re.compile(r"^\s*\d+/\d+ Test\s+#\d+: (?P<name>.+?) \.+\s*(?:\*\*\*)?"
                        r"(?P<status>[A-Za-z][^\d]*?)\s+(?P<sec>[\d.]+) sec", re.M)


def parse_tests(work: Path) -> dict | None:
    d = work / "tests"
    log = read_text(d / "ctest.log")
    cases = []
    try:
        root = ET.parse(d / "ctest-junit.xml").getroot()
    except (OSError, ET.ParseError):
        root = None
    if root is not None:
        for tc in root.iter("testcase"):
            out = tc.findtext("system-out") or ""
            failure = tc.find("failure")
            skipped = tc.find("skipped")
            status = {"run": "passed", "fail": "failed", "notrun": "not-run",
                      "disabled": "disabled"}.get(tc.get("status", ""), tc.get("status") or "?")
            c = {"name": tc.get("name"), "status": status, "seconds": number(tc.get("time"))}
            if skipped is not None and skipped.get("message") == "SKIP_REGULAR_EXPRESSION_MATCHED":
                c["status"] = "skipped"
                reason = re.search(r"^SKIPPED: (.*)$", out, re.M)
                c["reason"] = reason[1] if reason else None
            elif failure is not None:
                msg = failure.get("message") or "Failed"
                c["status"] = "timeout" if "Timeout" in msg else "failed"
                c["message"] = msg
                c["output_tail"] = tail(out, 25, 3000)
            cases.append(c)
        source = "ctest-junit.xml"
    elif log:
        # ctest was stopped before it wrote the JUnit file: its own progress lines.
        for m in CTEST_LINE.finditer(log):
            s = m["status"].strip()
            status = ("passed" if s == "Passed" else "skipped" if s == "Skipped" else
                      "timeout" if s.startswith("Timeout") else "failed")
            cases.append({"name": m["name"], "status": status, "seconds": float(m["sec"])} |
                         ({} if status in ("passed", "skipped") else {"message": s}))
        source = "ctest.log (no JUnit file: ctest did not finish)"
    else:
        return None
    counts = {}
    for c in cases:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    total = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", log)
    return {"source": source, "outcome": command_outcome(log), "total": len(cases),
            "counts": counts, "ctest_line": total[0] if total else None, "cases": cases}


def parse_selftest(work: Path) -> dict | None:
    d = work / "selftest"
    log = read_text(d / "selftest.log")
    if not log and not (d / "selftest.json").exists():
        return None
    j = load_json(d / "selftest.json")
    s = {"outcome": command_outcome(log), "json": j is not None}
    if isinstance(j, dict):
        # Its shape belongs to octa_selftest (issue 11): keep the whole JSON, and count the cases
        # where a list of objects with a pass flag can be found.
        s["result"] = j
        for key, val in j.items():
            if isinstance(val, list) and val and all(isinstance(x, dict) for x in val):
                flag = next((f for f in ("passed", "pass", "ok") if f in val[0]), None)
                if flag:
                    s["cases"] = {"list": key, "total": len(val),
                                  "passed": sum(1 for x in val if x.get(flag) is True)}
                    break
    if s["outcome"].get("status") != "ok":
        s["log_tail"] = tail(log, 20)
    return s


def epoch_table(epochs: list) -> list:
    keep = ("epoch", "seconds", "images_per_second", "mean_loss", "test_accuracy")
    return [{k: e.get(k) for k in keep if k in e} for e in epochs or []]


def median_after_first(seconds: list):
    s = [x for x in seconds if isinstance(x, (int, float))]
    if not s:
        return None
    return statistics.median(s[1:] if len(s) > 1 else s)


def parse_train(work: Path) -> list:
    runs = []
    d = work / "train"
    names = sorted({p.stem for p in d.glob("*.log")} | {p.stem for p in d.glob("*.json")})
    for stem in names:
        model, _, conv = stem.partition("_")
        log = read_text(d / f"{stem}.log")
        j = load_json(d / f"{stem}.json")
        r = {"model": model.upper(), "conv": conv, "outcome": command_outcome(log)}
        target = TARGETS.get(model.upper())
        if isinstance(j, dict):
            epochs = epoch_table(j.get("epochs"))
            test = j.get("test") or {}
            acc = test.get("accuracy")
            r.update(device=j.get("device"), epochs_run=len(epochs), epochs=epochs,
                     test_accuracy=acc, test=test, config=j.get("config"),
                     median_epoch_seconds=median_after_first([e.get("seconds") for e in epochs]))
            if target is not None and acc is not None:
                r["target"] = target
                if len(epochs) != TARGET_EPOCHS:
                    r["target_met"] = None
                    r["target_note"] = f"{len(epochs)} epochs, not {TARGET_EPOCHS}: not comparable"
                else:
                    r["target_met"] = acc >= target
                    r["short_by_points"] = None if acc >= target else round(100 * (target - acc), 3)
        else:
            r["errors"] = error_lines(log)
        runs.append(r)
    return runs


def parse_bench(work: Path) -> list:
    runs = []
    d = work / "bench"
    names = sorted({p.stem for p in d.glob("*.log")} | {p.stem for p in d.glob("*.json")})
    for stem in names:
        m = re.match(r"^([ab])_(.+)_b(\d+)$", stem)
        log = read_text(d / f"{stem}.log")
        j = load_json(d / f"{stem}.json")
        r = {"model": m[1].upper() if m else None, "conv": m[2] if m else None,
             "batch": int(m[3]) if m else None, "outcome": command_outcome(log)}
        if isinstance(j, dict):
            opt = j.get("options") or {}
            ep = j.get("epochs") or {}
            ph = j.get("phases") or {}
            r.update(model=(opt.get("model") or r["model"] or "").upper() or None,
                     conv=opt.get("conv", r["conv"]), batch=opt.get("batch_size", r["batch"]),
                     device=j.get("device"), date=j.get("date"),
                     median_epoch_seconds=ep.get("median_epoch_seconds"),
                     median_of=ep.get("median_of"), images_per_second=ep.get("images_per_second"),
                     us_per_step=ep.get("us_per_step"), steps_per_epoch=ep.get("steps_per_epoch"),
                     epochs=epoch_table(ep.get("epochs")),
                     test_accuracy=(ep.get("test") or {}).get("accuracy"),
                     phases=[{k: p.get(k) for k in ("name", "median_us", "share")}
                             for p in ph.get("phases") or []],
                     sum_of_phase_medians_us=ph.get("sum_of_medians_us"),
                     eager_step_host_median_us=ph.get("eager_step_host_median_us"))
        else:
            r["errors"] = error_lines(log)
        runs.append(r)
    return runs


def parse_torch(work: Path) -> list:
    runs = []
    for p in sorted((work / "torch").glob("*.log")):
        log = read_text(p)
        j = load_json(p.with_suffix(".json"))
        r = {"run": p.stem, "outcome": command_outcome(log)}
        if isinstance(j, dict):
            cfg = j.get("config") or {}
            r.update(variant=j.get("variant"), model=(j.get("model") or "").upper(),
                     batch=cfg.get("batch_size"), epochs_run=len(j.get("epochs") or []),
                     device=j.get("device"), median_epoch_seconds=j.get("median_epoch_seconds"),
                     median_over=j.get("median_over"), images_per_second=j.get("images_per_second"),
                     test_accuracy=(j.get("test") or {}).get("accuracy"),
                     epochs=epoch_table(j.get("epochs")), tf32=cfg.get("tf32_state"),
                     compile_mode=cfg.get("compile_mode"), notes=j.get("notes"))
            if "compile_diagnostics" in j:
                r["compile_diagnostics"] = j["compile_diagnostics"]
        else:
            r["errors"] = error_lines(log) or [tail(log, 3)]
        runs.append(r)
    return runs


SAN_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) error")
SAN_HEAD = re.compile(r"^\+ \[(?P<label>.*), limit \d+s\]", re.M)


def parse_sanitizer(work: Path, tool: str) -> dict | None:
    d = work / tool
    logs = sorted(d.glob("*.log"))
    if not logs:
        return None
    runs = []
    for p in logs:
        text = read_text(p)
        head = SAN_HEAD.search(text)
        errors = SAN_SUMMARY.findall(text)
        r = {"run": head["label"] if head else p.stem, "log": f"{tool}/{p.name}",
             "outcome": command_outcome(text),
             "errors": int(errors[-1]) if errors else None}
        catch = re.findall(r"^(All tests passed.*|test cases:.*)$", text, re.M)
        r["catch2"] = catch[-1] if catch else None
        skipped = re.search(r"^SKIPPED: (.*)$", text, re.M)
        if skipped:
            r["skipped"] = skipped[1]
        if "REHEARSAL STAND-IN" in text:
            r["rehearsal_stand_in"] = True
        if r["errors"]:
            r["first_reports"] = [ln for ln in text.splitlines()
                                  if ln.startswith("========= ") and "ERROR SUMMARY" not in ln][:12]
        runs.append(r)
    # Clean: the tool ran the program to the end and reported nothing, and the program really ran
    # its GPU work (a test that skipped for want of a device proves nothing).
    clean = sum(1 for r in runs if r["errors"] == 0 and r["outcome"].get("status") == "ok"
                and "skipped" not in r and "rehearsal_stand_in" not in r)
    return {"tool": tool, "runs": runs, "clean": clean, "total": len(runs),
            "rehearsal_stand_in": any("rehearsal_stand_in" in r for r in runs)}


def parse_kernels(work: Path) -> dict | None:
    d = work / "kernels"
    log = read_text(d / "bench_kernels.log")
    j = load_json(d / "bench_kernels.json")
    if not log and j is None:
        return None
    k = {"outcome": command_outcome(log)}
    if isinstance(j, dict):
        k["peaks"] = j.get("peaks")
        k["rows"] = []
        for r in j.get("rows") or []:
            cp = r.get("counterpart") or {}
            k["rows"].append({"kernel": r.get("kernel"), "shape": r.get("shape"),
                              "batch": r.get("batch"),
                              "time_us": (r.get("octa") or {}).get("time_us"),
                              "percent_of_peak": r.get("percent_of_peak"),
                              "counterpart": cp.get("name"),
                              "octa_over_counterpart": cp.get("octa_over_counterpart"),
                              "error": r.get("error")})
    else:
        k["errors"] = error_lines(log) or [tail(log, 3)]
    return k


def parse_ncu(work: Path) -> dict | None:
    d = work / "ncu"
    log = read_text(d / "ncu.log")
    if not log:
        return None
    files = sorted(p.name for p in d.iterdir() if p.name != "ncu.log")
    return {"outcome": command_outcome(log), "files": files,
            "errors": error_lines(log) if command_outcome(log).get("status") != "ok" else None}


# --------------------------------------------------------------------------------------------------
# The record and its Markdown
# --------------------------------------------------------------------------------------------------

def comparison(bench: list, torch_runs: list) -> list:
    """octa's median epoch (bench_gpu_epoch) against PyTorch eager's, same run, model A batch 64."""
    eager = next((t for t in torch_runs if t.get("variant") == "eager" and t.get("model") == "A"
                  and t.get("batch") == 64 and t.get("median_epoch_seconds")), None)
    out = []
    for b in bench:
        if b.get("model") == "A" and b.get("batch") == 64 and b.get("median_epoch_seconds"):
            row = {"octa_conv": b["conv"], "octa_median_epoch_seconds": b["median_epoch_seconds"]}
            if eager:
                row["torch_eager_median_epoch_seconds"] = eager["median_epoch_seconds"]
                row["torch_over_octa"] = eager["median_epoch_seconds"] / b["median_epoch_seconds"]
            out.append(row)
    return out


def in_run_order(runs: list, commands: list, label) -> list:
    """runs in the order their commands ran (commands.tsv), the others after them."""
    order = {c["label"]: i for i, c in enumerate(commands)}
    return sorted(runs, key=lambda r: order.get(label(r), len(order)))


def build_record(work: Path) -> dict:
    meta = read_meta(work)
    stages = read_tsv(work / "stages.tsv",
                      ["name", "status", "exit", "seconds", "budget_s", "note"])
    commands = read_tsv(work / "commands.tsv",
                        ["stage", "label", "status", "exit", "seconds", "limit_s"])
    planned = meta.get("plan", "").split()
    ended = {s["name"] for s in stages}
    bench = in_run_order(parse_bench(work), commands,
                         lambda r: f"bench {r.get('model')} {r.get('conv')} b{r.get('batch')}")
    train = in_run_order(parse_train(work), commands, lambda r: f"train {r['model']} {r['conv']}")
    torch_runs = parse_torch(work)
    started = meta.get("started", "")
    commit = meta.get("commit", "unknown")
    rec = {
        "schema": SCHEMA,
        "record_file": f"docs/gpu-runs/{started[:10] or 'DATE'}-{commit[:12]}.json",
        "script": meta.get("script"),
        "started": started or None,
        "commit": commit,
        "commit_source": meta.get("commit_source"),
        "tree_dirty": meta.get("dirty") or None,
        "budget_s": number(meta.get("budget_s")),
        "stages_asked": meta.get("stages_asked"),
        "overrides": meta.get("overrides") or None,
        "complete": bool(planned) and all(p in ended for p in planned),
        "stages": [dict(s, seconds=number(s["seconds"]), budget_s=number(s["budget_s"]))
                   for s in stages] +
                  [{"name": p, "status": "not-reached"} for p in planned if p not in ended],
        "commands": [dict(c, seconds=number(c["seconds"]), limit_s=number(c["limit_s"]))
                     for c in commands],
        "machine": parse_machine(work, bench),
        "build": parse_build(work),
        "tests": parse_tests(work),
        "selftest": parse_selftest(work),
        "train": train,
        "targets": {k: f">= {100 * v:.1f}% test accuracy after {TARGET_EPOCHS} epochs"
                    for k, v in TARGETS.items()},
        "bench": bench,
        "pytorch": torch_runs,
        "octa_vs_pytorch_eager": comparison(bench, torch_runs),
    }
    for tool in ("memcheck", "racecheck", "initcheck"):
        s = parse_sanitizer(work, tool)
        if s:
            rec[tool] = s
    k = parse_kernels(work)
    if k:
        rec["bench_kernels"] = k
    n = parse_ncu(work)
    if n:
        rec["ncu"] = n
    return rec


def v(x):
    return "?" if x is None else x


def pct(x):
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "-"


def num(x, fmt="{:.3f}"):
    return fmt.format(x) if isinstance(x, (int, float)) else "-"


def table(head: list, rows: list) -> list:
    if not rows:
        return []
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
            ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows])


def outcome_text(o: dict) -> str:
    if not o:
        return "-"
    s = o.get("status", "?")
    if "exit" in o and s != "ok":
        s += f" (exit {o['exit']})"
    return s


def render_md(r: dict) -> str:
    m = r["machine"]
    L = [f"# {Path(r.get('script') or 'run').stem}: {m.get('device_name') or 'no GPU seen'}, "
         f"commit {r['commit'][:12]}", ""]
    L.append(f"Started {r.get('started')}, budget {num(r.get('budget_s'), '{:.0f}')} s; "
             f"{'every planned stage ended' if r['complete'] else 'NOT every planned stage ended'}."
             f" Commit from {r.get('commit_source')}" +
             (f"; uncommitted changes: {r['tree_dirty']}" if r.get("tree_dirty") else "") + ".")
    L.append("")
    mem = m.get("memory_bytes")
    gib = num(mem / 2**30 if mem else None, "{:.1f}")
    L.append((f"Device: {m['device_name']} ({m.get('device_name_source')}), compute capability "
              f"{v(m.get('compute_capability'))}, {gib} GiB, "
              f"{v(m.get('multiprocessors'))} SMs." if m.get("device_name") else
              "Device: none seen (no driver or no GPU).") +
             f" Driver {v(m.get('driver_version'))} (CUDA {v(m.get('driver_cuda_version'))}), CUDA "
             f"runtime {v(m.get('cuda_runtime_version'))}, nvcc {v(m.get('nvcc_version'))}, cuBLAS "
             f"{v(m.get('cublas_version'))}, cuDNN {v(m.get('cudnn_version'))} (built against "
             f"{v((r.get('build') or {}).get('cudnn_compiled_against'))}). Host: {v(m.get('os'))}, "
             f"{v(m.get('cpu'))}, {v(m.get('cores'))} cores; {v(m.get('cxx'))}.")
    if m.get("probe_errors"):
        L.append("")
        L.append("Probe errors: " + "; ".join(f"{k}: {v}" for k, v in m["probe_errors"].items()))
    L += ["", "## Stages", ""]
    L += table(["stage", "status", "seconds", "budget", "note"],
               [[s["name"], s["status"], num(s.get("seconds"), "{:.0f}"),
                 num(s.get("budget_s"), "{:.0f}"), s.get("note") or ""] for s in r["stages"]])

    b = r.get("build")
    if b:
        L += ["", "## Build", ""]
        conf = b.get("configure_summary") or "no configure summary"
        L.append(f"{outcome_text(b['outcome'])}; {conf}.")
        if b.get("targets"):
            L.append("Targets: " + ", ".join(f"{k} {v}" for k, v in b["targets"].items()) + ".")
        if b.get("compile_seconds_total") is not None:
            slow = ", ".join(f"{s['output']} {s['seconds']} s" for s in b["slowest_steps"][:3])
            L.append(f"Compile/link steps: {b['compile_seconds_total']} s in all; slowest: {slow}.")
        if b.get("werror_fallback"):
            L += ["", "**Built with warnings NOT as errors (build.sh's fallback): this compiler "
                  "warns where CI's does not. Fix these, then the build counts:**", "", "```"]
            L += b.get("warnings_made_errors") or ["(see build/build.log)"]
            L += ["```"]
        elif b.get("errors"):
            L += ["", "```"] + b["errors"][:12] + ["```"]

    t = r.get("tests")
    if t:
        L += ["", "## [gpu] tests", ""]
        L.append(f"{t['total']} cases ({t['source']}): " +
                 ", ".join(f"{v} {k}" for k, v in sorted(t["counts"].items())) +
                 (f". ctest: {t['ctest_line']}" if t.get("ctest_line") else "") + ".")
        bad = [c for c in t["cases"] if c["status"] not in ("passed", "skipped")]
        for c in bad:
            L += ["", f"**{c['status'].upper()}: {c['name']}** ({c.get('message', '')})", "", "```",
                  c.get("output_tail") or "(no output)", "```"]
        skipped = {}
        for c in t["cases"]:
            if c["status"] == "skipped":
                skipped[c.get("reason")] = skipped.get(c.get("reason"), 0) + 1
        for reason, n in skipped.items():
            L.append(f"- skipped {n}: {reason}")

    s = r.get("selftest")
    if s:
        cases = s.get("cases")
        L += ["", "## octa_selftest", "", f"{outcome_text(s['outcome'])}" +
              (f"; {cases['passed']}/{cases['total']} cases passed" if cases else "") +
              ("" if s["json"] else "; no JSON written") + "."]
        if s.get("log_tail"):
            L += ["", "```", s["log_tail"], "```"]

    if r["train"]:
        L += ["", "## Training, 5 epochs (train_gpu --eval-every-epoch)", ""]
        rows = []
        for x in r["train"]:
            accs = " ".join(pct(e.get("test_accuracy")) for e in x.get("epochs", []))
            met = x.get("target_met")
            verdict = ("met" if met else f"MISSED by {x['short_by_points']} points"
                       if met is False else x.get("target_note") or "-")
            secs = " ".join(num(e.get("seconds"), "{:.2f}") for e in x.get("epochs", []))
            rows.append([x["model"], x["conv"], outcome_text(x["outcome"]),
                         pct(x.get("test_accuracy")),
                         f">= {pct(x.get('target'))}: {verdict}" if x.get("target") else "-",
                         accs or "-", num(x.get("median_epoch_seconds")), secs or "-"])
        L += table(["model", "conv", "run", "test accuracy", "target", "accuracy by epoch",
                    "median epoch s (2..)", "epoch seconds"], rows)
        for x in r["train"]:
            if x.get("errors"):
                L.append(f"- {x['model']} {x['conv']}: " + " / ".join(x["errors"][-3:]))

    if r["bench"]:
        L += ["", "## bench_gpu_epoch (median epoch after the first; 60,000 images)", ""]
        rows = [[x.get("model"), x.get("conv"), x.get("batch"), outcome_text(x["outcome"]),
                 num(x.get("median_epoch_seconds"), "{:.4f}"),
                 num(x.get("images_per_second"), "{:,.0f}"), num(x.get("us_per_step"), "{:.1f}"),
                 num(x.get("sum_of_phase_medians_us"), "{:.1f}"), pct(x.get("test_accuracy"))]
                for x in r["bench"]]
        L += table(["model", "conv", "batch", "run", "epoch s", "images/s", "us/step (graph)",
                    "sum of phases us (eager)", "test acc"], rows)
        for x in r["bench"]:
            if x.get("errors"):
                L.append(f"- {x.get('model')} {x.get('conv')} b{x.get('batch')}: " +
                         " / ".join(x["errors"][-2:]))
        for x in r["bench"]:
            if x.get("model") == "A" and x.get("batch") == 64 and x.get("phases"):
                top = sorted(x["phases"], key=lambda p: -(p.get("median_us") or 0))[:6]
                L.append(f"- A b64 {x['conv']}, largest phases: " + ", ".join(
                    f"{p['name']} {num(p.get('median_us'), '{:.1f}')} us" for p in top))

    if r["pytorch"]:
        L += ["", "## PyTorch, same run", ""]
        rows = [[x.get("variant") or x["run"], x.get("model") or "-", x.get("batch") or "-",
                 outcome_text(x["outcome"]), num(x.get("median_epoch_seconds"), "{:.4f}"),
                 num(x.get("images_per_second"), "{:,.0f}"), pct(x.get("test_accuracy")),
                 (x.get("device") or {}).get("torch", "-")] for x in r["pytorch"]]
        L += table(["variant", "model", "batch", "run", "median epoch s", "images/s", "test acc",
                    "torch"], rows)
        for x in r["pytorch"]:
            if x.get("errors"):
                L.append(f"- {x['run']}: " + " / ".join(x["errors"][-3:]))
    if r["octa_vs_pytorch_eager"]:
        L += ["", "octa (bench_gpu_epoch) against PyTorch eager, model A, batch 64: " +
              "; ".join(f"{c['octa_conv']} {num(c['octa_median_epoch_seconds'], '{:.4f}')} s" +
                        (f" = {c['torch_over_octa']:.1f}x faster than eager"
                         if c.get("torch_over_octa") else " (no PyTorch figure)")
                        for c in r["octa_vs_pytorch_eager"]) + "."]

    for tool in ("memcheck", "racecheck", "initcheck"):
        s = r.get(tool)
        if not s:
            continue
        L += ["", f"## compute-sanitizer {tool}: {s['clean']} of {s['total']} runs clean", ""]
        if s.get("rehearsal_stand_in"):
            L += ["**A rehearsal: these logs come from rehearse.sh's stand-in for "
                  "compute-sanitizer, not from the tool.**", ""]
        L += table(["run", "outcome", "errors", "Catch2"],
                   [[x["run"], outcome_text(x["outcome"]),
                     x["errors"] if x["errors"] is not None else "-",
                     f"SKIPPED: {x['skipped']}" if x.get("skipped") else x.get("catch2") or "-"]
                    for x in s["runs"]])
        for x in s["runs"]:
            if x.get("first_reports"):
                L += ["", f"{x['run']} ({x['log']}):", "```"] + x["first_reports"] + ["```"]

    k = r.get("bench_kernels")
    if k:
        L += ["", f"## bench_kernels: {outcome_text(k['outcome'])}", ""]
        peaks = k.get("peaks") or {}
        if peaks:
            L.append("Peaks: " + ", ".join(
                f"{n} {num(p.get('gb_per_s') or p.get('gflop_per_s'), '{:,.0f}')} "
                f"{'GB/s' if 'gb_per_s' in p else 'GFLOP/s'}" for n, p in peaks.items()) + ".")
        for e in k.get("errors") or []:
            L.append(f"- {e}")
        L += table(["kernel", "shape", "us", "% of peak", "vs counterpart"],
                   [[x["kernel"], x["shape"], num(x["time_us"], "{:.2f}"),
                     num(x["percent_of_peak"], "{:.1f}"),
                     (f"{num(x['octa_over_counterpart'], '{:.2f}')}x {x['counterpart']}"
                      if x.get("counterpart") else "-")] for x in (k.get("rows") or [])[:40]])
    n = r.get("ncu")
    if n:
        L += ["", f"## ncu: {outcome_text(n['outcome'])}", "",
              "Files: " + ", ".join(n["files"]) + "."]
        L += [f"- {e}" for e in n.get("errors") or []]
    L += ["", "Everything else: the archive beside this file (logs/NN-STAGE.log per stage; each "
          "command's own log in its stage's folder; summary.json is the record for "
          f"{r['record_file']})."]
    return "\n".join(L) + "\n"


def render_digest(r: dict) -> str:
    """A few lines: the stages, then the headline of each part (the device tool's reply shows the
    end of a run's output, so this is printed last)."""
    m = r["machine"]
    L = [f"== {Path(r.get('script') or 'run').stem} digest: "
         f"{m.get('device_name') or 'no GPU seen'}, commit {r['commit'][:12]}, "
         f"{'complete' if r['complete'] else 'INCOMPLETE'}",
         "stages: " + ", ".join(f"{s['name']} {s['status']}" for s in r["stages"])]
    t = r.get("tests")
    if t:
        L.append(f"[gpu] tests: {t['total']} cases: " +
                 ", ".join(f"{v} {k}" for k, v in sorted(t["counts"].items())) +
                 "".join(f"\n  {c['status'].upper()}: {c['name']}" for c in t["cases"]
                         if c["status"] not in ("passed", "skipped"))[:1500])
    for x in r["train"]:
        verdict = ("met" if x.get("target_met") else f"missed by {x.get('short_by_points')} points"
                   if x.get("target_met") is False else outcome_text(x["outcome"]))
        L.append(f"train {x['model']} {x['conv']}: {pct(x.get('test_accuracy'))} ({verdict})")
    for x in r["bench"]:
        if x.get("batch") == 64 and x.get("model") == "A":
            sec = num(x.get("median_epoch_seconds"), "{:.4f}")
            L.append(f"bench A {x.get('conv')} b64: {sec} s/epoch ({outcome_text(x['outcome'])})")
    for x in r["pytorch"]:
        sec = num(x.get("median_epoch_seconds"), "{:.4f}")
        L.append(f"torch {x.get('variant') or x['run']}: {sec} s/epoch "
                 f"({outcome_text(x['outcome'])})")
    for tool in ("memcheck", "racecheck", "initcheck"):
        if r.get(tool):
            L.append(f"{tool}: {r[tool]['clean']} of {r[tool]['total']} runs clean")
    for key in ("bench_kernels", "ncu"):
        if r.get(key):
            L.append(f"{key}: {outcome_text(r[key]['outcome'])}")
    return "\n".join(L) + "\n"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list) -> int:
    digest = bool(argv) and argv[0] == "--digest"
    argv = argv[1:] if digest else argv
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    work = Path(argv[0])
    if not work.is_dir():
        print(f"summarize.py: {work}: not a folder", file=sys.stderr)
        return 2
    rec = build_record(work)
    write_atomically(work / "summary.json", json.dumps(rec, indent=2) + "\n")
    write_atomically(work / "summary.md", render_md(rec))
    if digest:
        sys.stdout.write(render_digest(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
