"""Calibration manifests: a seeded, class-balanced list of training faces, never the images themselves.

A manifest is JSON: ``{"format", "root", "split", "seed", "per_class", "classes",
"items": [{"path", "label", "sha256"}]}`` with paths relative to ``root`` (the user's dataset).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.runtime.assets import sha256_of
from fer_edge.runtime.errors import FerEdgeError

FORMAT = "fer_edge.calibration/1"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
DEFAULT_TOTAL = 300


def _split_folder(data: Path) -> tuple[Path, Path]:
    """(dataset root, split folder holding class folders) for a dataset root or a split folder."""
    if not data.is_dir():
        raise FerEdgeError(f"calibration data folder {data} does not exist")
    if (data / "train").is_dir():
        return data, data / "train"
    return data.parent, data


def build_manifest(data: str | os.PathLike, classes: tuple[str, ...], per_class: int | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Pick ``per_class`` images of every class (default: ~300 in all) from ``data`` (its train/ split)."""
    root, split = _split_folder(Path(data).expanduser().resolve())
    per_class = per_class or -(-DEFAULT_TOTAL // len(classes))
    if per_class < 1:
        raise FerEdgeError("--per-class must be at least 1")
    folders = {p.name for p in split.iterdir() if p.is_dir()}
    missing = [c for c in classes if c not in folders]
    if missing:
        raise FerEdgeError(f"calibration folder {split} lacks class folder(s) {', '.join(missing)}")
    rng = random.Random(seed)
    items = []
    for c in classes:
        files = sorted(p for p in (split / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise FerEdgeError(f"calibration folder {split / c} holds no images")
        for p in sorted(rng.sample(files, min(per_class, len(files)))):
            items.append({"path": p.relative_to(root).as_posix(), "label": c, "sha256": sha256_of(p)})
    return {"format": FORMAT, "root": str(root), "split": split.name, "seed": seed, "per_class": per_class,
            "classes": list(classes), "items": items}


def write_manifest(manifest: dict[str, Any], out: str | os.PathLike, relative_root: bool = False) -> Path:
    """Write the manifest; ``relative_root`` stores its root relative to the manifest's own folder."""
    p = Path(out).expanduser()
    if relative_root:
        manifest = {**manifest, "root": os.path.relpath(manifest["root"], p.parent.resolve())}
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, p)
    except OSError as e:
        raise FerEdgeError(f"cannot write the calibration manifest {p} ({e.strerror or e})")
    return p


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path).expanduser()
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise FerEdgeError(f"calibration manifest {p} does not exist")
    except (OSError, json.JSONDecodeError) as e:
        raise FerEdgeError(f"calibration manifest {p} is not readable JSON ({e})")
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("items"), list):
        raise FerEdgeError(f"{p} is not a fer-edge calibration manifest (no '{FORMAT}' format tag)")
    return m


def load_calibration(source: str | os.PathLike, classes: tuple[str, ...], root: str | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Gray uint8 faces (N, H, W), labels (N,) and the manifest, from a manifest file or a data folder.

    Every image a manifest names is read from the user's dataset and checked against its SHA-256;
    every class of the model must be present.
    """
    import cv2

    src = Path(source).expanduser()
    manifest = build_manifest(src, classes, seed=seed) if src.is_dir() else read_manifest(src)
    base = Path(root).expanduser() if root else Path(manifest["root"])
    if not root and not base.is_absolute():  # a root stored relative to the manifest's folder
        base = (src.parent / base).resolve()
    if not manifest["items"]:
        raise FerEdgeError(f"calibration set {src} is empty")
    images, labels = [], []
    for it in manifest["items"]:
        p = base / it["path"]
        if it["label"] not in classes:
            raise FerEdgeError(f"calibration image {p} has label '{it['label']}', not a class of this model")
        if not p.is_file():
            raise FerEdgeError(f"calibration image {p} named by {src} does not exist (is the dataset at {base}?)")
        if sha256_of(p) != it["sha256"]:
            raise FerEdgeError(f"calibration image {p} does not match the checksum in {src}")
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise FerEdgeError(f"calibration image {p} is not readable")
        images.append(img)
        labels.append(classes.index(it["label"]))
    missing = [c for i, c in enumerate(classes) if i not in set(labels)]
    if missing:
        raise FerEdgeError(f"calibration set {src} has no image of class(es) {', '.join(missing)}")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        h, w = images[0].shape
        images = [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
    return np.stack(images), np.asarray(labels, np.int64), {**manifest, "root": str(base)}
