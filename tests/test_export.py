"""`fer-edge export` / `calibrate`: ONNX parity, OpenVINO IR, INT8 IR and INT8 ONNX in the runtime, metadata,
rejection of bad combinations before any work, atomic output on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_edge.classes import EMOTIONS
from fer_edge.runtime.classifier import load_classifier
from fer_edge.runtime.errors import FerEdgeError

from conftest import MEDIA, assert_clean_error, run_cli
from train_data import make_subset

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("fer"), n_train=10, n_val=8)


@pytest.fixture(scope="module")
def cnn_ckpt(tmp_path_factory, data) -> Path:
    """A small CNN trained for one epoch on real FER2013 faces by `fer-edge train`."""
    out = tmp_path_factory.mktemp("run") / "cnn-tiny"
    p = run_cli("train", "--data", str(data), "--arch", "cnn", "--epochs", "1", "--batch-size", "32",
                "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    return out / "best.pt"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("calib") / "calib.json"
    p = run_cli("calibrate", "--data", str(data), "--per-class", "4", "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out


def random_checkpoint(path: Path, preset: str) -> Path:
    """A checkpoint of ``preset`` with random weights, written by the training code (mechanics only)."""
    from fer_edge.train.checkpoint import FORMAT, make_model_card, save_checkpoint
    from fer_edge.train.models import build_model, model_kwargs_for

    torch.manual_seed(0)
    kw = model_kwargs_for(preset, len(EMOTIONS), 1, 48)
    model = build_model(kw).eval()
    card = make_model_card(classes=EMOTIONS, input_size=(48, 48), channels=1, mean=0.5, std=0.25, arch=kw["arch"],
                           fingerprint="sha256:test", metrics={}, command=["test"])
    save_checkpoint(path, {"format": FORMAT, "state_dict": model.state_dict(), "arch": kw["arch"],
                           "model_kwargs": kw, "model_card": card, "epoch": 0})
    return path


def test_calibrate_manifest_is_balanced_seeded_and_complete(data, manifest, tmp_path):
    m = json.loads(manifest.read_text())
    counts = {c: sum(it["label"] == c for it in m["items"]) for c in EMOTIONS}
    assert counts == {c: 4 for c in EMOTIONS}  # disgust included
    assert all((Path(m["root"]) / it["path"]).is_file() and it["path"].startswith("train/") for it in m["items"])
    again = tmp_path / "again.json"
    assert run_cli("calibrate", "--data", str(data), "--per-class", "4", "--out", str(again)).returncode == 0
    assert json.loads(again.read_text())["items"] == m["items"]  # same seed, same list
    other = tmp_path / "other.json"
    assert run_cli("calibrate", "--data", str(data), "--per-class", "4", "--seed", "1", "--out", str(other)
                   ).returncode == 0
    assert json.loads(other.read_text())["items"] != m["items"]


def test_onnx_and_int8_onnx(cnn_ckpt, manifest, data, tmp_path):
    out = tmp_path / "onnx"
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--quantize", "int8", "--calibration", str(manifest),
                "--data", str(data / "val"), "--out", str(out), "--name", "tiny")
    assert p.returncode == 0, p.stderr
    assert "top-1 agreement 100.00%" in p.stderr  # ONNX vs PyTorch parity on real faces
    fp32, int8 = load_classifier(out / "tiny.onnx"), load_classifier(out / "tiny_int8.onnx")
    for clf, precision in ((fp32, "fp32"), (int8, "int8")):
        assert clf.classes == EMOTIONS and clf.meta.input_size == (48, 48) and clf.meta.channels == 1
        assert clf.meta.extra["precision"] == precision and clf.meta.extra["arch"] == "cnn"
        assert len(clf.meta.extra["source_checkpoint_sha256"]) == 64
        assert clf.predict(np.zeros((5, 1, 48, 48), np.float32)).shape == (5, 7)  # dynamic batch
    q = int8.meta.extra["quantization"]
    assert q["method"] == "static QDQ" and q["calibration_faces"] == 28 and isinstance(q["per_channel"], bool)
    tried = q["val_accuracy_candidates"]
    assert set(tried) == {f"{m} {g}" for m in ("MinMax", "Percentile") for g in ("per-channel", "per-tensor")}
    chosen = f"{q['calibrate_method']} {'per-channel' if q['per_channel'] else 'per-tensor'}"
    assert tried[chosen] == max(tried.values())
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "tiny_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    report = json.loads((out / "tiny_export_onnx_int8.json").read_text())
    kinds = [r["kind"] for r in report["rows"]]
    assert kinds == ["PyTorch FP32 (eager)", "ONNX FP32", "ONNX INT8"]
    for r in report["rows"]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1 and r["latency_ms"] > 0 and r["size_mb"] > 0
    assert report["rows"][1]["agreement"] == 1.0
    assert report["machine"]["cpu"] and report["faces"] == 56
    assert (out / "tiny_export_onnx_int8.md").read_text().count("\n|") == 5  # header, rule, 3 rows
    # the INT8 ONNX runs in `fer-edge run` and `fer-edge evaluate`
    jl = tmp_path / "faces.jsonl"
    r = run_cli("run", "--image", str(MEDIA / "two_people_obama_biden.jpg"), "--model", str(out / "tiny_int8.onnx"),
                "--json", str(jl))
    assert r.returncode == 0, r.stderr
    assert len(jl.read_text().splitlines()) == 2
    ev = tmp_path / "ev.json"
    r = run_cli("evaluate", str(out / "tiny_int8.onnx"), "--data", str(data / "val"), "--json", str(ev))
    assert r.returncode == 0, r.stderr
    assert json.loads(ev.read_text())["n"] == 56


def test_openvino_fp32_fp16_and_int8(cnn_ckpt, manifest, data, tmp_path):
    out = tmp_path / "ov"
    p = run_cli("export", str(cnn_ckpt), "--format", "openvino", "--quantize", "int8", "--calibration",
                str(manifest), "--data", str(data / "val"), "--out", str(out), "--name", "tiny")
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["tiny.bin", "tiny.xml", "tiny_export_openvino_int8.json",
                                                      "tiny_export_openvino_int8.md", "tiny_int8.bin", "tiny_int8.xml"]
    int8 = load_classifier(out / "tiny_int8.xml")
    assert int8.backend == "openvino" and int8.meta.extra["precision"] == "int8"
    q = int8.meta.extra["quantization"]
    assert q["method"] == "post_training_quantization" and q["preset"] == "performance"
    import openvino as ov

    types = {op.get_type_name() for op in ov.Core().read_model(str(out / "tiny_int8.xml")).get_ops()}
    assert "FakeQuantize" in types or "FakeConvert" in types
    jl = tmp_path / "f.jsonl"
    r = run_cli("run", "--image", str(MEDIA / "single_obama.jpg"), "--model", str(out / "tiny_int8.xml"),
                "--json", str(jl))
    assert r.returncode == 0 and len(jl.read_text().splitlines()) == 1
    p = run_cli("export", str(cnn_ckpt), "--format", "openvino", "--precision", "fp16", "--data", str(data / "val"),
                "--out", str(out), "--name", "tiny")
    assert p.returncode == 0, p.stderr
    fp16 = load_classifier(out / "tiny_fp16.xml")
    assert fp16.meta.extra["precision"] == "fp16" and (out / "tiny_fp16.bin").stat().st_size < (
        out / "tiny.bin").stat().st_size * 0.6


def test_openvino_int8_preset_override(cnn_ckpt, manifest, data, tmp_path):
    out = tmp_path / "mixed"
    p = run_cli("export", str(cnn_ckpt), "--format", "openvino", "--quantize", "int8", "--preset", "mixed",
                "--calibration", str(manifest), "--data", str(data / "val"), "--out", str(out), "--name", "tiny",
                "--val-limit", "40")
    assert p.returncode == 0, p.stderr
    assert load_classifier(out / "tiny_int8.xml").meta.extra["quantization"]["preset"] == "mixed"
    assert json.loads((out / "tiny_export_openvino_int8.json").read_text())["preset"] == "mixed"


def test_openvino_int8_from_the_onnx_runtime_qdq_model(cnn_ckpt, manifest, data, tmp_path):
    """--preset ort-qdq: the IR is ONNX Runtime's QDQ model read by OpenVINO, so both answer alike."""
    from fer_edge.export.report import predict_all

    common = ["--quantize", "int8", "--calibration", str(manifest), "--data", str(data / "val"), "--name", "tiny",
              "--val-limit", "40"]
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", *common, "--out", str(tmp_path / "onnx"))
    assert p.returncode == 0, p.stderr
    p = run_cli("export", str(cnn_ckpt), "--format", "openvino", "--preset", "ort-qdq", *common,
                "--out", str(tmp_path / "ov"))
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in (tmp_path / "ov").glob("*.onnx")) == []
    ov8 = load_classifier(tmp_path / "ov" / "tiny_int8.xml")
    ort8 = load_classifier(tmp_path / "onnx" / "tiny_int8.onnx")
    q = ov8.meta.extra["quantization"]
    assert q["preset"] == "ort-qdq" and q["method"] == ort8.meta.extra["quantization"]["method"]
    faces = np.random.default_rng(0).standard_normal((64, ort8.meta.channels, *ort8.meta.input_size)).astype(np.float32)
    a, b = predict_all(ov8.predict, faces), predict_all(ort8.predict, faces)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9
    assert np.abs(a - b).max() < 0.05


