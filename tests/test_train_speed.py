"""benchmarks/train_speed.py: training img/s per architecture and precision, written as a report."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from fer_edge.benchmarks.train_speed import main  # noqa: E402


def test_train_speed_report(tmp_path, capsys):
    assert main(["cnn-fast", "--batch-size", "8", "--steps", "1", "--threads", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "train_speed.json").read_text())["rows"]
    assert [r["arch"] for r in rows] == ["cnn-fast"] and rows[0]["fp32_img_s"] > 0 and rows[0]["bf16_img_s"] > 0
    md = (tmp_path / "train_speed.md").read_text()
    assert "| cnn-fast |" in md and "ISA:" in md and "python -m fer_edge.benchmarks.train_speed cnn-fast" in md
