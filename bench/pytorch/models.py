"""bench/pytorch/models.py: the tutorial's two CNNs in PyTorch, as a PyTorch user has them.

Model A is the tutorial's first CNN, model B its "optimised" one (BatchNorm, global average
pooling, dropout). Attribute names are the tutorial's (conv1, bn1, conv2, bn2, gap, fc1, dropout,
fc2), so state_dict keys are exactly octa's safetensors names (conv1.weight, bn1.running_mean,
bn1.num_batches_tracked, ...) and weights load both ways with load_state_dict(strict=True).

Both return a logit per image, shape (N, 1): the tutorial's `return torch.sigmoid(x)` followed by
BCEWithLogitsLoss and `sigmoid(out) > 0.5` is its bug (the sigmoid of a probability is never below
0.5). A probability is sigmoid(logit); a prediction is logit > 0.

With num_classes=K > 1 (octa's --task multiclass) fc2 is nn.Linear(128, K) and the models return
K logits per image, shape (N, K), for CrossEntropyLoss; a prediction is their argmax. Everything
else, names included, is the same, so octa's multi-class checkpoints load the same way.

Used by bench/pytorch/reference.py, bench/pytorch/parity.py and tests/python/check_torch_load.py.
"""
import torch
import torch.nn as nn


class ModelA(nn.Module):
    """conv1 3x3 1->32, relu, maxpool 2; conv2 3x3 32->64, relu, maxpool 2; fc1 3136->128, relu;
    fc2 128->num_classes. 420,481 parameters with one output."""

    def __init__(self, num_classes: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):  # x: (N, 1, 28, 28) -> (N, num_classes)
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)  # (N, 32, 14, 14)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)  # (N, 64, 7, 7)
        x = x.view(x.size(0), -1)                           # (N, 3136), channel-major like octa
        return self.fc2(torch.relu(self.fc1(x)))


class ModelB(nn.Module):
    """conv1, bn1, relu, maxpool; conv2, bn2, relu, maxpool; global average pool (64); fc1 64->128,
    relu, dropout 0.5; fc2 128->num_classes. 27,457 trainable parameters with one output
    (+ BatchNorm running statistics)."""

    def __init__(self, num_classes: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.dropout = nn.Dropout(0.5)
        self.bn1 = nn.BatchNorm2d(32)
        self.bn2 = nn.BatchNorm2d(64)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):  # x: (N, 1, 28, 28) -> (N, num_classes)
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), kernel_size=2, stride=2)
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), kernel_size=2, stride=2)
        x = self.gap(x).view(x.size(0), -1)                 # (N, 64)
        x = self.dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)  # a logit: the tutorial's extra sigmoid is its bug


MODELS = {"a": ModelA, "b": ModelB}

# Trainable parameter counts from docs/SPEC (a wrong layer shape changes them), with one output.
TRAINABLE_PARAMETERS = {"a": 420_481, "b": 27_457}


def trainable_parameters(arch: str, num_classes: int = 1) -> int:
    """The SPEC's count with fc2 widened to num_classes outputs (129 parameters per output)."""
    return TRAINABLE_PARAMETERS[arch] + 129 * (num_classes - 1)


def build_model(arch: str, num_classes: int = 1) -> nn.Module:
    """ModelA or ModelB with PyTorch's default initialisation (the current torch RNG state)."""
    try:
        model = MODELS[arch](num_classes)
    except KeyError:
        raise ValueError(f"--model: expected a or b, got {arch!r}") from None
    n = count_trainable(model)
    if n != trainable_parameters(arch, num_classes):
        raise AssertionError(f"model {arch} with {num_classes} outputs: {n} trainable parameters, "
                             f"the tutorial's has {trainable_parameters(arch, num_classes)}")
    return model


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
