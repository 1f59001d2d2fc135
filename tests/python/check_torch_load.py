"""tests/python/check_torch_load.py: proves octa's weights are PyTorch's.

Usage: check_torch_load.py MODEL(a|b) WEIGHTS.safetensors CASE.safetensors

Takes the tutorial's modules exactly as a PyTorch user has them from bench/pytorch/models.py
(model A: the first CNN; model B: the "optimised" CNN with BatchNorm, global average pooling and
dropout, returning the logit, i.e. with the tutorial's sigmoid bug fixed), loads octa's file with
safetensors.torch.load_file and load_state_dict(strict=True), runs them in eval mode on CASE's "x"
(N, 1, 28, 28) and compares with octa's eval-mode logits "logits" (N). Exit 0 when they agree
within float32 tolerance.

With K classes CASE's "logits" are (N, K): the module is built with fc2 = nn.Linear(128, K), and
CASE also holds octa's evaluation of those images, which PyTorch must reproduce: "labels" (N),
"confusion" (K, K; rows actual, columns argmax), "accuracy" and "mean_loss" (CrossEntropyLoss,
mean) as one-element F64 tensors.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

# The one definition of the two modules, shared with the benchmark and parity scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "pytorch"))
from models import ModelA, ModelB  # noqa: E402


def main():
    arch, weights, case = sys.argv[1], sys.argv[2], sys.argv[3]
    data = load_file(case)
    classes = data["logits"].shape[1] if data["logits"].dim() == 2 else 1
    model = {"a": ModelA, "b": ModelB}[arch](classes)
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(data["x"])
    if classes == 1:
        logits = logits.view(-1)
    ok = torch.allclose(logits, data["logits"], atol=1e-4, rtol=1e-4)
    err = (logits - data["logits"]).abs().max().item()
    print(f"model {arch}: {logits.numel()} logits, max |torch - octa| = {err:.3g}")
    if classes > 1:
        # octa's evaluation, reproduced: argmax, the confusion matrix, accuracy, cross-entropy.
        labels = data["labels"]
        predicted = logits.argmax(dim=1)
        confusion = torch.zeros(classes, classes, dtype=torch.int64)
        confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
        accuracy = (predicted == labels).double().mean().item()
        loss = torch.nn.functional.cross_entropy(logits.double(), labels).item()
        octa_accuracy, octa_loss = data["accuracy"].item(), data["mean_loss"].item()
        same_confusion = torch.equal(confusion, data["confusion"])
        print(f"model {arch}, fc2 nn.Linear(128, {classes}): accuracy {accuracy:.6f} (octa "
              f"{octa_accuracy:.6f}), confusion matrix {'equal' if same_confusion else 'DIFFERS'}, "
              f"cross-entropy {loss:.8f} (octa {octa_loss:.8f})")
        ok = (ok and same_confusion and accuracy == octa_accuracy
              and abs(loss - octa_loss) <= 1e-5 * max(1.0, abs(octa_loss)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
