"""Face detectors behind one small interface: ``detect(frame) -> (N, 5) [x, y, w, h, score]``.

* ``yunet``: the YuNet ONNX model in ONNX Runtime with OpenCV's decoding (:mod:`.yunet_onnxruntime`), or in
  ``cv2.FaceDetectorYN`` (OpenCV 4.8+, 5.x; NMS built in).
* ``res10``: the OpenCV DNN res10 SSD, from its Caffe files (OpenCV 4.x) or its TensorFlow form
  (OpenCV 4.x and 5.x); NMS applied here.

Boxes come back in frame pixels, clamped to the frame, filtered by score and minimum size.
Buffers for the resized detector input are allocated once per frame size and reused.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import assets
from .errors import FerEdgeError

DETECTORS = ("yunet", "res10")
YUNET_ENGINES = ("onnxruntime", "opencv")
# The detector's input never exceeds this many pixels, whatever --detect-size says (0 = full size included):
# YuNet needs about 75 MB per megapixel of input (measured: 4 MP 0.37 GB, 16 MP 1.24 GB peak).
MAX_DETECT_PIXELS = 8_000_000
MIN_DETECT_SIDE = 32


def opencv_version() -> tuple[int, int]:
    major, minor = cv2.__version__.split(".")[:2]
    return int(major), int(minor)


def opencv_reads_caffe() -> bool:
    return hasattr(cv2, "dnn") and hasattr(cv2.dnn, "readNetFromCaffe")


def opencv_reads_tensorflow() -> bool:
    return hasattr(cv2, "dnn") and hasattr(cv2.dnn, "readNetFromTensorflow")


def check_res10_runs() -> None:
    """Raise one sentence when this OpenCV reads neither form of res10 (OpenCV 5 dropped its Caffe importer in 5.0
    and its TensorFlow importer in 5.1)."""
    if not (opencv_reads_caffe() or opencv_reads_tensorflow()):
        raise FerEdgeError(
            f"OpenCV {cv2.__version__} cannot run the res10 face detector: it reads neither its Caffe nor its "
            "TensorFlow form (both importers were removed in OpenCV 5); use --detector yunet (the default) or "
            "install OpenCV 4.x (pip install 'opencv-python<5')"
        )


class FaceDetector:
    """Common part: input scaling, thresholds, clamping. Subclasses implement ``_detect``."""

    name = "base"
    default_score = 0.7
    default_side = 640

    def __init__(self, score_threshold: float | None = None, nms_threshold: float = 0.3, min_face: int = 20,
                 max_side: int | None = -1):
        """``max_side``: frames are scaled down so their longest side is at most this (None: full size;
        -1: the detector's default)."""
        score_threshold = self.default_score if score_threshold is None else score_threshold
        max_side = self.default_side if max_side == -1 else max_side
        if max_side is not None and max_side < MIN_DETECT_SIDE:
            raise FerEdgeError(f"detect size {max_side} must be 0 (full size) or at least {MIN_DETECT_SIDE} pixels")
        if not 0.0 <= score_threshold <= 1.0:
            raise FerEdgeError(f"detector score threshold {score_threshold} is outside [0, 1]")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face = int(min_face)
        self.max_side = max_side
        self._kw = {"score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
                    "min_face": self.min_face, "max_side": max_side}
        self._frame_shape: tuple[int, ...] | None = None
        self._scale = 1.0
        self._small: np.ndarray | None = None

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Called once per new frame size: choose the detection scale and allocate its buffer."""
        h, w = shape[:2]
        self._frame_shape = shape
        s = 1.0 if not self.max_side else min(1.0, self.max_side / max(h, w))
        s = min(s, (MAX_DETECT_PIXELS / (h * w)) ** 0.5)  # the pixel budget bounds memory for any frame
        self._scale = s
        self._small = None if s == 1.0 else np.empty((round(h * s), round(w * s), 3), np.uint8)
        self._on_input_size(self._small.shape if self._small is not None else shape)

    def _on_input_size(self, shape: tuple[int, ...]) -> None:
        """Hook for detectors that must be told the input size."""

    def twin(self, **overrides) -> FaceDetector:
        """A second detector on the same model files (its own network and buffers), settings overridden."""
        raise NotImplementedError

    def _detect(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """Faces in a BGR uint8 frame as float32 rows ``[x, y, w, h, score]``, best first."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise FerEdgeError(f"{self.name}: expected a BGR uint8 image, got shape {frame.shape}")
        if frame.shape != self._frame_shape:
            self._prepare(frame.shape)
        img = frame
        if self._small is not None:
            cv2.resize(frame, (self._small.shape[1], self._small.shape[0]), dst=self._small,
                       interpolation=cv2.INTER_AREA)
            img = self._small
        boxes = self._detect(img)
        if len(boxes) == 0:
            return np.zeros((0, 5), np.float32)
        if self._scale != 1.0:
            boxes[:, :4] /= self._scale
        h, w = frame.shape[:2]
        x0 = np.clip(boxes[:, 0], 0, w)
        y0 = np.clip(boxes[:, 1], 0, h)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, w)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, h)
        boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3] = x0, y0, x1 - x0, y1 - y0
        keep = (boxes[:, 4] >= self.score_threshold) & (np.minimum(boxes[:, 2], boxes[:, 3]) >= self.min_face)
        boxes = boxes[keep]
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]


