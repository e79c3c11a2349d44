"""Small classifier files with fer_edge metadata, built with onnx.helper (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def default_meta(channels: int = 1, size: int = 48, **over) -> dict:
    meta = {"classes": EMOTIONS, "input_size": [size, size], "channels": channels, "mean": [0.5] * channels,
            "std": [0.25] * channels, "crop_margin": 0.1, "output": "logits"}
    meta.update(over)
    return meta


def make_onnx(path: Path, meta: dict | None = None, channels: int = 1, size: int = 48, n_out: int = 7,
              batch: int | str = "N", seed: int = 0, opset: int = 17) -> Path:
    """A linear classifier [batch, C, size, size] -> [batch, n_out] logits; ``meta=None`` writes no metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    d = channels * size * size
    w = numpy_helper.from_array((rng.standard_normal((d, n_out)) * 0.01).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(n_out, np.float32), "B")
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_fer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_out])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if meta is not None:
        helper.set_model_props(model, {"fer_edge": json.dumps(meta)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_openvino_ir(path_xml: Path, onnx_path: Path, meta: dict | None) -> Path:
    """Convert an ONNX file to an OpenVINO IR carrying ``meta`` in rt_info."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if meta is not None:
        model.set_rt_info(json.dumps(meta), ["fer_edge"])
    ov.save_model(model, str(path_xml), compress_to_fp16=False)
    return path_xml
