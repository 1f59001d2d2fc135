#!/usr/bin/env python3
"""tests/python/test_gpu_summary.py: scripts/gpu/summarize.py on fake stage logs (no GPU needed).

The work folders here are TEST FIXTURES, written into a temporary folder: stage logs and JSON shaped
exactly as first-light.sh's stages and octa's programs write them (train_gpu --metrics-out,
bench_gpu_epoch --json, ctest --output-junit, bench/pytorch/reference.py --out, compute-sanitizer's
log, tmo's framing lines), with made-up figures and a device named "(test fixture)". They check
that the summary reads each of them right (success, a missed target, a failed and a skipped test,
a timed-out run, a run killed before ctest wrote its JUnit file, sanitizer errors, nothing at all).
They are never a record of a run.

    python3 tests/python/test_gpu_summary.py            # the tests (ctest: gpu_summary)
    python3 tests/python/test_gpu_summary.py --write D  # leave the success fixture and its
                                                        # summary in D/work, for reading
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARIZE = ROOT / "scripts" / "gpu" / "summarize.py"
sys.path.insert(0, str(SUMMARIZE.parent))
import summarize  # noqa: E402

DEVICE = "NVIDIA H200 (test fixture)"
PLAN = "env build tests selftest train bench torch memcheck"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_json(path: Path, obj) -> None:
    write(path, json.dumps(obj, indent=2) + "\n")


def framed(label: str, body: str, status="ok", rc=0, seconds=1.5, limit=60) -> str:
    """A command's log as tmo (scripts/gpu/stages.sh) frames it."""
    return (f"+ [{label}, limit {limit}s] command line\n{body}\n"
            f"tmo: {label}: {status} (exit {rc}) after {seconds:.3f}s of {limit}s\n")


def metrics(model: str, accs: list, seconds: list) -> dict:
    """train_gpu --metrics-out, keys as apps/train_gpu.cpp writes them."""
    test = {"count": 10000, "accuracy": accs[-1], "precision": 0.98, "recall": 0.97, "f1": 0.975,
            "roc_auc": 0.999, "baseline_accuracy": 0.9026, "mean_loss": 0.012,
            "confusion_matrix": {"tp": 950, "fp": 20, "tn": 9006, "fn": 24}}
    return {"device": f"CUDA {DEVICE}, --conv fused", "model": model.upper(),
            "trainable_parameters": 420481 if model == "a" else 27457,
            "config": {"epochs": len(accs), "batch_size": 64, "test_batch_size": 1000, "lr": 0.001,
                       "optimizer": "adam", "seed": 0, "target_digit": 8, "pos_weight": 1.0,
                       "train_images": 60000, "test_images": 10000},
            "epochs": [{"epoch": i + 1, "mean_loss": 0.05 / (i + 1), "seconds": s,
                        "images_per_second": 60000 / s, "test_accuracy": a}
                       for i, (a, s) in enumerate(zip(accs, seconds))],
            "test": test}


def bench_json(model: str, conv: str, batch: int, epoch_s: list) -> dict:
    """bench_gpu_epoch --json, keys as bench/bench_gpu_epoch.cpp writes them."""
    steps = (60000 + batch - 1) // batch
    med = summarize.median_after_first(epoch_s)
    phases = [{"name": "conv2+relu+pool2", "median_us": 9.5, "share": 0.3, "samples": 190},
              {"name": "adam", "median_us": 4.0, "share": 0.125, "samples": 190},
              {"name": "fc1+relu", "median_us": 3.0, "share": 0.09, "samples": 190}]
    return {"tool": "bench_gpu_epoch", "date": "2026-12-01T10:00:00Z",
            "device": {"name": DEVICE, "compute_capability": "9.0", "sm_count": 132,
                       "global_memory_bytes": 150754820096},
            "options": {"model": model.upper(), "batch_size": batch, "conv": conv, "epochs": 3,
                        "timed_steps": 200, "profile_steps": 0, "graph": True, "seed": 0,
                        "train_images": 60000, "test_images": 10000},
            "epochs": {"device": DEVICE, "steps_per_epoch": steps,
                       "epochs": [{"epoch": i + 1, "mean_loss": 0.1, "seconds": s,
                                   "images_per_second": 60000 / s} for i, s in enumerate(epoch_s)],
                       "median_epoch_seconds": med, "median_of": "epochs after the first",
                       "images_per_second": 60000 / med, "us_per_step": 1e6 * med / steps,
                       "test": {"count": 10000, "accuracy": 0.99}},
            "phases": {"device": DEVICE, "steps": 200, "warmup_samples_dropped": 10,
                       "phases": phases, "sum_of_medians_us": 31.6,
                       "eager_step_host_median_us": 80.0, "step_from_epochs_us": 1e6 * med / steps}}


