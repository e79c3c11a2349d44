"""fer-edge evaluate: metrics by hand, ONNX/IR through the torch-free runtime, checkpoints, TTA, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_edge.classes import EMOTIONS
from fer_edge.metrics import confusion_from_labels, format_report, metrics_from_confusion

from conftest import assert_clean_error, run_cli
from model_factory import default_meta, make_onnx
from train_data import make_subset, write_fer2013_csv


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("fer") / "data", n_train=2, n_val=8)


def expected_onnx_preds(onnx_path: Path, split: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and argmax predictions computed independently: plain (x/255 - mean)/std on the 48x48 faces."""
    import cv2
    import onnxruntime as ort

    meta = default_meta()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ys, xs = [], []
    for k, c in enumerate(EMOTIONS):
        for f in sorted((split / c).iterdir()):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).astype(np.float32)
            xs.append((img / 255.0 - meta["mean"][0]) / meta["std"][0])
            ys.append(k)
    logits = sess.run(None, {"input": np.stack(xs)[:, None]})[0]
    return np.asarray(ys), logits.argmax(1)


def test_metrics_by_hand():
    classes = ("a", "b", "c")
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    cm = confusion_from_labels(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    m = metrics_from_confusion(cm, classes)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    # a: tp 1, predicted 2, support 2 -> P = R = F1 = 1/2; b: 2/3 each; c: 1 each
    for c, v in zip(classes, (1 / 2, 2 / 3, 1.0)):
        assert m["per_class"][c]["precision"] == pytest.approx(v)
        assert m["per_class"][c]["recall"] == pytest.approx(v)
        assert m["per_class"][c]["f1"] == pytest.approx(v)
    assert [m["per_class"][c]["support"] for c in classes] == [2, 3, 1]
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 1 / 2 + 3 * 2 / 3 + 1 * 1) / 6)
    # a class never predicted and never present: zeros, no NaN
    m2 = metrics_from_confusion(confusion_from_labels([0, 0], [0, 1], 3), classes)
    assert m2["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m2["per_class"]["b"]["precision"] == 0.0 and m2["macro_f1"] == pytest.approx((2 / 3) / 3)
    report = format_report(m)
    assert "macro avg" in report and "weighted avg" in report and "0.6667" in report


def test_metrics_agree_with_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    m = metrics_from_confusion(confusion_from_labels(t, p, 7), EMOTIONS)
    assert m["macro_f1"] == pytest.approx(sk.f1_score(t, p, average="macro"))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(t, p, average="weighted"))
    np.testing.assert_allclose([m["per_class"][c]["precision"] for c in EMOTIONS],
                               sk.precision_score(t, p, average=None, zero_division=0))


def test_evaluate_onnx_without_torch(subset, tiny_onnx, tmp_path):
    """ONNX through the runtime, in a process where importing torch fails; JSON matches an independent run."""
    out_json, png = tmp_path / "e.json", tmp_path / "cm.png"
    code = ("import sys; sys.modules['torch'] = None; sys.modules['timm'] = None\n"
            "from fer_edge.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert sys.modules.get('torch') is None\n"
            "sys.exit(rc)")
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(subset / "val"), "--json", str(out_json),
                "--confusion", str(png), python_code=code)
    assert r.returncode == 0, r.stderr
    assert "macro avg" in r.stdout and "accuracy" in r.stdout and "TTA:   none" in r.stdout
    doc = json.loads(out_json.read_text())
    y, pred = expected_onnx_preds(tiny_onnx, subset / "val")
    cm = confusion_from_labels(y, pred, 7)
    assert doc["n"] == 56 and doc["confusion"] == cm.tolist()
    assert doc["accuracy"] == pytest.approx((y == pred).mean())
    assert set(doc["per_class"]) == set(EMOTIONS)
    assert set(doc["per_class"]["happy"]) == {"precision", "recall", "f1", "support"}
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_without_matplotlib_writes_report_and_json(subset, tiny_onnx, tmp_path):
    """The runtime-only install has no matplotlib: the report and --json are written, the PNG is skipped, exit 0."""
    out_json, png = tmp_path / "e.json", tmp_path / "cm.png"
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['torch'] = None\n"
            "from fer_edge.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(subset / "val"), "--json", str(out_json),
                "--confusion", str(png), python_code=code)
    assert r.returncode == 0, r.stderr
    assert "macro avg" in r.stdout and "Traceback" not in r.stderr
    skipped = [ln for ln in r.stderr.splitlines() if "PNG skipped" in ln]
    assert len(skipped) == 1 and "pip install matplotlib" in skipped[0], r.stderr
    assert json.loads(out_json.read_text())["n"] == 56
    assert not png.exists()


