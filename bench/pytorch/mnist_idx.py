"""bench/pytorch/mnist_idx.py: MNIST (or Fashion-MNIST, KMNIST) from its four IDX files, with the
standard library and numpy.

The PyTorch reference scripts read the same files octa reads, from the same places: a folder that
holds the four files, or torchvision's DATA/MNIST/raw (DATA/FashionMNIST/raw, DATA/KMNIST/raw)
below it; each file plain or gzip-compressed. Nothing is downloaded (the GPU machine has no
network, and the benchmark must not depend on one).

    python3 bench/pytorch/mnist_idx.py DATA_DIR [--dataset fashion-mnist] [--verify]
        # summary; --verify checks SHA-256

Every header is checked (magic 2051 for images, 2049 for labels, big-endian 32-bit sizes, 28x28,
matching image and label counts, labels 0..9, exact file length), so a truncated or swapped file
fails loudly with its path instead of training on garbage.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051  # 00 00 08 03: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 00 00 08 01: unsigned bytes, 1 dimension
IMAGE_SIZE = 28
TARGET_DIGIT = 8

# Base names of the official release and the SHA-256 of each decompressed file (the same tables as
# engine/data/datasets.hpp), used by --verify / verify=True.
FILES = {
    "train_images": ("train-images-idx3-ubyte",
                     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": ("train-labels-idx1-ubyte",
                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": ("t10k-images-idx3-ubyte",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": ("t10k-labels-idx1-ubyte",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
FASHION_FILES = {
    "train_images": ("train-images-idx3-ubyte",
                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": ("train-labels-idx1-ubyte",
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": ("t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": ("t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
# KMNIST publishes only the MD5s of its .gz files: nothing to verify the content against.
KMNIST_FILES = {k: (base, None) for k, (base, _) in FILES.items()}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    title: str
    folder: str        # torchvision's DATA/<folder>/raw
    files: dict        # as FILES
    class_names: tuple


DATASETS = {
    "mnist": DatasetInfo("MNIST", "MNIST", FILES, tuple(str(d) for d in range(10))),
    "fashion-mnist": DatasetInfo("Fashion-MNIST", "FashionMNIST", FASHION_FILES,
                                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                  "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "kmnist": DatasetInfo("KMNIST", "KMNIST", KMNIST_FILES,
                          ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


def dataset_info(dataset: str) -> DatasetInfo:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}") \
            from None


def class_index(dataset: str, text: str) -> int:
    """--target-class: an index 0..9 or a class name of the dataset (ignoring case), as octa's."""
    names = dataset_info(dataset).class_names
    if text.isdigit() and int(text) < len(names):
        return int(text)
    for k, name in enumerate(names):
        if name.lower() == text.lower():
            return k
    raise ValueError(f"--target-class: {text!r} is not a class of {dataset_info(dataset).title} "
                     f"(0..{len(names) - 1} or one of {', '.join(names)})")


