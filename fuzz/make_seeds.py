#!/usr/bin/env python3
"""fuzz/make_seeds.py: (re)writes the committed seed corpora fuzz/seeds/{idx,safetensors}/.

  fuzz/make_seeds.py [MNIST_DIR]     # default: ../shared/data/mnist, else data/MNIST/raw

idx/: small slices of the real MNIST files (a few images and labels, plain and gzip) and the bad
files of tests/test_data_idx.cpp (wrong magic and dimensions, truncated and over-long, a header
claiming 10^9 images, corrupt and truncated gzip, a label of 10). safetensors/: small valid files
(every dtype, a scalar, metadata, octa's marker), the malformed ones of tests/test_safetensors.cpp,
and an octa metrics JSON and HTML report for the output guard's recognisers. The checkpoint seeds
are written at fuzz time by fuzz_make_seeds (octa's own writer; too large to commit).
"""
import gzip
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def mnist_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    for d in (os.path.join(ROOT, "..", "shared", "data", "mnist"),
              os.path.join(ROOT, "data", "MNIST", "raw")):
        if os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            return d
    sys.exit("make_seeds.py: no MNIST found; pass its directory")


def write(sub, name, data):
    d = os.path.join(HERE, "seeds", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(b):
    return gzip.compress(b, compresslevel=9, mtime=0)


def idx_seeds():
    src = mnist_dir()
    with gzip.open(os.path.join(src, "train-images-idx3-ubyte.gz")) as f:
        images = f.read()
    with gzip.open(os.path.join(src, "train-labels-idx1-ubyte.gz")) as f:
        labels = f.read()
    with gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")) as f:
        test_labels = f.read()

    def image_file(n, magic=2051, rows=28, cols=28, body=None):
        head = struct.pack(">IIII", magic, n, rows, cols)
        return head + (images[16:16 + n * 784] if body is None else body)

    def label_file(n, magic=2049, src_labels=labels):
        return struct.pack(">II", magic, n) + src_labels[8:8 + n]

    three = image_file(3)
    write("idx", "train_images_3", three)
    write("idx", "train_images_3.gz", gz(three))
    write("idx", "train_labels_30", label_file(30))
    write("idx", "train_labels_30.gz", gz(label_file(30)))
    write("idx", "t10k_labels_20.gz", gz(label_file(20, src_labels=test_labels)))
    write("idx", "two_gzip_members.gz", gz(three[:1000]) + gz(three[1000:]))
    # The bad files of tests/test_data_idx.cpp.
    write("idx", "bad_magic_labels_as_images", label_file(30)[:4] + three[4:])
    write("idx", "bad_dims_0804", struct.pack(">I", 0x0804) + three[4:])
    write("idx", "bad_dtype_0d03", struct.pack(">I", 0x0D03) + three[4:])
    write("idx", "bad_truncated", three[:-100])
    write("idx", "bad_trailing", three + b"\0" * 7)
    write("idx", "bad_header_only", three[:10])
    write("idx", "bad_claims_1e9", struct.pack(">IIII", 2051, 10 ** 9, 28, 28))
    write("idx", "bad_claims_1e9.gz", gz(struct.pack(">IIII", 2051, 10 ** 9, 28, 28) + b"\0" * 64))
    write("idx", "bad_empty_image", struct.pack(">IIII", 2051, 3, 0, 28))
    write("idx", "bad_label_10", struct.pack(">II", 2049, 3) + bytes([1, 10, 2]))
    good = gz(three)
    write("idx", "bad_gzip_truncated", good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    write("idx", "bad_gzip_corrupt", bytes(corrupt))
    crc = bytearray(good)
    crc[-6] ^= 0x01
    write("idx", "bad_gzip_crc", bytes(crc))
    write("idx", "bad_gzip_trailing", good + b"garbage")


def safetensors(header, data=b"", raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_seeds():
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    write("safetensors", "one_f32", safetensors(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 2],
                                                 "data_offsets": [0, 16]}}, f32))
    all_dtypes = {
        "__metadata__": {"octa.format": "octa-1", "octa.arch": "B"},
        "n": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]},
        "d": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]},
        "f": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
        "u": {"dtype": "U8", "shape": [3], "data_offsets": [24, 27]},
        "e": {"dtype": "F32", "shape": [0, 5], "data_offsets": [27, 27]},
    }
    body = struct.pack("<q", 937) + struct.pack("<d", 0.5) + struct.pack("<2f", 1, -1) + b"\x01\x02\x03"
    write("safetensors", "all_dtypes_octa", safetensors(all_dtypes, body))
    write("safetensors", "metadata_only", safetensors({"__metadata__": {"k": "v"}}))
    write("safetensors", "metadata_null", safetensors({"__metadata__": None, "x": {
        "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x07"))
    write("safetensors", "empty_object", safetensors({}))
    order = {"__metadata__": {"octa.format": "octa-1", "octa.first_epoch": "0", "octa.seed": "3"},
             "order": {"dtype": "I64", "shape": [1, 4], "data_offsets": [0, 32]}}
    write("safetensors", "octa_order", safetensors(order, struct.pack("<4q", 2, 0, 3, 1)))
    # The malformed files of tests/test_safetensors.cpp.
    write("safetensors", "bad_short", b"\x10\0\0")
    write("safetensors", "bad_length_past_file", struct.pack("<Q", 1000) + b"{}")
    write("safetensors", "bad_length_huge", struct.pack("<Q", 2 ** 62) + b"{}")
    write("safetensors", "bad_json", safetensors(None, raw_header=b'{"w": {"dtype": "F32",'))
    write("safetensors", "bad_duplicate_key", safetensors(None, raw_header=(
        b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'), data=b"\x01"))
    write("safetensors", "bad_not_object", safetensors([1, 2, 3]))
    for name, entry, data in [
        ("bad_missing_dtype", {"shape": [1], "data_offsets": [0, 4]}, f32[:4]),
        ("bad_dtype_bf16", {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}, f32[:4]),
        ("bad_negative_shape", {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, f32[:4]),
        ("bad_shape_overflow", {"dtype": "F32", "shape": [2 ** 62, 2 ** 62],
                                "data_offsets": [0, 4]}, f32[:4]),
        ("bad_shape_float", {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}, f32[:4]),
        ("bad_offsets_reversed", {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, f32[:4]),
        ("bad_offsets_outside", {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, f32[:8]),
        ("bad_offsets_size", {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}, f32[:8]),
        ("bad_trailing_bytes", {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, f32[:8]),
    ]:
        write("safetensors", name, safetensors({"t": entry}, data))
    write("safetensors", "bad_overlap", safetensors({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32[:12]))
    write("safetensors", "bad_hole", safetensors({
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f32[:12]))
    write("safetensors", "bad_metadata_value", safetensors(
        {"__metadata__": {"epochs": 3, "deep": [[[[1]]]]}}))
    write("safetensors", "bad_empty_name", safetensors(
        {"": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x01"))
    # What the output guard recognises besides safetensors.
    write("safetensors", "octa_metrics.json", json.dumps(
        {"octa_format": "metrics-1", "test": {"accuracy": 0.99}}, indent=2).encode())
    write("safetensors", "octa_report.html",
          b'<!doctype html><html><head><meta name="generator" content="octa"></head></html>')


if __name__ == "__main__":
    idx_seeds()
    st_seeds()
    n = sum(len(fs) for _, _, fs in os.walk(os.path.join(HERE, "seeds")))
    print(f"make_seeds.py: {n} seed files in {os.path.join(HERE, 'seeds')}")
