"""fer_edge.runtime: torch-free inference (OpenCV face detectors, ONNX Runtime / OpenVINO classifiers).

Names are imported lazily so that ``fer_edge.runtime.errors`` stays cheap to import.
"""

from importlib import import_module

_EXPORTS = {
    "EmotionClassifier": "classifier", "load_classifier": "classifier",
    "FaceDetector": "detectors", "create_detector": "detectors",
    "FerEdgeError": "errors", "METADATA_KEY": "metadata", "ModelMeta": "metadata",
    "EmotionPipeline": "pipeline", "Face": "pipeline", "run_loop": "pipeline", "FaceTracker": "tracker",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
