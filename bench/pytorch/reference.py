"""bench/pytorch/reference.py: the tutorial's training in PyTorch, the baseline octa is measured against.

Three variants of the same training (model A or B, Adam lr 1e-3, BCEWithLogitsLoss mean, target
"label == 8", ToTensor + Normalize((0.5,), (0.5,)), test batch 1000, logit > 0 as the prediction).
--task multiclass trains the same models with fc2 = nn.Linear(128, 10) and CrossEntropyLoss (mean;
--label-smoothing, --class-weights as PyTorch has them) on class-index targets, prediction argmax;
--dataset fashion-mnist (or kmnist) reads that dataset instead of MNIST, and --target-class picks
the binary task's class (an index or a class name: --dataset fashion-mnist --target-class Bag).
--lr-schedule step|cosine decays the learning rate with torch.optim.lr_scheduler's StepLR
(--lr-step-size, --lr-gamma) or CosineAnnealingLR (T_max = --epochs, eta_min = --lr-min), stepped
once after each epoch, as octa's flags of the same names.

  tutorial  as the tutorial writes it: a map-style Dataset that transforms one image at a time on
            the CPU (torchvision's ToTensor/Normalize on a PIL image when torchvision is installed,
            else the same float32 tensor operations), DataLoader(batch, shuffle=True,
            num_workers=0), each batch moved to the GPU (the tutorial's `model.to('cuda')` advice).
  eager     the whole normalised training set resident on the GPU, a torch.randperm order per
            epoch, batches gathered on the GPU, eager mode. PyTorch used well, without a compiler.
  compiled  like eager, with the train step (model + loss, forward and backward) under
            torch.compile(mode=--compile-mode, dynamic=False) and the optimizer step compiled too.
            "reduce-overhead" replays CUDA graphs. With dynamic=False the short last batch (60000 is
            not a multiple of 64 or 1024) gets its own static-shape graph, compiled during epoch 1,
            so every image is used, as in the other variants and in octa; --drop-last drops it.

Each epoch is timed between two torch.cuda.synchronize() calls; the figure to compare is the median
epoch time over the epochs after the first (the first carries cuDNN autotuning, compilation and
CUDA-graph recording). Evaluation (eval mode, torch.no_grad) is outside the timed epochs.

    python3 bench/pytorch/reference.py --model a --variant eager --epochs 3 --batch-size 64 \\
        --data-dir data --out runs/torch_a_eager.json [--eval-every-epoch]

The JSON has the shape of octa's --metrics-out (epochs[].seconds/mean_loss/images_per_second
[/test_accuracy], test.accuracy/precision/recall/f1/roc_auc/confusion_matrix, or for multiclass
test.accuracy/top2_accuracy/macro_f1/classes/confusion_matrix) plus median_epoch_seconds and
images_per_second. The helpers above the PyTorch part (binary_metrics, multiclass_metrics,
median_after_first, time_to_accuracy) need only numpy; bench/run and parity.py import them.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_idx  # noqa: E402

try:
    import torch
except ImportError:  # the numpy helpers below still work (bench/run, local checks)
    torch = None

VARIANTS = ("tutorial", "eager", "compiled")
COMPILE_MODES = ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default")


# ------------------------------------------------------------------------------------------------
# Metrics and timing summaries (numpy only)
# ------------------------------------------------------------------------------------------------

def roc_auc(scores: np.ndarray, labels: np.ndarray):
    """Area under the ROC curve (Mann-Whitney U, ties counted half); None with only one class."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))  # start of each run of ties
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], scores.size)
    mean_rank = (starts + ends - 1) / 2.0 + 1.0  # 1-based average rank of each tie group
    ranks = np.empty(scores.size)
    ranks[order] = mean_rank[group]
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_metrics(logits, targets) -> dict:
    """The metrics octa's metrics JSON reports, from logits (prediction: logit > 0) and 0/1 targets.

    precision/recall/F1 are 0 where their denominator is 0 (as scikit-learn's zero_division=0);
    mean_loss is BCEWithLogits in float64, max(z,0) - z*y + log1p(exp(-|z|))."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(targets, dtype=np.float64).ravel()
    if z.shape != y.shape or z.size == 0:
        raise ValueError(f"binary_metrics: {z.size} logits for {y.size} targets")
    pred = z > 0
    truth = y > 0.5
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    tn = int(np.sum(~pred & ~truth))
    fn = int(np.sum(~pred & truth))
    n = z.size
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return {
        "count": n,
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(z, y),
        "baseline_accuracy": max(tp + fn, tn + fp) / n,
        "mean_loss": float(loss.mean()),
        "confusion_matrix": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def multiclass_metrics(logits, labels, class_names=None) -> dict:
    """octa's multi-class metrics JSON (engine/train/multiclass_metrics.hpp), from (N, K) logits
    and class-index labels: prediction argmax (first maximum on ties, as torch.argmax and octa),
    top-2 (the argmax, then the argmax of the others), per-class precision/recall/F1 (0 where the
    denominator is 0), macro means over the classes present among labels or predictions
    (scikit-learn's default labels), the KxK confusion matrix (rows actual), the majority
    baseline, the mean cross-entropy in float64 (log-sum-exp)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).ravel()
    if z.ndim != 2 or z.shape[0] != y.size or y.size == 0 or z.shape[1] < 2:
        raise ValueError(f"multiclass_metrics: logits {list(z.shape)} for {y.size} labels")
    n, k = z.shape
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"multiclass_metrics: labels outside 0..{k - 1}")
    first = np.argmax(z, axis=1)
    rest = z.copy()
    rest[np.arange(n), first] = -np.inf
    second = np.argmax(rest, axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, first), 1)
    support, predicted, correct = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    precision = np.divide(correct, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=precision + recall > 0)
    present = (support > 0) | (predicted > 0)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    return {
        "count": int(n),
        "num_classes": int(k),
        "accuracy": float(correct.sum() / n),
        "top2_accuracy": float(np.mean((first == y) | (second == y))),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "baseline_accuracy": float(support.max() / n),
        "majority_class": int(np.argmax(support)),
        "mean_loss": float(np.mean(lse - z[np.arange(n), y])),
        "classes": [{"index": c, "name": names[c], "support": int(support[c]),
                     "predicted": int(predicted[c]), "precision": float(precision[c]),
                     "recall": float(recall[c]), "f1": float(f1[c])} for c in range(k)],
        "confusion_matrix": {"rows": "actual", "columns": "predicted",
                             "counts": confusion.tolist()},
    }