def test_flip_tta_in_the_graph(cnn_ckpt, manifest, data, tmp_path):
    """--tta flip: the exported model averages each face with its mirror, so a face and its mirror get the same
    answer, in FP32 and in INT8, and the card says so; the runtime feeds it like any other model."""
    from fer_edge.export.report import predict_all

    common = ["--data", str(data / "val"), "--name", "tiny", "--val-limit", "40"]
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", *common, "--out", str(tmp_path / "plain"))
    assert p.returncode == 0, p.stderr
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--tta", "flip", "--quantize", "int8", "--calibration",
                str(manifest), *common, "--out", str(tmp_path / "flip"))
    assert p.returncode == 0, p.stderr
    assert "flip TTA in the graph" in (tmp_path / "flip" / "tiny_export_onnx_int8.md").read_text()
    plain = load_classifier(tmp_path / "plain" / "tiny.onnx")
    faces = np.random.default_rng(0).standard_normal((16, plain.meta.channels, *plain.meta.input_size))
    faces = faces.astype(np.float32)
    mirror = np.ascontiguousarray(faces[..., ::-1])
    for name in ("tiny.onnx", "tiny_int8.onnx"):
        clf = load_classifier(tmp_path / "flip" / name)
        assert clf.meta.extra["tta"] == "flip"
        a, b = predict_all(clf.predict, faces), predict_all(clf.predict, mirror)
        np.testing.assert_allclose(a, b, atol=1e-5 if name == "tiny.onnx" else 0.02)
    # FP32: the mean of the plain model's probabilities on the face and on its mirror
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "plain" / "tiny.onnx"), providers=["CPUExecutionProvider"])

    def probs(x: np.ndarray) -> np.ndarray:
        z = sess.run(None, {"input": x})[0]
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    want = (probs(faces) + probs(mirror)) / 2
    got = predict_all(load_classifier(tmp_path / "flip" / "tiny.onnx").predict, faces)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert "tta" not in plain.meta.extra