class YuNetDetector(FaceDetector):
    """YuNet; by default at 608 px on the longest side: the smallest size that keeps the recall of 640 px within
    1 point on the shared photos, VOC face boxes, videos and FER2013 faces pasted into 640x480 frames (480 px loses
    3 points of those: benchmarks/results/detect-sweep/sizes-2400/).

    ``engine``: ``"onnxruntime"`` (default; the same model and decoding as OpenCV's, boxes within 2e-4 px, about
    2x faster: :mod:`.yunet_onnxruntime`) or ``"opencv"`` (``cv2.FaceDetectorYN``). ``threads``: ONNX Runtime's
    (OpenCV's come from ``cv2.setNumThreads``)."""

    name = "yunet"
    default_side = 608

    def __init__(self, model_path: str | Path, engine: str = "onnxruntime", threads: int | None = None, **kw):
        super().__init__(**kw)
        if engine not in YUNET_ENGINES:
            raise FerEdgeError(f"unknown YuNet engine '{engine}' (choose from {', '.join(YUNET_ENGINES)})")
        self.model_path = Path(model_path)
        self.engine, self.threads = engine, threads
        self._ort = None
        if engine == "onnxruntime":
            from .yunet_onnxruntime import NotYuNetError, YuNetOnnxRuntime

            try:
                self._ort = YuNetOnnxRuntime(self.model_path, threads)
            except NotYuNetError as e:
                raise FerEdgeError(f"cannot use {self.model_path} as the YuNet face detector: it is an ONNX model, "
                                   f"but not YuNet ({e})") from e
            except Exception as e:  # ORT's load errors are not one class: a file it cannot load is not valid
                raise FerEdgeError(f"cannot load the YuNet face detector from {self.model_path}: the file exists but "
                                   "is not a valid YuNet ONNX file for ONNX Runtime") from e
            try:  # a model with YuNet's output names may still not run on an image
                self._ort.detect(np.zeros((64, 64, 3), np.uint8), self.score_threshold, self.nms_threshold)
            except Exception as e:
                raise FerEdgeError(f"cannot use {self.model_path} as the YuNet face detector: it is an ONNX model, "
                                   "but not YuNet (it does not run on an image)") from e
            return
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), self.score_threshold,
                                                  self.nms_threshold, 5000)
        except (cv2.error, AttributeError) as e:
            need = " (YuNet's 2023mar model needs OpenCV 4.8 or newer)" if opencv_version() < (4, 8) else ""
            raise FerEdgeError(
                f"cannot load the YuNet face detector from {self.model_path}: the file exists but is not a valid "
                f"YuNet ONNX file for OpenCV {cv2.__version__}{need}"
            ) from e
        try:  # an ONNX file that is not YuNet loads, then fails on the first frame: find out now
            self._net.setInputSize((64, 64))
            self._net.detect(np.zeros((64, 64, 3), np.uint8))
        except cv2.error as e:
            raise FerEdgeError(f"cannot use {self.model_path} as the YuNet face detector: it is an ONNX model, "
                               "but not YuNet (its outputs are not YuNet's)") from e

    def _on_input_size(self, shape: tuple[int, ...]) -> None:
        if self._ort is not None:
            self._ort.set_input_size(shape[1], shape[0])
        else:
            self._net.setInputSize((shape[1], shape[0]))

    def twin(self, **overrides) -> FaceDetector:
        return YuNetDetector(self.model_path, self.engine, self.threads, **{**self._kw, **overrides})

    def _detect(self, img: np.ndarray) -> np.ndarray:
        if self._ort is not None:
            return self._ort.detect(img, self.score_threshold, self.nms_threshold)
        _, faces = self._net.detect(img)
        if faces is None:
            return np.zeros((0, 5), np.float32)
        return np.ascontiguousarray(faces[:, [0, 1, 2, 3, 14]], dtype=np.float32)


