"""A description of the machine numbers were measured on: CPU, ISA flags, OS, library versions, threads.

ISA flags come from the kernel, never from a guess: on x86 the ``flags`` of ``/proc/cpuinfo``; on 64-bit Arm
Linux the auxiliary vector (``getauxval(AT_HWCAP/AT_HWCAP2)``, what user space is actually allowed to run, and
what an emulator such as qemu-user reports for its emulated CPU), cross-checked with ``/proc/cpuinfo``'s
``Features``. When neither can be read the description says so instead of listing nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

X86_FLAGS = ("sse4_2", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
             "amx_bf16")
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "bf16", "sve")
ISA_FLAGS = X86_FLAGS + ARM_FLAGS
# the flags whose absence matters for INT8 / BF16 inference speed, reported as "absent" when missing
X86_KEY = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
ARM_KEY = ("asimddp", "i8mm", "bf16", "sve")
LIBRARIES = ("numpy", "opencv-python", "opencv-python-headless", "onnxruntime", "openvino", "torch", "timm", "nncf",
             "onnx")
# Linux aarch64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h)
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_BITS = {"asimd": 1, "asimddp": 20, "sve": 22}
HWCAP2_BITS = {"i8mm": 13, "bf16": 14}
ARM_PARTS = {  # "CPU part" of implementer 0x41 (Arm Ltd)
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd40": "Neoverse-V1",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The CPU name, the flag set (x86 ``flags`` or Arm ``Features``) and which of the two lines was found."""
    name, model, flags, parts, kind = "", "", set(), [], None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not name:
            name = value
        elif key == "Model" and not model:  # Raspberry Pi and other device-tree boards
            model = value
        elif key == "flags":
            flags |= set(value.split())
            kind = "flags"
        elif key == "Features":
            flags |= set(value.split())
            kind = "Features"
        elif key == "CPU part" and value not in parts:
            parts.append(value)
    cores = [ARM_PARTS.get(p, f"Arm part {p}") for p in parts]
    if model and cores:
        name = f"{model} ({', '.join(cores)})"
    elif cores and not name:
        name = ", ".join(cores)
    return {"cpu": name or model, "flags": flags, "kind": kind}


def arm_hwcaps() -> set[str] | None:
    """The Arm flags of ``ARM_FLAGS`` that the kernel (or qemu-user) grants this process, or None if unreadable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        getauxval = libc.getauxval
    except (OSError, AttributeError):
        return None
    getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
    hw, hw2 = getauxval(AT_HWCAP), getauxval(AT_HWCAP2)
    if not hw:
        return None
    return {f for f, b in HWCAP_BITS.items() if hw >> b & 1} | {f for f, b in HWCAP2_BITS.items() if hw2 >> b & 1}


def describe_isa(arch: str, cpuinfo: dict[str, Any], hwcaps: set[str] | None) -> dict[str, str]:
    """``isa`` (flags present), ``isa_absent`` (key flags known to be missing), ``isa_source`` and ``isa_note``
    (empty unless something could not be told)."""
    arch = arch.lower()
    is_arm = arch in ("aarch64", "arm64")
    is_x86 = arch in ("x86_64", "amd64", "i386", "i686", "x86")
    flags: set[str] = cpuinfo["flags"]
    note, source = "", ""
    if is_arm:
        wanted, key = ARM_FLAGS, ARM_KEY
        features = flags & set(ARM_FLAGS) if cpuinfo["kind"] == "Features" else None
        if hwcaps is not None:
            present, source = hwcaps, "getauxval(AT_HWCAP, AT_HWCAP2)"
            if features is not None and features != hwcaps:
                note = ("/proc/cpuinfo Features (" + (", ".join(sorted(features)) or "none") + ") differ from the "
                        "hwcaps the process runs with (an emulator or a faked cpuinfo); the hwcaps are reported")
            elif features is None:
                note = "/proc/cpuinfo has no Arm Features line (under qemu-user it shows the host's)"
        elif features is not None:
            present, source = features, "/proc/cpuinfo Features"
        else:
            return {"isa": "unknown", "isa_absent": "", "isa_source": "",
                    "isa_note": "could not tell the Arm features: no getauxval hwcaps and no /proc/cpuinfo Features"}
    elif is_x86:
        wanted, key = X86_FLAGS, X86_KEY
        if cpuinfo["kind"] != "flags":
            return {"isa": "unknown", "isa_absent": "", "isa_source": "",
                    "isa_note": "could not tell the x86 features: /proc/cpuinfo has no flags line"}
        present, source = flags, "/proc/cpuinfo flags"
    else:
        return {"isa": "unknown", "isa_absent": "", "isa_source": "",
                "isa_note": f"could not tell: no ISA detection for architecture {arch or 'unknown'}"}
    return {"isa": ", ".join(f for f in wanted if f in present) or "none of " + ", ".join(wanted),
            "isa_absent": ", ".join(f for f in key if f not in present), "isa_source": source, "isa_note": note}


def machine_summary(threads: int | None = None) -> dict[str, Any]:
    """CPU model, the ISA flags that matter for INT8/BF16 inference, OS, Python, library versions, threads."""
    try:
        info = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        info = {"cpu": "", "flags": set(), "kind": None}
    arch = platform.machine()
    hwcaps = arm_hwcaps() if arch.lower() in ("aarch64", "arm64") and platform.system() == "Linux" else None
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    if arch.lower() in ("aarch64", "arm64") and info["kind"] == "flags":
        info["cpu"] = ""  # an x86 host's cpuinfo seen through qemu-user: its model name is not this CPU
    return {
        "cpu": info["cpu"] or platform.processor() or arch,
        "arch": arch,
        **describe_isa(arch, info, hwcaps),
        "cores": os.cpu_count(),
        "threads": threads or os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "QEMU_CPU")
                if k in os.environ},
    }
