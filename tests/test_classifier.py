"""Classifier backends and the fer_edge metadata contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_edge.runtime.classifier import load_classifier, softmax_into
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.metadata import ModelMeta

from model_factory import EMOTIONS, default_meta, make_onnx, make_openvino_ir


def _batch(n: int, c: int = 1, size: int = 48, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


def test_metadata_round_trip_and_reference_math(tiny_onnx, tiny_ir):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(tiny_onnx))
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    x = _batch(5)
    logits = x.reshape(5, -1) @ w["W"] + w["B"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    for path in (tiny_onnx, tiny_ir):
        clf = load_classifier(path)
        assert clf.meta == ModelMeta.from_dict(default_meta())
        assert clf.classes == tuple(EMOTIONS)
        probs = clf.predict(x).copy()
        # OpenVINO runs FP32 layers in bf16 by default on CPUs with AMX / AVX512-BF16
        np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6 if clf.backend == "onnxruntime" else 3e-3)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert load_classifier(tiny_onnx).backend == "onnxruntime"
    assert load_classifier(tiny_ir).backend == "openvino"
    assert load_classifier(tiny_onnx, backend="openvino").backend == "openvino"


def test_metadata_json_round_trip():
    meta = ModelMeta.from_dict(default_meta(channels=3, color="rgb", arch="x"))
    again = ModelMeta.from_json(meta.to_json())
    assert again == meta and again.extra == {"arch": "x"}


def test_metadata_schema_version_tag_written_and_checked():
    from fer_edge.runtime.errors import FerEdgeError
    from fer_edge.runtime.metadata import META_FIELDS, SCHEMA_KEY, SCHEMA_VERSION

    meta = ModelMeta.from_dict(default_meta())
    d = meta.to_dict()
    assert d[SCHEMA_KEY] == SCHEMA_VERSION and set(META_FIELDS) <= set(d)
    assert ModelMeta.from_dict({k: v for k, v in d.items() if k != SCHEMA_KEY}) == meta  # untagged files read as 1
    assert meta.with_extra(precision="int8").extra == {"precision": "int8"} and meta.extra == {}
    with pytest.raises(FerEdgeError, match="newer than this fer-edge reads"):
        ModelMeta.from_dict({**d, SCHEMA_KEY: SCHEMA_VERSION + 1})


def test_probs_output_and_static_batch(tmp_path):
    path = make_onnx(tmp_path / "static.onnx", default_meta(), batch=1)
    clf = load_classifier(path)
    assert clf.fixed_batch == 1
    x = _batch(3)
    batched = clf.predict(x).copy()
    for i in range(3):
        np.testing.assert_allclose(clf.predict(x[i : i + 1])[0], batched[i], rtol=1e-5)


def test_more_faces_than_max_batch_is_a_clear_error(tiny_onnx, tiny_ir):
    from fer_edge.runtime.classifier import MAX_BATCH

    for path in (tiny_onnx, tiny_ir):
        clf = load_classifier(path)
        assert clf.predict(_batch(MAX_BATCH)).shape == (MAX_BATCH, 7)
        with pytest.raises(ValueError, match=f"at most {MAX_BATCH} faces"):
            clf.predict(_batch(MAX_BATCH + 1))


def test_softmax_into():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32)
    out = np.empty_like(x)
    softmax_into(x, out)
    np.testing.assert_allclose(out[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    assert out[1, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "meta, fragment",
    [
        (None, "carries no 'fer_edge' metadata"),
        ({"classes": EMOTIONS}, "lacks input_size"),
        (default_meta(channels=3), "contradicts the metadata"),
        (default_meta(input_size=[64, 64]), "contradicts the metadata"),
        (default_meta(classes=EMOTIONS[:5]), "does not match the 5 classes"),
        (default_meta(output="scores"), "'output' must be one of"),
        (default_meta(std=[0.0]), "'std' values must be positive"),
        (default_meta(crop_margin=-0.3), "'crop_margin' must lie in [-0.25, 1]"),
    ],
)
def test_bad_metadata_is_rejected(tmp_path, meta, fragment):
    path = make_onnx(tmp_path / "m.onnx", meta)
    with pytest.raises(FerEdgeError) as e:
        load_classifier(path)
    assert fragment in str(e.value) and str(path) in str(e.value)
    xml = make_openvino_ir(tmp_path / "m.xml", path, meta)
    with pytest.raises(FerEdgeError) as e:
        load_classifier(xml)
    assert fragment in str(e.value)


def test_metadata_not_json(tmp_path):
    import onnx

    path = make_onnx(tmp_path / "m.onnx", default_meta())
    m = onnx.load(str(path))
    m.metadata_props[0].value = "{not json"
    onnx.save(m, str(path))
    with pytest.raises(FerEdgeError, match="not valid JSON"):
        load_classifier(path)


def test_rank_mismatch(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((2304, 7), np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "W"], ["logits"])], "flat",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2304])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"fer_edge": json.dumps(default_meta())})
    onnx.save(model, str(tmp_path / "flat.onnx"))
    with pytest.raises(FerEdgeError, match="input has rank 2"):
        load_classifier(tmp_path / "flat.onnx")


def test_bad_files(tmp_path, tiny_ir):
    with pytest.raises(FerEdgeError, match="does not exist"):
        load_classifier(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(FerEdgeError, match="not a valid ONNX model"):
        load_classifier(tmp_path / "junk.onnx")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(FerEdgeError, match="unknown classifier format"):
        load_classifier(tmp_path / "m.tflite")
    xml = tmp_path / "lonely.xml"
    xml.write_text(tiny_ir.read_text())
    with pytest.raises(FerEdgeError, match="weights file lonely.bin is missing"):
        load_classifier(xml)
    with pytest.raises(FerEdgeError, match="ONNX Runtime cannot run an OpenVINO IR"):
        load_classifier(tiny_ir, backend="onnxruntime")


def test_openvino_compiles_static_small_batches_for_frame_loops_only(tiny_ir):
    """A frame loop (prepare_stream) gets static-shape compilations for batches 1..STATIC_BATCHES, which give the
    dynamic model's labels; larger batches and one-off calls (an image) keep the dynamic model."""
    import cv2

    from fer_edge.runtime.classifier import STATIC_BATCHES
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.pipeline import EmotionPipeline, run_loop
    from fer_edge.runtime.sources import VideoSource

    from conftest import MEDIA

    clf = load_classifier(tiny_ir)
    shape = (STATIC_BATCHES + 1, clf.meta.channels, *clf.meta.input_size)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    dynamic = {n: clf.predict(x[:n]).copy() for n in range(1, STATIC_BATCHES + 2)}
    pipe = EmotionPipeline(create_detector("yunet"), clf)
    pipe.process(cv2.imread(str(MEDIA / "group_selfie_6faces.jpg")))
    assert not clf._static  # an image: nothing compiled for it
    src = VideoSource(str(MEDIA / "video_talking_woman_15s.mp4"))
    run_loop(src, pipe, [], max_frames=3)
    src.close()
    assert sorted(clf._static) == list(range(1, STATIC_BATCHES + 1))
    for n, want in dynamic.items():
        got = clf.predict(x[:n])
        np.testing.assert_allclose(got, want, atol=0.02)
        assert (got.argmax(1) == want.argmax(1)).all()
    assert clf._static.get(STATIC_BATCHES + 1) is None  # beyond: the dynamic model
