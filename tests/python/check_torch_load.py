"""tests/python/check_torch_load.py: proves octa's weights are PyTorch's.

Usage: check_torch_load.py MODEL(a|b) WEIGHTS.safetensors CASE.safetensors

Defines the tutorial's modules exactly as a PyTorch user has them (model A: the first CNN; model B:
the "optimised" CNN with BatchNorm, global average pooling and dropout, returning the logit, i.e.
with the tutorial's sigmoid bug fixed), loads octa's file with safetensors.torch.load_file and
load_state_dict(strict=True), runs them in eval mode on CASE's "x" (N, 1, 28, 28) and compares with
octa's eval-mode logits "logits" (N). Exit 0 when they agree within float32 tolerance.
"""
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file


class ModelA(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 1)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc2(torch.relu(self.fc1(x)))


class ModelB(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 1)
        self.dropout = nn.Dropout(0.5)
        self.bn1 = nn.BatchNorm2d(32)
        self.bn2 = nn.BatchNorm2d(64)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), kernel_size=2, stride=2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), kernel_size=2, stride=2)
        x = self.gap(x).view(x.size(0), -1)
        x = self.dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)  # a logit: the tutorial's extra sigmoid is its bug


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