def median_after_first(seconds) -> float:
    """Median epoch time over the epochs after the first; the only epoch when there is one."""
    seconds = [float(s) for s in seconds]
    if not seconds:
        return math.nan
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def time_to_accuracy(epochs, target: float) -> dict:
    """Training seconds until the test accuracy first reaches `target`.

    `epochs` are metrics-JSON entries with "seconds" and "test_accuracy" (from --eval-every-epoch).
    The time is the sum of the epochs' own "seconds" up to and including the first epoch at or
    above target (the first epoch, warm-up and all, counts: a user waits for it too)."""
    total, best = 0.0, None
    for e in epochs:
        acc = e.get("test_accuracy")
        if acc is None:
            return {"target": target, "reached": False,
                    "error": f"epoch {e.get('epoch')} has no test_accuracy (run with "
                             f"--eval-every-epoch)"}
        total += float(e["seconds"])
        best = acc if best is None else max(best, acc)
        if acc >= target:
            return {"target": target, "reached": True, "epoch": e.get("epoch"),
                    "seconds": total, "accuracy": acc}
    return {"target": target, "reached": False, "epochs_run": len(epochs),
            "best_accuracy": best, "seconds_run": total}


# ------------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------------

def require_torch():
    if torch is None:
        raise SystemExit("reference.py: PyTorch is not installed in this Python "
                         f"({sys.executable}); it runs on the GPU machine")


def set_tf32(mode: str) -> None:
    """"default" leaves PyTorch's defaults (TF32 convolutions, IEEE matmuls); "on"/"off" sets both.

    PyTorch >= 2.9 has fp32_precision settings and raises when the legacy allow_tf32 flags are
    mixed with them, so the new API is used alone where it exists."""
    if mode == "default":
        return
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        prec = "tf32" if mode == "on" else "ieee"
        matmul.fp32_precision = prec
        torch.backends.cudnn.conv.fp32_precision = prec
    else:
        matmul.allow_tf32 = mode == "on"
        torch.backends.cudnn.allow_tf32 = mode == "on"


