"""bench/pytorch/parity.py: octa and PyTorch train the same network the same way.

    python3 bench/pytorch/parity.py --model a --octa build/apps/train_gpu --data-dir data \\
        --workdir runs/parity [--device cuda] [--conv fused] [--steps-compare all|N] \\
        [--task multiclass] [--dataset fashion-mnist] [--target-class Bag] \\
        [--label-smoothing 0.1] [--class-weights w0,...,w9]

--task multiclass compares the ten-class training (fc2 with ten outputs, CrossEntropyLoss with the
same --label-smoothing and --class-weights as octa's, class-index targets); the prediction checks
then compare confusion matrices and argmax predictions instead of logit > 0.

1. Runs octa for one epoch with --export-init (initial weights, PyTorch names), --export-order
   (the epoch's batch order), --export-losses (every step's mean loss), --checkpoint (the trained
   weights) and --metrics-out (its own test metrics).
2. Loss curves (model A): trains PyTorch's model A from octa's initial weights over exactly octa's
   batch order (same transform, Adam lr 1e-3 betas (0.9, 0.999) eps 1e-8, BCEWithLogitsLoss mean,
   float32 with TF32 off so that cuBLAS/cuDNN do IEEE float32 like octa) and compares the two
   per-step loss curves. With --float64 (the default) it also trains a float64 copy as the
   "exact" curve, which says how far each float32 run is from exact arithmetic.
3. Predictions: octa's trained weights loaded into the PyTorch module (eval mode, no_grad) must
   reproduce octa's own test evaluation (confusion matrix, ROC-AUC, mean loss), and, for model A,
   must agree with the PyTorch-trained model on the 10,000 test images (disagreements of
   logit > 0, max |logit difference|).

Tolerances, and why they widen with the steps. The rule is the project's one:
|octa - torch| <= atol + rtol * |torch|. Step 1 is a pure forward pass from identical weights, so
it agrees to float32 rounding of differently ordered sums (~1e-7 relative). After each update
the two runs hold weights that differ by rounding, and training amplifies such differences: Adam
divides by sqrt(v), so a gradient component that is nearly zero (a cancelling sum) in both runs
can come out with a different size or sign and move its weight by up to a full lr in one run
only; ReLU and max-pool decisions then flip on borderline inputs, and the gap grows roughly
tenfold every few steps until the curves are merely statistically alike. It is chaotic, not a
bug: two float32 runs of PyTorch itself with different summation orders drift apart the same
way, and the float64 run shows it (after such an event one float32 run is far from float64
while the other is not; on the CPU, with seed 0 and 3,000 images, octa's curve left float64 at
step 11 and reached 8e-4 relative by step 45, while PyTorch's stayed within 2e-7; with seeds 1
and 2 both stayed together). Hence, as pass/fail:
  - step 1 (forward only): relative difference <= --step1-rtol (1e-5);
  - the first --tight-steps (20) steps: rtol 1e-4, atol 1e-6 (before an event can amplify; a
    wrong gradient or optimiser step shows up at step 2 by far more);
  - every step, as means over windows of --window (50) steps: --loose-rtol 0.1, --loose-atol
    2e-3 (the two curves still describe the same training);
and reported only: whether the first --report-steps (100) steps are within rtol 1e-3, atol 1e-5,
max |diff|, max relative diff, the first step beyond that tolerance, and per window the distance
of each float32 curve from the float64 one.
Model B has dropout, whose masks come from different random generators in the two frameworks,
so its loss curves cannot be compared step by step: for model B only the prediction check runs.

Exit 0 when every check that ran passed. The full report goes to WORKDIR/parity.json (and --out).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_idx  # noqa: E402
from reference import Task, binary_metrics, multiclass_metrics, set_tf32, tf32_state  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


# ------------------------------------------------------------------------------------------------
# Checks on octa's exports and on curves (numpy only)
# ------------------------------------------------------------------------------------------------

def validate_order(order: np.ndarray, n_train: int) -> np.ndarray:
    """octa's order tensor [epochs, n_train] -> epoch 0's row; each row must be a permutation."""
    if order.ndim != 2 or order.shape[1] != n_train:
        raise ValueError(f"order: shape {list(order.shape)}, expected [epochs, {n_train}]")
    for e, row in enumerate(order):
        if not np.array_equal(np.sort(row), np.arange(n_train)):
            raise ValueError(f"order: row {e} is not a permutation of 0..{n_train - 1}")
    return order[0].astype(np.int64)


def within(got, ref, rtol: float, atol: float) -> np.ndarray:
    """The project's tolerance rule, elementwise (NaN never passes)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return np.abs(got - ref) <= atol + rtol * np.abs(ref)


