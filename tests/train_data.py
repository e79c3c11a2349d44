"""Small real FER2013 subsets for the training/evaluation tests (copied into tmp folders, never into git)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fer_edge.classes import EMOTIONS, FER2013_CSV_CODES

SHARED = Path(os.environ.get("FER_EDGE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
FER = SHARED / "datasets" / "fer2013"
FERPLUS = FER / "ferplus_votes.csv"
BACKBONES = SHARED / "models" / "backbones"


def need_fer() -> Path:
    if not (FER / "train").is_dir() or not (FER / "val").is_dir():
        pytest.skip(f"FER2013 not found under {FER} (set FER_EDGE_SHARED)")
    return FER


def make_subset(dst: Path, n_train: int = 12, n_val: int = 6, classes=EMOTIONS) -> Path:
    """``dst/train/<class>`` and ``dst/val/<class>`` with the first n (sorted) faces of each class."""
    src = need_fer()
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            (dst / split / c).mkdir(parents=True, exist_ok=True)
            for f in sorted((src / split / c).iterdir())[:n]:
                shutil.copy(f, dst / split / c / f.name)
    return dst


def write_fer2013_csv(root: Path, path: Path) -> Path:
    """A Kaggle-style fer2013.csv (emotion,pixels,Usage) from an ImageFolder subset (train->Training,
    val->PublicTest), rows in the ImageFolder reader's order."""
    import cv2

    code = {name: c for c, name in FER2013_CSV_CODES.items()}
    lines = ["emotion,pixels,Usage"]
    for split, usage in (("train", "Training"), ("val", "PublicTest")):
        for c in EMOTIONS:
            for f in sorted((root / split / c).iterdir()):
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                lines.append(f"{code[c]},{' '.join(map(str, img.ravel().tolist()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path
