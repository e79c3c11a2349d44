"""`fer-edge benchmark --quick` on tiny models and real media; the Pareto front on hand-made points."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_edge.benchmarks.pareto import pareto_front

from conftest import REPO, SHARED, run_cli


def test_pareto_front_hand_made():
    pts = [(10, 0.60), (100, 0.60), (100, 0.55), (50, 0.70), (200, 0.50), (20, 0.70), (200, 0.50)]
    # (10,.60) is beaten by (100,.60); (100,.55) by (100,.60); (20,.70) by (50,.70); equal points both stay
    assert pareto_front(pts) == [3, 1, 4, 6]
    assert pareto_front([(1.0, 1.0)]) == [0]


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_quick_benchmark_report(tmp_path, tiny_onnx, tiny_ir):
    pytest.importorskip("torch")
    from test_export import random_checkpoint

    ckpt = random_checkpoint(tmp_path / "tiny.pt", "cnn")
    out = tmp_path / "bench"
    p = run_cli("benchmark", str(tiny_onnx), str(tiny_ir), "--checkpoint", str(ckpt), "--quick",
                "--data", str(SHARED / "datasets/fer2013/val"), "--videos",
                str(SHARED / "media/video_talking_woman_15s.mp4"), "--out", str(out), "--threads", "2")
    assert p.returncode == 0, p.stderr
    assert "[5/5]" in p.stderr  # progress is shown
    r = json.loads((out / "benchmark.json").read_text())
    m = r["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["threads"] == 2 and m["isa"] and m["python"] and m["os"]
    assert {"numpy", "onnxruntime"} <= set(m["libraries"])
    rows = r["classifiers"]
    assert [row["backend"] for row in rows] == ["torch", "onnxruntime", "openvino"]
    for row in rows:
        for k in ("size_mb", "latency_ms", "latency_p90_ms", "faces_per_s_batch1", "best_throughput_faces_per_s",
                  "speedup_vs_pytorch"):
            assert _finite_positive(row[k]), (k, row[k])
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1 and 0 <= row["agreement_with_fp32"] <= 1
        assert set(row["throughput_faces_per_s"]) == {"1", "8", "32", "64"}
    assert rows[0]["speedup_vs_pytorch"] == 1.0 and rows[0]["agreement_with_fp32"] == 1.0
    assert r["accuracy_data"]["faces"] == 300
    assert r["pareto_front"] and all(row["pareto"] == (row["label"] in r["pareto_front"]) for row in rows)
    _check_detectors_and_loops(r, 1)
    for entry in r["pasted_faces"]:
        assert entry["faces"] == 60 and 0.5 <= entry["recall"] <= 1.0
        for mm in entry["models"]:
            assert 0 <= mm["accuracy_detected_in_frames"] <= 1 and 0 <= mm["accuracy_same_faces_as_crops"] <= 1
            assert mm["faces_compared"] == entry["detected"] and 0 <= mm["gap_se"] < 0.2
        first, second = entry["models"]  # the ONNX file and its IR: the second is paired with the first
        assert "paired_vs_first" not in first and second["paired_vs_first"]["first"] == first["model"]
        pv = second["paired_vs_first"]
        hits = (second["accuracy_detected_in_frames"] - first["accuracy_detected_in_frames"]) * entry["detected"]
        assert pv["only_this"] - pv["only_first"] == round(hits) and 0 <= pv["mcnemar_p"] <= 1
    png = (out / "tradeoff.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (out / "benchmark.md").read_text()
    assert "fer-edge benchmark" in md and "--quick" in md and "| PyTorch eager FP32" in md


def _check_detectors_and_loops(r: dict, n_loops: int) -> None:
    assert {d["detector"] for d in r["detectors"].values()} == {
        "yunet 608 px (default) in ONNX Runtime", "yunet 608 px (default) in OpenCV", "yunet 640 px in ONNX Runtime",
        "yunet 640 px in OpenCV", "res10 480 px (default)"}
    assert all(_finite_positive(d["median_ms"]) for d in r["detectors"].values())
    assert len(r["end_to_end"]) == n_loops
    for e2e in r["end_to_end"]:
        for name in ("old", "new"):  # today's loop and the new defaults, side by side
            x = e2e[name]
            assert x["frames"] == 60 and _finite_positive(x["fps"]) and _finite_positive(x["peak_rss_mb"])
            assert x["faces_per_frame"] == pytest.approx(1.0)
            assert {"decode", "detect", "classify", "track", "output"} <= set(x["stage_ms"])
            assert 0 < x["overhead_share"] < 1
        assert e2e["old"]["full_detections"] == 60 and e2e["new"]["full_detections"] < 60
        assert "--serial" in e2e["old"]["flags"] and e2e["new"]["flags"] == "(defaults)"
        assert _finite_positive(e2e["speedup"]) and len(e2e["speedups"]) == e2e["rounds"]


def test_loop_only_benchmark_compares_old_and_new_loops_per_thread_count(tmp_path, tiny_onnx):
    """Also: with res10's files nowhere to be found (only YuNet ships), its rows say so and the report is kept."""
    out = tmp_path / "loop"
    empty = {"FER_EDGE_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    p = run_cli("benchmark", str(tiny_onnx), "--loop-only", "--quick", "--loop-threads", "1", "2",
                "--data", str(SHARED / "datasets/fer2013/val"), "--videos",
                str(SHARED / "media/video_talking_woman_15s.mp4"), "--out", str(out), env=empty)
    assert p.returncode == 0, p.stderr
    r = json.loads((out / "benchmark.json").read_text())
    assert "classifiers" not in r and r["loop_only"]
    res10 = [d for d in r["detectors"].values() if d["detector"].startswith("res10")]
    assert res10 and all("fer-edge models fetch" in d["error"] for d in res10)
    r["detectors"] = {k: d for k, d in r["detectors"].items() if "error" not in d}
    r["detectors"]["res10"] = {"detector": "res10 480 px (default)", "median_ms": 1.0}  # checked just above
    _check_detectors_and_loops(r, 2)
    assert [e["threads"] for e in r["end_to_end"]] == [1, 2]
    assert {e["detector"] for e in r["pasted_faces"]} == {"yunet 608 px (default)", "yunet 640 px",
                                                          "res10 480 px (default)"}
    skipped = [e for e in r["pasted_faces"] if "error" in e]
    assert [e["detector"] for e in skipped] == ["res10 480 px (default)"]
    md = (out / "benchmark.md").read_text()
    assert "| res10 480 px (default) | | |" in md
    assert "| old | --detect-size 640 --detect-every 1 --hold-frames 1 --detector-engine opencv --serial |" in md
    assert "| new | (defaults) |" in md


