"""The IoU tracker, its smoothing, and the face crop/normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_edge.runtime.metadata import ModelMeta
from fer_edge.runtime.preprocess import FaceBatcher, crop_regions
from fer_edge.runtime.tracker import FaceTracker, iou_matrix

from model_factory import default_meta


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [100, 100, 10, 10]], np.float32)
    b = np.array([[5, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150], [0.0]], rtol=1e-6)
    assert iou_matrix(a, np.zeros((0, 4), np.float32)).shape == (2, 0)


def test_tracker_ids_and_smoothing():
    t = FaceTracker(alpha=0.5, max_missed=1)
    p1 = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    boxes = np.array([[0, 0, 50, 50, 0.9], [200, 0, 50, 50, 0.9]], np.float32)
    assert t.update(boxes, p1.copy()) == [0, 1]
    moved = boxes[::-1].copy()  # same faces, listed in the other order, moved a little
    moved[:, 0] += 3
    p2 = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    assert t.update(moved, p2) == [1, 0]
    np.testing.assert_allclose(p2, [[0.5, 0.5], [1.0, 0.0]])  # smoothed in place
    assert t.update(np.zeros((0, 5), np.float32), np.zeros((0, 2), np.float32)) == []
    assert t.update(np.zeros((0, 5), np.float32), np.zeros((0, 2), np.float32)) == []
    assert t.update(boxes[:1], p1[:1].copy()) == [2]  # tracks expired after max_missed frames: new id
    with pytest.raises(ValueError):
        FaceTracker(alpha=0)


def test_crop_regions_square_margin_and_clamp():
    rects = crop_regions(np.array([[100, 100, 40, 60], [0, 0, 30, 30]], np.float32), 0.1, 200, 150)
    assert rects[0].tolist() == [84, 94, 156, 150]  # square of side 72 around (120, 130), clamped at y=150
    assert rects[1].tolist() == [0, 0, 33, 33]
    shrunk = crop_regions(np.array([[100, 100, 40, 60]], np.float32), -0.1, 200, 150)
    assert shrunk[0].tolist() == [96, 106, 144, 150]  # side 60 * 0.8 = 48 around (120, 130), clamped at y=150


def test_batcher_matches_reference_preprocessing():
    meta = ModelMeta.from_dict(default_meta())
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rects = np.array([[10, 20, 70, 80], [0, 0, 160, 120]], np.int32)
    batch = FaceBatcher(meta)(frame, rects)
    assert batch.shape == (2, 1, 48, 48) and batch.dtype == np.float32
    for i, (x0, y0, x1, y1) in enumerate(rects):
        crop = cv2.resize(frame[y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        np.testing.assert_allclose(batch[i, 0], (gray - 0.5) / 0.25, atol=1e-5)
    rgb = ModelMeta.from_dict(default_meta(channels=3, color="rgb", mean=[0.1, 0.2, 0.3], std=[1, 1, 1]))
    b3 = FaceBatcher(rgb)(frame, rects[:1])
    crop = cv2.resize(frame[20:80, 10:70], (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    np.testing.assert_allclose(b3[0, 0], crop[:, :, 2] - 0.1, atol=1e-5)  # R first
    np.testing.assert_allclose(b3[0, 2], crop[:, :, 0] - 0.3, atol=1e-5)
