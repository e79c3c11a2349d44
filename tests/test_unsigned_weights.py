"""INT8 ONNX weights rewritten as uint8 (runtime/unsigned_weights.py) for ONNX Runtime on x86 without VNNI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from fer_edge.runtime.unsigned_weights import has_qdq, unsigned_weights

ASSETS = Path(__file__).resolve().parents[1] / "fer_edge" / "assets"


def session(model, float_qdq: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if float_qdq:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["accurate_int8.onnx", "fast_int8.onnx"])
def test_shipped_models_keep_their_arithmetic_with_unsigned_weights(name):
    src = (ASSETS / name).read_bytes()
    new = unsigned_weights(src)
    assert new is not None and new != src
    a, ref = session(new), session(str(ASSETS / name), float_qdq=True)
    inp = a.get_inputs()[0]
    assert inp.name == ref.get_inputs()[0].name and a.get_modelmeta().custom_metadata_map == \
        ref.get_modelmeta().custom_metadata_map  # metadata and every other field kept
    x = np.random.default_rng(0).standard_normal((32, *inp.shape[1:])).astype(np.float32)
    ya, yr = a.run(None, {inp.name: x})[0], ref.run(None, {inp.name: x})[0]
    assert (ya.argmax(1) == yr.argmax(1)).mean() >= 0.97
    assert np.abs(ya - yr).max() < 0.2  # float QDQ rounds a little differently from the integer kernels
    assert unsigned_weights(new) is None  # nothing int8 left to rewrite


def _qdq_model(shared_zero_point: bool, weight_zero_point: bool = True) -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[-128, -3], [5, 127]], np.int8), "w")
    inits = [w, numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    wz = "z"
    if not shared_zero_point:
        inits.append(numpy_helper.from_array(np.array(-2, np.int8), "wz"))
        wz = "wz"
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "s", wz] if weight_zero_point else ["w", "s"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_a_small_qdq_graph_gives_the_same_values_and_shared_zero_points_are_left_alone():
    src = _qdq_model(shared_zero_point=False)
    new = unsigned_weights(src)
    assert new is not None
    x = {"x": np.array([[0.3, -1.1]], np.float32)}
    np.testing.assert_allclose(session(new).run(None, x)[0], session(src, float_qdq=True).run(None, x)[0],
                               rtol=0, atol=1e-6)
    # the activations' zero point also serves the weight: changing it would change the activations
    assert unsigned_weights(_qdq_model(shared_zero_point=True)) is None
    # no zero point: the implied one (0 of the data's type) would not move with the data
    assert unsigned_weights(_qdq_model(shared_zero_point=False, weight_zero_point=False)) is None


def test_not_a_quantized_model_or_not_protobuf():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    plain = helper.make_model(g).SerializeToString()
    assert unsigned_weights(plain) is None and not has_qdq(plain)
    assert has_qdq(_qdq_model(shared_zero_point=True))  # not rewritable, but quantized all the same
    with pytest.raises((ValueError, IndexError)):
        unsigned_weights(b"\x0f\xff\xff")


def test_without_vnni_only_quantized_models_are_said_to_run_exact_arithmetic(monkeypatch, tiny_onnx, tmp_path):
    """A float model has no QDQ pairs to run as float arithmetic: its classifier says so (exact_qdq None)."""
    from fer_edge.runtime import classifier as clf

    monkeypatch.setattr(clf, "x86_without_vnni", lambda: True)
    assert clf.OnnxRuntimeClassifier(tiny_onnx, threads=1).exact_qdq is None
    assert clf.OnnxRuntimeClassifier(ASSETS / "fast_int8.onnx", threads=1).exact_qdq == "unsigned weights"
