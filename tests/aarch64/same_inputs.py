"""Split an Arm-vs-x86 difference into preprocessing and INT8 kernels: the same input tensors on both machines.

``fer-edge evaluate`` on each machine preprocesses the faces itself (OpenCV's INTER_AREA resize, whose SIMD code
rounds differently on NEON and x86), then runs the model. Here the x86 side writes its preprocessed inputs and its
predictions for them; the Arm side runs the same model on exactly those tensors. Agreement below 100% there is the
ONNX Runtime kernels; a difference that only ``evaluate`` shows is preprocessing.

    python same_inputs.py prepare DATA MODEL FILE.npz     # x86: faces of DATA (class folders) -> inputs, predictions
    python same_inputs.py compare MODEL FILE.npz          # Arm: one JSON line {"n", "agreement", "accuracy", ...}

Torch-free (the runtime's own preprocessing and classifier), so it runs in the Arm venv of the README's Lite install.
"""

from __future__ import annotations

import json
import sys

import numpy as np

BATCH = 32


def predict(model: str, x: np.ndarray) -> np.ndarray:
    """Top-1 class index of each input (N, C, H, W) with ONNX Runtime, batches of BATCH, one thread."""
    from fer_edge.runtime.classifier import load_classifier

    clf = load_classifier(model, backend="onnxruntime", threads=1)
    # predict() returns a buffer it reuses: take each batch's classes before the next call
    return np.concatenate([np.asarray(clf.predict(np.ascontiguousarray(x[i:i + BATCH]))).argmax(1)
                           for i in range(0, len(x), BATCH)])


def prepare(data: str, model: str, out: str) -> dict:
    from fer_edge.data import read_image_folder
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.preprocess import normalized_faces

    meta = load_classifier(model, backend="onnxruntime").meta
    faces = read_image_folder(data, meta.classes, log=None)  # the faces and order `fer-edge evaluate` reads
    x = normalized_faces(meta, faces.images)
    pred = predict(model, x)
    np.savez(out, inputs=x, pred=pred, labels=faces.labels)
    return {"n": len(pred), "accuracy": float((pred == faces.labels).mean())}


def compare(model: str, path: str) -> dict:
    ref = np.load(path)
    pred = predict(model, ref["inputs"])
    same = pred == ref["pred"]
    return {"n": int(len(pred)), "agreement": float(same.mean()), "accuracy": float((pred == ref["labels"]).mean()),
            "x86_accuracy": float((ref["pred"] == ref["labels"]).mean()),
            "differing": np.flatnonzero(~same)[:50].tolist()}


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "prepare":
        print(json.dumps(prepare(*argv[1:])))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        print(json.dumps(compare(*argv[1:])))
        return 0
    print(__doc__.split("\n\n")[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
