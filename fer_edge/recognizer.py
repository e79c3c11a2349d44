"""The Python API: find every face in an image, video or camera and classify its emotion.

Example (the README's; ``group.jpg`` is any photo with faces)::

    from fer_edge import EmotionRecognizer

    recognizer = EmotionRecognizer()                 # the shipped model and the shipped YuNet detector
    for face in recognizer.detect("group.jpg"):      # a path, or a BGR uint8 array from cv2.imread
        print(face.box, face.label, round(face.probs[face.label], 2))

Torch-free: this module uses only the runtime (OpenCV, ONNX Runtime / OpenVINO). ``fer-edge run`` is
built on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from fer_edge.runtime.carry import CARRY_MODES, DEFAULT_CARRY
from fer_edge.runtime.classifier import MAX_BATCH, EmotionClassifier, load_classifier
from fer_edge.runtime.detectors import FaceDetector, create_detector
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.models import classifier_path
from fer_edge.runtime.pipeline import CLASSIFY_EVERY, DETECT_EVERY, EmotionPipeline, Face, RunStats, run_loop
from fer_edge.runtime.preprocess import check_image, normalize_crops
from fer_edge.runtime.sources import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageSource,
    VideoSource,
    list_images,
    read_image,
)
from fer_edge.runtime.stages import stage_threads
from fer_edge.runtime.tracker import HOLD_FRAMES, HOLD_MARGIN, FaceTracker, Hysteresis

ImageLike = Union[np.ndarray, str, os.PathLike]
SourceLike = Union[int, str, os.PathLike]
SOURCE_KINDS = ("camera", "video", "image", "images")

__all__ = ["EmotionRecognizer", "Face", "FerEdgeError", "FrameResult"]


@dataclass
class FrameResult:
    """The faces of one frame from :meth:`EmotionRecognizer.stream`.

    ``image`` is the decoded BGR frame; for video and camera input the next frame overwrites it (copy what you keep).
    """

    index: int
    time_s: float
    source: str
    image: np.ndarray
    faces: list[Face]

    def to_dict(self) -> dict:
        """``source``, ``frame``, ``time_s`` and ``faces`` (each :meth:`Face.to_dict`), JSON-ready."""
        return {"source": self.source, "frame": self.index, "time_s": self.time_s,
                "faces": [f.to_dict() for f in self.faces]}


def load_image(image: ImageLike, what: str = "image") -> np.ndarray:
    """A BGR uint8 (H, W, 3) array from an array or an image file path; FerEdgeError otherwise."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(Path(image).expanduser())
    return check_image(image, what)


