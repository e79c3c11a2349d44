"""benchmarks/runtime_crops.py: training faces cropped as `fer-edge run` crops them (issue 17, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_edge.benchmarks.runtime_crops import main, runtime_crop
from fer_edge.runtime.metadata import ModelMeta
from fer_edge.runtime.preprocess import FaceBatcher, crop_regions

from model_factory import default_meta


def test_runtime_crop_is_what_the_run_loop_feeds_the_classifier():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), np.uint8)
    box = np.array([100.0, 50.0, 90.0, 110.0, 0.9], np.float32)
    meta = ModelMeta.from_dict({**default_meta(), "crop_margin": -0.1})
    batcher = FaceBatcher(meta, max_faces=1)
    want = batcher(frame, crop_regions(box[None], batcher.margin, 320, 240))
    gray = runtime_crop(frame, box, -0.1)
    got = (gray.astype(np.float32) / 255 - meta.mean[0]) / meta.std[0]
    assert gray.shape == (48, 48) and np.allclose(got, want[0, 0], atol=1e-5)


def test_runtime_crops_of_real_faces(tmp_path, capsys):
    import cv2

    from conftest import SHARED

    out = tmp_path / "rc"
    assert main(["--split", "train", "--limit", "3", "--out", str(out)]) == 0
    doc = json.loads((out / "runtime_crops.json").read_text())
    assert doc["faces"] == 21 and 15 <= doc["found"] <= 21, doc
    pngs = sorted((out / "train").glob("*/*.png"))
    assert len(pngs) == 21 and (out / "val").resolve() == (SHARED / "datasets/fer2013/val").resolve()
    changed = 0
    for f in pngs:
        orig = cv2.imread(str(SHARED / "datasets/fer2013/train" / f.parent.name / (f.stem + ".jpg")), 0)
        crop = cv2.imread(str(f), 0)
        assert crop.shape == orig.shape == (48, 48)
        changed += int(np.abs(crop.astype(int) - orig.astype(int)).mean() > 2)
    assert changed >= doc["found"] - 2  # the found faces are new crops; the missed ones their dataset crop
    assert "found and cropped" in capsys.readouterr().out
    assert main(["--split", "train", "--limit", "1", "--out", str(out)]) == 2  # never writes into a used folder
    with pytest.raises(SystemExit):
        main(["--out"])