def test_paired_counts_on_found_faces():
    from fer_edge.benchmarks.bench import paired_counts

    a = np.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    b = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    pv = paired_counts(a, b, "first model")
    assert (pv["first"], pv["only_this"], pv["only_first"]) == ("first model", 9, 1)
    assert abs(pv["mcnemar_p"] - 22 / 1024) < 1e-12  # 2 * (1 + 10) / 2**10
    assert paired_counts(a, a, "x")["mcnemar_p"] == 1.0



    from fer_edge.benchmarks.bench import Subject, references
    from fer_edge.runtime.errors import FerEdgeError

    def subj(label, backend, sha, precision="FP32"):
        return Subject(label, Path(label), backend, precision, None, sha)

    ta, tb = subj("torch a", "torch", "A"), subj("torch b", "torch", "B")
    ia, ib = subj("int8 a", "openvino", "A", "INT8"), subj("int8 b", "onnxruntime", "B", "INT8")
    assert references([ta, ia, tb, ib]) == [ta, ta, tb, tb]
    with pytest.raises(FerEdgeError, match="not exported from any of the checkpoints"):
        references([ta, tb, subj("stray", "openvino", "C")])
    # one checkpoint: every artifact against it (artifacts made elsewhere carry no hash); none: the first FP32
    other = subj("other", "openvino", None)
    assert references([ta, other]) == [ta, ta]
    fp32 = subj("fp32", "onnxruntime", None)
    assert references([ib, fp32]) == [fp32, fp32]


def test_committed_checkpoint_folders_are_the_references_of_the_shipped_files(tmp_path):
    """--checkpoint takes a release folder (as export and evaluate do), identified by the SHA-256 of its
    safetensors, which the shipped files carry; a stray model is refused before anything is measured."""
    pytest.importorskip("torch")
    from fer_edge.benchmarks.bench import load_subjects, references
    from fer_edge.runtime.models import classifier_path

    ckpts = [str(REPO / "checkpoints" / n) for n in ("accurate-vgg-wide-mixed", "fast-cnn-mid-100")]
    models = [str(classifier_path(n, "onnxruntime")) for n in ("accurate", "fast")]
    subjects = load_subjects(models, ckpts, 1)
    assert [r.label for r in references(subjects)[2:]] == [s.label for s in subjects[:2]]
    from fer_edge.benchmarks.bench import _files

    assert [f.name for f in _files(subjects[0])] == ["model.safetensors"]  # its size in the report
    r = run_cli("benchmark", models[0], "--checkpoint", ckpts[1], str(REPO / "checkpoints" / "fast-cnn-mid-50"),
                "--quick", "--videos", "--out", str(tmp_path / "never-written"))
    assert r.returncode == 2 and "not exported from any of the checkpoints" in r.stderr
    assert "accuracy on" not in r.stderr and not (tmp_path / "never-written").exists()


