"""YuNet run by ONNX Runtime: the same model file, input and decoding as OpenCV's ``cv2.FaceDetectorYN``.

OpenCV's DNN module runs YuNet's small convolutions slowly: on one thread of a 2-core AVX2 machine a 480x270 frame
took 13.3 ms there and 6.9 ms in ONNX Runtime, a 96x96 region 1.02 against 0.57 ms
(``benchmarks/results/locate-cost/``).
The shipped ``face_detection_yunet_2023mar.onnx`` declares a fixed 640x640 input (OpenCV ignores it); the file is
loaded with its input's height and width made free and the shapes recorded for 640x640 dropped, in memory, by
editing the protobuf directly (no ``onnx`` package). Decoding follows OpenCV 4.8's ``FaceDetectorYN``: the frame is
padded right and bottom to a multiple of 32, each of the strides 8, 16 and 32 gives per cell a score
``sqrt(cls * obj)`` and a box ``((c + dx) * s, (r + dy) * s, exp(dw) * s, exp(dh) * s)`` around its centre, and
``cv2.dnn.NMSBoxes`` keeps the best of overlapping boxes (compared as whole pixels, as OpenCV does).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .protowire import LEN, fields, ld

STRIDES = (8, 16, 32)
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)
_WIDTHS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


class NotYuNetError(ValueError):
    """An ONNX model that loads but is not YuNet."""


def free_input_size(model: bytes) -> bytes:
    """``model`` (a serialized ONNX ModelProto) with the height and width of its first input made symbolic
    (``H``, ``W``), and the shapes of its outputs and intermediate tensors (``value_info``) dropped."""
    top = fields(memoryview(model))
    graph_at = [k for k, (f, wt, _, _) in enumerate(top) if f == 7 and wt == LEN]
    if len(graph_at) != 1:
        raise ValueError("not an ONNX model (no graph)")
    graph = fields(top[graph_at[0]][2])
    out, first_input = [], True
    for f, wt, v, raw in graph:
        if f == 13:  # value_info: shapes computed for the declared input size
            continue
        if f == 11 and wt == LEN and first_input:  # input
            out.append(ld(11, _with_shape(v, free_hw=True)))
            first_input = False
        elif f == 12 and wt == LEN:  # output
            out.append(ld(12, _with_shape(v, free_hw=False)))
        else:
            out.append(bytes(raw))
    new_graph = b"".join(out)
    return b"".join(ld(7, new_graph) if k == graph_at[0] else bytes(raw) for k, (_, _, _, raw) in enumerate(top))


def _with_shape(value_info: memoryview, free_hw: bool) -> bytes:
    """A ValueInfoProto whose tensor shape has dims 2 and 3 named ``H``/``W`` (``free_hw``) or no shape at all."""
    out = []
    for f, wt, v, raw in fields(value_info):
        if f != 2 or wt != LEN:  # not the type
            out.append(bytes(raw))
            continue
        tp = []
        for f2, wt2, v2, raw2 in fields(v):
            if f2 != 1 or wt2 != LEN:  # not tensor_type
                tp.append(bytes(raw2))
                continue
            tt = []
            for f3, _, v3, raw3 in fields(v2):
                if f3 != 2:  # elem_type stays
                    tt.append(bytes(raw3))
                elif free_hw:
                    dims = [bytes(raw4) for f4, _, _, raw4 in fields(v3) if f4 == 1]
                    for k, name in ((2, b"H"), (3, b"W")):
                        if k < len(dims):
                            dims[k] = ld(1, ld(2, name))
                    tt.append(ld(2, b"".join(dims)))
            tp.append(ld(1, b"".join(tt)))
        out.append(ld(2, b"".join(tp)))
    return b"".join(out)


class YuNetOnnxRuntime:
    """The YuNet network in an ONNX Runtime session: ``set_input_size`` once per frame size, then ``detect``.

    Input and outputs are bound to buffers allocated once per input size, so a frame allocates only the few
    candidate boxes above the threshold."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the classifier: no busy-wait
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(free_input_size(Path(path).read_bytes()), opts,
                                            providers=["CPUExecutionProvider"])
        names = tuple(o.name for o in self.session.get_outputs())
        if sorted(names) != sorted(OUTPUTS) or len(self.session.get_inputs()) != 1:
            raise NotYuNetError("its outputs are not YuNet's")
        self._input = self.session.get_inputs()[0].name
        self._size: tuple[int, int] | None = None

    def set_input_size(self, width: int, height: int) -> None:
        """Allocate the padded input, the outputs and the cell grids for ``width`` x ``height`` images."""
        self._size = (width, height)
        pw, ph = -(-width // 32) * 32, -(-height // 32) * 32
        self._blob = np.zeros((1, 3, ph, pw), np.float32)
        self._out: dict[str, np.ndarray] = {}
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(self._input, self._blob)
        self._cells = []
        for s in STRIDES:
            cols, rows = pw // s, ph // s
            n = cols * rows
            for kind, width_ in _WIDTHS.items():
                buf = np.empty((1, n, width_), np.float32)
                self._out[f"{kind}_{s}"] = buf
                self._binding.bind_output(f"{kind}_{s}", "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
            idx = np.arange(n)
            self._cells.append((s, (idx % cols).astype(np.float32), (idx // cols).astype(np.float32),
                                np.empty(n, np.float32), self._out[f"cls_{s}"][0, :, 0],
                                self._out[f"obj_{s}"][0, :, 0], self._out[f"bbox_{s}"][0]))

    def detect(self, image: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int = 5000
               ) -> np.ndarray:
        """Faces in a BGR uint8 image of the set size as rows ``[x, y, w, h, score]`` (NMS order)."""
        h, w = image.shape[:2]
        if self._size != (w, h):
            self.set_input_size(w, h)
        np.copyto(self._blob[0, :, :h, :w], image.transpose(2, 0, 1), casting="unsafe")
        self.session.run_with_iobinding(self._binding)
        parts = []
        for s, cx, cy, score, cls, obj, bbox in self._cells:
            np.multiply(np.clip(cls, 0.0, 1.0), np.clip(obj, 0.0, 1.0), out=score)
            np.sqrt(score, out=score)
            keep = np.flatnonzero(score >= score_threshold)
            if len(keep) == 0:
                continue
            b = bbox[keep]
            box = np.empty((len(keep), 5), np.float32)
            bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
            box[:, 0] = (cx[keep] + b[:, 0]) * s - bw / 2
            box[:, 1] = (cy[keep] + b[:, 1]) * s - bh / 2
            box[:, 2], box[:, 3], box[:, 4] = bw, bh, score[keep]
            parts.append(box)
        if not parts:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if len(boxes) == 1:
            return boxes
        whole = np.trunc(boxes[:, :4]).astype(np.int32).tolist()  # OpenCV compares Rect2i boxes
        keep = cv2.dnn.NMSBoxes(whole, boxes[:, 4].tolist(), score_threshold, nms_threshold, top_k=top_k)
        return boxes[np.asarray(keep, dtype=np.int64).reshape(-1)]
