"""python -m fer_edge.train.carry_targets: a dataset's teacher targets given to another dataset's copies of the
same faces, keyed so that the trainer reads them instead of scoring the faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cv2  # noqa: E402
from test_export import random_checkpoint  # noqa: E402

from fer_edge.classes import EMOTIONS  # noqa: E402
from fer_edge.data import load_train_val  # noqa: E402
from fer_edge.train.carry_targets import main  # noqa: E402
from fer_edge.train.distill import read_targets, targets_key, write_targets  # noqa: E402
from fer_edge.train.engine import TrainConfig, Trainer  # noqa: E402

from train_data import make_subset  # noqa: E402


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    """A FER2013 subset, and a copy whose training faces are re-cropped ``.png`` files (one face left out) beside
    the original ``.jpg`` files, as `runs/mixed` holds the runtime crops beside the dataset crops."""
    root = tmp_path_factory.mktemp("carry")
    src = make_subset(root / "src", n_train=4, n_val=2)
    dst = root / "dst"
    for f in sorted(src.rglob("*.jpg")):
        rel = f.relative_to(src)
        (dst / rel.parent).mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(f.read_bytes())
        if rel.parts[0] == "train":
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(dst / rel.with_suffix(".png")), cv2.resize(img[4:-4, 4:-4], (48, 48)))
    return src, dst


def test_targets_follow_the_faces_by_class_and_name(datasets, tmp_path):
    src, dst = datasets
    teacher = str(random_checkpoint(tmp_path / "teacher.pt", "cnn-tiny"))
    s_tr, s_va = load_train_val(src, EMOTIONS, (48, 48), log=None)
    gen = torch.Generator().manual_seed(0)
    t_train = torch.rand(len(s_tr.labels), 7, generator=gen).softmax(1)
    t_val = torch.rand(len(s_va.labels), 7, generator=gen).softmax(1)
    src_file = tmp_path / "src_targets.safetensors"
    write_targets(src_file, targets_key([teacher], s_tr.fingerprint(), "flip", 2.0, EMOTIONS, (48, 48)), t_train,
                  t_val)
    out = tmp_path / "dst_targets.safetensors"
    args = [str(src_file), "--source", str(src), "--data", str(dst), "--teacher", teacher, "--out", str(out)]
    assert main(args) == 0
    d_tr, _ = load_train_val(dst, EMOTIONS, (48, 48), log=None)
    got = read_targets(out, targets_key([teacher], d_tr.fingerprint(), "flip", 2.0, EMOTIONS, (48, 48)))
    assert got is not None and len(got["train"]) == 2 * len(s_tr.labels) and torch.equal(got["val"], t_val)
    row = {Path(p).parent.name + "/" + Path(p).stem: i for i, p in enumerate(s_tr.paths)}
    for i, p in enumerate(d_tr.paths):  # the .png re-crop and the .jpg of a face: the source face's target
        torch.testing.assert_close(got["train"][i], t_train[row[Path(p).parent.name + "/" + Path(p).stem]])
    # the trainer reads the carried file instead of scoring the faces
    logs: list[str] = []
    t = Trainer(TrainConfig(data=str(dst), arch="cnn-tiny", epochs=1, out=str(tmp_path / "run"), batch_size=28,
                            eval_batch_size=64, threads=2, command=["test"], max_steps=1, teacher=[teacher],
                            teacher_once=True, teacher_targets=str(out)))
    t.log = logs.append
    t.setup()
    assert any("teacher targets read from" in m for m in logs) and not any("teachers scored" in m for m in logs)


def test_refusals(datasets, tmp_path, capsys):
    src, dst = datasets
    teacher = str(random_checkpoint(tmp_path / "teacher.pt", "cnn-tiny"))
    s_tr, s_va = load_train_val(src, EMOTIONS, (48, 48), log=None)
    src_file = tmp_path / "src_targets.safetensors"
    write_targets(src_file, targets_key([teacher], s_tr.fingerprint(), "flip", 2.0, EMOTIONS, (48, 48)),
                  torch.full((len(s_tr.labels), 7), 1 / 7), torch.full((len(s_va.labels), 7), 1 / 7))
    base = [str(src_file), "--source", str(src), "--teacher", teacher, "--out", str(tmp_path / "x.safetensors")]
    assert main([*base, "--data", str(dst), "--distill-temperature", "4"]) == 2
    assert "was not scored for" in capsys.readouterr().err
    extra = dst.parent / "dst_extra"  # a face the source does not have
    for f in dst.rglob("*.*"):
        (extra / f.relative_to(dst)).parent.mkdir(parents=True, exist_ok=True)
        (extra / f.relative_to(dst)).write_bytes(f.read_bytes())
    cv2.imwrite(str(extra / "train" / "happy" / "stranger.png"), np.zeros((48, 48), np.uint8))
    assert main([*base, "--data", str(extra)]) == 2
    err = capsys.readouterr().err
    assert "without a face of the same class and name in the source: 1" in err and "stranger" in err
    assert not (tmp_path / "x.safetensors").exists()