def test_bilinear_matrix_is_opencv_linear_resize():
    import cv2

    from fer_edge.export.onnx_export import bilinear_matrix

    img = np.random.default_rng(1).random((42, 37)).astype(np.float32)
    for out_hw in ((48, 48), (48, 40), (30, 20)):
        got = bilinear_matrix(out_hw[0], 42) @ img @ bilinear_matrix(out_hw[1], 37).T
        want = cv2.resize(img, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_diagonal_tta_in_the_graph(cnn_ckpt, manifest, data, tmp_path):
    """--tta diagonal: the exported model's probabilities are the mean of the plain model's on the top-left 0.875
    crop and on the mirrored bottom-right one, each resized back to the input size; INT8 and the card follow."""
    import cv2
    import onnxruntime as ort

    from fer_edge.export.report import predict_all

    common = ["--data", str(data / "val"), "--name", "tiny", "--val-limit", "40"]
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", *common, "--out", str(tmp_path / "plain"))
    assert p.returncode == 0, p.stderr
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--tta", "diagonal", "--quantize", "int8",
                "--calibration", str(manifest), *common, "--out", str(tmp_path / "diag"))
    assert p.returncode == 0, p.stderr
    assert "diagonal TTA in the graph" in (tmp_path / "diag" / "tiny_export_onnx_int8.md").read_text()
    plain = load_classifier(tmp_path / "plain" / "tiny.onnx")
    h, w = plain.meta.input_size
    ch, cw = round(h * 0.875), round(w * 0.875)
    faces = np.random.default_rng(0).standard_normal((16, plain.meta.channels, h, w)).astype(np.float32)

    def view(x: np.ndarray) -> np.ndarray:
        return np.stack([[cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_LINEAR) for c in f]
                         for f in x]).astype(np.float32)

    sess = ort.InferenceSession(str(tmp_path / "plain" / "tiny.onnx"), providers=["CPUExecutionProvider"])

    def probs(x: np.ndarray) -> np.ndarray:
        z = sess.run(None, {"input": x})[0]
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    want = (probs(view(faces[..., :ch, :cw])) + probs(view(faces[..., h - ch:, w - cw:][..., ::-1]))) / 2
    got = predict_all(load_classifier(tmp_path / "diag" / "tiny.onnx").predict, faces)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, predict_all(plain.predict, faces), atol=1e-3)  # the views change the answer
    q = load_classifier(tmp_path / "diag" / "tiny_int8.onnx")
    assert q.meta.extra["tta"] == "diagonal" and "tta" not in plain.meta.extra
    import onnx  # the wrapper's own nodes (crops, resize, averaging) stay FP32; the model inside is INT8

    nodes = onnx.load(str(tmp_path / "diag" / "tiny_int8.onnx")).graph.node
    made_by = {o: n.op_type for n in nodes for o in n.output}
    wrapper = [n for n in nodes if n.op_type in ("MatMul", "Add", "Log") and not n.name.startswith("/inner/")]
    assert len(wrapper) == 4 and all(made_by.get(i) != "DequantizeLinear" for n in wrapper for i in n.input)
    assert any(n.op_type == "QuantizeLinear" for n in nodes)
    assert (predict_all(q.predict, faces).argmax(1) == want.argmax(1)).mean() >= 0.8


