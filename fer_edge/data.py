"""Face data for training and evaluation, decoded once and kept in memory as uint8 arrays.

Readers (numpy + OpenCV only, no torch, so ``fer-edge evaluate`` of ONNX/IR files stays torch-free):

* an ImageFolder split folder ``<split>/<class>/*.jpg`` (:func:`read_image_folder`),
* a Kaggle ``fer2013.csv`` with columns ``emotion,pixels,Usage`` (:func:`read_fer2013_csv`),
* FER+ crowd votes applied on top of either (:func:`apply_ferplus`).

Every problem a user can fix raises :class:`FerEdgeError` with one sentence.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_edge.classes import EMOTIONS, FER2013_CSV_CODES
from fer_edge.runtime.errors import FerEdgeError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
CSV_SPLITS = ("Training", "PublicTest", "PrivateTest")
# FER+ vote columns -> fer-edge class names; contempt, unknown and NF are dropped.
FERPLUS_NAMES = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                 "neutral": "neutral", "sadness": "sad", "surprise": "surprise"}

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class FaceSet:
    """A split in memory: ``images`` (N, H, W) uint8 gray, ``labels`` (N,) int64 class indices.

    ``soft`` is an optional (N, K) float32 target distribution (FER+ ``soft`` mode); ``paths`` are the
    image paths relative to the data root (or ``csv:<row>`` for CSV rows).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    paths: list[str] = field(default_factory=list)
    soft: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def describe(self, name: str) -> str:
        c = self.counts()
        parts = ", ".join(f"{k} {int(v)}" for k, v in zip(self.classes, c))
        h, w = self.images.shape[1:3]
        return f"{name}: {len(self)} images {h}x{w} ({parts})"

    def subset(self, idx: np.ndarray) -> FaceSet:
        idx = np.asarray(idx)
        return FaceSet(self.images[idx], self.labels[idx], self.classes,
                       [self.paths[i] for i in idx] if self.paths else [],
                       None if self.soft is None else self.soft[idx], self.source)

    def fingerprint(self) -> str:
        """sha256 over the classes, the uint8 pixels, the labels and any soft targets."""
        h = hashlib.sha256()
        h.update(",".join(self.classes).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype(np.int64).tobytes())
        if self.soft is not None:
            h.update(self.soft.astype(np.float32).tobytes())
        return "sha256:" + h.hexdigest()


def _resize(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    import cv2

    if size is None or img.shape[:2] == tuple(size):
        return img
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _stack(images: list[np.ndarray], where: str, mixed_size: tuple[int, int] | None = None) -> np.ndarray:
    shapes = {im.shape for im in images}
    if len(shapes) > 1 and mixed_size is not None:
        images = [_resize(im, mixed_size) for im in images]
    elif len(shapes) > 1:
        raise FerEdgeError(f"{where}: images have different sizes {sorted(shapes)[:3]}; give an input size to "
                           "resize them")
    return np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)


