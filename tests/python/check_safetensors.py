#!/usr/bin/env python3
# tests/python/check_safetensors.py: the interop half of tests/test_safetensors.cpp, run against the
# official `safetensors` package so octa's files are proven loadable by PyTorch users and back.
"""Usage:
  check_safetensors.py check <file.safetensors> <expected.json>
      load <file> with safetensors.numpy.load_file and compare it with <expected.json>
  check_safetensors.py write <expected.json> <file.safetensors>
      write the tensors described in <expected.json> with safetensors.numpy.save_file

expected.json: {"tensors": {name: {"dtype": "F32"|"F64"|"I64"|"U8", "shape": [...],
                                   "values": [flat, row-major]}},
                "metadata": {str: str}}
Exit status 0 on success; on a mismatch, 1 with the reason on stderr.
"""
import json
import sys

import numpy as np
import safetensors
import safetensors.numpy

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def expected_arrays(spec):
    arrays = {}
    for name, t in spec["tensors"].items():
        a = np.array(t["values"], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        arrays[name] = a
    return arrays


def check(path, spec_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    want = expected_arrays(spec)
    got = safetensors.numpy.load_file(path)
    errors = []
    if set(got) != set(want):
        errors.append(f"names differ: file has {sorted(got)}, expected {sorted(want)}")
    for name in sorted(set(got) & set(want)):
        g, w = got[name], want[name]
        if g.dtype != w.dtype:
            errors.append(f"{name}: dtype {g.dtype}, expected {w.dtype}")
        elif g.shape != w.shape:
            errors.append(f"{name}: shape {g.shape}, expected {w.shape}")
        elif g.tobytes() != w.tobytes():
            errors.append(f"{name}: values {g.ravel()[:8]}..., expected {w.ravel()[:8]}...")
    with safetensors.safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
    if metadata != spec.get("metadata", {}):
        errors.append(f"metadata {metadata}, expected {spec.get('metadata', {})}")
    for e in errors:
        print(f"check_safetensors: {path}: {e}", file=sys.stderr)
    return 1 if errors else 0


def write(spec_path, path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    safetensors.numpy.save_file(expected_arrays(spec), path, metadata=spec.get("metadata") or None)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "write":
        return write(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
