"""Classification metrics with numpy alone: confusion matrix, per-class precision/recall/F1, the text report.

Shared by training (validation each epoch), evaluation, export reports and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_from_labels(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class i predicted as j."""
    t = np.asarray(y_true, np.int64)
    p = np.asarray(y_pred, np.int64)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted averages and per-class precision, recall, F1 and support.

    A precision/recall/F1 with a zero denominator is 0 (as scikit-learn's ``zero_division=0``).
    """
    cm = np.asarray(cm, np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = int(cm.sum())
    per_class = {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                     "support": int(support[i])} for i, c in enumerate(classes)}
    w = support / n if n else np.zeros_like(support)
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "weighted_f1": float((f1 * w).sum()),
        "weighted_precision": float((precision * w).sum()),
        "weighted_recall": float((recall * w).sum()),
        "per_class": per_class,
        "confusion": cm.tolist(),
        "n": n,
    }


def format_report(m: dict[str, Any], digits: int = 4) -> str:
    """A table in the layout of scikit-learn's ``classification_report``."""
    names = list(m["per_class"])
    width = max(12, *(len(c) for c in names))
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    lines = [head, ""]
    for c in names:
        r = m["per_class"][c]
        lines.append(f"{c:>{width}} {r['precision']:>9.{digits}f} {r['recall']:>9.{digits}f} "
                     f"{r['f1']:>9.{digits}f} {r['support']:>9d}")
    lines.append("")
    lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {m['accuracy']:>9.{digits}f} {m['n']:>9d}")
    lines.append(f"{'macro avg':>{width}} {m['macro_precision']:>9.{digits}f} {m['macro_recall']:>9.{digits}f} "
                 f"{m['macro_f1']:>9.{digits}f} {m['n']:>9d}")
    lines.append(f"{'weighted avg':>{width}} {m['weighted_precision']:>9.{digits}f} "
                 f"{m['weighted_recall']:>9.{digits}f} {m['weighted_f1']:>9.{digits}f} {m['n']:>9d}")
    return "\n".join(lines)