def test_matplotlib_stays_out_of_the_base_install():
    import re

    from conftest import REPO

    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    assert "matplotlib" not in deps


def test_evaluate_ir_and_root_folder_and_tta(subset, tiny_onnx, tiny_ir, tmp_path):
    from fer_edge.evaluate import evaluate

    quiet = dict(log=lambda m: None, show_report=False, confusion_path="")
    a = evaluate(tiny_onnx, subset, **quiet)  # a root holding val/
    b = evaluate(tiny_ir, subset / "val", **quiet)
    assert a["confusion"] == b["confusion"] and a["n"] == 56
    for tta in ("flip", "tencrop"):
        m = evaluate(tiny_onnx, subset / "val", tta=tta, json_path=str(tmp_path / f"{tta}.json"), **quiet)
        assert m["n"] == 56 and json.loads((tmp_path / f"{tta}.json").read_text())["tta"] == tta
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(subset / "val"), "--tta", "flip", "--no-confusion")
    assert r.returncode == 0 and "TTA:   flip" in r.stdout


def test_evaluate_fer2013_csv(subset, tiny_onnx, tmp_path):
    from fer_edge.evaluate import evaluate

    csv_path = write_fer2013_csv(subset, tmp_path / "fer2013.csv")
    quiet = dict(log=lambda m: None, show_report=False, confusion_path="")
    a = evaluate(tiny_onnx, csv_path, split="PublicTest", **quiet)
    b = evaluate(tiny_onnx, subset / "val", **quiet)
    assert a["confusion"] == b["confusion"]
    assert evaluate(tiny_onnx, csv_path, split="Training", **quiet)["n"] == 14


def test_evaluate_checkpoint_matches_torch(subset, tmp_path):
    torch = pytest.importorskip("torch")
    from fer_edge.data import read_image_folder
    from fer_edge.evaluate import evaluate
    from fer_edge.train.checkpoint import FORMAT, load_checkpoint, make_model_card, save_checkpoint
    from fer_edge.train.models import build_model, model_kwargs_for

    torch.manual_seed(0)
    kw = model_kwargs_for("cnn", 7, 1, 48)
    model = build_model(kw).eval()
    card = make_model_card(classes=EMOTIONS, input_size=(48, 48), channels=1, mean=0.5, std=0.25, arch="cnn",
                           fingerprint="sha256:test", metrics={}, command=["test"])
    ck = tmp_path / "m.pt"
    save_checkpoint(ck, {"format": FORMAT, "state_dict": model.state_dict(), "arch": "cnn", "model_kwargs": kw,
                         "model_card": card, "epoch": 0})
    m = evaluate(ck, subset / "val", log=lambda s: None, show_report=False, out_dir=str(tmp_path / "o"),
                 json_path=str(tmp_path / "m.json"))
    assert (tmp_path / "o" / "m_confusion.png").is_file()
    ds = read_image_folder(subset / "val", log=None)
    x = (torch.from_numpy(ds.images).float()[:, None] / 255 - 0.5) / 0.25
    loaded, _ = load_checkpoint(ck)
    with torch.no_grad():
        pred = loaded(x).argmax(1).numpy()
    assert m["confusion"] == confusion_from_labels(ds.labels, pred, 7).tolist()


def test_evaluate_bad_inputs(subset, tiny_onnx, tmp_path):
    # an unknown class folder in the data
    data = tmp_path / "val"
    shutil.copytree(subset / "val", data)
    (data / "contempt").mkdir()
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(data), "--no-confusion")
    assert_clean_error(r, "unknown class folder", "contempt")
    # a model whose classes are not in the data
    other = make_onnx(tmp_path / "three.onnx", default_meta(classes=["angry", "happy", "calm"]), n_out=3)
    r = run_cli("evaluate", str(other), "--data", str(subset / "val"), "--no-confusion")
    assert_clean_error(r, "unknown class folder")
    (data / "contempt").rmdir()
    shutil.rmtree(data / "fear")
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(data), "--no-confusion")
    assert_clean_error(r, "missing class folder", "fear")
    r = run_cli("evaluate", str(tmp_path / "nope.onnx"), "--data", str(subset / "val"))
    assert_clean_error(r, "does not exist")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    r = run_cli("evaluate", str(junk), "--data", str(subset / "val"))
    assert_clean_error(r, "not a readable fer-edge checkpoint")
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(tmp_path / "fer2013.csv"))
    assert_clean_error(r, "does not exist")


