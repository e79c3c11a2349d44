"""benchmarks/paired.py: discordant counts and McNemar's exact test on two prediction CSVs."""

from __future__ import annotations

from fer_edge.benchmarks.paired import main, mcnemar_exact


def _csv(path, rows):
    path.write_text("path,label,pred\n" + "".join(f"{p},{lab},{pred}\n" for p, lab, pred in rows))
    return str(path)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert abs(mcnemar_exact(0, 5) - 2 / 32) < 1e-12  # all five discordant pairs one way
    assert abs(mcnemar_exact(1, 3) - 2 * 5 / 16) < 1e-12


def test_paired_counts_and_errors(tmp_path, capsys):
    a = _csv(tmp_path / "a.csv", [("x", "happy", "happy"), ("y", "sad", "sad"), ("z", "fear", "sad")])
    b = _csv(tmp_path / "b.csv", [("x", "happy", "sad"), ("y", "sad", "sad"), ("z", "fear", "fear")])
    assert main([a, b]) == 0
    out = capsys.readouterr().out
    assert "3 faces: A 0.6667, B 0.6667; right only in A 1, only in B 1; McNemar exact p = 1.000" in out
    c = _csv(tmp_path / "c.csv", [("x", "happy", "happy")])
    assert main([a, c]) == 2 and "same faces" in capsys.readouterr().err
    assert main([a, str(tmp_path / "missing.csv")]) == 2
