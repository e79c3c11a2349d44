"""`fer-edge evaluate` of the shipped `fast` with the runtime's crop resize done in float32 instead of uint8.

    .venv/bin/python benchmarks/results/fast-float-resize/float_resize.py u8     # the runtime as shipped
    .venv/bin/python benchmarks/results/fast-float-resize/float_resize.py float  # gray first, INTER_AREA in float32

A one-off probe (session 14): would a resize without uint8 rounding make a Pi's labels a PC's? It patches
FaceBatcher.__call__ for gray models only and is not part of the package.
"""

import sys

import cv2
import numpy as np

import fer_edge.runtime.preprocess as pp


def float_call(self, frame, rects):
    n = min(len(rects), self.max_faces)
    h, w = self.meta.input_size
    out = self.batch[:n]
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in rects[i])
        g = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY).astype(np.float32)
        r = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
        for c in range(self.meta.channels):
            out[i, c] = r * self._scale[0, c, 0, 0]
    out += self._bias
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "u8"
    if mode == "float":
        pp.FaceBatcher.__call__ = float_call
    from fer_edge.evaluate import evaluate  # `fer-edge evaluate ... --threads 1 --predictions ...`

    evaluate("fer_edge/assets/fast_int8.onnx", "../shared/datasets/fer2013/val", threads=1,
             predictions_path=f"benchmarks/results/fast-float-resize/fast_{mode}.csv",
             confusion_path=f"benchmarks/results/fast-float-resize/fast_{mode}_confusion.png")
