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
from .errors import FerEdgeError
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


def check_image(image: object, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous BGR uint8 (H, W, 3) array, or a FerEdgeError saying in one sentence why not."""
    if image is None:
        raise FerEdgeError(f"no {what} given (None); pass a BGR uint8 array of shape (H, W, 3) or an image path")
    if not isinstance(image, np.ndarray):
        raise FerEdgeError(f"the {what} is of type {type(image).__name__}, not a BGR uint8 numpy array or an "
                           "image path")
    if image.size == 0:
        raise FerEdgeError(f"the {what} is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise FerEdgeError(f"the {what} has dtype {image.dtype}, not uint8 (0..255 BGR pixels)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise FerEdgeError(f"the {what} has shape {image.shape}, not (H, W, 3) BGR; convert gray or BGRA images "
                           "with cv2.cvtColor first")
    return np.ascontiguousarray(image)


def normalize_crops(meta: ModelMeta, crops: list[np.ndarray]) -> np.ndarray:
    """(N, C, H, W) float32 classifier inputs for BGR uint8 face crops of any sizes, each taken whole."""
    batcher = FaceBatcher(meta, crop_margin=0.0, max_faces=1)
    out = np.empty((len(crops), meta.channels, *meta.input_size), np.float32)
    for i, crop in enumerate(crops):
        h, w = crop.shape[:2]
        out[i] = batcher(crop, np.array([[0, 0, w, h]], np.int32))[0]
    return out


def stack_faces(images: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Gray uint8 face crops (N, h, w) as one tall BGR frame (N*h, w, 3), optionally mirrored left-right, and
    each face's whole rectangle ``[x0, y0, x1, y1]`` in it: the input :class:`FaceBatcher` crops from."""
    n, h, w = images.shape
    faces = images[:, :, ::-1] if flip else images
    frame = cv2.cvtColor(np.ascontiguousarray(faces.reshape(n * h, w)), cv2.COLOR_GRAY2BGR)
    rects = np.zeros((n, 4), np.int32)
    rects[:, 1] = np.arange(n) * h
    rects[:, 2] = w
    rects[:, 3] = rects[:, 1] + h
    return frame, rects


def normalized_faces(meta: ModelMeta, images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N, C, H, W) float32 inputs for gray uint8 face crops (N, h, w), each taken whole as the face."""
    n = len(images)
    batcher = FaceBatcher(meta, max_faces=chunk)
    out = np.empty((n, meta.channels, *meta.input_size), np.float32)
    for start in range(0, n, chunk):
        frame, rects = stack_faces(images[start : start + chunk])
        out[start : start + len(rects)] = batcher(frame, rects)
    return out