class Res10Detector(FaceDetector):
    """res10 SSD (the seed project's OpenCV DNN face detector), fully convolutional.

    Trained at 300x300, it is fed the frame at its own aspect ratio with the longest side at 480 by
    default: a squashed 300x300 input misses the small faces of group photos.
    """

    name = "res10"
    default_score = 0.5
    default_side = 480
    mean = np.array([104.0, 177.0, 123.0], np.float32).reshape(3, 1, 1)

    def __init__(self, model_path: str | Path, config_path: str | Path, **kw):
        super().__init__(**kw)
        self.model_path, self.config_path = Path(model_path), Path(config_path)
        self.form = "caffe" if self.model_path.suffix == ".caffemodel" else "tensorflow"
        check_res10_runs()  # every OpenCV that lacks the TensorFlow importer (5.1+) lacks Caffe's too
        if self.form == "caffe" and not opencv_reads_caffe():
            raise FerEdgeError(
                f"OpenCV {cv2.__version__} cannot read the Caffe res10 files ({self.model_path.name}); "
                "use the TensorFlow form of the same network (opencv_face_detector_uint8.pb + "
                "opencv_face_detector.pbtxt, 'fer-edge models fetch res10-tf-model res10-tf-config') "
                "or install OpenCV 4.x (opencv-python<5), which reads Caffe"
            )
        for p in (self.model_path, self.config_path):
            if not p.is_file():
                raise FerEdgeError(f"res10 face detector file {p} does not exist")
        try:
            if self.form == "caffe":
                self._net = cv2.dnn.readNetFromCaffe(str(self.config_path), str(self.model_path))
            else:
                self._net = cv2.dnn.readNetFromTensorflow(str(self.model_path), str(self.config_path))
        except cv2.error as e:
            raise FerEdgeError(
                f"cannot load the res10 face detector from {self.model_path} + {self.config_path.name}: the files "
                f"exist but are corrupt or not a res10 {self.form} model"
            ) from e
        self._blob = np.empty((1, 3, 1, 1), np.float32)

    def _on_input_size(self, shape: tuple[int, ...]) -> None:
        self._blob = np.empty((1, 3, shape[0], shape[1]), np.float32)

    def twin(self, **overrides) -> FaceDetector:
        return Res10Detector(self.model_path, self.config_path, **{**self._kw, **overrides})

    def _detect(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        np.copyto(self._blob[0], img.transpose(2, 0, 1))
        self._blob -= self.mean
        self._net.setInput(self._blob)
        out = self._net.forward()  # [1, 1, N, 7]: image_id, label, score, x0, y0, x1, y1 (0..1)
        det = out.reshape(-1, 7)
        det = det[det[:, 2] >= self.score_threshold]
        if len(det) == 0:
            return np.zeros((0, 5), np.float32)
        boxes = np.empty((len(det), 5), np.float32)
        boxes[:, 0] = det[:, 3] * w
        boxes[:, 1] = det[:, 4] * h
        boxes[:, 2] = (det[:, 5] - det[:, 3]) * w
        boxes[:, 3] = (det[:, 6] - det[:, 4]) * h
        boxes[:, 4] = det[:, 2]
        boxes = boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
        keep = cv2.dnn.NMSBoxes(boxes[:, :4].tolist(), boxes[:, 4].tolist(), self.score_threshold,
                                self.nms_threshold)
        return boxes[np.asarray(keep, dtype=np.int64).reshape(-1)]


def _res10_files(model: str | None, config: str | None) -> tuple[Path, Path]:
    """Pick the res10 files: explicit ones, else Caffe (where OpenCV reads it), else the TF form."""
    if model is not None:
        m = Path(model).expanduser()
        if not m.is_file():
            raise FerEdgeError(f"res10 face detector file {m} does not exist")
        assets.check_readable(m)
        if config is not None:
            return m, Path(config).expanduser()
        if m.suffix == ".caffemodel":
            return m, m.with_name("deploy.prototxt")
        if m.suffix == ".pb":
            return m, m.with_name("opencv_face_detector.pbtxt")
        raise FerEdgeError(
            f"{m} is neither a res10 .caffemodel nor a .pb file; pass --detector-config for its config"
        )
    caffe = (assets.locate("res10-caffe-model"), assets.locate("res10-caffe-prototxt"))
    tf = (assets.locate("res10-tf-model"), assets.locate("res10-tf-config"))
    order = [caffe, tf] if opencv_reads_caffe() else [tf, caffe]
    for pair in order:
        if pair[0] and pair[1]:
            return assets.check_readable(pair[0]), assets.check_readable(pair[1])
    name = "res10-caffe-model" if opencv_reads_caffe() else "res10-tf-model"
    assets.resolve(name)  # raises with where it looked and how to fetch
    raise AssertionError("unreachable")


def create_detector(name: str, model: str | None = None, config: str | None = None, engine: str = "onnxruntime",
                    threads: int | None = None, **kw) -> FaceDetector:
    """Build detector ``name`` from an explicit file or the model search path. ``engine`` and ``threads``: YuNet's
    (res10 runs in OpenCV, whose threads come from ``cv2.setNumThreads``)."""
    if name == "yunet":
        return YuNetDetector(assets.resolve("yunet", model), engine, threads, **kw)
    if name == "res10":
        check_res10_runs()  # before looking for files that could not be used
        return Res10Detector(*_res10_files(model, config), **kw)
    raise FerEdgeError(f"unknown face detector '{name}' (choose from {', '.join(DETECTORS)})")