def test_same_file_names_from_two_runs_get_their_folders(tmp_path, tiny_onnx):
    from fer_edge.benchmarks.bench import load_subjects

    for run in ("run_a", "run_b"):
        (tmp_path / run).mkdir()
        shutil.copy(tiny_onnx, tmp_path / run / "accurate_int8.onnx")
    subjects = load_subjects([str(tmp_path / r / "accurate_int8.onnx") for r in ("run_a", "run_b")], None, 1)
    assert [s.label.split(" (")[1] for s in subjects] == ["run_a/accurate_int8.onnx)", "run_b/accurate_int8.onnx)"]


def test_interleaved_latency_gives_each_model_its_own_input():
    from fer_edge.benchmarks.timing import interleaved_latency

    seen: dict[str, set] = {"a": set(), "b": set()}

    def predict(name, shape):
        def f(x):
            assert x.shape == shape, (name, x.shape)  # a 48 px gray model must never get a 64 px RGB face
            seen[name].add(x.shape)
        return f

    xa, xb = np.zeros((1, 1, 48, 48), np.float32), np.zeros((1, 3, 64, 64), np.float32)
    times = interleaved_latency([predict("a", xa.shape), predict("b", xb.shape)], [xa, xb], rounds=2, calls=3,
                                warmup=1)
    assert [len(t) for t in times] == [6, 6] and seen == {"a": {xa.shape}, "b": {xb.shape}}
    with pytest.raises(ValueError):
        interleaved_latency([predict("a", xa.shape)], [xa, xb], rounds=1, calls=1)


def test_report_without_videos_says_so_instead_of_empty_tables():
    """`--videos` with no file skips the detector and loop measurements: the report says so in one line."""
    from fer_edge.benchmarks.bench import markdown

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    r = json.loads((root / "frontier-session8" / "benchmark.json").read_text())
    assert not r["detectors"] and not r["end_to_end"]
    md = markdown(r)
    assert "Not measured: no videos" in md and "## Face detectors (ms per frame)" not in md
    assert "| yunet 608 px (default) | 2400 |" in md  # the pasted-face table is still there
    with_videos = json.loads((root / "shipped-vnni" / "benchmark.json").read_text())
    md = markdown(with_videos)
    assert "## Face detectors (ms per frame)" in md and "Not measured" not in md


def test_crop_geometry_on_pasted_training_faces(tmp_path):
    """The box-vs-dataset-crop geometry: synthetic boxes give known numbers; real pasted faces give plausible ones."""
    from fer_edge.benchmarks.crop_geometry import box_geometry, main, summarize

    truth = [np.asarray([[100, 100, 80, 80, 0], [300, 100, 60, 60, 1]], np.float32)]
    # box 0: 100 px tall, 80 wide, centred 10 px right of and above the crop's centre; box 1: the crop itself
    matches = [(0, np.asarray([110, 80, 80, 100], np.float32), 0), (0, np.asarray([300, 100, 60, 60]), 1)]
    geo = box_geometry(truth, matches)
    np.testing.assert_allclose(geo, [[-0.1, 0.1, 0.8, 0.8], [0, 0, 1, 1]], atol=1e-6)
    s = summarize(geo, scale_min=0.8)
    assert s["margin_for_dataset_crop"] == pytest.approx(-0.05)  # median side 0.9: a 0.9 S square
    assert s["margin_for_mean_training_view"] == pytest.approx((0.9 * 0.9 - 1) / 2)

    assert main(["--faces", "16", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "geometry.json").read_text())
    assert r["faces"] == 16 and 8 <= r["matched"] <= 16
    assert 0.6 < r["stats"]["side"]["median"] < 1.3 and abs(r["stats"]["dy"]["median"]) < 0.2
    assert "| side |" in (tmp_path / "geometry.md").read_text()