def tf32_state() -> dict:
    """The TF32 settings in force, read through the same API set_tf32 uses."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        return {"matmul_fp32_precision": matmul.fp32_precision,
                "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision}
    return {"matmul_allow_tf32": matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_info(device) -> dict:
    info = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


class TutorialMnist:
    """The tutorial's datasets.MNIST(transform=Compose([ToTensor(), Normalize((0.5,), (0.5,))]))
    without torchvision's download: map-style, one image transformed per __getitem__ on the CPU.

    With torchvision (and PIL) installed the item goes through the real transforms on a PIL image,
    as torchvision.datasets.MNIST does; otherwise through the same float32 tensor operations
    (x.float() / 255, then (x - 0.5) / 0.5), which give the same values without the PIL round trip.
    DataLoader needs only __len__ and __getitem__."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, use_torchvision: bool):
        self.images, self.labels = images, labels
        self.transform = None
        if use_torchvision:
            from PIL import Image
            from torchvision import transforms
            self._to_pil = Image.fromarray
            self.transform = transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        label = int(self.labels[i])
        if self.transform is not None:
            return self.transform(self._to_pil(self.images[i])), label
        x = torch.from_numpy(self.images[i]).unsqueeze(0).to(torch.float32).div(255)  # ToTensor
        return x.sub(0.5).div(0.5), label                                             # Normalize


def torchvision_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
        import torchvision.transforms  # noqa: F401
        return True
    except ImportError:
        return False


def evaluate(model, x_test, y_test_np, batch_size: int, class_names=None) -> dict:
    """Eval mode, no gradients, batches of batch_size, in order; binary metrics on logit > 0, or,
    for a model with several outputs (y_test_np then holds class indices), multi-class metrics."""
    was_training = model.training
    model.eval()
    chunks = []
    with torch.no_grad():
        for s in range(0, x_test.shape[0], batch_size):
            out = model(x_test[s:s + batch_size]).float()
            chunks.append(out.view(-1) if out.shape[1] == 1 else out)
    model.train(was_training)
    logits = torch.cat(chunks).cpu().numpy()
    if logits.ndim == 2:
        return multiclass_metrics(logits, y_test_np, class_names)
    return binary_metrics(logits, y_test_np)


