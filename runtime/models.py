"""The emotion classifier that ships inside the package, used when ``--model`` is not given."""

from __future__ import annotations

import os
import platform
from importlib import resources
from pathlib import Path

from .errors import FerEdgeError

DEFAULT_STEM = "accurate_int8"
CLASSIFIER_SUFFIXES = (".onnx", ".xml")
# the shipped models by name (``--model NAME``): what each is for -> its file stem in assets/
MODEL_NAMES = {"accurate": DEFAULT_STEM, "fast": "fast_int8"}
# names the shipped files had before, still accepted by ``--model`` (0.1 shipped ``emotion_int8``)
FORMER_NAMES = {"emotion_int8": DEFAULT_STEM}


def arm_speed_hint(model: str | os.PathLike | None, machine: str | None = None) -> str | None:
    """One line for a camera or video on an Arm CPU with the default ``accurate`` model: ``fast`` costs a Raspberry Pi 4
    about a seventh of its classification time (README, Raspberry Pi). None elsewhere."""
    arch = (machine or platform.machine()).lower()
    if arch not in ("aarch64", "arm64") or (model is not None and str(model) != "accurate"):
        return None
    return ("fer-edge: tip: on this Arm CPU `--model fast` classifies a face in about a seventh of `accurate`'s "
            "time (a Raspberry Pi 4: ~13 vs ~93 ms) and is 2.9 points less accurate on FER2013")


def _openvino_runs_int8() -> bool:
    """OpenVINO executes INT8 on x86 only; elsewhere prefer the ONNX (QDQ) model."""
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


def assets_dir() -> Path:
    """The package's ``assets/`` folder."""
    return Path(str(resources.files("fer_edge") / "assets"))


def shipped_models() -> list[str]:
    """Names (file stems) of the classifiers shipped in the package."""
    folder = assets_dir()
    return sorted({p.stem for p in folder.glob("*.onnx") if not p.stem.startswith("face_detection")}
                  | {p.stem for p in folder.glob("*.xml")}) if folder.is_dir() else []


def default_classifier_path(backend: str | None = None, stem: str = DEFAULT_STEM) -> Path:
    """The packaged model ``stem`` for this machine (OpenVINO IR on x86 where installed, else ONNX)."""
    folder = assets_dir()
    candidates = []
    want_ov = backend == "openvino" or (backend is None and _openvino_runs_int8())
    if want_ov:
        try:
            import openvino  # noqa: F401

            candidates.append(folder / f"{stem}.xml")
        except ImportError:
            pass
    candidates.append(folder / f"{stem}.onnx")
    for c in candidates:
        if c.is_file():
            return c
    raise FerEdgeError(
        f"no --model given and this install ships no default emotion model (looked for "
        f"{', '.join(str(c) for c in candidates)}); pass --model FILE (.onnx or OpenVINO .xml with fer_edge "
        "metadata, from 'fer-edge export')"
    )


def classifier_path(model: str | os.PathLike | None, backend: str | None = None) -> Path:
    """A classifier file from ``model``: None (the shipped default), a shipped model's name, or a file path."""
    if model is None:
        return default_classifier_path(backend)
    text = os.fspath(model)
    p = Path(text).expanduser()
    looks_like_file = p.suffix.lower() in CLASSIFIER_SUFFIXES or os.sep in text or "/" in text
    if not looks_like_file and not p.exists():
        stems = shipped_models()
        stem = MODEL_NAMES.get(text, FORMER_NAMES.get(text, text))
        if stem in stems:
            return default_classifier_path(backend, stem)
        names = [n for n, st in MODEL_NAMES.items() if st in stems] + stems
        raise FerEdgeError(f"model '{text}' is neither a classifier file (.onnx or OpenVINO .xml) nor a model shipped "
                           f"in this install ({', '.join(names) or 'none shipped'})")
    return p