def window_means(x: np.ndarray, window: int) -> np.ndarray:
    """Means of consecutive windows of `window` steps (the last may be shorter)."""
    return np.array([x[s:s + window].mean() for s in range(0, len(x), window)])


def compare_curves(octa, ref, *, step1_rtol: float, tight_steps: int, tight_rtol: float,
                   tight_atol: float, report_steps: int, rtol: float, atol: float, window: int,
                   loose_rtol: float, loose_atol: float, exact=None) -> dict:
    """Compares octa's per-step losses with a PyTorch run over the same steps (see the header).

    "step1", "tight" and "loose" carry pass/fail; the rest is reported."""
    octa, ref = np.asarray(octa, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if octa.shape != ref.shape or octa.size == 0:
        raise ValueError(f"curves of {octa.size} and {ref.size} steps")
    diff = np.abs(octa - ref)
    rel = diff / np.maximum(np.abs(ref), 1e-30)
    ok = within(octa, ref, rtol, atol)
    first_bad = int(np.argmin(ok)) if not ok.all() else None
    tight = min(tight_steps, octa.size)
    tight_ok = within(octa[:tight], ref[:tight], tight_rtol, tight_atol)
    report = min(report_steps, octa.size)
    wo, wr = window_means(octa, window), window_means(ref, window)
    loose_ok = within(wo, wr, loose_rtol, loose_atol)
    out = {
        "steps": int(octa.size),
        "step1": {"octa": octa[0], "torch": ref[0], "abs_diff": diff[0], "rel_diff": rel[0],
                  "rtol": step1_rtol, "pass": bool(rel[0] <= step1_rtol)},
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "argmax_rel_diff_step": int(rel.argmax()) + 1,
        "first_step_beyond_tolerance": None if first_bad is None else first_bad + 1,
        "tolerance": {"rtol": rtol, "atol": atol},
        "tight": {"steps": tight, "rtol": tight_rtol, "atol": tight_atol,
                  "max_abs_diff": float(diff[:tight].max()),
                  "max_rel_diff": float(rel[:tight].max()),
                  "failures": int((~tight_ok).sum()), "pass": bool(tight_ok.all())},
        "first_steps_report": {"steps": report, "rtol": rtol, "atol": atol,
                               "max_abs_diff": float(diff[:report].max()),
                               "max_rel_diff": float(rel[:report].max()),
                               "within": bool(ok[:report].all())},
        "all_steps_within_tolerance": int(ok.sum()),
        "epoch_mean": {"octa": float(octa.mean()), "torch": float(ref.mean()),
                       "rel_diff": float(abs(octa.mean() - ref.mean()) /
                                         max(abs(ref.mean()), 1e-30))},
        "loose": {"window": window, "rtol": loose_rtol, "atol": loose_atol,
                  "windows": int(wo.size), "failures": int((~loose_ok).sum()),
                  "max_rel_diff": float((np.abs(wo - wr) / np.maximum(np.abs(wr), 1e-30)).max()),
                  "pass": bool(loose_ok.all())},
        "windows": [],
    }
    ex = None if exact is None else np.asarray(exact, dtype=np.float64)
    for w, s in enumerate(range(0, octa.size, window)):
        e = slice(s, s + window)
        row = {"steps": [s + 1, min(s + window, octa.size)], "mean_octa": float(wo[w]),
               "mean_torch": float(wr[w]), "max_abs_diff": float(diff[e].max()),
               "max_rel_diff": float(rel[e].max())}
        if ex is not None:
            # Distance of each float32 curve from exact (float64) arithmetic: when octa's is of the
            # same size as PyTorch's, the octa-PyTorch gap is float32 rounding, not a bug.
            row["max_abs_octa_vs_float64"] = float(np.abs(octa[e] - ex[e]).max())
            row["max_abs_torch_vs_float64"] = float(np.abs(ref[e] - ex[e]).max())
        out["windows"].append(row)
    return out


def prediction_match(torch_metrics: dict, octa_test: dict, logits: np.ndarray,
                     borderline: float = 1e-4, loss_rtol: float = 1e-4,
                     auc_atol: float = 1e-4) -> dict:
    """octa's weights evaluated by PyTorch vs octa's own evaluation of the same weights.

    octa's metrics JSON has counts, not per-image logits, so the number of disagreements is
    bounded below by |delta tp| + |delta fp| (flips among the 8s and among the rest); any flip
    must be explained by an image whose logit is within `borderline` of 0."""
    t, o = torch_metrics["confusion_matrix"], octa_test["confusion_matrix"]
    lower = abs(t["tp"] - o["tp"]) + abs(t["fp"] - o["fp"])
    near_zero = int(np.sum(np.abs(logits) < borderline))
    auc_t, auc_o = torch_metrics["roc_auc"], octa_test.get("roc_auc")
    auc_diff = None if auc_t is None or auc_o is None else abs(auc_t - auc_o)
    loss_rel = abs(torch_metrics["mean_loss"] - octa_test["mean_loss"]) / max(
        abs(octa_test["mean_loss"]), 1e-30)
    ok = (lower <= near_zero and loss_rel <= loss_rtol
          and (auc_diff is None or auc_diff <= auc_atol)
          and torch_metrics["count"] == octa_test["count"])
    return {
        "torch_confusion_matrix": t, "octa_confusion_matrix": o,
        "disagreements_at_least": lower, "logits_within_borderline_of_zero": near_zero,
        "borderline": borderline,
        "accuracy": {"torch": torch_metrics["accuracy"], "octa": octa_test["accuracy"]},
        "roc_auc_abs_diff": auc_diff, "auc_atol": auc_atol,
        "mean_loss": {"torch": torch_metrics["mean_loss"], "octa": octa_test["mean_loss"],
                      "rel_diff": loss_rel, "rtol": loss_rtol},
        "pass": bool(ok),
    }


def multiclass_prediction_match(torch_metrics: dict, octa_test: dict, logits: np.ndarray,
                                borderline: float = 1e-4, loss_rtol: float = 1e-4) -> dict:
    """The multi-class form of prediction_match: octa's weights evaluated by PyTorch vs octa's own
    evaluation. A changed prediction moves one count between two cells of a confusion-matrix row,
    so at least sum |delta| / 2 images disagree; each must be explained by an image whose two
    largest logits are within `borderline` of each other (where float rounding can swap them)."""
    t = np.asarray(torch_metrics["confusion_matrix"]["counts"])
    o = np.asarray(octa_test["confusion_matrix"]["counts"])
    lower = int(np.abs(t - o).sum()) // 2 if t.shape == o.shape else None
    top2 = np.sort(logits, axis=1)[:, -2:]
    near_tie = int(np.sum(top2[:, 1] - top2[:, 0] < borderline))
    loss_rel = abs(torch_metrics["mean_loss"] - octa_test["mean_loss"]) / max(
        abs(octa_test["mean_loss"]), 1e-30)
    ok = (lower is not None and lower <= near_tie and loss_rel <= loss_rtol
          and torch_metrics["count"] == octa_test["count"])
    return {
        "torch_confusion_matrix": t.tolist(), "octa_confusion_matrix": o.tolist(),
        "disagreements_at_least": lower, "logits_with_top2_within_borderline": near_tie,
        "borderline": borderline,
        "accuracy": {"torch": torch_metrics["accuracy"], "octa": octa_test["accuracy"]},
        "macro_f1": {"torch": torch_metrics["macro_f1"], "octa": octa_test.get("macro_f1")},
        "mean_loss": {"torch": torch_metrics["mean_loss"], "octa": octa_test["mean_loss"],
                      "rel_diff": loss_rel, "rtol": loss_rtol},
        "pass": bool(ok),
    }


# ------------------------------------------------------------------------------------------------
# octa
# ------------------------------------------------------------------------------------------------

def run_octa(args, files: dict) -> dict:
    cmd = [str(args.octa), "--model", args.model, "--epochs", "1",
           "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--data-dir", str(args.data_dir), "--no-download", "--device", args.device,
           "--conv", args.conv, "--export-init", str(files["init"]),
           "--export-order", str(files["order"]), "--export-losses", str(files["losses"]),
           "--checkpoint", str(files["trained"]), "--metrics-out", str(files["metrics"]),
           "--log-level", "warn"]
    if args.max_train:
        cmd += ["--max-train", str(args.max_train)]
    # Only what differs from octa's defaults, so that the binary MNIST run needs no newer flags.
    if args.dataset != "mnist":
        cmd += ["--dataset", args.dataset]
    if args.task != "binary":
        cmd += ["--task", args.task]
    if args.task == "binary" and args.target_class != str(mnist_idx.TARGET_DIGIT):
        cmd += ["--target-class", args.target_class]
    if args.label_smoothing:
        cmd += ["--label-smoothing", repr(args.label_smoothing)]
    if args.class_weights:
        cmd += ["--class-weights", args.class_weights]
    print("octa:", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with open(files["log"], "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = Path(files["log"]).read_text().splitlines()[-15:]
        raise SystemExit(f"parity.py: octa exited with {rc}; the end of {files['log']}:\n"
                         + "\n".join(tail))
    return {"command": cmd, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------------

def train_over_order(model, x, y, order, batch: int, steps: int, criterion):
    """PyTorch's training over octa's batch order; returns every step's mean loss (float64)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    idx_all = torch.from_numpy(order).to(x.device)
    losses = torch.empty(steps, dtype=torch.float64, device=x.device)
    model.train()
    for s in range(steps):
        idx = idx_all[s * batch:(s + 1) * batch]
        loss = criterion(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[s] = loss.detach()
    return losses.cpu().numpy()


def test_logits(model, x_test, batch: int = 1000) -> np.ndarray:
    """(N,) logits of a binary model, (N, K) of a multi-class one."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x_test[s:s + batch]) for s in range(0, x_test.shape[0], batch)])
    out = out.double().cpu().numpy()
    return out[:, 0] if out.shape[1] == 1 else out


def predictions(logits: np.ndarray) -> np.ndarray:
    """logit > 0, or the argmax (first maximum)."""
    return logits > 0 if logits.ndim == 1 else np.argmax(logits, axis=1)


def weight_diffs(a: dict, b: dict) -> dict:
    """Per tensor: max |a - b| and ||a - b|| / ||b||."""
    out = {}
    for k in b:
        if not torch.is_floating_point(b[k]):
            continue
        d = (a[k].double() - b[k].double())
        out[k] = {"max_abs": d.abs().max().item(),
                  "rel_norm": (d.norm() / b[k].double().norm().clamp_min(1e-30)).item()}
    return out


def run(args) -> dict:
    if torch is None:
        raise SystemExit(f"parity.py: PyTorch is not installed in this Python ({sys.executable})")
    from safetensors.torch import load_file
    import models

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    files = {"init": work / "octa_init.safetensors", "order": work / "octa_order.safetensors",
             "losses": work / "octa_losses.json", "trained": work / "octa_trained.safetensors",
             "metrics": work / "octa_metrics.json", "log": work / "octa.log"}
    report = {"model": args.model, "batch_size": args.batch_size, "seed": args.seed,
              "dataset": args.dataset, "task": args.task,
              "octa_device": args.device, "octa_conv": args.conv, "files": {
                  k: str(v) for k, v in files.items()}}
    if args.reuse_octa and all(files[k].exists() for k in ("init", "order", "losses", "trained",
                                                             "metrics")):
        report["octa_run"] = "reused the files already in the workdir"
    else:
        report["octa_run"] = run_octa(args, files)

    # --- PyTorch in IEEE float32 ----------------------------------------------------------------
    device = torch.device(args.torch_device)
    set_tf32("off")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    report["torch"] = {"version": torch.__version__, "device": str(device),
                       "tf32_state": tf32_state(), "cudnn_deterministic": True}
    if device.type == "cuda":
        report["torch"]["gpu"] = torch.cuda.get_device_name(device)

    mnist = mnist_idx.load_dataset(args.data_dir, args.dataset)
    task = Task(args, mnist.train_labels)
    report["task_config"] = task.describe()
    images, labels = mnist.train_images, mnist.train_labels
    if args.max_train:
        images, labels = images[:args.max_train], labels[:args.max_train]
    n_train = len(labels)
    x_test = torch.from_numpy(mnist_idx.normalize(mnist.test_images)).to(device)
    y_test = task.test_targets(mnist.test_labels)
    octa_test = json.loads(files["metrics"].read_text())["test"]
    checks = {}

    def metrics(logits):
        if task.kind == "binary":
            return binary_metrics(logits, y_test)
        return multiclass_metrics(logits, y_test, task.class_names)

    # --- prediction check: octa's trained weights in PyTorch vs octa's own evaluation -----------
    octa_model = models.build_model(args.model, task.num_classes).to(device)
    octa_model.load_state_dict(load_file(str(files["trained"])), strict=True)
    logits_octa_w = test_logits(octa_model, x_test)
    match = prediction_match if task.kind == "binary" else multiclass_prediction_match
    checks["octa_weights_in_torch"] = match(metrics(logits_octa_w), octa_test, logits_octa_w)

    if args.model != "a":
        report["loss_curves"] = ("not compared: model B's dropout masks come from different "
                                 "random generators in octa and PyTorch; only the prediction "
                                 "check (eval mode, no dropout) applies")
    else:
        order = validate_order(load_file(str(files["order"]))["order"].numpy(), n_train)
        octa_losses = np.asarray(json.loads(files["losses"].read_text())["step_losses"],
                                 dtype=np.float64)
        steps_epoch = math.ceil(n_train / args.batch_size)
        if octa_losses.size != steps_epoch:
            raise SystemExit(f"parity.py: {files['losses']} has {octa_losses.size} steps, one "
                             f"epoch of {n_train} images in batches of {args.batch_size} has "
                             f"{steps_epoch}")
        steps = steps_epoch if args.steps_compare == "all" else min(int(args.steps_compare),
                                                                    steps_epoch)
        x = torch.from_numpy(mnist_idx.normalize(images)).to(device)
        y = torch.from_numpy(task.targets(labels)).to(device)
        init = load_file(str(files["init"]))

        model = models.build_model("a", task.num_classes).to(device)
        model.load_state_dict(init, strict=True)
        model64 = copy.deepcopy(model).double() if args.float64 else None
        t0 = time.perf_counter()
        losses32 = train_over_order(model, x, y, order, args.batch_size, steps,
                                    task.criterion(device))
        if model64 is not None:
            y64 = y.double() if task.kind == "binary" else y  # class indices stay int64
            criterion64 = task.criterion(device)
            if getattr(criterion64, "weight", None) is not None:
                criterion64.weight = criterion64.weight.double()
            losses64 = train_over_order(model64, x.double(), y64, order, args.batch_size, steps,
                                        criterion64)
        else:
            losses64 = None
        report["torch"]["training_seconds"] = time.perf_counter() - t0
        curves = compare_curves(octa_losses[:steps], losses32, step1_rtol=args.step1_rtol,
                                tight_steps=args.tight_steps, tight_rtol=args.tight_rtol,
                                tight_atol=args.tight_atol, report_steps=args.report_steps,
                                rtol=args.rtol, atol=args.atol, window=args.window,
                                loose_rtol=args.loose_rtol, loose_atol=args.loose_atol,
                                exact=losses64)
        report["loss_curves"] = curves
        report["step_losses"] = {"octa": octa_losses[:steps].tolist(),
                                 "torch_float32": losses32.tolist(),
                                 "torch_float64": None if losses64 is None else losses64.tolist()}
        checks["loss_curve_step1"] = curves["step1"]["pass"]
        checks["loss_curve_first_steps"] = curves["tight"]["pass"]
        checks["loss_curve_windows"] = curves["loose"]["pass"]

        if steps == steps_epoch:
            # Same init, same batches, same arithmetic up to rounding: the two trained models
            # should classify the test set alike, apart from a few borderline images.
            logits_torch = test_logits(model, x_test)
            disagree = int(np.sum(predictions(logits_torch) != predictions(logits_octa_w)))
            checks["octa_trained_vs_torch_trained"] = {
                "disagreements": disagree, "max_disagreements": args.max_disagreements,
                "max_abs_logit_diff": float(np.abs(logits_torch - logits_octa_w).max()),
                "torch_trained_accuracy": metrics(logits_torch)["accuracy"],
                "octa_trained_accuracy": checks["octa_weights_in_torch"]["accuracy"]["octa"],
                "pass": disagree <= args.max_disagreements,
            }
            # Per tensor, how far the trained weights are apart; with the float64 run also how
            # far each float32 run is from exact arithmetic (octa's distance should be of the
            # same order as PyTorch's own).
            octa_w = {k: v.cpu() for k, v in load_file(str(files["trained"])).items()}
            torch_w = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            report["trained_weight_diffs"] = {"octa_vs_torch": weight_diffs(octa_w, torch_w)}
            if model64 is not None:
                w64 = {k: v.detach().cpu() for k, v in model64.state_dict().items()}
                report["trained_weight_diffs"]["octa_vs_float64"] = weight_diffs(octa_w, w64)
                report["trained_weight_diffs"]["torch_vs_float64"] = weight_diffs(torch_w, w64)
        else:
            report["trained_comparison"] = (f"skipped: --steps-compare {steps} is less than the "
                                            f"epoch's {steps_epoch} steps")

    def passed(v):
        return v if isinstance(v, bool) else bool(v["pass"])

    report["checks"] = checks
    report["pass"] = all(passed(v) for v in checks.values())
    return report


def summary(r: dict) -> str:
    lines = [f"parity, model {r['model']}, {r['dataset']} {r['task']}, batch {r['batch_size']}, "
             f"octa on {r['octa_device']} "
             f"({r['octa_conv']} conv), PyTorch {r['torch']['version']} on "
             f"{r['torch'].get('gpu', r['torch']['device'])}, TF32 {r['torch']['tf32_state']}"]
    c = r["loss_curves"]
    if isinstance(c, str):
        lines.append(f"loss curves: {c}")
    else:
        t, lo, f, s1 = c["tight"], c["loose"], c["first_steps_report"], c["step1"]
        lines += [
            f"loss curves over {c['steps']} steps: step 1 (forward only) octa "
            f"{s1['octa']:.8f} vs torch {s1['torch']:.8f}, rel diff {s1['rel_diff']:.2e} "
            f"(rtol {s1['rtol']}): {'PASS' if s1['pass'] else 'FAIL'}",
            f"  first {t['steps']} steps: max |diff| {t['max_abs_diff']:.3e}, max rel "
            f"{t['max_rel_diff']:.3e} (rtol {t['rtol']}, atol {t['atol']}): "
            f"{'PASS' if t['pass'] else 'FAIL'}",
            f"  first {f['steps']} steps (reported): max |diff| {f['max_abs_diff']:.3e}, max rel "
            f"{f['max_rel_diff']:.3e}; within rtol {f['rtol']}, atol {f['atol']}: "
            f"{'yes' if f['within'] else 'no'}",
            f"  all steps: max |diff| {c['max_abs_diff']:.3e}, max rel {c['max_rel_diff']:.3e} "
            f"(step {c['argmax_rel_diff_step']}); first step beyond rtol {c['tolerance']['rtol']}"
            f": {c['first_step_beyond_tolerance'] or 'none'}; epoch mean loss octa "
            f"{c['epoch_mean']['octa']:.6f} vs torch {c['epoch_mean']['torch']:.6f}",
            f"  {lo['window']}-step window means: max rel diff {lo['max_rel_diff']:.3e} "
            f"(rtol {lo['rtol']}): {'PASS' if lo['pass'] else 'FAIL'}",
        ]
        if c["windows"] and "max_abs_octa_vs_float64" in c["windows"][0]:
            lines.append("  per window, max |loss - float64 loss|: octa / torch float32")
            for w in c["windows"]:
                lines.append(f"    steps {w['steps'][0]:4d}-{w['steps'][1]:4d}: "
                             f"{w['max_abs_octa_vs_float64']:.2e} / "
                             f"{w['max_abs_torch_vs_float64']:.2e}   (octa vs torch "
                             f"{w['max_abs_diff']:.2e})")
    wd = r.get("trained_weight_diffs")
    if wd:
        cols = [k for k in ("octa_vs_torch", "octa_vs_float64", "torch_vs_float64") if k in wd]
        lines.append("trained weights, max |diff| per tensor: " + " / ".join(cols))
        for name in wd["octa_vs_torch"]:
            lines.append(f"    {name:14s} " + " / ".join(f"{wd[c][name]['max_abs']:.2e}"
                                                       for c in cols))
    p = r["checks"]["octa_weights_in_torch"]
    if "roc_auc_abs_diff" in p:
        auc = p["roc_auc_abs_diff"]
        lines.append(
            f"octa's trained weights in PyTorch vs octa's own test evaluation: confusion matrix "
            f"torch {p['torch_confusion_matrix']} / octa {p['octa_confusion_matrix']}, "
            f"mean loss rel diff {p['mean_loss']['rel_diff']:.2e}, AUC diff "
            f"{auc if auc is None else format(auc, '.2e')}: {'PASS' if p['pass'] else 'FAIL'}")
    else:
        lines.append(
            f"octa's trained weights in PyTorch vs octa's own test evaluation: accuracy torch "
            f"{p['accuracy']['torch']:.4f} / octa {p['accuracy']['octa']:.4f}, confusion "
            f"matrices differ by at least {p['disagreements_at_least']} images (near ties "
            f"{p['logits_with_top2_within_borderline']}), mean loss rel diff "
            f"{p['mean_loss']['rel_diff']:.2e}: {'PASS' if p['pass'] else 'FAIL'}")
    q = r["checks"].get("octa_trained_vs_torch_trained")
    if q:
        lines.append(
            f"octa-trained vs PyTorch-trained (same init and batches), 10,000 test images: "
            f"{q['disagreements']} disagreements of the prediction (allowed "
            f"{q['max_disagreements']}), "
            f"max |logit diff| {q['max_abs_logit_diff']:.3e}; accuracy octa "
            f"{q['octa_trained_accuracy']:.4f} / torch {q['torch_trained_accuracy']:.4f}: "
            f"{'PASS' if q['pass'] else 'FAIL'}")
    lines.append("PARITY " + ("PASS" if r["pass"] else "FAIL"))
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Loss-curve and prediction parity of octa with "
                                             "PyTorch (see the file header for the tolerances).")
    ap.add_argument("--model", choices=("a", "b"), default="a")
    ap.add_argument("--task", choices=("binary", "multiclass"), default="binary")
    ap.add_argument("--dataset", choices=tuple(mnist_idx.DATASETS), default="mnist")
    ap.add_argument("--target-class", default=str(mnist_idx.TARGET_DIGIT),
                    help="the binary task's class: an index or a class name [8]")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--class-weights", default="", help="comma-separated, one per class")
    ap.add_argument("--octa", required=True, help="path to octa's train_gpu")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--workdir", required=True, help="octa's exports and the report go here")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"),
                    help="octa's --device [cuda]")
    ap.add_argument("--conv", default="fused", choices=("fused", "cudnn"), help="octa's --conv")
    ap.add_argument("--torch-device", default=None,
                    help="PyTorch's device [cuda when available, else cpu]")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-train", type=int, default=0, help="first N training images (0: all)")
    ap.add_argument("--steps-compare", default="all",
                    help="'all' or the number of steps to train and compare [all]")
    ap.add_argument("--step1-rtol", type=float, default=1e-5)
    ap.add_argument("--tight-steps", type=int, default=20)
    ap.add_argument("--tight-rtol", type=float, default=1e-4)
    ap.add_argument("--tight-atol", type=float, default=1e-6)
    ap.add_argument("--report-steps", type=int, default=100)
    ap.add_argument("--rtol", type=float, default=1e-3, help="reported tolerance [1e-3]")
    ap.add_argument("--atol", type=float, default=1e-5, help="reported tolerance [1e-5]")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--loose-rtol", type=float, default=0.1)
    ap.add_argument("--loose-atol", type=float, default=2e-3)
    ap.add_argument("--max-disagreements", type=int, default=50,
                    help="octa-trained vs PyTorch-trained test predictions [50 = 0.5%%]")
    ap.add_argument("--no-float64", dest="float64", action="store_false",
                    help="skip the float64 PyTorch run (the exact-arithmetic reference curve)")
    ap.add_argument("--reuse-octa", action="store_true",
                    help="use octa's files already in --workdir instead of running octa")
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args(argv)
    if args.steps_compare != "all" and not (args.steps_compare.isdigit()
                                            and int(args.steps_compare) > 0):
        ap.error("--steps-compare: 'all' or a positive number of steps")
    if args.torch_device is None:
        args.torch_device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2) + "\n"
    (Path(args.workdir) / "parity.json").write_text(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(summary(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
