"""Face crops for the classifier, written into buffers allocated once.

A detector box becomes a square centred on the face, on the box's longest side, grown (or, when
negative, shrunk) by ``crop_margin`` of that side on every side, clamped to the frame, resized
(INTER_AREA) to the model's input size and normalised with the model's mean/std, exactly as the
metadata says.
"""

from __future__ import annotations

import cv2
import numpy as np

from .classifier import MAX_BATCH
from .metadata import ModelMeta


def crop_regions(boxes: np.ndarray, margin: float, frame_w: int, frame_h: int) -> np.ndarray:
    """Integer crop rectangles (n, 4) ``[x0, y0, x1, y1]`` for boxes (n, >=4) ``[x, y, w, h]``."""
    boxes = np.asarray(boxes, np.float32)
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    half = np.maximum(boxes[:, 2], boxes[:, 3]) * (0.5 + margin)
    rect = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).round()
    rect[:, [0, 2]] = np.clip(rect[:, [0, 2]], 0, frame_w)
    rect[:, [1, 3]] = np.clip(rect[:, [1, 3]], 0, frame_h)
    return rect.astype(np.int32)


class FaceBatcher:
    """Turns a frame and its face boxes into the classifier's normalised NCHW batch, without allocating."""

    def __init__(self, meta: ModelMeta, crop_margin: float | None = None, max_faces: int = MAX_BATCH):
        self.meta = meta
        self.margin = meta.crop_margin if crop_margin is None else float(crop_margin)
        self.max_faces = max_faces
        h, w = meta.input_size
        self._bgr = np.empty((max_faces, h, w, 3), np.uint8)
        self._gray = np.empty((max_faces, h, w), np.uint8)
        self.batch = np.empty((max_faces, meta.channels, h, w), np.float32)
        std = np.asarray(meta.std, np.float32)
        self._scale = (1.0 / (255.0 * std)).reshape(1, -1, 1, 1).astype(np.float32)
        self._bias = (-np.asarray(meta.mean, np.float32) / std).reshape(1, -1, 1, 1).astype(np.float32)
        if meta.color == "rgb":
            self._order = (2, 1, 0)
        else:
            self._order = (0, 1, 2)

    def __call__(self, frame: np.ndarray, rects: np.ndarray) -> np.ndarray:
        """The batch view (n, C, H, W) for crop rectangles from :func:`crop_regions` (n <= max_faces)."""
        n = min(len(rects), self.max_faces)
        h, w = self.meta.input_size
        for i in range(n):
            x0, y0, x1, y1 = (int(v) for v in rects[i])
            cv2.resize(frame[y0:y1, x0:x1], (w, h), dst=self._bgr[i], interpolation=cv2.INTER_AREA)
        out = self.batch[:n]
        if self.meta.color == "gray":
            for i in range(n):
                cv2.cvtColor(self._bgr[i], cv2.COLOR_BGR2GRAY, dst=self._gray[i])
            for c in range(self.meta.channels):
                np.multiply(self._gray[:n], self._scale[0, c, 0, 0], out=out[:, c])
        else:
            for c, src in enumerate(self._order):
                np.multiply(self._bgr[:n, :, :, src], self._scale[0, c, 0, 0], out=out[:, c])
        out += self._bias
        return out