def torch_json(epoch_s: list) -> dict:
    """bench/pytorch/reference.py --out, keys as it writes them."""
    med = summarize.median_after_first(epoch_s)
    return {"framework": "pytorch", "variant": "eager", "model": "a",
            "device": {"torch": "2.11.0+cu130", "device": "cuda", "name": DEVICE, "cuda": "13.0",
                       "cudnn": 91900},
            "config": {"epochs": 3, "batch_size": 64, "test_batch_size": 1000, "lr": 0.001,
                       "seed": 0, "train_images": 60000, "images_per_epoch": 60000,
                       "test_images": 10000, "drop_last": False, "cudnn_benchmark": True,
                       "tf32": "default", "tf32_state": {}, "compile_mode": None,
                       "compile_optimizer": None, "tutorial_torchvision": None,
                       "data_dir": "data"},
            "epochs": [{"epoch": i + 1, "mean_loss": 0.05, "seconds": s,
                        "images_per_second": 60000 / s, "test_accuracy": 0.99}
                       for i, s in enumerate(epoch_s)],
            "median_epoch_seconds": med, "median_over": "epochs after the first",
            "images_per_second": 60000 / med, "test": {"accuracy": 0.9921}, "notes": ["eager mode"]}


def junit(cases: list) -> str:
    """ctest --output-junit, as CMake writes it (a testcase per ctest test)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuite name="(empty)" tests="{len(cases)}" failures="0" disabled="0" skipped="0" '
           'hostname="" time="3" timestamp="2026-12-01T10:00:00">']
    for name, status, text in cases:
        ctest_status = {"passed": "run", "skipped": "notrun", "failed": "fail",
                        "timeout": "fail"}[status]
        out.append(f'\t<testcase name="{name}" classname="{name}" time="0.5" '
                   f'status="{ctest_status}">')
        if status == "skipped":
            out.append('\t\t<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>')
        elif status == "failed":
            out.append('\t\t<failure message="Failed"/>')
        elif status == "timeout":
            out.append('\t\t<failure message="Timeout"/>')
        out.append(f"\t\t<system-out>{text}</system-out>\n\t</testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"


def success_fixture(work: Path) -> None:
    """A first-light run where everything worked (made-up figures)."""
    write(work / "meta.tsv", "script\tscripts/gpu/first-light.sh\nstarted\t2026-12-01T10:00:00Z\n"
          "commit\t0123456789abcdef0123456789abcdef01234567\ncommit_source\tgit\ndirty\t\n"
          f"budget_s\t540\nhost\tfixture\noverrides\t\nstages_asked\tall\nplan\t{PLAN}\n")
    write(work / "stages.tsv", "".join(f"{s}\tok\t0\t10\t60\t\n" for s in PLAN.split()))
    cmds = ["train A fused", "train B fused", "train A cudnn", "train B cudnn"]
    cmds += [f"bench {m} {c} b{b}" for b in (64, 1024) for m in "AB" for c in ("fused", "cudnn")]
    write(work / "commands.tsv", "".join(f"x\t{c}\tok\t0\t5.000\t60\n" for c in cmds))
    write_json(work / "env" / "probe.json", {
        "driver": {"library": "libcuda.so.1", "cuda_version": "13.0", "cuda_version_int": 13000,
                   "devices": [{"index": 0, "name": DEVICE, "total_memory_bytes": 150754820096,
                                "compute_capability_major": 9, "compute_capability_minor": 0,
                                "multiprocessors": 132, "compute_capability": "9.0"}]},
        "runtime": {"library": "/usr/local/cuda/lib64/libcudart.so", "version": "13.0",
                    "version_int": 13000},
        "cublas": {"library": "/usr/local/cuda/lib64/libcublas.so", "version": "13.1.0"},
        "cudnn": {"library": "/site/nvidia/cudnn/lib/libcudnn.so.9", "version": "9.19.0",
                  "version_int": 91900, "built_with_cudart": "13.1"}})
    write(work / "env" / "gpu.csv",
          "name, driver_version, compute_cap, memory.total [MiB]\n"
          f"{DEVICE}, 580.159.04, 9.0, 143771 MiB\n")
    write(work / "env" / "versions.txt",
          "== nvcc: /usr/local/cuda/bin/nvcc\nCuda compilation tools, release 13.0, V13.0.88\n"
          "== cmake: /usr/bin/cmake\ncmake version 3.31.6\n== c++: /usr/bin/c++\n"
          "c++ (Ubuntu 13.3.0) 13.3.0\n== os\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n"
          "== cpu\nmodel name\t: Fixture CPU\ncores: 16\n== tools\n"
          "compute-sanitizer: /usr/local/cuda/bin/compute-sanitizer\n"
          "ncu: /usr/local/cuda/bin/ncu\n")
    write(work / "build" / "build.log", framed(
        "build", "-- octa 0.1.0: build type Release, CUDA ON (CUDA 13.0.88, cuDNN 9.19.0, "
                 "architectures 90)\nbuild.sh: target octa_selftest not-defined\n"
                 "build.sh: target octa built\nbuild.sh: target train_gpu built\n", seconds=95.0,
        limit=330))
    write(work / "build" / "ninja_log.txt",
          "# ninja log v5\n0\t44000\t0\ttests/main.cpp.o\tabc\n"
          "0\t30000\t0\tkernels/conv.cu.o\tdef\n")
    names = ["GPU step matches the CPU reference: model A, fused kernels",
             "conv3x3_tc_forward matches the CPU reference, with and without ReLU",
             "Check macros throw with the expression, file:line and the library&apos;s message"]
    write(work / "tests" / "ctest-junit.xml",
          junit([(n, "passed", "All tests passed (12 assertions in 1 test case)") for n in names]))
    write(work / "tests" / "ctest.log", framed(
        "ctest", "100% tests passed, 0 tests failed out of 3", seconds=30.0, limit=150))
    runs = {("a", "fused"): [0.9901, 0.9931, 0.9948, 0.9957, 0.9965],
            ("b", "fused"): [0.981, 0.986, 0.988, 0.990, 0.9912],
            ("a", "cudnn"): [0.9899, 0.9930, 0.9941, 0.9946, 0.9950],  # misses 99.6% by 0.1
            ("b", "cudnn"): [0.980, 0.985, 0.989, 0.9905, 0.9917]}
    for (m, c), accs in runs.items():
        write_json(work / "train" / f"{m}_{c}.json", metrics(m, accs, [0.9, 0.4, 0.41, 0.39, 0.4]))
        write(work / "train" / f"{m}_{c}.log", framed(f"train {m.upper()} {c}", "5 epochs",
                                                      seconds=6.0, limit=75))
    for b in (64, 1024):
        for m in "ab":
            for c in ("fused", "cudnn"):
                ep = [0.5, 0.05, 0.052] if c == "fused" else [0.9, 0.3, 0.31]
                write_json(work / "bench" / f"{m}_{c}_b{b}.json", bench_json(m, c, b, ep))
                write(work / "bench" / f"{m}_{c}_b{b}.log",
                      framed(f"bench {m.upper()} {c} b{b}", "done", seconds=5.0, limit=40))
    write_json(work / "torch" / "eager_a_b64.json", torch_json([3.1, 1.25, 1.27]))
    write(work / "torch" / "eager_a_b64.log", framed("torch eager A b64", "ok", seconds=20.0))
    write(work / "memcheck" / "01_test_gpu_train_model_A.log", framed(
        "memcheck test_gpu_train: GPU step matches the CPU reference: model A, fused kernels",
        "========= COMPUTE-SANITIZER\nAll tests passed (14 assertions in 1 test case)\n\n"
        "========= ERROR SUMMARY: 0 errors", seconds=40.0, limit=150))


def assert_tables(test: unittest.TestCase, md: str) -> None:
    """Every row of a Markdown table has as many cell separators as its header (a '|' inside a
    cell, as in Catch2's "test cases: 1 | 1 failed", must be escaped)."""
    width = None
    for line in md.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        n = line.replace("\\|", "").count("|")
        width = n if width is None else width
        test.assertEqual(n, width, line)


def summarise(work: Path) -> tuple:
    """Runs summarize.py as first-light.sh does; returns (record, markdown)."""
    subprocess.run([sys.executable, str(SUMMARIZE), str(work)], check=True)
    return json.loads((work / "summary.json").read_text()), (work / "summary.md").read_text()


class SummaryOfASuccessfulRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.work = Path(cls.tmp.name) / "first-light"
        success_fixture(cls.work)
        cls.rec, cls.md = summarise(cls.work)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_record_identity(self):
        r = self.rec
        self.assertEqual(r["schema"], "octa-gpu-run/1")
        self.assertEqual(r["commit"], "0123456789abcdef0123456789abcdef01234567")
        self.assertEqual(r["record_file"], "docs/gpu-runs/2026-12-01-0123456789ab.json")
        self.assertTrue(r["complete"])
        self.assertEqual([s["status"] for s in r["stages"]], ["ok"] * 8)

    def test_machine_and_versions(self):
        m = self.rec["machine"]
        self.assertEqual(m["device_name"], DEVICE)
        self.assertEqual(m["device_name_source"], "cudaGetDeviceProperties (bench_gpu_epoch)")
        self.assertEqual(m["compute_capability"], "9.0")
        self.assertEqual(m["driver_version"], "580.159.04")
        self.assertEqual(m["cuda_runtime_version"], "13.0")
        self.assertEqual(m["cublas_version"], "13.1.0")
        self.assertEqual(m["cudnn_version"], "9.19.0")
        self.assertEqual(m["nvcc_version"], "13.0.88")
        self.assertEqual(m["cores"], 16)
        self.assertEqual(self.rec["build"]["cudnn_compiled_against"], "9.19.0")
        self.assertEqual(self.rec["build"]["targets"]["octa_selftest"], "not-defined")
        self.assertEqual(self.rec["build"]["slowest_steps"][0],
                         {"seconds": 44.0, "output": "tests/main.cpp.o"})

    def test_per_test_results(self):
        t = self.rec["tests"]
        self.assertEqual(t["source"], "ctest-junit.xml")
        self.assertEqual(t["counts"], {"passed": 3})
        self.assertIn("Check macros throw with the expression, file:line and the library's message",
                      [c["name"] for c in t["cases"]])

    def test_accuracy_targets(self):
        by = {(x["model"], x["conv"]): x for x in self.rec["train"]}
        self.assertEqual([(x["model"], x["conv"]) for x in self.rec["train"]],
                         [("A", "fused"), ("B", "fused"), ("A", "cudnn"), ("B", "cudnn")])
        self.assertTrue(by["A", "fused"]["target_met"])
        self.assertTrue(by["B", "fused"]["target_met"])
        self.assertFalse(by["A", "cudnn"]["target_met"])
        self.assertAlmostEqual(by["A", "cudnn"]["short_by_points"], 0.1)
        self.assertEqual(by["A", "fused"]["epochs_run"], 5)
        self.assertAlmostEqual(by["A", "fused"]["median_epoch_seconds"], 0.4)
        self.assertIn("| A | cudnn | ok | 99.50% | >= 99.60%: MISSED by 0.1 points", self.md)
        self.assertIn("| A | fused | ok | 99.65% | >= 99.60%: met", self.md)

    def test_bench_and_pytorch(self):
        a64 = [x for x in self.rec["bench"] if x["model"] == "A" and x["batch"] == 64]
        self.assertEqual([x["conv"] for x in a64], ["fused", "cudnn"])
        fused = a64[0]
        self.assertAlmostEqual(fused["median_epoch_seconds"], 0.051)
        self.assertAlmostEqual(fused["images_per_second"], 60000 / 0.051)
        self.assertEqual(fused["phases"][0]["name"], "conv2+relu+pool2")
        torch = self.rec["pytorch"][0]
        self.assertEqual((torch["variant"], torch["model"], torch["batch"]), ("eager", "A", 64))
        self.assertAlmostEqual(torch["median_epoch_seconds"], 1.26)
        cmp = {c["octa_conv"]: c for c in self.rec["octa_vs_pytorch_eager"]}
        self.assertAlmostEqual(cmp["fused"]["torch_over_octa"], 1.26 / 0.051)
        self.assertIn("fused 0.0510 s = 24.7x faster than eager", self.md)

    def test_digest(self):
        out = subprocess.run([sys.executable, str(SUMMARIZE), "--digest", str(self.work)],
                             check=True, capture_output=True, text=True).stdout
        self.assertIn(f"first-light digest: {DEVICE}, commit 0123456789ab, complete", out)
        self.assertIn("train A cudnn: 99.50% (missed by 0.1 points)", out)
        self.assertIn("bench A fused b64: 0.0510 s/epoch (ok)", out)
        self.assertIn("memcheck: 1 of 1 runs clean", out)
        self.assertLess(len(out), 2000)

    def test_memcheck(self):
        s = self.rec["memcheck"]
        self.assertEqual((s["clean"], s["total"]), (1, 1))
        self.assertEqual(s["runs"][0]["errors"], 0)

    def test_markdown_tables_keep_their_columns(self):
        assert_tables(self, self.md)


class SummaryOfRunsThatWentWrong(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.work = Path(self.tmp.name) / "first-light"

    def tearDown(self):
        self.tmp.cleanup()

    def test_an_empty_work_folder_still_gives_a_summary(self):
        self.work.mkdir()
        write(self.work / "meta.tsv", f"commit\tabc\nplan\t{PLAN}\n")
        rec, md = summarise(self.work)
        self.assertFalse(rec["complete"])
        self.assertEqual({s["status"] for s in rec["stages"]}, {"not-reached"})
        self.assertIsNone(rec["machine"]["device_name"])
        self.assertIn("Device: none seen", md)

    def test_failed_and_skipped_tests_and_a_killed_ctest(self):
        success_fixture(self.work)
        out = "Filters: x\n/tests/test_gpu_conv.cpp:40: FAILED:\n  CHECK( max_err &lt;= tol )\n"
        write(self.work / "tests" / "ctest-junit.xml", junit([
            ("conv3x3_tc_forward matches", "failed", out),
            ("needs real MNIST", "skipped", "SKIPPED: real MNIST not found"),
            ("slow one", "timeout", "")]))
        rec, md = summarise(self.work)
        st = {c["name"]: c for c in rec["tests"]["cases"]}
        self.assertEqual(st["conv3x3_tc_forward matches"]["status"], "failed")
        self.assertIn("CHECK( max_err <= tol )", st["conv3x3_tc_forward matches"]["output_tail"])
        self.assertEqual(st["needs real MNIST"]["reason"], "real MNIST not found")
        self.assertEqual(st["slow one"]["status"], "timeout")
        self.assertIn("**FAILED: conv3x3_tc_forward matches**", md)
        # ctest stopped by its limit: no JUnit file, only its progress lines.
        (self.work / "tests" / "ctest-junit.xml").unlink()
        write(self.work / "tests" / "ctest.log",
              " 1/50 Test  #8: Check macros throw ..........   Passed    0.07 sec\n"
              " 2/50 Test #11: conv3x3_forward matches ....***Skipped   0.07 sec\n"
              " 3/50 Test #47: GPU step matches ...........***Exception: SegFault  0.50 sec\n"
              "tmo: ctest: timeout (exit 124) after 150.000s of 150s\n")
        rec, _ = summarise(self.work)
        t = rec["tests"]
        self.assertTrue(t["source"].startswith("ctest.log"))
        self.assertEqual(t["counts"], {"passed": 1, "skipped": 1, "failed": 1})
        self.assertEqual(t["cases"][2]["message"], "Exception: SegFault")
        self.assertEqual(t["outcome"]["status"], "timeout")

    def test_a_timed_out_training_run_and_sanitizer_errors(self):
        success_fixture(self.work)
        (self.work / "train" / "b_fused.json").unlink()
        write(self.work / "train" / "b_fused.log", framed(
            "train B fused", "epoch 1/5 ...\ntrain_gpu: error: cuDNN: no execution plan",
            status="timeout", rc=124, seconds=75.0, limit=75))
        write(self.work / "memcheck" / "02_test_gpu_conv.log", framed(
            "memcheck test_gpu_conv", "========= Invalid __global__ write of size 4 bytes\n"
            "=========     at conv3x3_tc_kernel+0x1a0\ntest cases: 1 | 1 failed\n"
            "========= ERROR SUMMARY: 3 errors", status="failed", rc=99, seconds=30.0))
        # A case that skipped (no device) ran no GPU code: not clean, though the tool saw nothing.
        write(self.work / "memcheck" / "03_test_gpu_kernels.log", framed(
            "memcheck test_gpu_kernels", "SKIPPED: [gpu] test: no usable CUDA device\n"
            "test cases: 1 | 1 passed\n========= ERROR SUMMARY: 0 errors"))
        # Errors reported, yet exit 0 (a run without --error-exitcode): not clean either.
        write(self.work / "memcheck" / "04_test_gpu_library.log", framed(
            "memcheck test_gpu_library", "========= Program hit cudaErrorInvalidValue\n"
            "All tests passed (3 assertions in 1 test case)\n========= ERROR SUMMARY: 1 error"))
        rec, md = summarise(self.work)
        b = next(x for x in rec["train"] if (x["model"], x["conv"]) == ("B", "fused"))
        self.assertEqual(b["outcome"]["status"], "timeout")
        self.assertIn("train_gpu: error: cuDNN: no execution plan", b["errors"])
        self.assertNotIn("target_met", b)
        s = rec["memcheck"]
        self.assertEqual((s["clean"], s["total"]), (1, 4))
        self.assertEqual(s["runs"][2]["skipped"], "[gpu] test: no usable CUDA device")
        bad = s["runs"][1]
        self.assertEqual(bad["errors"], 3)
        self.assertIn("========= Invalid __global__ write of size 4 bytes", bad["first_reports"])
        self.assertIn("## compute-sanitizer memcheck: 1 of 4 runs clean", md)
        assert_tables(self, md)
        self.assertIn("| SKIPPED: [gpu] test: no usable CUDA device |", md)

    def test_a_build_saved_by_the_warnings_fallback_says_so(self):
        success_fixture(self.work)
        warning = "engine/io/safetensors.cpp:88:15: error: possibly dangling reference " \
                  "[-Werror=dangling-reference]"
        write(self.work / "build" / "build.log", framed(
            "build", f"{warning}\nbuild.sh: the build failed on warnings made errors:\n"
                     f"  {warning}\n"
                     "build.sh: WARNINGS-NOT-ERRORS FALLBACK: building again with -Werror dropped\n"
                     "build.sh: target octa built\n", seconds=150.0, limit=330))
        rec, md = summarise(self.work)
        self.assertTrue(rec["build"]["werror_fallback"])
        self.assertEqual(rec["build"]["warnings_made_errors"], [warning])
        self.assertIn("**Built with warnings NOT as errors", md)

    def test_fewer_than_five_epochs_is_not_compared_with_the_target(self):
        success_fixture(self.work)
        write_json(self.work / "train" / "a_fused.json", metrics("a", [0.99, 0.997], [0.9, 0.4]))
        rec, _ = summarise(self.work)
        a = next(x for x in rec["train"] if (x["model"], x["conv"]) == ("A", "fused"))
        self.assertIsNone(a["target_met"])
        self.assertIn("not comparable", a["target_note"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        work = Path(sys.argv[2]) / "work"
        success_fixture(work)
        summarise(work)
        print(work / "summary.md")
        sys.exit(0)
    unittest.main()
