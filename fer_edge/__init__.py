"""fer-edge: facial emotion recognition on the edge.

``from fer_edge import EmotionRecognizer`` (see :mod:`fer_edge.recognizer`). Names are imported on first use,
so ``import fer_edge`` stays cheap (no OpenCV, ONNX Runtime or OpenVINO until they are needed).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "EmotionRecognizer": "fer_edge.recognizer",
    "FrameResult": "fer_edge.recognizer",
    "Face": "fer_edge.runtime.pipeline",
    "FerEdgeError": "fer_edge.runtime.errors",
}
__all__ = ["EmotionRecognizer", "Face", "FerEdgeError", "FrameResult", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from fer_edge.recognizer import EmotionRecognizer, FrameResult
    from fer_edge.runtime.errors import FerEdgeError
    from fer_edge.runtime.pipeline import Face


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
