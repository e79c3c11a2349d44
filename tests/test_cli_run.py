"""`fer-edge run` end to end on real media, its outputs field by field, and every bad-input case."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest

from fer_edge.runtime.detectors import opencv_reads_caffe, opencv_reads_tensorflow

from conftest import MANIFEST, MEDIA, assert_clean_error, run_cli
from model_factory import EMOTIONS

RES10_RUNS = opencv_reads_caffe() or opencv_reads_tensorflow()  # OpenCV 5.1 reads neither form of res10

GROUP = str(MEDIA / "group_selfie_6faces.jpg")
WOMAN = str(MEDIA / "video_talking_woman_15s.mp4")
HAMILTON = str(MEDIA / "video_hamilton_whitehouse_9s.mp4")
FIELDS = ["source", "frame", "time_s", "face", "track", "box", "box_from", "score", "label", "probs"]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def check_record(r: dict, source: str, width: int, height: int) -> None:
    assert list(r) == FIELDS
    assert r["source"] == source
    assert isinstance(r["frame"], int) and r["frame"] >= 0
    assert isinstance(r["time_s"], float) and r["time_s"] >= 0
    assert isinstance(r["face"], int) and r["face"] >= 0
    assert r["track"] is None or isinstance(r["track"], int)
    x, y, w, h = r["box"]
    assert all(isinstance(v, int) for v in r["box"])
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
    assert 0 < r["score"] <= 1
    assert list(r["probs"]) == EMOTIONS
    assert math.isclose(sum(r["probs"].values()), 1.0, abs_tol=1e-3)
    assert r["box_from"] in ("detected", "tracked") and (r["track"] is not None or r["box_from"] == "detected")
    if r["track"] is None:  # with a track, label hysteresis may hold a label the newest argmax has left
        assert r["label"] == max(r["probs"], key=r["probs"].get)
    else:
        assert r["label"] in r["probs"]


@pytest.mark.parametrize("model", ["tiny_onnx", "tiny_ir"])
@pytest.mark.parametrize("detector", ["yunet", "res10"])
def test_image_json_and_csv(tmp_path, request, model, detector):
    model_path = request.getfixturevalue(model)
    out, table, saved = tmp_path / "o.jsonl", tmp_path / "o.csv", tmp_path / "annotated.jpg"
    p = run_cli("run", "--image", GROUP, "--model", str(model_path), "--detector", detector,
                "--json", str(out), "--csv", str(table), "--save", str(saved))
    if detector == "res10" and not RES10_RUNS:  # OpenCV 5.1+: one sentence, nothing written
        assert_clean_error(p, "cannot run the res10 face detector", "--detector yunet")
        assert not out.exists() and not saved.exists()
        return
    assert p.returncode == 0, p.stderr
    recs = read_jsonl(out)
    lo, hi = MANIFEST["images"]["group_selfie_6faces.jpg"]["min"], MANIFEST["images"]["group_selfie_6faces.jpg"]["max"]
    assert lo <= len(recs) <= hi
    h, w = cv2.imread(GROUP).shape[:2]
    for i, r in enumerate(recs):
        check_record(r, GROUP, w, h)
        assert r["frame"] == 0 and r["face"] == i and r["track"] is None and r["time_s"] == 0.0
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(recs)
    for r, row in zip(recs, rows):
        assert [int(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")] == r["box"]
        assert row["label"] == r["label"] and row["track"] == ""
        assert all(math.isclose(float(row[f"prob_{c}"]), r["probs"][c], abs_tol=1e-5) for c in EMOTIONS)
    annotated = cv2.imread(str(saved))
    assert annotated.shape == (h, w, 3) and (annotated != cv2.imread(GROUP)).any()


def test_video_end_to_end_with_tracks_and_saved_video(tmp_path, tiny_onnx):
    out, video = tmp_path / "w.jsonl", tmp_path / "w.mp4"
    p = run_cli("run", "--video", WOMAN, "--model", str(tiny_onnx), "--json", str(out), "--save", str(video))
    assert p.returncode == 0, p.stderr
    recs = read_jsonl(out)
    spec = MANIFEST["videos"]["video_talking_woman_15s.mp4"]
    assert [r["frame"] for r in recs] == list(range(spec["frames"]))  # one face in every frame
    for r in recs[::25]:
        check_record(r, WOMAN, spec["w"], spec["h"])
    assert {r["track"] for r in recs} == {0}  # one person, one track
    assert recs[30]["time_s"] == pytest.approx(30 / spec["fps"], abs=1e-3)
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == spec["frames"]
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (spec["w"], spec["h"])
    assert "464 frames" in p.stderr and "fps" in p.stderr


def test_smoothing_changes_probabilities_and_can_be_turned_off(tmp_path, tiny_onnx):
    runs = {}
    for name, flags in {"smooth": ["--detect-every", "1"], "off": ["--no-smooth", "--detect-every", "1"]}.items():
        out = tmp_path / f"{name}.jsonl"
        p = run_cli("run", "--video", HAMILTON, "--model", str(tiny_onnx), "--json", str(out), "--max-frames", "120",
                    *flags)
        assert p.returncode == 0, p.stderr
        runs[name] = read_jsonl(out)
    assert len(runs["smooth"]) == len(runs["off"]) > 0
    assert all(r["track"] is None for r in runs["off"])
    assert any(r["track"] is not None and r["track"] > 0 for r in runs["smooth"])  # several faces over time
    assert max(r["frame"] for r in runs["smooth"]) < 120
    diff = [abs(a["probs"]["happy"] - b["probs"]["happy"]) for a, b in zip(runs["smooth"], runs["off"])]
    assert max(diff) > 1e-3


def test_images_folder_skips_bad_files_and_keeps_going(tmp_path, tiny_onnx):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for name in ("single_obama.jpg", "two_people_obama_biden.jpg"):
        (d / name).write_bytes((MEDIA / name).read_bytes())
    (d / "sub" / "astro.png").write_bytes((MEDIA / "single_astronaut.png").read_bytes())
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    out, saved = tmp_path / "o.jsonl", tmp_path / "annotated"
    p = run_cli("run", "--images", str(d), "--model", str(tiny_onnx), "--json", str(out), "--save", str(saved))
    assert p.returncode == 1, p.stderr
    assert "broken.jpg" in p.stderr and "not an image or corrupt" in p.stderr and "Traceback" not in p.stderr
    assert "1 of 4 files could not be read" in p.stderr
    recs = read_jsonl(out)
    by_source = {}
    for r in recs:
        by_source.setdefault(os.path.basename(r["source"]), []).append(r)
    assert {k: len(v) for k, v in by_source.items()} == {"astro.png": 1, "single_obama.jpg": 1,
                                                        "two_people_obama_biden.jpg": 2}
    assert [r["frame"] for r in recs] == sorted(r["frame"] for r in recs)
    assert sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*.*")) == [
        "single_obama.jpg", "sub/astro.png", "two_people_obama_biden.jpg"]


def test_frame_without_faces_writes_nothing(tmp_path, tiny_onnx):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), (cv2.imread(GROUP) * 0 + 127))
    out = tmp_path / "o.jsonl"
    p = run_cli("run", "--image", str(blank), "--model", str(tiny_onnx), "--json", str(out))
    assert p.returncode == 0 and out.read_text() == ""


def test_interrupted_run_keeps_every_processed_frame(tmp_path, tiny_onnx):
    out, table = tmp_path / "i.jsonl", tmp_path / "i.csv"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "fer_edge", "run", "--video", WOMAN, "--model", str(tiny_onnx),
                             "--json", str(out), "--csv", str(table)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    recs = read_jsonl(out)  # every line parses: nothing half-written
    rows = list(csv.DictReader(open(table, newline="")))
    assert 0 < len(recs) < 464 and len(rows) == len(recs)
    assert [r["frame"] for r in recs] == list(range(len(recs)))


def _corrupt_video(tmp_path):
    data = bytearray((MEDIA / "video_talking_woman_15s.mp4").read_bytes()[:4000])
    data[:16] = b"\x00" * 16
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize(
    "case",
    ["missing_image", "non_image_file", "missing_video", "corrupt_video", "empty_video", "camera", "missing_model",
     "corrupt_model", "no_metadata_model", "missing_dir", "empty_dir", "bad_smooth", "missing_detector",
     "corrupt_detector", "unwritable_json"],
)
def test_bad_input_one_line_no_traceback(tmp_path, tiny_onnx, case):
    from model_factory import make_onnx

    m = ["--model", str(tiny_onnx)]
    env = None
    if case == "missing_image":
        args, frags = ["--image", str(tmp_path / "nope.jpg"), *m], ["nope.jpg", "does not exist"]
    elif case == "non_image_file":
        f = tmp_path / "x.jpg"
        f.write_text("hello")
        args, frags = ["--image", str(f), *m], ["x.jpg", "not an image or corrupt"]
    elif case == "missing_video":
        args, frags = ["--video", str(tmp_path / "v.mp4"), *m], ["v.mp4", "does not exist"]
    elif case == "corrupt_video":
        args, frags = ["--video", str(_corrupt_video(tmp_path)), *m], ["corrupt.mp4"]
    elif case == "empty_video":
        (tmp_path / "empty.mp4").write_bytes(b"")
        args, frags = ["--video", str(tmp_path / "empty.mp4"), *m], ["empty.mp4"]
    elif case == "camera":
        args, frags = ["--camera", "97", *m], ["camera 97"]
    elif case == "missing_model":
        args, frags = ["--image", GROUP, "--model", str(tmp_path / "m.onnx")], ["m.onnx", "does not exist"]
    elif case == "corrupt_model":
        (tmp_path / "c.onnx").write_bytes(b"\x08junk")
        args, frags = ["--image", GROUP, "--model", str(tmp_path / "c.onnx")], ["c.onnx", "not a valid ONNX model"]
    elif case == "no_metadata_model":
        bare = make_onnx(tmp_path / "bare.onnx", None)
        args, frags = ["--image", GROUP, "--model", str(bare)], ["bare.onnx", "no 'fer_edge' metadata"]
    elif case == "missing_dir":
        args, frags = ["--images", str(tmp_path / "nodir"), *m], ["nodir", "does not exist"]
    elif case == "empty_dir":
        (tmp_path / "e").mkdir()
        args, frags = ["--images", str(tmp_path / "e"), *m], ["holds no image files"]
    elif case == "bad_smooth":
        args, frags = ["--video", WOMAN, "--smooth", "1.5", *m], ["--smooth"]
    elif case == "missing_detector":  # YuNet ships in the package; res10 must be fetched
        env = {"FER_EDGE_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
        args, frags = ["--image", GROUP, "--detector", "res10", *m], ["res10", str(tmp_path / "home"),
                                                                      "fer-edge models fetch res10-"]
        if not RES10_RUNS:  # OpenCV 5.1+: no res10 files would help, and that is what it says
            frags = ["cannot run the res10 face detector", "--detector yunet"]
    elif case == "corrupt_detector":
        (tmp_path / "y.onnx").write_bytes(b"junk")
        args, frags = ["--image", GROUP, "--detector-model", str(tmp_path / "y.onnx"), *m], ["y.onnx"]
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro" / "o.jsonl").mkdir()  # a folder where the file should go
        args, frags = ["--image", GROUP, "--json", str(tmp_path / "ro" / "o.jsonl"), *m], ["o.jsonl", "it is a folder"]
    p = run_cli("run", *args, env=env, timeout=120)
    assert_clean_error(p, *frags)


def test_no_model_and_none_shipped_says_so(tmp_path, monkeypatch):
    from fer_edge.runtime import models
    from fer_edge.runtime.errors import FerEdgeError

    (tmp_path / "assets").mkdir()
    monkeypatch.setattr(models.resources, "files", lambda package: tmp_path)
    with pytest.raises(FerEdgeError, match="pass --model FILE"):
        models.default_classifier_path()


def test_usage_errors_are_one_line():
    p = run_cli("run", "--image", GROUP, "--video", WOMAN)
    assert p.returncode == 2 and "not allowed with argument" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("run", "--image", GROUP, "--detector", "haar")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_show_without_display_is_ignored(tmp_path, tiny_onnx):
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    p = run_cli("run", "--image", GROUP, "--model", str(tiny_onnx), "--show", "--json", str(tmp_path / "o.jsonl"),
                env=env)
    assert p.returncode == 0 and "no display" in p.stderr