@pytest.mark.parametrize("preset, arch", [("mobilenetv3", "mobilenetv3_large_100"), ("vit", "vit_tiny_patch16_224"),
                                         ("vit-lite", "vit_tiny_patch16_224"), ("vit-conv", "vit_convstem")])
def test_presets_export_with_parity(tmp_path, data, preset, arch):
    ckpt = random_checkpoint(tmp_path / f"{preset}.pt", preset)
    p = run_cli("export", str(ckpt), "--format", "onnx", "--data", str(data / "val"), "--out", str(tmp_path),
                "--val-limit", "20")
    assert p.returncode == 0, p.stderr
    clf = load_classifier(tmp_path / f"{preset}.onnx")
    assert clf.meta.extra["arch"] == arch
    assert "top-1 agreement 100.00%" in p.stderr


def test_unknown_tta_rejected_before_any_work():
    from fer_edge.export.formats import ExportRequest

    with pytest.raises(FerEdgeError, match="unknown --tta 'tencrop'"):
        ExportRequest("onnx", checkpoint="x.pt", tta="tencrop").validate()
    assert ExportRequest("onnx", checkpoint="x.pt", tta="flip").validate().tta == "flip"
    assert ExportRequest("onnx", checkpoint="x.pt", tta="diagonal").validate().tta == "diagonal"


