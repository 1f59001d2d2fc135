"""tests/python/check_torch_load.py: proves octa's weights are PyTorch's.

Usage: check_torch_load.py MODEL(a|b) WEIGHTS.safetensors CASE.safetensors

Takes the tutorial's modules exactly as a PyTorch user has them from bench/pytorch/models.py
(model A: the first CNN; model B: the "optimised" CNN with BatchNorm, global average pooling and
dropout, returning the logit, i.e. with the tutorial's sigmoid bug fixed), loads octa's file with
safetensors.torch.load_file and load_state_dict(strict=True), runs them in eval mode on CASE's "x"
(N, 1, 28, 28) and compares with octa's eval-mode logits "logits" (N). Exit 0 when they agree
within float32 tolerance.
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
    model = {"a": ModelA, "b": ModelB}[arch]()
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    data = load_file(case)
    with torch.no_grad():
        logits = model(data["x"]).view(-1)
    ok = torch.allclose(logits, data["logits"], atol=1e-4, rtol=1e-4)
    err = (logits - data["logits"]).abs().max().item()
    print(f"model {arch}: {logits.numel()} logits, max |torch - octa| = {err:.3g}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
