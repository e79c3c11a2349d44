"""``python -m fer_edge.train.many``: several training jobs sized to a wall-clock budget (real data, CPU)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from fer_edge.runtime.errors import FerEdgeError  # noqa: E402
from fer_edge.train import many  # noqa: E402

from train_data import make_subset  # noqa: E402


def test_epochs_that_fit():
    # 0.9 * (100 - 10) s = 81 s at 1000 img/s = 81,000 images = 10 epochs of 8,100
    assert many.epochs_that_fit(100, 8100, 1000.0, 10, 0.9) == 10
    assert many.epochs_that_fit(100, 8100, 1000.0, 10, 0.9, max_epochs=4) == 4
    assert many.epochs_that_fit(5, 8100, 1000.0, 10, 0.9, min_epochs=2) == 2


@pytest.mark.parametrize("jobs, fragment", [
    ({"jobs": []}, "expected"),
    ({"jobs": [{"name": "a", "args": ["--epochs", "3"]}]}, "sets --epochs"),
    ({"jobs": [{"name": "a", "args": []}, {"name": "a", "args": []}]}, "appears twice"),
])
def test_bad_jobs_file_is_one_sentence(tmp_path, capsys, jobs, fragment):
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps(jobs))
    with pytest.raises(FerEdgeError, match=fragment):
        many.read_jobs(f)
    assert many.main([str(f), "--out", str(tmp_path / "o"), "--budget", "10"]) == 2
    assert fragment in capsys.readouterr().err


def test_jobs_run_side_by_side_and_a_broken_one_is_dropped(tmp_path):
    data = make_subset(tmp_path / "fer", n_train=6, n_val=3)
    jobs = {"common": ["--data", str(data), "--device", "cpu", "--threads", "1", "--batch-size", "16", "--quiet"],
            "jobs": [{"name": "cnn", "args": ["--arch", "cnn"], "max_epochs": 2},
                     {"name": "broken", "args": ["--arch", "no_such_model_xyz"]}]}
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps(jobs))
    s = many.run_jobs(str(f), str(tmp_path / "runs"), budget=300, probe_steps=1, log=lambda m: None)
    assert s["jobs"]["broken"]["failed"] == "probe"
    cnn = s["jobs"]["cnn"]
    assert cnn["exit"] == 0 and cnn["epochs"] == 2  # capped by max_epochs, and it ran them all
    assert cnn["command"][cnn["command"].index("--epochs") + 1] == "2"
    hist = json.loads((tmp_path / "runs" / "cnn" / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in hist] == [1, 2]
    assert json.loads((tmp_path / "runs" / "summary.json").read_text())["jobs"]["cnn"]["best"] == cnn["best"]
