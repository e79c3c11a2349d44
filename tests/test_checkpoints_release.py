"""Released checkpoints (safetensors + card), the recovered default model, exported teachers, exact INT8."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fer_edge import data as D  # noqa: E402
from fer_edge.classes import EMOTIONS  # noqa: E402
from fer_edge.runtime.errors import FerEdgeError  # noqa: E402
from fer_edge.train.augment import normalize  # noqa: E402
from fer_edge.train.checkpoint import load_checkpoint, read_checkpoint, write_release  # noqa: E402
from fer_edge.train.distill import Teachers  # noqa: E402
from fer_edge.train.engine import TrainConfig, train  # noqa: E402

from train_data import make_subset  # noqa: E402

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
ASSET_ONNX = ROOT / "fer_edge" / "assets" / "accurate_int8.onnx"
# the MobileNetV2 (96 px, 3 channels) that was the shipped `accurate` until 2026-12-03, kept beside the checkpoint
# recovered from it: a 96 px ONNX teacher for the --teacher tests
MNV2_ONNX = ROOT / "checkpoints" / "default-mobilenetv2-96" / "emotion_int8.onnx"
SHARED = Path(os.environ.get("FER_EDGE_SHARED", ROOT.parent / "shared"))
VAL = SHARED / "datasets" / "fer2013" / "val"


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("fer") / "data", n_train=12, n_val=6)


def quick_cfg(data: Path, out: Path, **over) -> TrainConfig:
    kw = dict(data=str(data), arch="cnn", epochs=1, out=str(out), batch_size=28, eval_batch_size=64, quiet=True,
              threads=2, command=["test"], max_steps=1)
    kw.update(over)
    return TrainConfig(**kw)


def test_release_round_trip_and_errors(subset, tmp_path):
    train(quick_cfg(subset, tmp_path / "run", arch="cnn-tiny"))
    ck = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    rel = write_release(ck, tmp_path / "rel")
    assert sorted(p.name for p in rel.iterdir()) == ["model.safetensors", "model_card.json"]
    a, card_a = load_checkpoint(tmp_path / "run" / "best.pt")
    for where in (rel, rel / "model.safetensors"):
        b, card_b = load_checkpoint(where)
        assert card_b == card_a
        x = torch.randn(3, 1, 40, 40)
        with torch.no_grad():
            torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
    # exports of a released folder go to exports/NAME, not into the committed folder; a run's go beside it
    from fer_edge.export.exporter import default_out

    assert default_out(rel) == default_out(rel / "model.safetensors") == Path("exports") / "rel"
    assert default_out(tmp_path / "run" / "best.pt") == tmp_path / "run"
    (rel / "model_card.json").write_text("{not json")
    with pytest.raises(FerEdgeError, match="not a readable"):
        read_checkpoint(rel)
    (rel / "model_card.json").unlink()
    with pytest.raises(FerEdgeError, match="needs model.safetensors and model_card.json"):
        read_checkpoint(rel)


def test_runtime_onnx_classifier_is_exact_on_this_cpu():
    """The runtime's ONNX Runtime classifier gives the classes of the model's exact QDQ arithmetic on this CPU
    whatever its ISA: on x86 without VNNI it stores the weights unsigned (the fused U8S8 kernels saturate)."""
    from fer_edge.runtime.classifier import load_classifier, x86_without_vnni
    from fer_edge.runtime.preprocess import normalized_faces

    if not VAL.is_dir():
        pytest.skip(f"{VAL} not present")
    clf = load_classifier(ASSET_ONNX, "onnxruntime")
    assert clf.exact_qdq == ("unsigned weights" if x86_without_vnni() else None)
    faces = D.read_image_folder(VAL, EMOTIONS, root=VAL.parent, log=None, limit=40).images
    x = normalized_faces(clf.meta, faces)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(str(ASSET_ONNX), so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = np.concatenate([clf.predict(np.ascontiguousarray(x[i:i + 32])).copy() for i in range(0, len(x), 32)])
    agree = float((exact.argmax(1) == got.argmax(1)).mean())
    assert agree >= 0.97, f"the runtime agrees with the exact QDQ arithmetic on only {agree:.3f} of {len(x)} faces"


def test_x86_without_vnni_reads_the_cpu_flags(monkeypatch, tmp_path):
    from fer_edge.runtime import classifier as C

    monkeypatch.setattr(C.platform, "machine", lambda: "aarch64")
    assert C.x86_without_vnni() is False
    monkeypatch.setattr(C.platform, "machine", lambda: "x86_64")
    real = C.Path

    def fake(flags):
        f = tmp_path / "cpuinfo"
        f.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(C, "Path", lambda p: f if p == "/proc/cpuinfo" else real(p))

    fake("sse4_2 avx2 fma")
    assert C.x86_without_vnni() is True
    fake("sse4_2 avx2 avx512f avx512_vnni")
    assert C.x86_without_vnni() is False
    fake("avx2 avx_vnni")
    assert C.x86_without_vnni() is False


@pytest.mark.skipif(not VAL.is_dir(), reason="needs the shared FER2013 val split")
def test_recover_default_model_and_released_copy(tmp_path):
    """The recovery rebuilds the former shipped model (MobileNetV2) in torch; checkpoints/ holds that model."""
    from fer_edge.export.recover import agreement, recover
    from fer_edge.runtime.metadata import ModelMeta
    from fer_edge.runtime.preprocess import normalized_faces

    model, meta, _ = recover(MNV2_ONNX)
    faces_ds = D.read_image_folder(VAL, EMOTIONS, root=VAL.parent, log=None, limit=30)
    faces = normalized_faces(ModelMeta.from_dict(meta, "asset"), faces_ds.images)
    check = agreement(model, MNV2_ONNX, faces, faces_ds.labels)
    assert check["agreement"] >= 0.93 and check["accuracy_recovered"] > 0.5
    released = ROOT / "checkpoints" / "default-mobilenetv2-96"
    rel_model, card = load_checkpoint(released)
    assert card["recovered_from"]["file"] == "emotion_int8.onnx" and card["input_size"] == [96, 96]
    x = torch.from_numpy(faces[:8])
    with torch.no_grad():
        torch.testing.assert_close(rel_model(x), model(x), rtol=0, atol=0)


def test_exported_model_as_teacher_scored_once(subset, tmp_path, capsys):
    """--teacher takes an exported model (the former shipped INT8 ONNX) and --teacher-once scores the faces once."""
    x = normalize(torch.from_numpy(D.read_image_folder(subset / "val", root=subset, log=None).images[:4]), 1,
                  0.5, 0.25)
    t = Teachers([str(MNV2_ONNX)], EMOTIONS, torch.device("cpu"), 0.5, 0.25)
    p1, p3 = t.probs(x, 1.0), t.probs(x, 3.0)
    torch.testing.assert_close(p3.sum(1), torch.ones(4))
    # tempering: softmax(z / T) == p ** (1/T), renormalised
    ref = p1 ** (1 / 3)
    torch.testing.assert_close(p3, ref / ref.sum(1, keepdim=True))
    assert float(p3.max(1).values.mean()) < float(p1.max(1).values.mean())
    res = train(quick_cfg(subset, tmp_path / "s", arch="cnn-tiny", teacher=[str(MNV2_ONNX)], teacher_once=True,
                          quiet=False, distill_alpha=0.7))
    assert np.isfinite(res["history"][0]["train_loss"])
    tiny = np.frombuffer(np.uint64(1).tobytes(), np.float64)[0]  # the smallest subnormal double
    assert float(tiny) * 1.0 != 0.0, "train() left flush-to-zero on for the rest of the process"
    err = capsys.readouterr().err
    assert "scored once on the un-augmented faces (flip)" in err and "faces at 96x96" in err
    assert "teacher on val (flip): accuracy" in err
    with pytest.raises(FerEdgeError, match="--teacher-once needs --teacher"):
        train(quick_cfg(subset, tmp_path / "bad", teacher_once=True))


def test_teacher_scored_once_on_ten_crops(subset, tmp_path):
    """--teacher-tta tencrop: each face's teacher target is the mean over the four corner and the centre
    84x84 crops of the 96x96 face and their mirrors, each resized back to the teacher's 96 px."""
    from fer_edge.train.engine import Trainer

    runs = {}
    for tta in ("flip", "tencrop"):
        t = Trainer(quick_cfg(subset, tmp_path / tta, arch="cnn-tiny", input_size=96, teacher=[str(MNV2_ONNX)],
                              teacher_once=True, teacher_tta=tta))
        try:
            t.setup()
        finally:
            t.dist.close()
        runs[tta] = t
    t = runs["tencrop"]
    x = normalize(t.x_train, 1, t.mean, t.std)
    assert x.shape[-2:] == (96, 96)
    want = torch.zeros(len(x), 7)
    for y0, x0 in [(0, 0), (0, 12), (12, 0), (12, 12), (6, 6)]:
        crop = x[..., y0:y0 + 84, x0:x0 + 84]
        want += t.teachers.probs(crop, 2.0) + t.teachers.probs(crop.flip(-1), 2.0)
    torch.testing.assert_close(t.teacher_train.cpu(), want / 10, rtol=1e-4, atol=1e-5)
    flip = runs["flip"].teacher_train.cpu()
    torch.testing.assert_close(flip, (t.teachers.probs(x, 2.0) + t.teachers.probs(x.flip(-1), 2.0)) / 2,
                               rtol=1e-4, atol=1e-5)
    assert float((flip - t.teacher_train.cpu()).abs().max()) > 0.02  # the crops change what the teacher says
    with pytest.raises(FerEdgeError, match="--teacher-tta and --teacher-targets apply to --teacher-once"):
        train(quick_cfg(subset, tmp_path / "bad", teacher=[str(MNV2_ONNX)], teacher_tta="tencrop"))