def test_evaluate_an_ensemble_averages_the_models_probabilities(subset, tiny_onnx, tmp_path):
    """Several MODELs: the probabilities of each (at its own input size and channels) are averaged."""
    from fer_edge.data import resolve_eval_data
    from fer_edge.evaluate import evaluate, load_model, predict_faces

    rgb64 = make_onnx(tmp_path / "rgb64.onnx", default_meta(channels=3, size=64, color="rgb"), channels=3, size=64,
                      seed=3)
    ds = resolve_eval_data(str(subset / "val"), EMOTIONS, None, size=None, log=lambda m: None)
    probs = np.mean([predict_faces(load_model(m), ds.images) for m in (tiny_onnx, rgb64)], axis=0)
    expected = confusion_from_labels(ds.labels, probs.argmax(1), 7).tolist()
    single = [evaluate(m, subset / "val", log=lambda m: None, show_report=False, confusion_path="")["confusion"]
              for m in (tiny_onnx, rgb64)]
    assert single[0] != single[1]  # the two models disagree, so the average is a real test
    out = tmp_path / "ens.json"
    r = run_cli("evaluate", str(tiny_onnx), str(rgb64), "--data", str(subset / "val"), "--json", str(out),
                "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["confusion"] == expected and doc["n"] == 56
    assert "tiny.onnx + " in doc["model"] and (tmp_path / "tiny_ensemble_confusion.png").is_file()
    other = make_onnx(tmp_path / "three.onnx", default_meta(classes=["angry", "happy", "sad"]), n_out=3)
    r = run_cli("evaluate", str(tiny_onnx), str(other), "--data", str(subset / "val"), "--no-confusion")
    assert_clean_error(r, "an ensemble needs the same classes")


def test_evaluate_writes_per_image_predictions(subset, tiny_onnx, tmp_path):
    """--predictions: one CSV row per image whose labels and argmax match an independent ONNX Runtime run."""
    from fer_edge.evaluate import read_predictions

    preds = tmp_path / "p.csv"
    r = run_cli("evaluate", str(tiny_onnx), "--data", str(subset / "val"), "--predictions", str(preds),
                "--no-confusion", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = read_predictions(preds)
    y, pred = expected_onnx_preds(tiny_onnx, subset / "val")
    assert len(rows) == len(y) == 56
    order = sorted(rows)  # val/<class>/<file>: the same class-then-file order as expected_onnx_preds
    assert [rows[k][0] for k in order] == [EMOTIONS[i] for i in y]
    assert [rows[k][1] for k in order] == [EMOTIONS[i] for i in pred]
    header = preds.read_text().splitlines()[0].split(",")
    assert header[:3] == ["path", "label", "pred"] and header[3:] == [f"prob_{c}" for c in EMOTIONS]


def test_evaluate_takes_a_shipped_models_name(subset, tmp_path):
    """`fer-edge evaluate fast` evaluates the shipped file that `fer-edge run --model fast` loads; an unknown name
    is one clear error naming the shipped models."""
    from fer_edge.evaluate import evaluate
    from fer_edge.runtime.models import classifier_path

    quiet = dict(log=lambda s: None, show_report=False, confusion_path="")
    for name in ("fast", "accurate"):
        by_name = evaluate(name, subset / "val", backend="onnxruntime", **quiet)
        by_file = evaluate(classifier_path(name, "onnxruntime"), subset / "val", **quiet)
        assert by_name["n"] == by_file["n"] == 56 and by_name["confusion"] == by_file["confusion"]
    r = run_cli("evaluate", "fast", "--data", str(subset / "val"), "--json", str(tmp_path / "f.json"),
                "--no-confusion")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "f.json").read_text())["model"] == "fast"
    r = run_cli("evaluate", "fastest", "--data", str(subset / "val"))
    assert_clean_error(r, "neither a classifier file", "fast")


def test_shipped_model_confusion_png_goes_to_the_current_folder(subset, tmp_path, monkeypatch):
    """A shipped model given by its path inside the package: the default confusion PNG is written to the current
    folder, never into the installed package (read-only in many installs)."""
    pytest.importorskip("matplotlib")
    from fer_edge.evaluate import evaluate
    from fer_edge.runtime.models import assets_dir

    before = set(assets_dir().iterdir())
    monkeypatch.chdir(tmp_path)
    m = evaluate(assets_dir() / "fast_int8.onnx", subset / "val", log=lambda msg: None, show_report=False)
    assert m["n"] == 56
    assert (tmp_path / "fast_int8_confusion.png").is_file()
    assert set(assets_dir().iterdir()) == before