class EmotionRecognizer:
    """Face detector + emotion classifier, loaded once and used for images, crops, videos and cameras.

    Args:
        model: None for the classifier shipped with fer-edge, a shipped model's name (``"accurate"`` or
            ``"fast"``), or a classifier file (``.onnx``, OpenVINO ``.xml``) from ``fer-edge export``.
        detector: ``"yunet"`` (shipped in the package) or ``"res10"`` (``fer-edge models fetch``).

    Keyword options: ``backend`` (``"onnxruntime"``/``"openvino"``; default from the file), ``threads``,
    ``detector_engine`` (YuNet in ``"onnxruntime"``, the default, or OpenCV's ``"opencv"``: the same boxes, about
    half the speed),
    ``detector_model`` / ``detector_config`` (detector files), ``score_threshold`` (detector confidence),
    ``min_face`` (smallest face side, px), ``detect_size`` (longest side frames are scaled to for detection;
    0 = full size), ``crop_margin`` (default: the model's), ``smooth`` (weight of the newest frame when a video
    or camera is smoothed per tracked face, in (0, 1]; None turns smoothing and label hysteresis off, and tracking
    too when ``detect_every`` is 1), ``detect_every`` (video/camera: full detection on every N-th frame, boxes
    carried in between), ``carry`` (``"mosaic"``, the default: re-detection in a region around each face,
    all regions in one detector call; ``"roi"``: one call per region; ``"motion"``),
    ``hold_margin`` / ``hold_frames`` (label hysteresis: a face's label changes when another class leads it by
    the margin, or for that many frames in a row; ``hold_frames=1`` is off), ``classify_every`` (video/camera
    with tracking: each face is classified on every K-th frame, staggered across faces, and shows its smoothed
    probabilities in between), ``overlap`` (:meth:`run` detects
    frame t+1 in a thread of its own while frame t is classified, ``threads`` (None: every core) split between
    the two stages when there are 2 or more; what `fer-edge run` does unless ``--serial``).

    Example::

        >>> from fer_edge import EmotionRecognizer
        >>> recognizer = EmotionRecognizer()
        >>> faces = recognizer.detect("group.jpg")            # doctest: +SKIP
        >>> [f.label for f in faces]                          # doctest: +SKIP
        ['happy', 'neutral', ...]

    Every problem with the input or the model files raises :class:`FerEdgeError` with one sentence.
    """

    def __init__(self, model: str | os.PathLike | None = None, detector: str = "yunet", *,
                 backend: str | None = None, threads: int | None = None,
                 detector_model: str | os.PathLike | None = None, detector_config: str | os.PathLike | None = None,
                 score_threshold: float | None = None, min_face: int = 20, detect_size: int | None = None,
                 crop_margin: float | None = None, smooth: float | None = 0.5, detect_every: int = DETECT_EVERY,
                 carry: str = DEFAULT_CARRY, hold_margin: float = HOLD_MARGIN, hold_frames: int = HOLD_FRAMES,
                 overlap: bool = False, classify_every: int = CLASSIFY_EVERY, detector_engine: str = "onnxruntime"):
        if smooth is not None and not 0.0 < smooth <= 1.0:
            raise FerEdgeError(f"smooth {smooth} is outside (0, 1] (None turns smoothing off)")
        if crop_margin is not None and not -0.25 <= crop_margin <= 1.0:
            raise FerEdgeError(f"crop margin {crop_margin} is outside [-0.25, 1]")
        if threads is not None and threads < 1:
            raise FerEdgeError(f"threads {threads} is not a positive integer")
        if not 1 <= detect_every <= 1000:
            raise FerEdgeError(f"detect_every {detect_every} must be a whole number of frames from 1 to 1000")
        if not 1 <= classify_every <= 1000:
            raise FerEdgeError(f"classify_every {classify_every} must be a whole number of frames from 1 to 1000")
        if carry not in CARRY_MODES:
            raise FerEdgeError(f"carry '{carry}' is not one of {', '.join(CARRY_MODES)}")
        if not 0.0 <= hold_margin <= 1.0:
            raise FerEdgeError(f"hold margin {hold_margin} is outside [0, 1]")
        if not 1 <= hold_frames <= 1000:
            raise FerEdgeError(f"hold frames {hold_frames} must be from 1 to 1000")
        self.detector_name = detector
        self.crop_margin = crop_margin
        self.smooth = smooth
        self.detect_every, self.carry, self.classify_every = int(detect_every), carry, int(classify_every)
        self.hysteresis = Hysteresis(float(hold_margin), int(hold_frames))
        self.threads = stage_threads(threads, overlap)
        if self.threads.detector:  # OpenCV runs the face detector
            import cv2

            cv2.setNumThreads(self.threads.detector)
        # The classifier first: a missing model fails before anything else is opened.
        self.classifier: EmotionClassifier = load_classifier(classifier_path(model, backend), backend,
                                                             self.threads.classifier)
        self.detector: FaceDetector = create_detector(
            detector, None if detector_model is None else os.fspath(detector_model),
            None if detector_config is None else os.fspath(detector_config),
            score_threshold=score_threshold, min_face=min_face,
            max_side=-1 if detect_size is None else (detect_size or None), engine=detector_engine,
            threads=self.threads.detector)
        self._still = EmotionPipeline(self.detector, self.classifier, crop_margin, None)

    @property
    def classes(self) -> tuple[str, ...]:
        """The classifier's class names, in output order."""
        return self.classifier.classes

    def detect(self, image: ImageLike) -> list[Face]:
        """Every face in one image (a BGR uint8 array or an image file path), best detector score first."""
        return self._still.process(load_image(image))

    def classify(self, crops: ImageLike | Iterable[ImageLike]) -> list[Face]:
        """Emotions of faces the caller already cropped: one crop (array or path), a list of them, or an
        (N, H, W, 3) array. Each crop is taken whole (no margin); each result's box is the whole crop and
        its score 1.0."""
        if isinstance(crops, np.ndarray) and crops.ndim == 4:
            items = list(crops)
        elif crops is None or isinstance(crops, (np.ndarray, str, os.PathLike)):
            items = [crops]
        else:
            items = list(crops)
        images = [load_image(c, f"crop {i}") for i, c in enumerate(items)]
        if not images:
            return []
        batch = normalize_crops(self.classifier.meta, images)
        classes = self.classes
        faces: list[Face] = []
        for start in range(0, len(images), MAX_BATCH):
            probs = self.classifier.predict(batch[start:start + MAX_BATCH])
            for j, p in enumerate(probs):
                i = start + j
                h, w = images[i].shape[:2]
                faces.append(Face(i, (0, 0, w, h), 1.0, classes[int(p.argmax())], dict(zip(classes, p.tolist()))))
        return faces

    def open_source(self, source: SourceLike, kind: str | None = None,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS) -> VideoSource | ImageSource:
        """A frame source: a camera index, a video file or URL, one image, or a folder of images.

        ``kind`` (one of ``camera``, ``video``, ``image``, ``images``) forces the reading; by default an int
        is a camera, a folder is an image folder, a file with an image suffix one image, anything else a video.
        A single image is decoded once here so that a bad file fails before any output is created. Images over
        ``max_pixels`` are refused from their header (None: no limit).
        """
        if kind is None:
            if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
                kind = "camera"
            else:
                text = os.fspath(source)
                p = Path(text).expanduser()
                kind = ("video" if "://" in text else "images" if p.is_dir()
                        else "image" if p.suffix.lower() in IMAGE_SUFFIXES else "video")
        if kind == "camera":
            if isinstance(source, str) and source.strip().lower() == "picam":
                from fer_edge.runtime.sources import PiCameraSource

                return PiCameraSource()
            return VideoSource(int(source), is_camera=True)
        if kind == "video":
            return VideoSource(os.fspath(source))
        if kind == "images":
            return ImageSource(list_images(os.fspath(source)), skip_bad=True, max_pixels=max_pixels)
        if kind == "image":
            path = Path(os.fspath(source)).expanduser()
            read_image(path, max_pixels)
            return ImageSource([path], skip_bad=False, max_pixels=max_pixels)
        raise FerEdgeError(f"unknown source kind '{kind}' (choose from {', '.join(SOURCE_KINDS)})")

    def pipeline(self, source: VideoSource | ImageSource | None = None) -> EmotionPipeline:
        """A detector + classifier pipeline for ``source``: for video and camera with a tracker (ids, smoothing,
        label hysteresis) and full detection every ``detect_every`` frames (and the classifier prepared for a
        stream of small batches: :meth:`~fer_edge.runtime.classifier.EmotionClassifier.prepare_stream`)."""
        if not (isinstance(source, VideoSource) or bool(getattr(source, "is_camera", False))):
            return EmotionPipeline(self.detector, self.classifier, self.crop_margin, None)
        self.classifier.prepare_stream()
        if self.smooth is None:
            tracker = FaceTracker(alpha=1.0) if self.detect_every > 1 else None
        else:
            tracker = FaceTracker(alpha=self.smooth, hysteresis=self.hysteresis)
        return EmotionPipeline(self.detector, self.classifier, self.crop_margin, tracker, self.detect_every, self.carry,
                               classify_every=self.classify_every if tracker is not None else 1)

    def stream(self, source: SourceLike, max_frames: int | None = None) -> Iterator[FrameResult]:
        """Per-frame results for a camera index, a video path or URL, an image, or an image folder.

        Video and camera faces carry ``track`` ids and smoothed probabilities. The source is closed when the
        iteration ends or the generator is closed. Unreadable files in a folder are reported and skipped.
        """
        src = self.open_source(source)
        pipe = self.pipeline(src)
        try:
            for n, frame in enumerate(src, 1):
                yield FrameResult(frame.index, frame.time_s, frame.source, frame.image, pipe.process(frame.image))
                if max_frames and n >= max_frames:
                    break
        finally:
            src.close()

    def run(self, source: VideoSource | ImageSource, sinks: list, draw: bool = False,
            max_frames: int | None = None, on_frame: Callable[[RunStats], None] | None = None,
            serial: bool = False) -> RunStats:
        """The frame loop of ``fer-edge run``: every frame of ``source`` through the pipeline into ``sinks``
        (closed by the caller), with per-stage timings. Ctrl-C ends it cleanly (``stats.interrupted``).
        Decoding and the file outputs run in threads of their own unless ``serial``, and detection too when the
        recognizer was made with ``overlap`` (and 2 or more threads)."""
        from fer_edge.runtime.stages import run_loop_threaded

        if serial:
            return run_loop(source, self.pipeline(source), sinks, draw=draw, max_frames=max_frames, on_frame=on_frame)
        return run_loop_threaded(source, self.pipeline(source), sinks, draw=draw, max_frames=max_frames,
                                 on_frame=on_frame, overlap=self.threads.overlap)
