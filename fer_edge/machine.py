"""A description of the machine numbers were measured on: CPU, ISA flags, OS, library versions, threads."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

ISA_FLAGS = ("sse4_2", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
             "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve")
LIBRARIES = ("numpy", "opencv-python", "opencv-python-headless", "onnxruntime", "openvino", "torch", "timm", "nncf",
             "onnx")


def machine_summary(threads: int | None = None) -> dict[str, Any]:
    """CPU model, the ISA flags that matter for INT8/BF16 inference, OS, Python, library versions, threads."""
    cpu, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "Model", "Hardware") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if key in ("flags", "Features"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "isa": ", ".join(f for f in ISA_FLAGS if f in flags) or "unknown",
        "cores": os.cpu_count(),
        "threads": threads or os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in os.environ},
    }