def check_class_folders(split: Path, classes: Sequence[str]) -> None:
    """Every class needs a folder and every folder must be a known class."""
    if not split.is_dir():
        raise FerEdgeError(f"data folder {split} does not exist")
    folders = sorted(p.name for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = [c for c in classes if c not in folders]
    unknown = [f for f in folders if f not in classes]
    if unknown:
        raise FerEdgeError(f"{split}: unknown class folder(s) {', '.join(unknown)} (expected exactly "
                           f"{', '.join(classes)})")
    if missing:
        raise FerEdgeError(f"{split}: missing class folder(s) {', '.join(missing)} (expected "
                           f"{', '.join(classes)})")


def read_image_folder(split: str | os.PathLike, classes: Sequence[str] = EMOTIONS,
                      size: tuple[int, int] | None = None, root: str | os.PathLike | None = None,
                      log: Log | None = _stderr, limit: int | None = None,
                      mixed_size: tuple[int, int] | None = None) -> FaceSet:
    """Decode ``split/<class>/*`` as grayscale uint8 (resized with INTER_AREA to ``size`` if given).

    Unreadable images are reported (to ``log``) and skipped; an empty split is an error. Images of
    different sizes are an error unless ``mixed_size`` says what to resize them to.
    ``paths`` are relative to ``root`` (default: the split's parent folder).
    """
    import cv2

    split = Path(split).expanduser()
    classes = tuple(classes)
    check_class_folders(split, classes)
    root = Path(root) if root is not None else split.parent
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    bad: list[str] = []
    for k, c in enumerate(classes):
        files = sorted(p for p in (split / c).iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if limit is not None:
            files = files[:limit]
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None or img.size == 0:
                bad.append(str(f))
                continue
            images.append(_resize(img, size))
            labels.append(k)
            paths.append(f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f))
    if bad and log:
        log(f"fer-edge: skipped {len(bad)} unreadable image(s) in {split}: {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else ""))
    if not images:
        raise FerEdgeError(f"{split}: no readable images in the class folders (empty split)")
    return FaceSet(_stack(images, str(split), mixed_size), np.asarray(labels, np.int64), classes, paths,
                   source=str(split))


def read_fer2013_csv(path: str | os.PathLike, usage: str | Sequence[str], classes: Sequence[str] = EMOTIONS,
                     size: tuple[int, int] | None = None, log: Log | None = _stderr) -> FaceSet:
    """Rows of a Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``) whose Usage is ``usage``.

    Kaggle codes (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) are mapped to
    ``classes`` order by name. Bad rows are reported and skipped.
    """
    path = Path(path).expanduser()
    usages = (usage,) if isinstance(usage, str) else tuple(usage)
    for u in usages:
        if u not in CSV_SPLITS:
            raise FerEdgeError(f"unknown fer2013.csv split '{u}' (choose from {', '.join(CSV_SPLITS)})")
    classes = tuple(classes)
    if not path.is_file():
        raise FerEdgeError(f"CSV file {path} does not exist")
    if set(FER2013_CSV_CODES.values()) != set(classes):
        raise FerEdgeError(f"{path}: a fer2013.csv holds the classes {', '.join(sorted(FER2013_CSV_CODES.values()))}, "
                           f"not {', '.join(classes)}")
    code_to_index = {code: classes.index(name) for code, name in FER2013_CSV_CODES.items()}
    images, labels, paths, bad = [], [], [], []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = {c.strip(): c for c in (reader.fieldnames or [])}
            need = [c for c in ("emotion", "pixels", "Usage") if c not in cols]
            if need:
                raise FerEdgeError(f"{path}: not a fer2013.csv (missing column(s) {', '.join(need)})")
            for i, row in enumerate(reader):
                if row[cols["Usage"]].strip() not in usages:
                    continue
                try:
                    code = int(row[cols["emotion"]])
                    px = np.asarray(row[cols["pixels"]].split(), dtype=np.int64)
                    side = int(round(len(px) ** 0.5))
                    if code not in code_to_index or side * side != len(px) or side < 8 or px.min() < 0 \
                            or px.max() > 255:
                        raise ValueError
                except (ValueError, TypeError):
                    bad.append(i + 2)
                    continue
                images.append(_resize(px.astype(np.uint8).reshape(side, side), size))
                labels.append(code_to_index[code])
                paths.append(f"csv:{i}")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FerEdgeError(f"cannot read {path} ({e})")
    if bad and log:
        log(f"fer-edge: skipped {len(bad)} bad row(s) in {path} (lines {', '.join(map(str, bad[:5]))}"
            + (" ..." if len(bad) > 5 else "") + ")")
    if not images:
        raise FerEdgeError(f"{path}: no rows with Usage {'/'.join(usages)} (empty split)")
    return FaceSet(_stack(images, str(path)), np.asarray(labels, np.int64), classes, paths, source=str(path))


def find_split(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def load_train_val(data: str | os.PathLike, classes: Sequence[str] = EMOTIONS,
                   size: tuple[int, int] | None = None, log: Log | None = _stderr,
                   limit_per_class: int | None = None) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets from an ImageFolder root (``train/`` + ``val/`` or ``test/``) or a
    Kaggle ``fer2013.csv`` (train = Training, val = PublicTest)."""
    p = Path(data).expanduser()
    if p.is_file() and p.suffix.lower() == ".csv":
        tr = read_fer2013_csv(p, "Training", classes, size, log)
        va = read_fer2013_csv(p, "PublicTest", classes, size, log)
        if limit_per_class:
            tr, va = _limit(tr, limit_per_class), _limit(va, limit_per_class)
        return tr, va
    if not p.exists():
        raise FerEdgeError(f"data {p} does not exist")
    if not p.is_dir():
        raise FerEdgeError(f"data {p} is neither a folder nor a fer2013 .csv file")
    train = p / "train"
    val = find_split(p, ("val", "valid", "validation", "test"))
    if not train.is_dir() or val is None:
        raise FerEdgeError(f"data folder {p} needs a train/ folder and a val/ (or test/) folder of class folders")
    tr = read_image_folder(train, classes, size, root=p, log=log, limit=limit_per_class)
    va = read_image_folder(val, classes, size, root=p, log=log, limit=limit_per_class)
    return tr, va


def _limit(ds: FaceSet, n: int) -> FaceSet:
    keep = np.concatenate([np.flatnonzero(ds.labels == k)[:n] for k in range(len(ds.classes))])
    return ds.subset(np.sort(keep))


def resolve_eval_data(data: str | os.PathLike, classes: Sequence[str], split: str | None = None,
                      size: tuple[int, int] | None = None, log: Log | None = _stderr,
                      mixed_size: tuple[int, int] | None = None) -> FaceSet:
    """The evaluation split: a split folder of class folders, a root with ``val/`` (or ``test/``), or a
    fer2013.csv (``split`` = its Usage, default PublicTest)."""
    p = Path(data).expanduser()
    if p.is_file() and p.suffix.lower() == ".csv":
        return read_fer2013_csv(p, split or "PublicTest", classes, size, log)
    if not p.is_dir():
        raise FerEdgeError(f"data {p} does not exist" if not p.exists() else
                           f"data {p} is neither a folder nor a fer2013 .csv file")
    if split:
        sp = p / split
        if not sp.is_dir():
            raise FerEdgeError(f"data folder {p} has no '{split}' split folder")
        return read_image_folder(sp, classes, size, root=p, log=log, mixed_size=mixed_size)
    subdirs = {d.name for d in p.iterdir() if d.is_dir()}
    if subdirs & set(classes) or not subdirs & {"val", "valid", "validation", "test"}:
        return read_image_folder(p, classes, size, root=p.parent, log=log, mixed_size=mixed_size)
    sp = find_split(p, ("val", "valid", "validation", "test"))
    return read_image_folder(sp, classes, size, root=p, log=log, mixed_size=mixed_size)


def read_ferplus_votes(path: str | os.PathLike, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """``relative path -> votes`` (float32, in ``classes`` order) from a FER+ votes CSV."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FerEdgeError(f"FER+ votes file {path} does not exist")
    missing = [c for c in classes if c not in FERPLUS_NAMES.values()]
    if missing:
        raise FerEdgeError(f"FER+ votes have no column for class(es) {', '.join(missing)}")
    votes: dict[str, np.ndarray] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            need = ["path", *FERPLUS_NAMES]
            if any(c not in cols for c in need):
                raise FerEdgeError(f"{path}: not a FER+ votes CSV (it needs the columns {', '.join(need)})")
            by_class = {v: k for k, v in FERPLUS_NAMES.items()}
            for row in reader:
                try:
                    v = np.asarray([float(row[by_class[c]] or 0) for c in classes], np.float32)
                except ValueError:
                    continue
                votes[row["path"].strip().replace("\\", "/")] = v
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FerEdgeError(f"cannot read {path} ({e})")
    return votes


def _lookup(votes: dict[str, np.ndarray], rel: str) -> np.ndarray | None:
    v = votes.get(rel)
    if v is None:
        parts = rel.split("/")
        if len(parts) >= 3:  # the votes file is keyed by split/class/file
            v = votes.get("/".join(parts[-3:]))
    return v


def apply_ferplus(ds: FaceSet, votes_csv: str | os.PathLike, mode: str = "majority",
                  log: Log | None = _stderr) -> FaceSet:
    """Relabel ``ds`` with FER+ votes, matched by path relative to the data root.

    ``majority``: the most-voted emotion (ties keep the original label if it is among the tied, else the
    first in class order). ``soft``: the vote distribution as the target. Faces without a row, or whose
    row has no votes for the 7 emotions, keep their original label (one-hot in ``soft`` mode).
    """
    if mode not in ("majority", "soft"):
        raise FerEdgeError(f"unknown --ferplus-mode '{mode}' (choose majority or soft)")
    if ds.paths and ds.paths[0].startswith("csv:"):
        raise FerEdgeError("FER+ votes are keyed by image path: use them with an ImageFolder copy of FER2013, "
                           "not with fer2013.csv")
    votes = read_ferplus_votes(votes_csv, ds.classes)
    k = len(ds.classes)
    labels = ds.labels.copy()
    soft = np.eye(k, dtype=np.float32)[labels] if mode == "soft" else None
    matched = changed = 0
    for i, rel in enumerate(ds.paths):
        v = _lookup(votes, rel)
        if v is None or v.sum() <= 0:
            continue
        matched += 1
        top = np.flatnonzero(v == v.max())
        new = int(labels[i]) if labels[i] in top else int(top[0])
        changed += int(new != labels[i])
        labels[i] = new
        if soft is not None:
            soft[i] = v / v.sum()
    if log:
        log(f"fer-edge: FER+ {mode} labels for {matched}/{len(ds)} faces of {ds.source} "
            f"({changed} majority labels differ from FER2013)")
    return FaceSet(ds.images, labels, ds.classes, ds.paths, soft, ds.source)
