"""The Raspberry Pi estimate: recorded instruction counts, the arithmetic, and where `fer-edge benchmark` prints it."""

from __future__ import annotations

import json

import pytest

from fer_edge.benchmarks.bench import pi_estimate_inputs
from fer_edge.benchmarks.pi_estimate import ANCHORS, COUNTS, STAGES, estimate, estimate_lines, per_call

from conftest import REPO

RESULTS = REPO / "benchmarks" / "results" / "aarch64-instructions" / "instructions.json"


def test_counts_in_the_code_are_the_recorded_ones():
    doc = json.loads(RESULTS.read_text())
    assert COUNTS == doc["counts"] and set(COUNTS) == {"cortex-a72", "cortex-a76"}
    for c in COUNTS.values():
        assert set(STAGES) <= set(c) and all(v > 0 for v in c.values())


def test_estimate_arithmetic_and_its_cross_check():
    a72 = COUNTS["cortex-a72"]
    e = estimate(a72, detect_side=320, faces=1, detect_every=1)
    # by construction one thread of YuNet 320x320 costs the published 1-thread time
    assert a72["yunet_320x320"] * e["ns_per_insn"] / 1e6 == pytest.approx(ANCHORS["yunet_320x320_1t_ms"][0])
    assert e["total"] == pytest.approx(e["detect"] + e["classify"] + e["rest"]) and e["fps"] == 1000 / e["total"]
    # the independent anchor: YuNet 160x120 from the same scale lands within 50% of its published time
    assert e["check_160x120_ms"] == pytest.approx(ANCHORS["yunet_160x120_4t_ms"][0], rel=0.5)
    # detecting every third frame divides the detector's share; two faces double the classifier's
    e3 = estimate(a72, detect_side=320, faces=2, detect_every=3)
    assert e3["detect"] == pytest.approx(e["detect"] / 3) and e3["classify"] == pytest.approx(2 * e["classify"])
    # a smaller detect size costs fewer instructions
    assert estimate(a72, 640)["detect"] > estimate(a72, 320)["detect"] > estimate(a72, 160)["detect"]


def test_per_call_from_marker_counts():
    marks = {0: 100, 1: 400, 2: 400, 3: 1400}
    assert per_call(marks, ["a", "b"], reps=2) == {"a": 150, "b": 500}


def test_benchmark_prints_the_inputs_on_aarch64_only():
    assert pi_estimate_inputs({"arch": "x86_64"}) is None
    lines = pi_estimate_inputs({"arch": "aarch64", "cpu": "Raspberry Pi 4 Model B (Cortex-A72)", "isa": "asimd",
                                "isa_absent": "asimddp, i8mm, bf16, sve"})
    assert lines[0].startswith("this machine: Raspberry Pi 4") and lines[1:] == estimate_lines()
    text = "\n".join(lines)
    assert "not a measurement" in text and "cortex-a72 instructions per call" in text and "fps" in text


def test_default_settings_estimate_counts_the_frames_between_detections():
    a72 = COUNTS["cortex-a72"]
    e = estimate(a72, detect_side=480, faces=1, detect_every=3)
    assert e["carry"] > 0 and e["total"] == pytest.approx(e["detect"] + e["classify"] + e["carry"] + e["rest"])
    assert e["carry"] == pytest.approx(2 / 3 * a72["carry_1_face"] * e["ns_per_insn"] / 1e6)
    # the README's Pi 4 table: the default now (480 px, every 3rd frame) against the old (640 px, every frame)
    assert round(e["fps"], 1) == 18.4 and round(estimate(a72, 640)["fps"], 1) == 10.0
    # the default detect size now (608) is above the counted frame's longest side (596): the full frame, as 640
    assert round(estimate(a72, 608, 1, 3)["fps"], 1) == round(estimate(a72, 640, 1, 3)["fps"], 1) == 16.7
    with pytest.raises(KeyError, match="no instruction count for --detect-size 400"):
        estimate(a72, 400)
    three = estimate(a72, detect_side=480, faces=3, detect_every=3)
    assert three["carry"] == pytest.approx(3 * e["carry"]) and round(three["fps"], 1) == 7.8
    # --model fast: only the classifier's share changes (the README's Pi 4 table, its fast column)
    f = estimate(a72, detect_side=608, faces=1, detect_every=3, model="fast")
    assert f["classify"] == pytest.approx(a72["classify_fast_1_face"] * f["ns_per_insn"] / 1e6)
    assert f["detect"] == pytest.approx(estimate(a72, 608, 1, 3)["detect"]) and round(f["fps"], 1) == 23.8
    assert "fast: detect" in "\n".join(estimate_lines())
