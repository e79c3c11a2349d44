"""``fer-edge evaluate``: accuracy, per-class precision/recall/F1 and a confusion matrix on a labelled split.

ONNX and OpenVINO IR models run through the runtime (``load_classifier`` + ``FaceBatcher``): the very
preprocessing a deployed model gets, and no torch. A training checkpoint (.pt) is wrapped in an object
with the same ``meta``/``predict`` interface, so the three formats are evaluated by one code path.
The metrics come from :mod:`fer_edge.metrics` (numpy; no scikit-learn needed).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.metrics import confusion_from_labels, format_report, metrics_from_confusion
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.tta import TTA_MODES, crop_views

# ---- the confusion matrix picture ---------------------------------------------------------------

PNG_NEEDS = "matplotlib is not installed (pip install matplotlib, or 'fer-edge[train]')"


def save_confusion_png(cm: np.ndarray, classes: Sequence[str], path: str | os.PathLike,
                       title: str = "") -> Path | None:
    """Row-normalised confusion matrix (true class per row) with class names and cell values.

    Returns None, writing nothing, where matplotlib is not installed (it is not in the runtime install)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * k, 1.0 + 0.8 * k), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- models ------------------------------------------------------------------------------------------

class TorchCheckpointClassifier:
    """A training checkpoint behind the runtime classifier interface (``meta``, ``classes``, ``predict``)."""

    backend = "torch"

    def __init__(self, path: Path, threads: int | None = None):
        import torch

        from fer_edge.runtime.metadata import ModelMeta
        from fer_edge.train.checkpoint import load_checkpoint, runtime_meta

        if threads:
            torch.set_num_threads(threads)
        self.path = path
        self.model, self.card = load_checkpoint(path, map_location="cpu")
        self.meta = ModelMeta.from_dict(runtime_meta(self.card), f"checkpoint {path}")
        self._torch = torch

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    def prepare_stream(self) -> None:
        """Nothing to prepare (the runtime classifiers' interface)."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(batch)))
            return torch.softmax(logits.float(), dim=1).numpy()


def load_model(path: str | os.PathLike, backend: str | None = None, threads: int | None = None):
    p = Path(path).expanduser()
    if not p.exists():
        from fer_edge.runtime.models import classifier_path

        p = classifier_path(path, backend)  # a shipped model's name (accurate, fast), else a clear error
        if not p.exists():
            raise FerEdgeError(f"model file {p} does not exist")
    if p.is_dir() or p.suffix.lower() in (".pt", ".pth", ".safetensors"):
        if backend:
            raise FerEdgeError("--backend applies to .onnx / .xml models, not to a training checkpoint")
        try:
            import torch  # noqa: F401
        except ImportError:
            raise FerEdgeError(f"{p}: evaluating a training checkpoint needs torch (pip install 'fer-edge[train]')")
        return TorchCheckpointClassifier(p, threads)
    from fer_edge.runtime.classifier import load_classifier

    return load_classifier(p, backend, threads)


# ---- evaluation --------------------------------------------------------------------------------------

def predict_faces(classifier, images: np.ndarray, tta: str | None = None, batch: int = 64) -> np.ndarray:
    """Class probabilities (N, K) for gray uint8 face crops (N, H, W), through the runtime's FaceBatcher.

    Each face is the whole image (rect [0, 0, w, h]), so the runtime's own INTER_AREA resize, gray
    conversion and mean/std normalisation are what is evaluated. Faces of a chunk are stacked into one
    tall BGR frame, one rectangle each. TTA averages the probabilities of the views.
    """
    from fer_edge.runtime.preprocess import FaceBatcher, stack_faces

    if tta is not None and tta not in TTA_MODES:
        raise FerEdgeError(f"unknown --tta '{tta}' (choose {', '.join(TTA_MODES)})")
    n, h, w = images.shape
    k = len(classifier.classes)
    batch = max(1, min(batch, 64))
    batcher = FaceBatcher(classifier.meta, max_faces=batch)
    views = crop_views(h, w, tta)
    probs = np.zeros((n, k), np.float64)
    for start in range(0, n, batch):
        chunk = images[start:start + batch]
        m = len(chunk)
        frames = {False: stack_faces(chunk)[0]}
        if any(f for _, f in views):
            frames[True] = stack_faces(chunk, flip=True)[0]
        offs = (np.arange(m) * h)[:, None]
        for rect, flipped in views:
            rects = np.repeat(rect[None, :], m, axis=0).astype(np.int32)
            rects[:, [1, 3]] += offs
            out = classifier.predict(np.ascontiguousarray(batcher(frames[flipped], rects)))
            probs[start:start + m] += out[:m]
    return (probs / len(views)).astype(np.float32)


def write_predictions(path: str | os.PathLike, paths: Sequence[str], labels: np.ndarray, probs: np.ndarray,
                      classes: Sequence[str]) -> Path:
    """CSV, one row per image: ``path, label, pred, prob_<class>...`` (probabilities with 6 decimals)."""
    import csv

    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "pred", *(f"prob_{c}" for c in classes)])
            for i, row in enumerate(probs):
                name = paths[i] if i < len(paths) else str(i)
                w.writerow([name, classes[int(labels[i])], classes[int(row.argmax())], *(f"{v:.6f}" for v in row)])
    except OSError as e:
        raise FerEdgeError(f"cannot write {path} ({e.strerror or e})")
    return p


def read_predictions(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """``path -> (label, pred)`` from a CSV written by :func:`write_predictions`."""
    import csv

    with open(Path(path).expanduser(), newline="") as f:
        return {r["path"]: (r["label"], r["pred"]) for r in csv.DictReader(f)}


def _beside(model: Path) -> Path:
    """The default folder for the confusion PNG: the model's own, except for a shipped model inside the installed
    package (read-only in many installs, and not a place for reports), where it is the current folder."""
    from fer_edge.runtime.models import assets_dir

    try:
        if model.parent.resolve() == assets_dir().resolve():
            return Path(".")
    except OSError:
        pass
    return model.parent


def evaluate(model_path: str | os.PathLike | Sequence[str | os.PathLike], data: str | os.PathLike,
             split: str | None = None,
             tta: str | None = None, json_path: str | None = None, confusion_path: str | None = None,
             out_dir: str | None = None, backend: str | None = None, threads: int | None = None,
             batch: int = 64, log=None, show_report: bool = True, predictions_path: str | None = None
             ) -> dict[str, Any]:
    """Evaluate a model (or several, as an ensemble of averaged probabilities) on a labelled split; print the
    report, write the confusion PNG and optional JSON."""
    from fer_edge.data import resolve_eval_data

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    paths = [model_path] if isinstance(model_path, (str, os.PathLike)) else list(model_path)
    if not paths:
        raise FerEdgeError("give at least one model to evaluate")
    clfs = [load_model(p, backend, threads) for p in paths]
    classes = tuple(clfs[0].classes)
    for p, c in zip(paths[1:], clfs[1:]):
        if tuple(c.classes) != classes:
            raise FerEdgeError(f"{Path(p).name} has classes {', '.join(c.classes)}, unlike {Path(paths[0]).name} "
                               f"({', '.join(classes)}); an ensemble needs the same classes in the same order")
    model_path = paths[0] if len(paths) == 1 else " + ".join(str(p) for p in paths)
    ds = resolve_eval_data(data, classes, split, size=None, log=log, mixed_size=tuple(clfs[0].meta.input_size))
    names = " + ".join(f"{Path(p).name} ({c.backend})" for p, c in zip(paths, clfs))
    log(f"fer-edge: evaluating {names} on {ds.describe(Path(ds.source).name)}" + (f", TTA {tta}" if tta else ""))
    probs = np.mean([predict_faces(c, ds.images, tta, batch) for c in clfs], axis=0)
    pred = probs.argmax(axis=1)
    cm = confusion_from_labels(ds.labels, pred, len(classes))
    m = metrics_from_confusion(cm, classes)
    m["tta"] = tta
    m["model"] = str(model_path)
    m["data"] = ds.source
    if show_report:
        print(f"model: {model_path} ({', '.join(c.backend for c in clfs)})\ndata:  {ds.source} ({m['n']} faces)"
              f"\nTTA:   {tta or 'none'}\n")
        print(format_report(m))
    if json_path:
        doc = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "per_class": m["per_class"],
               "confusion": m["confusion"], "n": m["n"], "tta": tta, "model": str(model_path), "data": ds.source}
        try:
            jp = Path(json_path).expanduser()
            jp.parent.mkdir(parents=True, exist_ok=True)
            jp.write_text(json.dumps(doc, indent=1))
        except OSError as e:
            raise FerEdgeError(f"cannot write {json_path} ({e.strerror or e})")
    mp = Path(paths[0]).expanduser()
    if confusion_path is None:
        base = Path(out_dir).expanduser() if out_dir else _beside(mp)
        confusion_path = str(base / f"{mp.stem}{'_ensemble' if len(paths) > 1 else ''}_confusion.png")
    if confusion_path:
        more = f" + {len(paths) - 1} more" if len(paths) > 1 else ""
        title = f"{mp.name}{more} on {Path(ds.source).name}: acc {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}" + \
            (f", TTA {tta}" if tta else "")
        try:
            p = save_confusion_png(cm, classes, confusion_path, title)
        except OSError as e:
            raise FerEdgeError(f"cannot write the confusion matrix {confusion_path} ({e.strerror or e})")
        if p is None:
            log(f"fer-edge: confusion matrix PNG skipped: {PNG_NEEDS}")
        else:
            log(f"fer-edge: confusion matrix -> {p}")
    if predictions_path:
        write_predictions(predictions_path, ds.paths, ds.labels, probs, classes)
    return m
