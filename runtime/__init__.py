"""fer_edge.runtime: torch-free inference (OpenCV face detectors, ONNX Runtime / OpenVINO classifiers)."""

from .classifier import EmotionClassifier, load_classifier
from .detectors import FaceDetector, create_detector
from .errors import FerEdgeError
from .metadata import METADATA_KEY, ModelMeta
from .pipeline import EmotionPipeline, Face, run_loop
from .tracker import FaceTracker

__all__ = [
    "METADATA_KEY", "EmotionClassifier", "EmotionPipeline", "Face", "FaceDetector", "FaceTracker", "FerEdgeError",
    "ModelMeta", "create_detector", "load_classifier", "run_loop",
]
