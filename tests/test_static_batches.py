"""benchmarks/static_batches.py: dynamic against static OpenVINO batches, written as a report."""

from __future__ import annotations

import json

from fer_edge.benchmarks.static_batches import main


def test_static_batches_report(tmp_path, tiny_ir):
    assert main([str(tiny_ir), "--rounds", "1", "--calls", "3", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "static_batches.json").read_text())
    assert r["static_compiled"] == [1, 2, 3, 4]
    assert [row["case"] for row in r["rows"]] == ["batch 1", "batch 2", "batch 3", "batch 4", "alternating 2/3/2/3/1"]
    assert all(row["dynamic_ms"] > 0 and row["static_ms"] > 0 for row in r["rows"])
    md = (tmp_path / "static_batches.md").read_text()
    assert "| alternating 2/3/2/3/1 |" in md and "ISA:" in md
