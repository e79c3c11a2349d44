"""A light IoU tracker: track ids, exponential smoothing of class probabilities, label hysteresis and a
constant-velocity estimate of each face's motion (used to carry boxes between full detections)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    label: int = -1  # the class shown (held by hysteresis); -1 until the first update
    score: float = 0.0  # detector confidence of the last box
    missed: int = 0  # full detections in a row that did not find this face
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # box centre px / frame
    region_blind: int = 0  # times its region lost it and the full detection found it at once (carry.BoxCarrier)
    _lead: int = -1  # class that leads the held label, and for how many frames in a row
    _lead_frames: int = 0


# label hysteresis defaults chosen by measurement: benchmarks/results/detect-sweep/ (issue 16)
HOLD_MARGIN, HOLD_FRAMES = 0.3, 5


@dataclass(frozen=True)
class Hysteresis:
    """A track's shown label changes only when another class leads it by ``margin`` (smoothed probability),
    or leads it for ``frames`` frames in a row. ``Hysteresis(0, 1)`` is off (the label is the argmax)."""

    margin: float = 0.0
    frames: int = 1

    @property
    def off(self) -> bool:
        return self.margin <= 0.0 or self.frames <= 1

    def step(self, t: Track, probs: np.ndarray) -> None:
        top = int(probs.argmax())
        if t.label < 0 or top == t.label or self.off:
            t.label, t._lead, t._lead_frames = top, -1, 0
            return
        t._lead_frames = t._lead_frames + 1 if top == t._lead else 1
        t._lead = top
        if probs[top] - probs[t.label] >= self.margin or t._lead_frames >= self.frames:
            t.label, t._lead, t._lead_frames = top, -1, 0


class FaceTracker:
    """Greedy IoU matching; per-track exponential smoothing ``s = alpha * p + (1 - alpha) * s``, then
    label hysteresis on ``s``.

    ``alpha = 1`` keeps ids but turns smoothing off; ``hysteresis=None`` shows the argmax.
    After each update, ``labels`` holds the shown class index of every face passed in.
    """

    def __init__(self, alpha: float = 0.5, iou_threshold: float = 0.3, max_missed: int = 15,
                 hysteresis: Hysteresis | None = None):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("smoothing alpha must lie in (0, 1]")
        self.alpha = alpha
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.hysteresis = hysteresis or Hysteresis()
        self.tracks: list[Track] = []
        self.labels: list[int] = []
        self._next_id = 0

    def live(self) -> list[Track]:
        """Tracks seen at the last full detection (the ones whose boxes can be carried forward)."""
        return [t for t in self.tracks if t.missed == 0]

    def _move(self, t: Track, box: np.ndarray, frames: int = 1) -> None:
        """Move ``t`` to ``box`` (``frames`` after its last box; 0: unknown) and update its velocity."""
        if frames > 0:
            new_c = box[:2] + box[2:4] / 2
            old_c = t.box[:2] + t.box[2:4] / 2
            t.velocity = 0.5 * t.velocity + 0.5 * (new_c - old_c) / frames
        else:  # found again after a miss: the old box says nothing about its motion
            t.velocity[:] = 0.0
        t.box[:] = box[:4]
        t.score = float(box[4]) if len(box) > 4 else t.score

    def assign(self, boxes: np.ndarray, ids: list[int] | None = None) -> list[Track]:
        """The geometric half of :meth:`update`: the track of every face of this frame, boxes and velocities
        moved, no probabilities touched (a new track's come with its first :meth:`smooth`).

        ``ids``: the faces' tracks are already known (boxes carried forward from those tracks): no matching,
        and tracks not listed are left as they are. Otherwise this is a full detection: greedy IoU matching,
        unmatched tracks count a miss, unmatched faces start new tracks. Needs no class probabilities, so the
        next frame can be located while this one is classified (:mod:`.stages`).
        """
        n = len(boxes)
        if ids is not None:
            by_id = {t.id: t for t in self.tracks}
            out = [by_id[tid] for tid in ids]
            for i, t in enumerate(out):
                self._move(t, boxes[i])
            return out
        found: list[Track | None] = [None] * n
        if self.tracks and n:
            iou = iou_matrix(np.asarray(boxes[:, :4], np.float32), np.stack([t.box for t in self.tracks]))
            used: set[int] = set()
            values = iou.ravel().tolist()
            for flat in sorted(range(len(values)), key=values.__getitem__, reverse=True):
                i, j = divmod(flat, iou.shape[1])
                if values[flat] < self.iou_threshold:
                    break
                if found[i] is not None or j in used:
                    continue
                t = self.tracks[j]
                found[i] = t
                used.add(j)
                self._move(t, boxes[i], 0 if t.missed else 1)
                t.missed = 0
        seen = {id(t) for t in found if t is not None}
        for t in self.tracks:
            if id(t) not in seen:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for i in range(n):
            if found[i] is None:
                t = Track(self._next_id, np.array(boxes[i, :4], np.float32), np.empty(0, np.float32),
                          score=float(boxes[i, 4]) if boxes.shape[1] > 4 else 0.0)
                self._next_id += 1
                self.tracks.append(t)
                found[i] = t
        return found  # type: ignore[return-value]

    def smooth(self, tracks: list[Track], probs: np.ndarray, fresh: np.ndarray | None = None) -> list[int]:
        """The other half of :meth:`update`: smooth ``probs`` (one row per track, in place) into each track and
        apply label hysteresis; the shown class of each (also kept in ``labels``).

        ``fresh``: which rows were classified this frame (default all); a row that was not gets the track's
        smoothed probabilities as they stand (and hysteresis counts the frame as usual)."""
        for i, (t, row) in enumerate(zip(tracks, probs)):
            if fresh is not None and not fresh[i] and t.probs.size:
                row[:] = t.probs
            elif t.probs.size == 0:  # a new track starts from its first probabilities
                t.probs = np.array(row, np.float32)
            else:
                t.probs *= 1.0 - self.alpha
                t.probs += self.alpha * row
                row[:] = t.probs
            self.hysteresis.step(t, t.probs)
        self.labels = [t.label for t in tracks]
        return self.labels

    def update(self, boxes: np.ndarray, probs: np.ndarray, ids: list[int] | None = None) -> list[int]:
        """Assign track ids to this frame's faces (:meth:`assign`) and smooth ``probs`` in place (:meth:`smooth`)."""
        tracks = self.assign(boxes, ids)
        self.smooth(tracks, probs)
        return [t.id for t in tracks]
