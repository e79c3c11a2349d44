"""Issue 16: detect every N-th frame with boxes carried in between, label hysteresis, more faces than one batch,
the threaded loop (order, Ctrl-C, buffer pool, camera keeps the newest frame), and the flags' bad values."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import cv2
import numpy as np
import pytest

from fer_edge.runtime.carry import BoxCarrier
from fer_edge.runtime.classifier import MAX_BATCH, load_classifier
from fer_edge.runtime.detectors import create_detector
from fer_edge.runtime.pipeline import EmotionPipeline, run_loop
from fer_edge.runtime.sinks import JsonlSink
from fer_edge.runtime.sources import Frame, VideoSource
from fer_edge.runtime.stages import POOL_FRAMES, StageThreads, run_loop_threaded, stage_threads
from fer_edge.runtime.tracker import FaceTracker, Hysteresis, Track, iou_matrix

from conftest import MEDIA, assert_clean_error, run_cli

HAMILTON = MEDIA / "video_hamilton_whitehouse_9s.mp4"
WOMAN = MEDIA / "video_talking_woman_15s.mp4"


def frames_of(path, n):
    cap = cv2.VideoCapture(str(path))
    out = [cap.read()[1] for _ in range(n)]
    cap.release()
    return out


def test_hysteresis_holds_a_label_until_a_margin_or_k_frames():
    h = Hysteresis(margin=0.2, frames=3)
    t = Track(0, np.zeros(4, np.float32), np.zeros(3, np.float32))
    h.step(t, np.array([0.5, 0.4, 0.1]))
    assert t.label == 0
    h.step(t, np.array([0.4, 0.5, 0.1]))  # class 1 leads by 0.1 < 0.2: held
    h.step(t, np.array([0.4, 0.5, 0.1]))
    assert t.label == 0
    h.step(t, np.array([0.4, 0.5, 0.1]))  # third frame in a row: switch
    assert t.label == 1
    h.step(t, np.array([0.75, 0.25, 0.0]))  # leads by 0.5 >= 0.2: switch at once
    assert t.label == 0
    h.step(t, np.array([0.4, 0.5, 0.1]))
    h.step(t, np.array([0.5, 0.4, 0.1]))  # the lead broke off: counting starts again
    h.step(t, np.array([0.4, 0.5, 0.1]))
    h.step(t, np.array([0.4, 0.5, 0.1]))
    assert t.label == 0
    off = Hysteresis(0.0, 1)
    off.step(t, np.array([0.4, 0.5, 0.1]))
    assert off.off and t.label == 1


def test_tracker_labels_follow_hysteresis_and_known_ids():
    tr = FaceTracker(alpha=1.0, hysteresis=Hysteresis(0.5, 4))
    box = np.array([[10, 10, 50, 50, 0.9]], np.float32)
    assert tr.update(box, np.array([[0.6, 0.4]], np.float32)) == [0] and tr.labels == [0]
    moved = box.copy()
    for _ in range(3):
        moved[0, 0] += 2
        assert tr.update(moved, np.array([[0.4, 0.6]], np.float32), ids=[0]) == [0]
        assert tr.labels == [0]  # three frames behind, lead 0.2 < 0.5
    moved[0, 0] += 2
    tr.update(moved, np.array([[0.4, 0.6]], np.float32), ids=[0])
    assert tr.labels == [1]
    np.testing.assert_allclose(tr.tracks[0].velocity, [2 * (1 - 0.5**4), 0])  # 2 px/frame, smoothed from 0


def test_roi_carry_follows_real_faces_and_reports_a_lost_one():
    det = create_detector("yunet")
    frames = frames_of(WOMAN, 6)
    boxes = det.detect(frames[0])
    assert len(boxes) == 1
    tracks = [Track(0, boxes[0, :4].copy(), np.zeros(7, np.float32), score=float(boxes[0, 4]))]
    carrier = BoxCarrier(det, "roi")
    for f in frames[1:]:
        carried, ids, lost = carrier.carry(f, tracks)
        assert not lost and ids == [0]
        full = det.detect(f)
        assert iou_matrix(carried[:, :4], full[:, :4]).max() > 0.6  # the same face as a full detection finds
        tracks[0].box[:] = carried[0, :4]
    blank = np.full_like(frames[0], 90)
    _, _, lost = carrier.carry(blank, tracks)
    assert lost  # no face in the region: the pipeline runs a full detection
    motion = BoxCarrier(det, "motion")
    tracks[0].velocity[:] = (5, -2)
    moved, _, lost = motion.carry(blank, tracks)
    assert not lost and np.allclose(moved[0, :2], tracks[0].box[:2] + (5, -2))


def test_regions_detected_in_one_mosaic_find_the_faces_one_region_at_a_time_finds():
    det = create_detector("yunet")
    photo = cv2.imread(str(MEDIA / "group_selfie_6faces.jpg"))
    full = det.detect(photo)
    assert len(full) == 6
    # 6 faces, then 11 tracks (more than one mosaic call of MOSAIC_TILES = 8): every region is still its own face
    for reps in (1, 2):
        rows = np.concatenate([full] * reps)[: 6 * reps - (reps - 1)]
        tracks = [Track(i, r[:4].copy(), np.zeros(7, np.float32), score=float(r[4])) for i, r in enumerate(rows)]
        one, ids1, lost1 = BoxCarrier(det, "roi").carry(photo, tracks)
        many, ids2, lost2 = BoxCarrier(det, "mosaic").carry(photo, tracks)
        assert not lost1 and not lost2 and ids1 == ids2 == list(range(len(rows)))
        same = np.diag(iou_matrix(one[:, :4], many[:, :4]))
        assert same.min() > 0.8, same
        assert np.diag(iou_matrix(many[:, :4], rows[:, :4])).min() > 0.5  # and each is the face it tracks
    blank = np.full_like(photo, 90)
    tracks[3].box[:] = (10, 10, 60, 60)  # one region shows nothing: reported lost
    _, _, lost = BoxCarrier(det, "mosaic").carry(np.where(np.arange(photo.shape[1])[None, :, None] < 100, blank, photo)
                                              .astype(np.uint8), tracks)
    assert lost


def test_a_face_its_region_cannot_see_is_carried_by_motion_after_two_forced_detections():
    det = create_detector("yunet")
    frame = frames_of(WOMAN, 1)[0]
    face = det.detect(frame)[0]
    blank = np.full_like(frame, 90)
    carrier = BoxCarrier(det, "roi")
    t = Track(3, face[:4].copy(), np.zeros(7, np.float32), score=float(face[4]))
    other = Track(4, face[:4].copy(), np.zeros(7, np.float32), score=float(face[4]))
    for n in (1, 2):
        _, _, lost = carrier.carry(blank, [t, other])
        assert lost  # its region shows no face: the pipeline runs a full detection at once ...
        carrier.after_full_detection([t, other])  # ... which finds it again (missed == 0)
        assert t.region_blind == n and other.region_blind == 0
    t.velocity[:] = (3, 1)
    boxes, ids, lost = carrier.carry(blank, [t])  # now carried by its motion, no full detection forced
    assert not lost and ids == [3] and np.allclose(boxes[0, :2], face[:2] + (3, 1))
    _, _, lost = carrier.carry(blank, [t, other])
    assert lost  # the other track still needs its region
    other.missed = 1  # the full detection did not find it: gone, not region-blind
    carrier.after_full_detection([t, other])
    assert other.region_blind == 0


def test_detect_every_n_carries_boxes_and_detects_at_least_every_n_frames(tiny_onnx):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                           detect_every=3)
    origins, counts = [], []
    for f in frames_of(HAMILTON, 30):
        faces = pipe.process(f)
        origins.append({x.box_from for x in faces})
        counts.append(len(faces))
    assert origins[0] == {"detected"}
    assert any(o == {"tracked"} for o in origins)
    assert 10 <= pipe.full_detections < 30  # every 3rd frame, plus any lost track
    # never more than N - 1 frames in a row without a full detection
    run = 0
    for o in origins:
        run = 0 if "detected" in o or not o else run + 1
        assert run <= 2
    assert min(counts) >= 1  # every frame has its faces
    image_pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), detect_every=5)
    img = cv2.imread(str(MEDIA / "group_selfie_6faces.jpg"))
    for _ in range(3):  # images (no tracker) always get a full detection
        assert {f.box_from for f in image_pipe.process(img)} == {"detected"}
    assert image_pipe.full_detections == 3


def test_classify_every_k_frames_staggers_faces_and_keeps_their_probabilities_in_between(tiny_onnx):
    frames = frames_of(HAMILTON, 40)
    runs = {}
    for k in (1, 2):
        pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                               detect_every=3, classify_every=k)
        runs[k] = ([pipe.process(f) for f in frames], pipe.classified)
    every, skip = runs[1][0], runs[2][0]
    faces = sum(len(f) for f in every)
    assert runs[1][1] == faces
    assert faces * 0.45 < runs[2][1] < faces * 0.7  # about half, plus each new track's first frame
    # the boxes do not depend on the classifier: the same faces, tracks and origins in both runs
    assert [[(f.box, f.track, f.box_from) for f in fr] for fr in every] == \
        [[(f.box, f.track, f.box_from) for f in fr] for fr in skip]
    last: dict[int, dict] = {}
    held = 0
    for i, fr in enumerate(skip):
        for f in fr:
            assert f.label in f.probs and abs(sum(f.probs.values()) - 1) < 1e-3
            due = f.track not in last or (i + f.track) % 2 == 0
            if not due:  # not classified this frame: the track's smoothed probabilities as they stood
                assert f.probs == last[f.track]
                held += 1
            last[f.track] = f.probs
    assert held > faces * 0.3
    with pytest.raises(ValueError):
        EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(), classify_every=0)


def test_more_faces_than_one_batch_are_all_classified(tiny_onnx):
    collage = cv2.imread(str(MEDIA / "collage_24faces_bald_guys.jpg"))
    big = np.vstack([np.hstack([collage] * 3)] * 2)  # 6 copies: ~144 faces
    big = np.hstack([big, big])  # ~288 faces, enough for several batches of 64
    pipe = EmotionPipeline(create_detector("yunet", max_side=None), load_classifier(tiny_onnx))
    faces = pipe.process(big)
    assert len(faces) > 2 * MAX_BATCH, len(faces)
    assert len({f.box for f in faces}) == len(faces)
    batch, probs = pipe.batcher.batch, pipe._probs
    again = pipe.process(big)
    assert pipe.batcher.batch is batch and pipe._probs is probs  # the buffers were kept
    for a, b in zip(faces, again):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
    # a face past the first batch is classified from its own crop, not a stale one
    boxes = pipe.detector.detect(big)
    every = pipe.classify(big, boxes).copy()
    for k in (0, MAX_BATCH + 1, len(boxes) - 1):
        np.testing.assert_allclose(pipe.classify(big, boxes[k : k + 1])[0], every[k], atol=1e-5)


def _records(path):
    return [json.loads(line) for line in open(path)]


def test_threaded_loop_writes_what_the_serial_loop_writes_in_order(tmp_path, tiny_onnx):
    out = {}
    loops = {"serial": run_loop, "threaded": run_loop_threaded,
             "overlap": lambda *a, **k: run_loop_threaded(*a, **k, overlap=True)}
    for name, loop in loops.items():
        pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                               detect_every=3)
        src = VideoSource(str(HAMILTON))
        sink = JsonlSink(tmp_path / f"{name}.jsonl")
        stats = loop(src, pipe, [sink], draw=True, max_frames=90)
        sink.close()
        src.close()
        assert stats.frames == 90
        out[name] = _records(tmp_path / f"{name}.jsonl")
    assert {r["box_from"] for r in out["serial"]} == {"detected", "tracked"}  # carried boxes and new tracks
    assert out["serial"] == out["threaded"] == out["overlap"]
    assert [r["frame"] for r in out["overlap"]] == sorted(r["frame"] for r in out["overlap"])


def test_threads_are_split_between_detector_and_classifier_only_when_stages_overlap():
    assert stage_threads(2) == StageThreads(1, 1, True)
    assert stage_threads(5) == StageThreads(3, 2, True)
    assert stage_threads(1) == StageThreads(1, 1, False)
    assert stage_threads(4, overlap=False) == StageThreads(4, 4, False)
    auto = stage_threads(None)
    assert auto.overlap == (auto.detector is not None)
    if auto.overlap:
        assert auto.detector >= auto.classifier >= 1


def test_overlapped_stages_run_side_by_side_and_keep_order(tiny_onnx):
    """Detection of frame t+1 runs while frame t is classified: classifying frame t waits until locating frame
    t+1 has begun, which a loop running the two one after another never lets happen (it would wait out the
    timeout). Structural, not timed, so a busy machine cannot fail it."""
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                           detect_every=3)
    locate, finish = pipe.locate, pipe.finish
    started = threading.Semaphore(0)  # released once per locate call
    seen, overlapped = [0], []

    def counting_locate(image):
        started.release()
        return locate(image)

    def waiting_finish(image, located):
        k = len(overlapped)
        while seen[0] < k + 2 and k < 19:  # frame t is classified: has locating frame t+1 begun?
            if not started.acquire(timeout=5):
                break
            seen[0] += 1
        overlapped.append(k == 19 or seen[0] >= k + 2)
        return finish(image, located)

    pipe.locate, pipe.finish = counting_locate, waiting_finish
    slow = _Slow(0.0)
    src = VideoSource(str(WOMAN))
    stats = run_loop_threaded(src, pipe, [slow], max_frames=20, overlap=True)
    src.close()
    assert stats.frames == 20 and slow.frames == list(range(20))
    assert all(overlapped) and len(overlapped) == 20, "locating frame t+1 did not begin while frame t was classified"
    assert stats.timings["detect"] > 0 and stats.timings["classify"] > 0 and "detect_wait" in stats.timings


def test_an_error_in_the_detect_thread_reaches_the_caller_after_the_frames_before_it(tiny_onnx):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker())
    locate, calls = pipe.locate, []

    def failing_locate(image):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("detector failed")
        return locate(image)

    pipe.locate = failing_locate
    slow = _Slow(0.0)
    src = VideoSource(str(WOMAN))
    with pytest.raises(RuntimeError, match="detector failed"):
        run_loop_threaded(src, pipe, [slow], overlap=True)
    src.close()
    assert slow.frames == list(range(7))


@pytest.mark.parametrize("overlap", [False, True])
def test_threaded_loop_reuses_a_fixed_pool_of_frames_and_does_not_grow(tiny_onnx, overlap):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                           detect_every=3)
    seen, marks = set(), {}

    class Probe:
        def write(self, frame, faces):
            seen.add(frame.image.ctypes.data)

        def close(self):
            pass

    def on_frame(stats):
        if stats.frames in (60, 240):
            marks[stats.frames] = tracemalloc.get_traced_memory()[0]

    src = VideoSource(str(WOMAN))
    tracemalloc.start()
    try:
        stats = run_loop_threaded(src, pipe, [Probe()], draw=True, max_frames=260, on_frame=on_frame,
                                  overlap=overlap)
    finally:
        tracemalloc.stop()
        src.close()
    assert stats.frames == 260
    assert len(seen) <= POOL_FRAMES, f"{len(seen)} frame buffers"
    assert marks[240] - marks[60] < 96 * 1024, f"memory grew by {marks[240] - marks[60]} bytes"


@pytest.mark.parametrize("window", [False, True])
def test_faces_are_drawn_once_in_the_writer_thread_unless_a_window_shows_them(tiny_onnx, monkeypatch, window):
    """Without a window the writer thread draws (off the detect/classify thread); with one, the caller's thread
    draws once for both. Either way every file output gets the drawn frame."""
    import threading

    import fer_edge.runtime.draw as D

    real, drawn_in = D.draw_faces, []

    def spy(image, faces, *a, **k):
        drawn_in.append(threading.current_thread().name)
        return real(image, faces, *a, **k)

    monkeypatch.setattr(D, "draw_faces", spy)
    cap = cv2.VideoCapture(str(WOMAN))
    raw = [cap.read()[1] for _ in range(12)]
    cap.release()
    changed = []

    class FileProbe:
        def write(self, frame, faces):
            changed.append(bool(faces) and bool(np.any(frame.image != raw[frame.index])))

        def close(self):
            pass

    class Window(FileProbe):
        main_thread = True

    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker())
    src = VideoSource(str(WOMAN))
    sinks = [FileProbe()] + ([Window()] if window else [])
    stats = run_loop_threaded(src, pipe, sinks, draw=True, max_frames=12)
    src.close()
    assert stats.frames == 12 and len(drawn_in) == 12
    assert set(drawn_in) == ({threading.current_thread().name} if window else {"fer-edge-write"})
    assert len(changed) == 12 * len(sinks) and all(changed)


class _Slow:
    def __init__(self, delay):
        self.delay, self.frames = delay, []

    def write(self, frame, faces):
        time.sleep(self.delay)
        self.frames.append(frame.index)

    def close(self):
        pass


@pytest.mark.parametrize("overlap", [False, True])
def test_ctrl_c_in_the_threaded_loop_keeps_every_processed_frame(tiny_onnx, overlap):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker())
    slow = _Slow(0.02)  # the writer lags behind: frames are queued when Ctrl-C comes

    def interrupt(stats):
        if stats.frames == 25:
            raise KeyboardInterrupt

    src = VideoSource(str(WOMAN))
    stats = run_loop_threaded(src, pipe, [slow], on_frame=interrupt, overlap=overlap)
    src.close()
    assert stats.interrupted and stats.frames == 25
    assert slow.frames == list(range(25))


class _FakeCamera:
    """A camera that delivers frames faster than they are processed, into buffers it is handed."""

    is_camera = True
    name = "camera:fake"
    error = None

    def __init__(self, n, period, sizes=((360, 640),)):
        self.n, self.period, self.sizes = n, period, sizes
        self.next_buffer = None

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.period)
            h, w = self.sizes[i * len(self.sizes) // self.n]
            buf = self.next_buffer() if self.next_buffer else None
            if buf is None or buf.shape != (h, w, 3):
                buf = np.empty((h, w, 3), np.uint8)
            buf[:] = i % 256
            yield Frame(buf, i, i * self.period, self.name)

    def close(self):
        pass


@pytest.mark.parametrize("overlap", [False, True])
def test_camera_keeps_only_the_newest_frame(tiny_onnx, overlap):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                           detect_every=3)
    slow = _Slow(0.0)
    orig = pipe.locate

    def slow_locate(image):
        time.sleep(0.03)
        return orig(image)

    pipe.locate = slow_locate
    stats = run_loop_threaded(_FakeCamera(60, 0.005), pipe, [slow], overlap=overlap)
    assert stats.dropped > 10 and stats.frames + stats.dropped == 60
    assert slow.frames == sorted(slow.frames) and len(slow.frames) == stats.frames
    assert slow.frames[-1] >= 55  # the last frames delivered were processed, not an old backlog


@pytest.mark.parametrize("overlap", [False, True])
def test_frame_size_change_mid_stream_and_a_source_that_stops(tiny_onnx, overlap):
    pipe = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx), tracker=FaceTracker(),
                           detect_every=3)
    cam = _FakeCamera(30, 0.0, sizes=((360, 640), (480, 320), (200, 200)))
    cam.is_camera = False  # a video: nothing dropped
    slow = _Slow(0.0)
    stats = run_loop_threaded(cam, pipe, [slow], overlap=overlap)
    assert stats.frames == 30 and slow.frames == list(range(30)) and stats.dropped == 0


@pytest.mark.parametrize("flags, fragment", [
    (["--detect-every", "0"], "--detect-every 0"),
    (["--detect-every", "-2"], "--detect-every -2"),
    (["--detect-size", "32"], "--detect-size 32"),
    (["--detect-size", "100000"], "--detect-size 100000"),
    (["--hold-frames", "0"], "--hold-frames 0"),
    (["--classify-every", "0"], "--classify-every 0"),
    (["--hold-margin", "2"], "--hold-margin 2"),
])
def test_bad_detection_flags_give_one_line_and_exit_2(tmp_path, tiny_onnx, flags, fragment):
    p = run_cli("run", "--video", str(WOMAN), "--model", str(tiny_onnx), "--json", str(tmp_path / "o.jsonl"), *flags)
    assert_clean_error(p, fragment)
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_records_say_detected_or_tracked(tmp_path, tiny_onnx):
    out, table = tmp_path / "h.jsonl", tmp_path / "h.csv"
    p = run_cli("run", "--video", str(HAMILTON), "--model", str(tiny_onnx), "--json", str(out), "--csv", str(table),
                "--max-frames", "40", "--detect-every", "4")
    assert p.returncode == 0, p.stderr
    recs = _records(out)
    assert {r["box_from"] for r in recs} == {"detected", "tracked"}
    assert "full detection on" in p.stderr
    import csv

    rows = list(csv.DictReader(open(table, newline="")))
    assert [row["box_from"] for row in rows] == [r["box_from"] for r in recs]
