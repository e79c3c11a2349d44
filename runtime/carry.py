"""Carrying face boxes from one full detection to the next (``--detect-every N``).

Two ways, chosen by measurement (``benchmarks/sweep_detect.py``):

* ``roi``: each live track's box is moved by its velocity, and the detector runs again on a small square
  region around it (``context`` times the face's side, scaled to ``roi_size`` pixels, written into one
  reused buffer by a single ``warpAffine``). The face found there becomes the new box; a track whose face is
  not found there at ``keep_score`` is *lost*, and the caller runs a full detection at once. When that full
  detection finds the lost face again, the region detector is blind to it (a weak or cut-off face that the full
  detector only just sees at its scale): from then on that track is carried by motion, so the same face does not
  force a full detection on every frame (on the Hamilton video one such face did so on 46 of 275 frames).
* ``mosaic``: ``roi`` with the regions of all tracks of a frame tiled side by side into one mosaic (up to
  ``MOSAIC_COLS`` per row, ``MOSAIC_TILES`` per call) and the region detector run once on it: about 1.0 ms per
  face instead of 1.4-1.7 for one call per region (YuNet in OpenCV, one thread); a face belongs to the tile its
  box centre falls in. The default: with YuNet in ONNX Runtime it finds the same faces as ``roi`` on the Hamilton
  video (98.6% of the 640 px every-frame faces), agrees as often with every-frame labels (96.7% vs 96.8%), switches
  labels less (0.49 vs 0.53 per track-second) and spends about 7% less time locating faces
  (benchmarks/results/detect-sweep/mosaic-onnxruntime/, benchmarks/results/locate-cost/).
* ``motion``: each box is moved by its track's velocity (constant velocity); nothing is ever lost.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detectors import FaceDetector
from .tracker import Track, iou_matrix

CARRY_MODES = ("roi", "mosaic", "motion")
DEFAULT_CARRY = "mosaic"  # chosen by measurement: benchmarks/results/detect-sweep/README.md (issue 16)
BLIND_AFTER = 2  # a track lost in its region this often, and found at once by full detection, is carried by motion
MOSAIC_COLS, MOSAIC_TILES = 4, 8  # regions per mosaic row, and per detector call


class BoxCarrier:
    def __init__(self, detector: FaceDetector, mode: str = DEFAULT_CARRY, roi_size: int = 96, context: float = 2.0,
                 keep_score: float | None = None):
        """``keep_score``: the detector score a tracked face must keep in its region (default: the detector's
        threshold less 0.2, a band that stops faces scoring near the threshold from forcing full detections over
        and over: benchmarks/results/detect-sweep/roi-keep-0.5/)."""
        if mode not in CARRY_MODES:
            raise ValueError(f"unknown carry mode {mode!r} (choose from {', '.join(CARRY_MODES)})")
        self.mode = mode
        self.mosaic = mode == "mosaic"
        self.roi_size = roi_size
        self.context = context
        self.min_face = detector.min_face
        self._roi = np.zeros((roi_size, roi_size, 3), np.uint8)
        self._m = np.zeros((2, 3), np.float64)
        # the region detector sees faces of about roi_size / context pixels: no size floor or scaling there
        keep = max(0.1, detector.score_threshold - 0.2) if keep_score is None else keep_score
        self._det = detector.twin(max_side=None, min_face=0, score_threshold=keep) if mode != "motion" else None
        self._mosaics: dict[tuple[int, int], tuple[np.ndarray, FaceDetector]] = {}  # (rows, cols) -> buffer, net
        self._lost_id: int | None = None  # the track whose region lost it at the last carry

    def carry(self, frame: np.ndarray, tracks: list[Track]) -> tuple[np.ndarray, list[int], bool]:
        """Boxes ``(n, 5)`` for ``tracks`` in ``frame``, their track ids, and whether any track was lost.

        A face carried below ``--min-face`` (or off the frame) is left out of this frame, as a full detection
        would leave it out, without counting as lost."""
        boxes = np.empty((len(tracks), 5), np.float32)
        h, w = frame.shape[:2]
        regions: list[int] = []  # tracks re-detected in their region
        for i, t in enumerate(tracks):
            pred = t.box.copy()
            pred[:2] += t.velocity
            boxes[i, :4], boxes[i, 4] = pred, t.score
            if self._det is not None and t.region_blind < BLIND_AFTER:
                regions.append(i)
        for start in range(0, len(regions), MOSAIC_TILES if self.mosaic else 1):
            part = regions[start : start + (MOSAIC_TILES if self.mosaic else 1)]
            found = self._redetect_all(frame, boxes[part, :4])
            for i, f in zip(part, found):
                if f is None:
                    self._lost_id = tracks[i].id
                    return boxes[:0], [], True
                boxes[i] = f
        x0 = np.clip(boxes[:, 0], 0, w)
        y0 = np.clip(boxes[:, 1], 0, h)
        boxes[:, 2] = np.clip(boxes[:, 0] + boxes[:, 2], 0, w) - x0
        boxes[:, 3] = np.clip(boxes[:, 1] + boxes[:, 3], 0, h) - y0
        boxes[:, 0], boxes[:, 1] = x0, y0
        keep = np.minimum(boxes[:, 2], boxes[:, 3]) >= max(self.min_face, 1)
        if keep.all():
            return boxes, [t.id for t in tracks], False
        return boxes[keep], [t.id for t, k in zip(tracks, keep) if k], False

    def after_full_detection(self, tracks: list[Track]) -> None:
        """Call after the tracker absorbed a full detection: a track lost in its region just before and found by
        this detection is carried by motion from now on (until the track ends)."""
        if self._lost_id is None:
            return
        for t in tracks:
            if t.id == self._lost_id and t.missed == 0:
                t.region_blind += 1
        self._lost_id = None

    def _tile(self, frame: np.ndarray, pred: np.ndarray, out: np.ndarray) -> tuple[float, float, float] | None:
        """Warp the square region around ``pred`` (x, y, w, h) into ``out``; its (scale, x0, y0), or None."""
        side = self.context * float(max(pred[2], pred[3]))
        if side < 1:
            return None
        cx, cy = pred[0] + pred[2] / 2, pred[1] + pred[3] / 2
        s = self.roi_size / side
        x0, y0 = cx - side / 2, cy - side / 2
        self._m[0, 0] = self._m[1, 1] = s
        self._m[0, 2], self._m[1, 2] = -x0 * s, -y0 * s
        cv2.warpAffine(frame, self._m, (self.roi_size, self.roi_size), dst=out, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return s, x0, y0

    def _canvas(self, n: int) -> tuple[np.ndarray, FaceDetector]:
        """The mosaic buffer for ``n`` regions and a region detector for its size (one per layout, kept)."""
        if n == 1:
            return self._roi, self._det
        cols = min(n, MOSAIC_COLS)
        rows = -(-n // cols)
        key = (rows, cols)
        if key not in self._mosaics:
            det = self._det.twin(max_side=None, min_face=0, score_threshold=self._det.score_threshold)
            self._mosaics[key] = (np.zeros((rows * self.roi_size, cols * self.roi_size, 3), np.uint8), det)
        return self._mosaics[key]

    def _redetect_all(self, frame: np.ndarray, preds: np.ndarray) -> list[np.ndarray | None]:
        """The face in a square region around each of ``preds`` (n, 4), in frame pixels, or None where there is
        none: the regions are tiled into one mosaic and detected in one call."""
        n, r = len(preds), self.roi_size
        canvas, det = self._canvas(n)
        cols = canvas.shape[1] // r
        maps: list[tuple[float, float, float] | None] = []
        for k in range(n):
            ty, tx = divmod(k, cols)
            maps.append(self._tile(frame, preds[k], canvas[ty * r : (ty + 1) * r, tx * r : (tx + 1) * r]))
        if n < (canvas.shape[0] // r) * cols:  # tiles left over from a fuller frame: blank them
            for k in range(n, (canvas.shape[0] // r) * cols):
                ty, tx = divmod(k, cols)
                canvas[ty * r : (ty + 1) * r, tx * r : (tx + 1) * r] = 0
        found = det.detect(canvas)
        # each detection belongs to the tile its centre falls in, clipped to that tile
        tx = np.clip(((found[:, 0] + found[:, 2] / 2) // r).astype(np.int64), 0, cols - 1)
        ty = np.clip(((found[:, 1] + found[:, 3] / 2) // r).astype(np.int64), 0, canvas.shape[0] // r - 1)
        tile = ty * cols + tx
        h, w = frame.shape[:2]
        out: list[np.ndarray | None] = []
        for k in range(n):
            mine = found[tile == k]
            if maps[k] is None or len(mine) == 0:
                out.append(None)
                continue
            s, x0, y0 = maps[k]
            oy, ox = divmod(k, cols)
            oy, ox = oy * r, ox * r
            x1 = np.clip(mine[:, 0] + mine[:, 2], ox, ox + r)
            y1 = np.clip(mine[:, 1] + mine[:, 3], oy, oy + r)
            mine[:, 0] = np.clip(mine[:, 0], ox, ox + r)
            mine[:, 1] = np.clip(mine[:, 1], oy, oy + r)
            mine[:, 2], mine[:, 3] = x1 - mine[:, 0], y1 - mine[:, 1]
            mine[:, 0] -= ox
            mine[:, 1] -= oy
            out.append(self._pick(mine, s, x0, y0, preds[k], w, h))
        return out

    def _pick(self, found: np.ndarray, s: float, x0: float, y0: float, pred: np.ndarray, w: int, h: int
              ) -> np.ndarray | None:
        """Of the faces ``found`` in one region (region pixels), the one that is the tracked face, in frame pixels."""
        found[:, :4] /= s
        found[:, 0] += x0
        found[:, 1] += y0
        x1 = np.clip(found[:, 0] + found[:, 2], 0, w)
        y1 = np.clip(found[:, 1] + found[:, 3], 0, h)
        found[:, 0] = np.clip(found[:, 0], 0, w)
        found[:, 1] = np.clip(found[:, 1], 0, h)
        found[:, 2], found[:, 3] = x1 - found[:, 0], y1 - found[:, 1]
        # the same face: overlapping its predicted box, or centred inside it (a loose box from a full detection
        # at low resolution can be much larger than the face the region shows)
        iou = iou_matrix(found[:, :4], pred[None, :4])[:, 0]
        cx, cy = found[:, 0] + found[:, 2] / 2, found[:, 1] + found[:, 3] / 2
        inside = (cx >= pred[0]) & (cx <= pred[0] + pred[2]) & (cy >= pred[1]) & (cy <= pred[1] + pred[3])
        ok = (iou > 0.1) | inside
        if not ok.any():
            return None
        best = int(np.where(ok, iou + inside, -1.0).argmax())
        return found[best]