class Task:
    """What the run learns: "binary" (target class against the rest, BCEWithLogitsLoss) or
    "multiclass" (every class, CrossEntropyLoss with --class-weights and --label-smoothing)."""

    def __init__(self, args, train_labels: np.ndarray):
        self.kind = args.task
        info = mnist_idx.dataset_info(args.dataset)
        self.class_names = info.class_names
        self.num_classes = int(train_labels.max()) + 1 if self.kind == "multiclass" else 1
        self.target = (mnist_idx.class_index(args.dataset, args.target_class)
                       if self.kind == "binary" else None)
        self.class_weights = None
        if args.class_weights:
            if self.kind != "multiclass":
                raise SystemExit("reference.py: --class-weights needs --task multiclass")
            self.class_weights = [float(w) for w in args.class_weights.split(",")]
            if len(self.class_weights) != self.num_classes:
                raise SystemExit(f"reference.py: --class-weights has {len(self.class_weights)} "
                                 f"weights for {self.num_classes} classes")
        if args.label_smoothing and self.kind != "multiclass":
            raise SystemExit("reference.py: --label-smoothing needs --task multiclass")
        self.label_smoothing = args.label_smoothing

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Training targets: (N, 1) float32 0/1, or (N,) int64 class indices."""
        if self.kind == "binary":
            return mnist_idx.binary_targets(labels, self.target)
        return mnist_idx.class_targets(labels)

    def test_targets(self, labels: np.ndarray) -> np.ndarray:
        """What evaluate() takes: (N,) 0/1 floats, or the class indices."""
        t = self.targets(labels)
        return t[:, 0] if self.kind == "binary" else t

    def criterion(self, device):
        if self.kind == "binary":
            return torch.nn.BCEWithLogitsLoss()
        weight = (None if self.class_weights is None else
                  torch.tensor(self.class_weights, dtype=torch.float32, device=device))
        return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)

    def describe(self) -> dict:
        return {"task": self.kind, "num_classes": self.num_classes, "target_class": self.target,
                "class_weights": self.class_weights, "label_smoothing": self.label_smoothing}


def compile_diagnostics() -> dict:
    """Counters that say whether CUDA graphs were really used (PyTorch-internal, best effort)."""
    try:
        from torch._dynamo.utils import counters
        return {f"{group}.{k}": v for group in ("inductor", "stats")
                for k, v in counters[group].items() if "cudagraph" in k or "recompil" in k}
    except Exception as e:  # internal API: report rather than fail the benchmark
        return {"unavailable": repr(e)}


def run(args) -> dict:
    require_torch()
    import models

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("reference.py: --device cuda but torch.cuda.is_available() is False")
    set_tf32(args.tf32)
    benchmark = {"auto": args.variant != "tutorial", "on": True, "off": False}[args.cudnn_benchmark]
    torch.backends.cudnn.benchmark = benchmark

    # --- data -----------------------------------------------------------------------------------
    mnist = mnist_idx.load_dataset(args.data_dir, args.dataset)
    task = Task(args, mnist.train_labels)
    train_images, train_labels = mnist.train_images, mnist.train_labels
    if args.max_train:
        train_images, train_labels = train_images[:args.max_train], train_labels[:args.max_train]
    n_train = len(train_labels)
    y_test_np = task.test_targets(mnist.test_labels)
    x_test = torch.from_numpy(mnist_idx.normalize(mnist.test_images)).to(device)

    def test_metrics():
        return evaluate(model, x_test, y_test_np, args.test_batch_size, task.class_names)

    # --- model, loss, optimiser (the tutorial's) ------------------------------------------------
    torch.manual_seed(args.seed)
    model = models.build_model(args.model, task.num_classes).to(device)
    model.train()
    criterion = task.criterion(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = make_scheduler(optimizer, args)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    notes = []

    def eager_step(x, y):
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach(), alpha=x.shape[0])

    step = eager_step
    use_torchvision = False
    if args.variant == "tutorial":
        use_torchvision = {"auto": torchvision_available(), "torchvision": True,
                           "plain": False}[args.tutorial_transform]
        dataset = TutorialMnist(train_images, train_labels, use_torchvision)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, shuffle=True, drop_last=args.drop_last,
            num_workers=args.num_workers, generator=torch.Generator().manual_seed(args.seed))
        notes.append(
            "per-item transform on the CPU ("
            + ("torchvision ToTensor+Normalize on PIL images" if use_torchvision else
               "ToTensor+Normalize as float32 tensor ops; torchvision not used")
            + f"), DataLoader(shuffle=True, num_workers={args.num_workers}), batches copied "
              "to the device")
    else:
        # GPU-resident: normalised once (bit-identical to ToTensor+Normalize), gathered per batch.
        x_train = torch.from_numpy(mnist_idx.normalize(train_images)).to(device)
        y_train = torch.from_numpy(task.targets(train_labels)).to(device)
        gen = torch.Generator(device=device)
        gen.manual_seed(args.seed)
        notes.append("training set normalised once and resident on the device; torch.randperm "
                     "order per epoch; batches gathered on the device")
        if args.variant == "compiled":
            def loss_fn(x, y):
                return criterion(model(x), y)

            try:  # say in the log why CUDA graphs were skipped, if they are
                torch._logging.set_logs(perf_hints=True)
            except Exception:
                pass
            compiled_loss = torch.compile(loss_fn, mode=args.compile_mode, dynamic=False)
            if args.compile_optimizer:
                # As the recipe "Compiling the optimizer with torch.compile" (default mode).
                @torch.compile(fullgraph=False)
                def opt_step():
                    optimizer.step()
            else:
                opt_step = optimizer.step
            mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", None)

            def compiled_step(x, y):
                if mark_step is not None:
                    mark_step()  # a new iteration: earlier CUDA-graph outputs may be reused
                loss = compiled_loss(x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                opt_step()
                loss_sum.add_(loss.detach(), alpha=x.shape[0])

            step = compiled_step
            last = n_train % args.batch_size
            notes.append(
                f"model+loss forward/backward under torch.compile(mode={args.compile_mode!r}, "
                f"dynamic=False); optimizer.step "
                + ("compiled (default mode)" if args.compile_optimizer else "eager")
                + (f"; the short last batch ({last} images) is dropped" if last and args.drop_last
                   else f"; the short last batch ({last} images) has its own graph, compiled in "
                        "epoch 1" if last else ""))
        else:
            notes.append("eager mode")

    def run_epoch():
        if args.variant == "tutorial":
            for images, labels in loader:
                images = images.to(device)
                labels = torch.from_numpy(task.targets(labels.numpy())).to(device)
                step(images, labels)
            return
        order = torch.randperm(n_train, device=device, generator=gen)
        end = n_train - n_train % args.batch_size if args.drop_last else n_train
        for s in range(0, end, args.batch_size):
            idx = order[s:s + args.batch_size]
            step(x_train[idx], y_train[idx])

    images_per_epoch = (n_train - n_train % args.batch_size) if args.drop_last else n_train
    if images_per_epoch == 0:
        raise SystemExit(f"reference.py: no full batch of {args.batch_size} in {n_train} "
                         f"training images (--drop-last)")
    epochs = []
    for epoch in range(args.epochs):
        lr = optimizer.param_groups[0]["lr"]  # this epoch's (the scheduler's, stepped per epoch)
        loss_sum.zero_()
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        run_epoch()
        synchronize(device)
        seconds = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "mean_loss": loss_sum.item() / images_per_epoch,
                 "seconds": seconds, "images_per_second": images_per_epoch / seconds,
                 "cpu_seconds": time.process_time() - c0,  # user + system, all threads
                 "lr": lr}
        if args.eval_every_epoch:
            entry["test_accuracy"] = test_metrics()["accuracy"]
        epochs.append(entry)
        if scheduler is not None:
            scheduler.step()
        print(f"[{args.variant} {args.model} b{args.batch_size}] epoch {epoch + 1}/{args.epochs}: "
              f"loss {entry['mean_loss']:.5f}, lr {lr:.6g}, {seconds:.3f} s"
              + (f", test accuracy {entry['test_accuracy']:.4f}" if "test_accuracy" in entry
                 else ""), file=sys.stderr, flush=True)

    test = test_metrics()
    median = median_after_first([e["seconds"] for e in epochs])
    result = {
        "framework": "pytorch",
        "variant": args.variant,
        "model": args.model,
        "device": device_info(device),
        "config": {
            "epochs": args.epochs, "batch_size": args.batch_size,
            "test_batch_size": args.test_batch_size, "lr": args.lr, "seed": args.seed,
            "lr_schedule": schedule_config(args),
            "train_images": n_train, "images_per_epoch": images_per_epoch,
            "test_images": int(len(y_test_np)), "drop_last": args.drop_last,
            "cudnn_benchmark": benchmark, "tf32": args.tf32, "tf32_state": tf32_state(),
            "compile_mode": args.compile_mode if args.variant == "compiled" else None,
            "compile_optimizer": args.compile_optimizer if args.variant == "compiled" else None,
            "tutorial_torchvision": use_torchvision if args.variant == "tutorial" else None,
            "data_dir": str(args.data_dir), "dataset": args.dataset, **task.describe(),
        },
        "epochs": epochs,
        "median_epoch_seconds": median,
        "median_over": "epochs after the first" if len(epochs) > 1 else "the only epoch "
                                                                          "(includes warm-up)",
        "images_per_second": images_per_epoch / median,
        "test": test,
        "notes": notes,
    }
    if args.variant == "compiled":
        result["compile_diagnostics"] = compile_diagnostics()
    return result


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Train the tutorial's CNN in PyTorch (tutorial, eager or compiled variant) "
                    "and report epoch times and test metrics as JSON.")
    ap.add_argument("--model", choices=("a", "b"), default="a")
    ap.add_argument("--task", choices=("binary", "multiclass"), default="binary",
                    help="binary: --target-class against the rest; multiclass: every class")
    ap.add_argument("--dataset", choices=tuple(mnist_idx.DATASETS), default="mnist")
    ap.add_argument("--target-class", default=str(mnist_idx.TARGET_DIGIT),
                    help="the binary task's class: an index or a class name [8]")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="CrossEntropyLoss's label_smoothing (multiclass) [0]")
    ap.add_argument("--class-weights", default="",
                    help="CrossEntropyLoss's weight, comma-separated, one per class (multiclass)")
    ap.add_argument("--variant", choices=VARIANTS, default="eager")
    ap.add_argument("--compile-mode", choices=COMPILE_MODES, default="reduce-overhead",
                    help="torch.compile mode for --variant compiled [reduce-overhead]")
    ap.add_argument("--no-compile-optimizer", dest="compile_optimizer", action="store_false",
                    help="compiled variant: leave optimizer.step eager")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--test-batch-size", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", choices=("constant", "step", "cosine"), default="constant",
                    help="step: StepLR; cosine: CosineAnnealingLR(T_max=--epochs), stepped per "
                         "epoch [constant]")
    ap.add_argument("--lr-step-size", type=int, default=0,
                    help="StepLR's step_size, in epochs (--lr-schedule step)")
    ap.add_argument("--lr-gamma", type=float, default=0.1, help="StepLR's gamma [0.1]")
    ap.add_argument("--lr-min", type=float, default=0.0, help="CosineAnnealingLR's eta_min [0]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default="data",
                    help="the four files, or DIR/MNIST/raw (DIR/FashionMNIST/raw, ...) below it "
                         "[data]")
    ap.add_argument("--max-train", type=int, default=0,
                    help="use only the first N training images (0: all), as octa's --max-train")
    ap.add_argument("--drop-last", action="store_true", help="drop the short last batch")
    ap.add_argument("--eval-every-epoch", action="store_true",
                    help="test accuracy after every epoch (outside the timed epochs)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tf32", choices=("default", "on", "off"), default="default",
                    help="default: PyTorch's (TF32 convolutions, IEEE matmuls)")
    ap.add_argument("--cudnn-benchmark", choices=("auto", "on", "off"), default="auto",
                    help="auto: on for eager/compiled, PyTorch's default (off) for tutorial")
    ap.add_argument("--tutorial-transform", choices=("auto", "torchvision", "plain"),
                    default="auto", help="auto: torchvision's transforms when installed")
    ap.add_argument("--num-workers", type=int, default=0,
                    help="tutorial variant's DataLoader workers [0, the tutorial's]")
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "test_batch_size"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if args.max_train < 0:
        ap.error("--max-train must be >= 0")
    if args.lr_schedule == "step" and args.lr_step_size <= 0:
        ap.error("--lr-schedule step needs --lr-step-size N > 0")
    if args.lr_schedule == "cosine" and not 0 <= args.lr_min < args.lr:
        ap.error("--lr-min must be in [0, --lr)")
    return args


def make_scheduler(optimizer, args):
    """torch.optim.lr_scheduler's StepLR or CosineAnnealingLR for --lr-schedule; None: constant."""
    if args.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step_size,
                                               gamma=args.lr_gamma)
    if args.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs,
                                                          eta_min=args.lr_min)
    return None


def schedule_config(args):
    """The schedule as octa's metrics JSON records it (config.lr_schedule)."""
    if args.lr_schedule == "step":
        return {"kind": "step", "step_size": args.lr_step_size, "gamma": args.lr_gamma}
    if args.lr_schedule == "cosine":
        return {"kind": "cosine", "t_max": args.epochs, "eta_min": args.lr_min}
    return {"kind": "constant"}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except (mnist_idx.IdxError, ValueError) as e:
        print(f"reference.py: {e}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    t = result["test"]
    f1 = f"F1 {t['f1']:.4f}" if "f1" in t else f"macro-F1 {t['macro_f1']:.4f}"
    print(f"[{args.variant} {args.model} b{args.batch_size}] median epoch "
          f"{result['median_epoch_seconds']:.4f} s ({result['images_per_second']:.0f} images/s); "
          f"test accuracy {t['accuracy']:.4f}, {f1}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
