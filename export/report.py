"""Measuring exported artifacts in one run: val accuracy, macro-F1, agreement with FP32, batch-1 latency."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class ArtifactRow:
    file: str
    kind: str  # e.g. "PyTorch FP32", "ONNX INT8"
    size_mb: float
    accuracy: float
    macro_f1: float
    agreement: float  # top-1 agreement with the FP32 reference
    latency_ms: float  # median per face at batch 1
    latency_p90_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def batch1_latency(predict, x: np.ndarray, warmup: int = 20, runs: int = 200) -> tuple[float, float]:
    """Median and p90 milliseconds of ``predict`` on one face."""
    one = np.ascontiguousarray(x[:1])
    for _ in range(warmup):
        predict(one)
    times = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        predict(one)
        times[i] = time.perf_counter() - t
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def predict_all(predict, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for s in range(0, len(inputs), batch):
        out.append(np.array(predict(np.ascontiguousarray(inputs[s : s + batch])), np.float32))
    return np.concatenate(out)


def measure(kind: str, path: Path, predict, inputs: np.ndarray, labels: np.ndarray, classes,
            reference: np.ndarray | None) -> tuple[ArtifactRow, np.ndarray]:
    from fer_edge.metrics import confusion_from_labels, metrics_from_confusion

    probs = predict_all(predict, inputs)
    pred = probs.argmax(1)
    m = metrics_from_confusion(confusion_from_labels(labels, pred, len(classes)), classes)
    agree = 1.0 if reference is None else float((pred == reference).mean())
    med, p90 = batch1_latency(predict, inputs)
    parts = list(path.iterdir()) if path.is_dir() else [path, path.with_suffix(".bin")]  # a released checkpoint
    size = sum(p.stat().st_size for p in parts if p.is_file()) / 1e6
    return ArtifactRow(path.name, kind, round(size, 3), m["accuracy"], m["macro_f1"], agree, med, p90), pred


def markdown_table(rows: list[ArtifactRow]) -> str:
    lines = ["| file | kind | size (MB) | val accuracy | macro-F1 | top-1 agreement with FP32 | latency/face, batch 1 "
             "(median ms) | p90 ms |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.file} | {r.kind} | {r.size_mb:.2f} | {r.accuracy:.4f} | {r.macro_f1:.4f} | "
                     f"{r.agreement:.4f} | {r.latency_ms:.3f} | {r.latency_p90_ms:.3f} |")
    return "\n".join(lines)