def test_family_settings():
    import nncf

    from fer_edge.export.quantize import nncf_settings

    assert nncf_settings("vit_tiny_patch16_224")["model_type"] == nncf.ModelType.TRANSFORMER
    m = nncf_settings("mobilenetv3_large_100")
    assert m["preset"] == nncf.QuantizationPreset.MIXED and m["fast_bias_correction"] is False


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--format", "onnx", "--precision", "fp16"], "stores precision fp32"),
        (["--format", "openvino", "--quantize", "int8"], "needs calibration faces"),
        (["--format", "openvino", "--precision", "fp16", "--quantize", "int8", "--calibration", "x"],
         "starts from the FP32 model"),
        (["--format", "onnx", "--max-drop", "0.01"], "--max-drop only applies"),
        (["--format", "onnx", "--calibration", "x"], "--calibration only applies"),
        (["--format", "openvino", "--quantize", "int8", "--calibration", "x", "--max-drop", "5"], "must lie in"),
        (["--format", "onnx", "--quantize", "int8", "--calibration", "x", "--preset", "mixed"],
         "only applies with --format openvino"),
        (["--format", "openvino", "--preset", "mixed"], "only applies with --format openvino --quantize int8"),
        (["--format", "openvino", "--quantize", "int8", "--calibration", "x", "--preset", "ort-qdq", "--max-drop",
          "0.01"], "does not apply with --preset ort-qdq"),
    ],
)
def test_bad_combinations_rejected_before_any_work(tmp_path, args, fragment):
    p = run_cli("export", str(tmp_path / "missing.pt"), *args, "--out", str(tmp_path / "out"))
    assert_clean_error(p, fragment)
    assert not (tmp_path / "out").exists()


def test_bad_checkpoints_and_calibration(tmp_path, cnn_ckpt, data, manifest):
    p = run_cli("export", str(tmp_path / "nope.pt"), "--format", "onnx", "--data", str(data / "val"))
    assert_clean_error(p, "nope.pt", "does not exist")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    p = run_cli("export", str(bad), "--format", "onnx", "--data", str(data / "val"))
    assert_clean_error(p, "bad.pt")
    lacking = tmp_path / "lacking"
    for c in EMOTIONS[:-1]:
        (lacking / c).mkdir(parents=True)
        src = next((data / "train" / c).iterdir())
        (lacking / c / src.name).write_bytes(src.read_bytes())
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--quantize", "int8", "--calibration", str(lacking),
                "--data", str(data / "val"), "--out", str(tmp_path / "o1"))
    assert_clean_error(p, "lacks class folder", "surprise")
    (lacking / "surprise").mkdir()
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--quantize", "int8", "--calibration", str(lacking),
                "--data", str(data / "val"), "--out", str(tmp_path / "o2"))
    assert_clean_error(p, "holds no images")
    m = json.loads(manifest.read_text())
    m["items"][0]["sha256"] = "0" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(m))
    p = run_cli("export", str(cnn_ckpt), "--format", "onnx", "--quantize", "int8", "--calibration", str(tampered),
                "--data", str(data / "val"), "--out", str(tmp_path / "o3"))
    assert_clean_error(p, "does not match the checksum")
    for d in ("o1", "o2", "o3"):
        assert not (tmp_path / d).exists() or not any((tmp_path / d).iterdir())


def test_failed_parity_leaves_nothing_behind(tmp_path, cnn_ckpt, data, monkeypatch):
    from fer_edge.export import exporter, onnx_export
    from fer_edge.export.formats import ExportRequest

    def fail(*a, **k):
        raise FerEdgeError("ONNX Runtime disagrees with PyTorch (forced by the test)")

    monkeypatch.setattr(onnx_export, "onnx_parity", fail)
    out = tmp_path / "out"
    with pytest.raises(FerEdgeError, match="disagrees"):
        exporter.run_export(ExportRequest("openvino", checkpoint=str(cnn_ckpt), out=str(out), name="tiny",
                                          data=str(data / "val")), log=lambda m: 0)
    assert list(out.iterdir()) == []  # no artifact, no temporary folder


def test_committed_calibration_manifest_matches_the_dataset():
    from fer_edge.export.calibration import load_calibration

    from conftest import REPO, SHARED

    manifest_path = REPO / "calibration_data" / "fer2013_train_301.json"
    fer = SHARED / "datasets" / "fer2013"
    images, labels, manifest = load_calibration(manifest_path, EMOTIONS, root=str(fer))  # checksums verified
    assert images.shape == (301, 48, 48) and np.bincount(labels).tolist() == [43] * 7
    if (REPO.parent / "shared").resolve() == SHARED:  # the stored root is relative: ../shared beside the repo
        assert Path(load_calibration(manifest_path, EMOTIONS)[2]["root"]) == fer.resolve()