def test_teacher_targets_kept_and_reused(subset, tmp_path, capsys):
    """--teacher-once keeps its scores in the run folder (or --teacher-targets FILE); a run with the same teachers,
    data, views and temperature reads them instead of scoring again; anything else scores again."""
    from fer_edge.train.engine import Trainer

    def setup(out, **over):
        t = Trainer(quick_cfg(subset, tmp_path / out, arch="cnn-tiny", teacher=[str(MNV2_ONNX)], teacher_once=True,
                              quiet=False, **over))
        try:
            t.setup()
        finally:
            t.dist.close()
        return t, capsys.readouterr().err

    first, err = setup("a")
    kept = tmp_path / "a" / "teacher_targets.safetensors"
    assert kept.is_file() and "teachers scored" in err
    again, err = setup("b", teacher_targets=str(kept))
    assert f"teacher targets read from {kept}" in err and "teachers scored" not in err
    torch.testing.assert_close(again.teacher_train, first.teacher_train, rtol=0, atol=0)
    # a student of another input size: the teacher (96 px) sees the same faces, so the same targets serve it
    smaller, err = setup("b40", teacher_targets=str(kept), input_size=40)
    assert smaller.x_train.shape[-1] == 40 and f"teacher targets read from {kept}" in err
    torch.testing.assert_close(smaller.teacher_train, first.teacher_train, rtol=0, atol=0)
    hotter, err = setup("c", teacher_targets=str(kept), distill_temperature=4.0)
    assert "teachers scored" in err  # another temperature: scored again (and the file now holds T=4)
    assert float(hotter.teacher_train.max(1).values.mean()) < float(first.teacher_train.max(1).values.mean())
    kept.write_bytes(b"not a safetensors file")
    with pytest.raises(FerEdgeError, match="cannot be read as teacher targets; delete it"):
        setup("d", teacher_targets=str(kept))
