"""Detector + crop + classifier + tracker, and the frame loop that feeds them to sinks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .classifier import EmotionClassifier
from .detectors import FaceDetector
from .preprocess import FaceBatcher, crop_regions
from .tracker import FaceTracker

STAGES = ("decode", "detect", "classify", "track", "output")


@dataclass
class Face:
    """One face in a frame: its box, the detector's score, the top emotion and every class probability."""

    index: int  # position in the frame's list, best detector score first
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    score: float  # detector confidence
    label: str  # the most probable class
    probs: dict[str, float]  # class name -> probability (smoothed over time when tracked)
    track: int | None = None  # stable id across frames of a video or camera (None for single images)

    def to_dict(self) -> dict:
        """A JSON-ready dict: ``face``, ``track``, ``box`` [x, y, w, h], ``score``, ``label``, ``probs``."""
        return {"face": self.index, "track": self.track, "box": list(self.box), "score": self.score,
                "label": self.label, "probs": dict(self.probs)}


class EmotionPipeline:
    """Finds every face in a frame and classifies all of them in one batched call."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, crop_margin: float | None = None,
                 tracker: FaceTracker | None = None):
        self.detector = detector
        self.classifier = classifier
        self.batcher = FaceBatcher(classifier.meta, crop_margin)
        self.tracker = tracker
        self.classes = classifier.classes
        self.timings = {s: 0.0 for s in STAGES}

    def process(self, image: np.ndarray) -> list[Face]:
        t0 = time.perf_counter()
        boxes = self.detector.detect(image)[: self.batcher.max_faces]
        t1 = time.perf_counter()
        h, w = image.shape[:2]
        rects = crop_regions(boxes, self.batcher.margin, w, h)
        probs = self.classifier.predict(self.batcher(image, rects))
        t2 = time.perf_counter()
        tracks = self.tracker.update(boxes, probs) if self.tracker is not None else [None] * len(boxes)
        top = probs.argmax(axis=1)
        faces = [
            Face(i, tuple(int(round(v)) for v in boxes[i, :4]), float(boxes[i, 4]), self.classes[top[i]],
                 dict(zip(self.classes, probs[i].tolist())), tracks[i])
            for i in range(len(boxes))
        ]
        t3 = time.perf_counter()
        self.timings["detect"] += t1 - t0
        self.timings["classify"] += t2 - t1
        self.timings["track"] += t3 - t2
        return faces


@dataclass
class RunStats:
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

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
