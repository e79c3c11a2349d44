"""Detector + crop + classifier + tracker, and the frame loop that feeds them to sinks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .carry import DEFAULT_CARRY, BoxCarrier
from .classifier import MAX_BATCH, EmotionClassifier
from .detectors import FaceDetector
from .preprocess import FaceBatcher, crop_regions
from .tracker import FaceTracker, Track

STAGES = ("decode", "detect", "classify", "track", "output")
# full detection on every N-th video/camera frame, chosen by measurement: benchmarks/results/detect-sweep/ (issue 16)
DETECT_EVERY = 3
# each tracked face classified on every K-th frame: benchmarks/results/detect-sweep/classify-every/ (issue 16)
CLASSIFY_EVERY = 1


@dataclass
class Face:
    """One face in a frame: its box, the detector's score, the top emotion and every class probability."""

    index: int  # position in the frame's list, best detector score first
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    score: float  # detector confidence
    label: str  # the most probable class
    probs: dict[str, float]  # class name -> probability (smoothed over time when tracked)
    track: int | None = None  # stable id across frames of a video or camera (None for single images)
    box_from: str = "detected"  # "detected" (full detection) or "tracked" (carried from the last one)

    def to_dict(self) -> dict:
        """A JSON-ready dict: ``face``, ``track``, ``box`` [x, y, w, h], ``box_from``, ``score``, ``label``,
        ``probs``."""
        return {"face": self.index, "track": self.track, "box": list(self.box), "box_from": self.box_from,
                "score": self.score, "label": self.label, "probs": dict(self.probs)}


@dataclass
class Located:
    """One frame's faces before classification: boxes ``(n, 5)``, their tracks (None without a tracker) and
    whether the boxes came from a full detection (``"detected"``) or were carried (``"tracked"``)."""

    boxes: np.ndarray
    tracks: list[Track] | None
    origin: str


