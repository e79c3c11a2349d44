"""A light IoU tracker that gives faces stable ids and smooths their probabilities over time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a`` (n, 4) and ``b`` (m, 4), both ``[x, y, w, h]``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-6)


@dataclass
class Track:
    id: int
    box: np.ndarray  # [x, y, w, h]
    probs: np.ndarray  # smoothed class probabilities
    missed: int = 0


class FaceTracker:
    """Greedy IoU matching; per-track exponential smoothing ``s = alpha * p + (1 - alpha) * s``.

    ``alpha = 1`` keeps ids but turns smoothing off.
    """

    def __init__(self, alpha: float = 0.5, iou_threshold: float = 0.3, max_missed: int = 15):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("smoothing alpha must lie in (0, 1]")
        self.alpha = alpha
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes: np.ndarray, probs: np.ndarray) -> list[int]:
        """Assign track ids to this frame's faces; smooth ``probs`` in place."""
        n = len(boxes)
        ids = [-1] * n
        if self.tracks and n:
            iou = iou_matrix(np.asarray(boxes[:, :4], np.float32), np.stack([t.box for t in self.tracks]))
            used: set[int] = set()
            values = iou.ravel().tolist()
            for flat in sorted(range(len(values)), key=values.__getitem__, reverse=True):
                i, j = divmod(flat, iou.shape[1])
                if values[flat] < self.iou_threshold:
                    break
                if ids[i] != -1 or j in used:
                    continue
                t = self.tracks[j]
                ids[i] = t.id
                used.add(j)
                t.box[:] = boxes[i, :4]
                t.missed = 0
                t.probs *= 1.0 - self.alpha
                t.probs += self.alpha * probs[i]
                probs[i] = t.probs
        for t in self.tracks:
            if t.id not in ids:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for i in range(n):
            if ids[i] == -1:
                t = Track(self._next_id, np.array(boxes[i, :4], np.float32), np.array(probs[i], np.float32))
                self._next_id += 1
                self.tracks.append(t)
                ids[i] = t.id
        return ids
