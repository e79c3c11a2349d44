"""Face crops to normalised model inputs, through the runtime's own FaceBatcher (the deployed preprocessing)."""

from __future__ import annotations

import numpy as np

from fer_edge.runtime.metadata import ModelMeta


def normalized_faces(meta: ModelMeta, images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N, C, H, W) float32 inputs for gray uint8 face crops (N, h, w), each taken whole as the face."""
    import cv2

    from fer_edge.runtime.preprocess import FaceBatcher

    n, h, w = images.shape
    batcher = FaceBatcher(meta, max_faces=chunk)
    out = np.empty((n, meta.channels, *meta.input_size), np.float32)
    for start in range(0, n, chunk):
        part = images[start : start + chunk]
        m = len(part)
        frame = cv2.cvtColor(np.ascontiguousarray(part.reshape(m * h, w)), cv2.COLOR_GRAY2BGR)
        rects = np.zeros((m, 4), np.int32)
        rects[:, 1] = np.arange(m) * h
        rects[:, 2] = w
        rects[:, 3] = rects[:, 1] + h
        out[start : start + m] = batcher(frame, rects)
    return out