class EmotionPipeline:
    """Finds every face in a frame and classifies all of them, in batches of up to ``MAX_BATCH``.

    With a tracker and ``detect_every`` N > 1, the full detector runs on every N-th frame; in between each
    live track's box is carried forward by ``carry`` (see :mod:`.carry`), and a lost track makes the frame
    a full detection at once. Every frame's faces are classified. Without a tracker (images) every frame
    gets a full detection.
    """

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, crop_margin: float | None = None,
                 tracker: FaceTracker | None = None, detect_every: int = 1, carry: str = DEFAULT_CARRY,
                 roi_size: int = 96, keep_score: float | None = None, classify_every: int = 1):
        if detect_every < 1 or classify_every < 1:
            raise ValueError("detect_every and classify_every must be at least 1")
        self.detector = detector
        self.classifier = classifier
        self.batcher = FaceBatcher(classifier.meta, crop_margin)
        self.tracker = tracker
        self.classes = classifier.classes
        self.timings = {s: 0.0 for s in STAGES}
        self.detect_every = detect_every if tracker is not None else 1
        self.carrier = BoxCarrier(detector, carry, roi_size, keep_score=keep_score) if self.detect_every > 1 else None
        self.full_detections = 0  # frames that ran the full detector
        # with a tracker: each track's face is classified on every K-th frame (staggered by track id) and on its
        # first; in between it shows its smoothed probabilities (benchmarks/results/detect-sweep/classify-every/)
        self.classify_every = classify_every if tracker is not None else 1
        self.classified = 0  # faces run through the classifier
        self._frame = 0
        self._since_full = 0
        self._shape: tuple[int, ...] | None = None
        self._probs = np.empty((MAX_BATCH, len(self.classes)), np.float32)  # grows (once) past MAX_BATCH faces

    def _locate(self, image: np.ndarray) -> tuple[np.ndarray, list[int] | None]:
        """This frame's boxes, and their track ids when they were carried rather than detected."""
        if self.carrier is not None and image.shape == self._shape and self._since_full < self.detect_every:
            boxes, ids, lost = self.carrier.carry(image, self.tracker.live())
            if not lost:
                self._since_full += 1
                return boxes, ids
        self._shape = image.shape
        self._since_full = 1
        self.full_detections += 1
        return self.detector.detect(image), None

    def _reserve(self, n: int) -> None:
        """Grow the reused probability buffer (once, doubling) to hold ``n`` faces."""
        if n > len(self._probs):
            self._probs = np.empty((max(n, 2 * len(self._probs)), len(self.classes)), np.float32)

    def classify(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) for every box, in batches of up to ``MAX_BATCH``; a reused buffer."""
        n = len(boxes)
        self._reserve(n)
        self.classified += n
        h, w = image.shape[:2]
        rects = crop_regions(boxes, self.batcher.margin, w, h)
        step = self.batcher.max_faces
        for k in range(0, n, step):
            chunk = rects[k : k + step]
            self._probs[k : k + len(chunk)] = self.classifier.predict(self.batcher(image, chunk))
        return self._probs[:n]

    def locate(self, image: np.ndarray) -> Located:
        """The first half of :meth:`process`: this frame's boxes and (with a tracker) their tracks. Uses no
        classifier, so the loop can locate frame t+1 while frame t is classified (:mod:`.stages`)."""
        t0 = time.perf_counter()
        boxes, ids = self._locate(image)
        tracks = None
        if self.tracker is not None:
            tracks = self.tracker.assign(boxes, ids)
            if ids is None and self.carrier is not None:
                self.carrier.after_full_detection(self.tracker.tracks)
        self.timings["detect"] += time.perf_counter() - t0
        return Located(boxes, tracks, "detected" if ids is None else "tracked")

    def finish(self, image: np.ndarray, located: Located) -> list[Face]:
        """The second half of :meth:`process`: classify the located faces, smooth them over their tracks."""
        t1 = time.perf_counter()
        boxes = located.boxes
        fresh = None
        if located.tracks is not None and self.classify_every > 1:
            k, f = self.classify_every, self._frame
            fresh = np.fromiter(((t.probs.size == 0 or (f + t.id) % k == 0) for t in located.tracks), bool,
                                len(located.tracks))
            probs = self._partial(image, boxes, fresh)
        else:
            probs = self.classify(image, boxes)
        self._frame += 1
        t2 = time.perf_counter()
        if located.tracks is not None:
            top = self.tracker.smooth(located.tracks, probs, fresh)
            ids: list[int | None] = [t.id for t in located.tracks]
        else:
            ids, top = [None] * len(boxes), probs.argmax(axis=1).tolist()
        faces = [
            Face(i, tuple(int(round(v)) for v in boxes[i, :4]), float(boxes[i, 4]), self.classes[top[i]],
                 dict(zip(self.classes, probs[i].tolist())), ids[i], located.origin)
            for i in range(len(boxes))
        ]
        self.timings["classify"] += t2 - t1
        self.timings["track"] += time.perf_counter() - t2
        return faces

    def _partial(self, image: np.ndarray, boxes: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """Probabilities for the ``fresh`` rows of ``boxes`` (the other rows are left for the tracker to fill)."""
        n = len(boxes)
        if fresh.all():
            return self.classify(image, boxes)
        self._reserve(n)
        idx = np.flatnonzero(fresh)
        if len(idx):
            got = self.classify(image, boxes[idx])
            self._probs[idx] = got[: len(idx)].copy()  # classify() wrote into the front of the same buffer
        return self._probs[:n]

    def process(self, image: np.ndarray) -> list[Face]:
        """Every face of ``image``, classified (and tracked when the pipeline has a tracker)."""
        return self.finish(image, self.locate(image))


@dataclass
class RunStats:
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    dropped: int = 0  # camera frames skipped because a newer one had arrived (threaded loop)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_loop(source, pipeline: EmotionPipeline, sinks: list, draw: bool = False, max_frames: int | None = None,
             on_frame=None) -> RunStats:
    """Pull frames from ``source`` through ``pipeline`` into ``sinks`` until the source ends or a sink stops.

    Ctrl-C ends the loop cleanly; the sinks are closed by the caller.
    """
    from .draw import draw_faces

    stats = RunStats()
    timings = pipeline.timings
    pipeline.classifier.prepare_stream()
    t_start = time.perf_counter()
    t_prev = t_start
    try:
        for frame in source:
            t_decoded = time.perf_counter()
            timings["decode"] += t_decoded - t_prev
            faces = pipeline.process(frame.image)
            t_out = time.perf_counter()
            if draw:
                draw_faces(frame.image, faces)
            for s in sinks:
                s.write(frame, faces)
            stats.frames += 1
            stats.faces += len(faces)
            if on_frame is not None:
                on_frame(stats)
            t_prev = time.perf_counter()
            timings["output"] += t_prev - t_out
            if (max_frames and stats.frames >= max_frames) or any(getattr(s, "stop_requested", False) for s in sinks):
                break
    except KeyboardInterrupt:
        stats.interrupted = True
    stats.seconds = time.perf_counter() - t_start
    stats.timings = dict(timings)
    return stats