class IdxError(ValueError):
    """A missing, truncated or malformed IDX file; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8, 0..9
    test_images: np.ndarray   # (10000, 28, 28) uint8
    test_labels: np.ndarray   # (10000,) uint8
    paths: dict               # name -> the Path each array was read from


def _read_bytes(path: Path) -> bytes:
    # Decide by content, not by name: gzip files start with 1f 8b.
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path}: cannot read ({e})") from e


def parse_idx(data: bytes, expected_magic: int, name: str = "<bytes>") -> np.ndarray:
    """Parses one IDX blob of unsigned bytes; returns a (writable) uint8 array of its shape."""
    if len(data) < 8:
        raise IdxError(f"{name}: {len(data)} bytes, too short for an IDX header")
    magic, = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise IdxError(f"{name}: IDX magic {magic} (0x{magic:08x}), expected {expected_magic} "
                       f"(0x{expected_magic:08x}); is it the right file?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: {len(data)} bytes, too short for a {ndim}-dimensional header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise IdxError(f"{name}: {len(data)} bytes, but its header {list(dims)} says {expected} "
                       f"(truncated or padded file)")
    # A copy, so that torch.from_numpy gets a writable array (it warns about read-only buffers).
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path, expected_magic: int) -> np.ndarray:
    """Reads one IDX file (plain or gzip); see parse_idx."""
    path = Path(path)
    return parse_idx(_read_bytes(path), expected_magic, str(path))


def find_dataset(data_dir, dataset: str = "mnist") -> dict:
    """Finds the four files: DATA_DIR, then DATA_DIR/<Folder>/raw; each plain, else .gz.

    Returns {"train_images": Path, ...}; raises IdxError listing what was looked for."""
    info = dataset_info(dataset)
    data_dir = Path(data_dir)
    folders = [data_dir, data_dir / info.folder / "raw"]
    found, missing = {}, []
    for key, (base, _) in info.files.items():
        candidates = [d / (base + ext) for d in folders for ext in ("", ".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(base)
        else:
            found[key] = hit
    if missing:
        raise IdxError(
            f"{info.title} not found: missing {', '.join(missing)} (plain or .gz) in "
            f"{' or '.join(str(f) for f in folders)}. Nothing is downloaded here: copy the four "
            f"files there (scripts/setup.sh puts them in ./data/{info.folder}/raw).")
    return found


def find_mnist(data_dir) -> dict:
    return find_dataset(data_dir, "mnist")


def load_dataset(data_dir, dataset: str = "mnist", verify: bool = False) -> Mnist:
    """Loads and checks both splits. verify=True also checks each file's SHA-256."""
    info = dataset_info(dataset)
    paths = find_dataset(data_dir, dataset)
    arrays = {}
    for key, path in paths.items():
        data = _read_bytes(path)
        if verify:
            want = info.files[key][1]
            if want is None:
                raise IdxError(f"{path}: {info.title} publishes no checksum of the decompressed "
                               f"files; nothing to verify against")
            digest = hashlib.sha256(data).hexdigest()
            if digest != want:
                raise IdxError(f"{path}: SHA-256 of the content is {digest}, the official "
                               f"{info.title} {info.files[key][0]} has {want}")
        magic = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
        arrays[key] = parse_idx(data, magic, str(path))
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise IdxError(f"{paths[split + '_images']}: images are {images.shape[1]}x"
                           f"{images.shape[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
        if images.shape[0] != labels.shape[0]:
            raise IdxError(f"{split} split: {images.shape[0]} images but {labels.shape[0]} labels "
                           f"({paths[split + '_images']}, {paths[split + '_labels']})")
        if labels.size and int(labels.max()) > 9:
            raise IdxError(f"{paths[split + '_labels']}: label {int(labels.max())} is not a class "
                           f"0..9")
    return Mnist(paths=paths, **arrays)


def load_mnist(data_dir, verify: bool = False) -> Mnist:
    return load_dataset(data_dir, "mnist", verify)


def normalize_table() -> np.ndarray:
    """float32 value of every byte after ToTensor + Normalize((0.5,), (0.5,)).

    The same float32 operations in the same order as torchvision and octa's normalize_pixel:
    (float(x) / 255 - 0.5) / 0.5, each step rounded to float32, so all three agree bit for bit."""
    x = np.arange(256, dtype=np.float32)
    return (x / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)


def normalize(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [-1, 1], the tutorial's transform."""
    return normalize_table()[images][:, None, :, :]


def binary_targets(labels: np.ndarray, digit: int = TARGET_DIGIT) -> np.ndarray:
    """(N,) uint8 labels -> (N, 1) float32: 1.0 where the label is `digit` ("is it an 8?")."""
    return (labels == digit).astype(np.float32)[:, None]


def class_targets(labels: np.ndarray) -> np.ndarray:
    """(N,) uint8 labels -> (N,) int64 class indices, CrossEntropyLoss's targets."""
    return labels.astype(np.int64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Load MNIST (or another dataset of its format) from "
                                             "its IDX files and summarise it.")
    ap.add_argument("data_dir", nargs="?", default=os.environ.get("OCTA_MNIST_DIR", "data"))
    ap.add_argument("--dataset", choices=tuple(DATASETS), default="mnist")
    ap.add_argument("--verify", action="store_true", help="check the SHA-256 of each file")
    args = ap.parse_args(argv)
    try:
        m = load_dataset(args.data_dir, args.dataset, verify=args.verify)
    except IdxError as e:
        print(f"mnist_idx: {e}", file=sys.stderr)
        return 1
    for split in ("train", "test"):
        images, labels = getattr(m, f"{split}_images"), getattr(m, f"{split}_labels")
        counts = np.bincount(labels, minlength=10)
        print(f"{split}: {images.shape[0]} images {images.shape[1]}x{images.shape[2]} from "
              f"{m.paths[split + '_images']}; pixel mean {images.mean() / 255:.4f}; "
              f"label counts {' '.join(str(c) for c in counts)}")
    if args.verify:
        print(f"SHA-256 of all four files: official {dataset_info(args.dataset).title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
