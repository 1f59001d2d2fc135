#!/usr/bin/env python3
"""scripts/gpu/probe_env.py: the GPU machine's versions and device, as JSON, with the standard
library only (ctypes), before anything of octa is built.

    python3 scripts/gpu/probe_env.py [--cuda-lib DIR] [--cudnn PATH] [--out FILE]

Reads, each independently (a library that is missing or fails is recorded, not fatal):
  driver   libcuda.so.1: cuDriverGetVersion, and for each device cuDeviceGetName (the device name
           as the driver reports it), compute capability, memory, multiprocessors, clocks, L2;
  runtime  libcudart.so from --cuda-lib (the toolkit octa is built with): cudaRuntimeGetVersion;
  cublas   libcublas.so from --cuda-lib: cublasGetProperty (major, minor, patch);
  cudnn    --cudnn (the library octa links; default libcudnn.so.9 on the loader path):
           cudnnGetVersion and cudnnGetCudartVersion.
No CUDA context is created. Exit status 0 even where everything failed: the JSON says what did.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import sys

# CUdevice_attribute values (cuda.h)
ATTRS = {
    "compute_capability_major": 75,
    "compute_capability_minor": 76,
    "multiprocessors": 16,
    "clock_khz": 13,
    "memory_clock_khz": 36,
    "memory_bus_width_bits": 37,
    "l2_cache_bytes": 38,
    "pci_bus_id": 33,
    "pci_device_id": 34,
    "ecc_enabled": 32,
}


def load(names):
    """The first of `names` that loads, as (CDLL, name); raises OSError naming all tried."""
    errors = []
    for n in names:
        try:
            return ctypes.CDLL(n), n
        except OSError as e:
            errors.append(f"{n}: {e}")
    raise OSError("; ".join(errors) or "no candidates")


def candidates(lib_dir: str | None, stem: str, major: int) -> list:
    """libSTEM.so* in lib_dir (shortest name first: the unversioned link where there is one), then
    the loader path's."""
    found = sorted(glob.glob(os.path.join(lib_dir, f"lib{stem}.so*")), key=len) if lib_dir else []
    return found + [f"lib{stem}.so", f"lib{stem}.so.{major}"]


def version_text(v: int, kind: str) -> str:
    if kind == "cuda":  # 13000 -> 13.0, 12080 -> 12.8
        return f"{v // 1000}.{(v % 1000) // 10}"
    if kind == "cudnn":  # cuDNN 9: major*10000 + minor*100 + patch
        return f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
    return str(v)


def probe_driver() -> dict:
    out: dict = {}
    try:
        cuda, name = load(["libcuda.so.1", "libcuda.so"])
    except OSError as e:
        return {"error": str(e)}
    out["library"] = name

    def err(rc: int) -> str:
        s = ctypes.c_char_p()
        cuda.cuGetErrorString(rc, ctypes.byref(s))
        return f"CUresult {rc}" + (f" ({s.value.decode()})" if s.value else "")

    v = ctypes.c_int()
    if cuda.cuDriverGetVersion(ctypes.byref(v)) == 0:
        out["cuda_version"] = version_text(v.value, "cuda")
        out["cuda_version_int"] = v.value
    rc = cuda.cuInit(0)
    if rc != 0:
        out["error"] = f"cuInit: {err(rc)}"
        return out
    n = ctypes.c_int()
    rc = cuda.cuDeviceGetCount(ctypes.byref(n))
    if rc != 0:
        out["error"] = f"cuDeviceGetCount: {err(rc)}"
        return out
    devices = []
    for i in range(n.value):
        d = ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(d), i) != 0:
            devices.append({"index": i, "error": "cuDeviceGet failed"})
            continue
        buf = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(buf, 256, d)
        mem = ctypes.c_size_t()
        cuda.cuDeviceTotalMem_v2(ctypes.byref(mem), d)
        dev = {"index": i, "name": buf.value.decode(errors="replace"),
               "total_memory_bytes": mem.value}
        for key, attr in ATTRS.items():
            a = ctypes.c_int()
            if cuda.cuDeviceGetAttribute(ctypes.byref(a), attr, d) == 0:
                dev[key] = a.value
        if "compute_capability_major" in dev:
            dev["compute_capability"] = (f"{dev['compute_capability_major']}."
                                         f"{dev.get('compute_capability_minor', 0)}")
        devices.append(dev)
    out["devices"] = devices
    return out


def probe_runtime(lib_dir: str | None) -> dict:
    try:
        rt, name = load(candidates(lib_dir, "cudart", 13))
    except OSError as e:
        return {"error": str(e)}
    out = {"library": name}
    v = ctypes.c_int()
    rc = rt.cudaRuntimeGetVersion(ctypes.byref(v))
    if rc == 0:
        out["version"] = version_text(v.value, "cuda")
        out["version_int"] = v.value
    else:
        out["error"] = f"cudaRuntimeGetVersion returned {rc}"
    return out


def probe_cublas(lib_dir: str | None) -> dict:
    try:
        cb, name = load(candidates(lib_dir, "cublas", 13))
    except OSError as e:
        return {"error": str(e)}
    parts = []
    for prop in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
        v = ctypes.c_int()
        if cb.cublasGetProperty(prop, ctypes.byref(v)) != 0:
            return {"library": name, "error": f"cublasGetProperty({prop}) failed"}
        parts.append(v.value)
    return {"library": name, "version": ".".join(map(str, parts))}


def probe_cudnn(path: str | None) -> dict:
    try:
        dnn, name = load([path] if path else ["libcudnn.so.9", "libcudnn.so"])
    except OSError as e:
        return {"error": str(e)}
    dnn.cudnnGetVersion.restype = ctypes.c_size_t
    dnn.cudnnGetCudartVersion.restype = ctypes.c_size_t
    v = int(dnn.cudnnGetVersion())
    rt = int(dnn.cudnnGetCudartVersion())
    return {"library": name, "version": version_text(v, "cudnn"), "version_int": v,
            "built_with_cudart": version_text(rt, "cuda")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cuda-lib", help="the CUDA toolkit's library folder (libcudart, libcublas)")
    ap.add_argument("--cudnn", help="the libcudnn.so* octa links")
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    args = ap.parse_args(argv)
    result = {"driver": probe_driver(), "runtime": probe_runtime(args.cuda_lib),
              "cublas": probe_cublas(args.cuda_lib), "cudnn": probe_cudnn(args.cudnn)}
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
