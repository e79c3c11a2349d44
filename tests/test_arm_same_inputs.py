"""tests/aarch64/same_inputs.py (the Arm check's split of preprocessing from INT8 kernels), run on x86 alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np

from conftest import REPO, SHARED, run_cli

TOOL = REPO / "tests" / "aarch64" / "same_inputs.py"
FAST = REPO / "fer_edge" / "assets" / "fast_int8.onnx"


def test_same_inputs_round_trip_matches_evaluate(tmp_path):
    """prepare writes the runtime's own inputs and predictions; compare on the same machine agrees on every face and
    scores what ``fer-edge evaluate`` scores; a changed input tensor is seen as a kernel difference."""
    data = tmp_path / "val"
    for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
        (data / c).mkdir(parents=True)
        for f in sorted((SHARED / "datasets/fer2013/val" / c).iterdir())[:4]:
            shutil.copy2(f, data / c / f.name)
    npz = tmp_path / "x86.npz"
    run = lambda *a: subprocess.run([sys.executable, str(TOOL), *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    p = run("prepare", str(data), str(FAST), str(npz))
    assert p.returncode == 0, p.stderr
    prepared = json.loads(p.stdout)
    ref = np.load(npz)
    assert ref["inputs"].shape == (28, 1, 40, 40) and prepared["n"] == 28
    ev = run_cli("evaluate", str(FAST), "--data", str(data), "--json", str(tmp_path / "ev.json"), "--no-confusion",
                 "--quiet")
    assert ev.returncode == 0, ev.stderr
    assert prepared["accuracy"] == json.loads((tmp_path / "ev.json").read_text())["accuracy"]
    c = run("compare", str(FAST), str(npz))
    assert c.returncode == 0, c.stderr
    got = json.loads(c.stdout)
    assert got["agreement"] == 1.0 and got["accuracy"] == got["x86_accuracy"] == prepared["accuracy"]
    # a tensor that is not what x86 ran shows up as disagreement
    np.savez(npz, inputs=ref["inputs"][::-1].copy(), pred=ref["pred"], labels=ref["labels"])
    assert json.loads(run("compare", str(FAST), str(npz)).stdout)["agreement"] < 1.0
    assert run("nonsense").returncode == 2
