"""The emotion classifier that ships inside the package, used when ``--model`` is not given."""

from __future__ import annotations

import platform
from importlib import resources
from pathlib import Path

from .errors import FerEdgeError

DEFAULT_STEM = "emotion_int8"


def _openvino_runs_int8() -> bool:
    """OpenVINO executes INT8 on x86 only; elsewhere prefer the ONNX (QDQ) model."""
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


def default_classifier_path(backend: str | None = None) -> Path:
    """The packaged model for this machine (OpenVINO IR on x86 where installed, else ONNX)."""
    folder = Path(str(resources.files("fer_edge") / "assets"))
    candidates = []
    want_ov = backend == "openvino" or (backend is None and _openvino_runs_int8())
    if want_ov:
        try:
            import openvino  # noqa: F401

            candidates.append(folder / f"{DEFAULT_STEM}.xml")
        except ImportError:
            pass
    candidates.append(folder / f"{DEFAULT_STEM}.onnx")
    for c in candidates:
        if c.is_file():
            return c
    raise FerEdgeError(
        f"no --model given and this install ships no default emotion model (looked for "
        f"{', '.join(str(c) for c in candidates)}); pass --model FILE (.onnx or OpenVINO .xml with fer_edge "
        "metadata, from 'fer-edge export')"
    )
