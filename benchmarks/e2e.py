"""End-to-end measurements: the real `fer-edge run` loop on a video, detector latency, and detection + crop
accuracy on labelled faces pasted into frames."""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.runtime.pipeline import CLASSIFY_EVERY


def proc_status_mb(key: str) -> float | None:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MB, or None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which a spawned child
    inherits from its parent at fork time), else ru_maxrss."""
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# today's loop before issue 16 and the new defaults, as `fer-edge run` flags (the benchmark runs both)
OLD_LOOP = {"detect_size": 640, "detect_every": 1, "carry": "roi", "hold": (0.0, 1), "threaded": False,
            "classify_every": 1, "engine": "opencv"}
NEW_LOOP = {"detect_size": None, "detect_every": None, "carry": None, "hold": None, "threaded": True,
            "classify_every": None, "engine": None}


def loop_flags(config: dict) -> str:
    """The `fer-edge run` flags that give ``config`` (empty for the defaults)."""
    f = []
    if config.get("detect_size") is not None:
        f.append(f"--detect-size {config['detect_size']}")
    if config.get("detect_every") is not None:
        f.append(f"--detect-every {config['detect_every']}")
    if config.get("classify_every") not in (None, CLASSIFY_EVERY):
        f.append(f"--classify-every {config['classify_every']}")
    if config.get("hold") is not None:
        f.append(f"--hold-frames {config['hold'][1]}" if config["hold"][1] == 1 else
                 f"--hold-margin {config['hold'][0]} --hold-frames {config['hold'][1]}")
    if config.get("engine") not in (None, "onnxruntime"):
        f.append(f"--detector-engine {config['engine']}")
    if not config.get("threaded", True):
        f.append("--serial")
    return " ".join(f) or "(defaults)"


def _loop_child(video: str, model: str, detector: str, threads: int | None, max_frames: int | None, q,
                config: dict | None = None) -> None:
    import cv2

    from fer_edge.runtime.carry import DEFAULT_CARRY
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.pipeline import DETECT_EVERY, EmotionPipeline, run_loop
    from fer_edge.runtime.sinks import JsonlSink, VideoSink
    from fer_edge.runtime.sources import VideoSource
    from fer_edge.runtime.stages import run_loop_threaded, stage_threads
    from fer_edge.runtime.tracker import HOLD_FRAMES, HOLD_MARGIN, FaceTracker, Hysteresis

    c = {**NEW_LOOP, **(config or {})}
    try:
        plan = stage_threads(threads, overlap=c["threaded"])  # what `fer-edge run --threads N` does
        if plan.detector:
            cv2.setNumThreads(plan.detector)
        size = -1 if c["detect_size"] is None else c["detect_size"]
        every = DETECT_EVERY if c["detect_every"] is None else c["detect_every"]
        classify_every = CLASSIFY_EVERY if c.get("classify_every") is None else c["classify_every"]
        hold = Hysteresis(*(c["hold"] or (HOLD_MARGIN, HOLD_FRAMES)))
        clf = load_classifier(model, threads=plan.classifier)
        engine = {"engine": c["engine"] or "onnxruntime", "threads": plan.detector} if detector == "yunet" else {}
        pipeline = EmotionPipeline(create_detector(detector, max_side=size, **engine), clf,
                                   tracker=FaceTracker(hysteresis=hold), detect_every=every,
                                   carry=c["carry"] or DEFAULT_CARRY,
                                   classify_every=classify_every)
        source = VideoSource(video)
        with tempfile.TemporaryDirectory() as d:
            sinks = [JsonlSink(Path(d) / "faces.jsonl"), VideoSink(Path(d) / "annotated.mp4", source.fps)]
            if c["threaded"]:
                stats = run_loop_threaded(source, pipeline, sinks, draw=True, max_frames=max_frames,
                                          overlap=plan.overlap)
            else:
                stats = run_loop(source, pipeline, sinks, draw=True, max_frames=max_frames)
            for s in sinks:
                s.close()
        source.close()
        n = max(stats.frames, 1)
        t = stats.timings
        # loop overhead: the part of the frame time the main thread spends neither detecting nor classifying
        # (decode, track, drawing and outputs when serial; waiting for a frame, track and handing over when threaded);
        # with detection in its own thread: track and handing over, plus the detect thread's wait for decoded frames
        if "detect_wait" in t:
            overhead = t["track"] + t["handoff"] + t["detect_wait"]
        else:
            overhead = stats.seconds - t["detect"] - t["classify"]
        q.put({"frames": stats.frames, "faces": stats.faces, "seconds": stats.seconds, "fps": stats.fps,
               "faces_per_frame": stats.faces / n, "full_detections": pipeline.full_detections,
               "stage_ms": {k: 1e3 * v / n for k, v in t.items()}, "overhead_ms": 1e3 * overhead / n,
               "overhead_share": overhead / max(stats.seconds, 1e-9), "peak_rss_mb": peak_rss_mb()})
    except Exception as e:  # reported, not raised: the parent prints one line
        q.put({"error": f"{type(e).__name__}: {e}"})


def run_loop_fps(video: str, model: str, detector: str = "yunet", threads: int | None = None,
                 max_frames: int | None = None, config: dict | None = None) -> dict[str, Any]:
    """FPS, per-stage split and peak resident memory of the run loop (``config``: OLD_LOOP, NEW_LOOP or a
    variation), in a fresh process of its own. It writes JSON Lines and an annotated video, as
    `fer-edge run --json F --save V` does."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_loop_child, args=(video, model, detector, threads, max_frames, q, config))
    p.start()
    result = q.get(timeout=1800)
    p.join()
    return result


def compare_loops(videos: list[str], model: str, threads_list: list[int | None], rounds: int,
                  max_frames: int | None, log) -> list[dict[str, Any]]:
    """Old and new loop on every video and thread count, alternating round by round; per (video, threads) the
    median fps of each and the median of the per-round ratios new / old."""
    runs: dict[tuple, list] = {}
    for r in range(rounds):
        for v in videos:
            for th in threads_list:
                for name, cfg in (("old", OLD_LOOP), ("new", NEW_LOOP)):
                    res = run_loop_fps(v, model, "yunet", th, max_frames, cfg)
                    if "error" in res:
                        raise RuntimeError(f"end-to-end run on {v} failed: {res['error']}")
                    runs.setdefault((v, th, name), []).append(res)
                    log(f"  round {r + 1}/{rounds} {Path(v).name} threads {th or 'all'} {name}: {res['fps']:.1f} fps")
    out = []
    for v in videos:
        for th in threads_list:
            old, new = runs[(v, th, "old")], runs[(v, th, "new")]
            ratios = [b["fps"] / a["fps"] for a, b in zip(old, new)]
            entry = {"video": v, "threads": th, "rounds": rounds, "speedup": float(np.median(ratios)),
                     "speedups": ratios}
            for name, rs in (("old", old), ("new", new)):
                best = sorted(rs, key=lambda x: x["fps"])[len(rs) // 2]  # the median run, with its stage split
                entry[name] = {**best, "fps": float(np.median([x["fps"] for x in rs])),
                               "flags": loop_flags(OLD_LOOP if name == "old" else NEW_LOOP)}
            out.append(entry)
    return out


def detector_latency(detector: str, frames: list[np.ndarray], rounds: int = 3, max_side: int | None = -1,
                     engine: str | None = None, threads: int | None = None) -> dict[str, float]:
    """Median and p90 ms per frame of ``detector`` (at the size `run` uses unless ``max_side`` is given; YuNet in
    ``engine``, its ONNX Runtime engine with ``threads``)."""
    from fer_edge.runtime.detectors import create_detector

    det = create_detector(detector, max_side=max_side, **({"engine": engine, "threads": threads} if engine else {}))
    for f in frames[:5]:
        det.detect(f)
    times = []
    for _ in range(rounds):
        for f in frames:
            t = time.perf_counter()
            det.detect(f)
            times.append(time.perf_counter() - t)
    t = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "frames": len(frames),
            "frame_size": list(frames[0].shape[:2])}


def read_frames(video: str, n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def paste_backgrounds(media: Path | None) -> list[np.ndarray]:
    """The photos that labelled faces are pasted on (``media/voc_*.jpg``); one plain gray frame when there are none."""
    import cv2

    bgs = [cv2.imread(str(p)) for p in sorted(media.glob("voc_*.jpg"))] if media else []
    return [b for b in bgs if b is not None] or [np.full((480, 640, 3), 90, np.uint8)]


def paste_faces(faces: np.ndarray, backgrounds: list[np.ndarray], per_frame: int = 4, seed: int = 0,
                size: tuple[int, int] = (480, 640)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames with labelled gray faces pasted on blurred photo backgrounds: 2x2 grid cells, each face
    padded by a reflected border (the face needs some context to be detected) and upscaled to 100-180 px.

    Returns the frames and, per frame, the (k, 5) rows [x, y, w, h, face index] of the pasted faces (the box
    of the original 48x48 crop, without the padding)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    frames, truth = [], []
    cells = [(0, 0), (0, 1), (1, 0), (1, 1)][:per_frame]
    for start in range(0, len(faces), per_frame):
        bg = backgrounds[(start // per_frame) % len(backgrounds)]
        y0 = rng.integers(0, max(1, bg.shape[0] - h)) if bg.shape[0] > h else 0
        x0 = rng.integers(0, max(1, bg.shape[1] - w)) if bg.shape[1] > w else 0
        frame = cv2.resize(bg[y0 : y0 + h, x0 : x0 + w], (w, h))
        frame = cv2.GaussianBlur(frame, (0, 0), 8)
        rows = []
        for k, (cy, cx) in enumerate(cells):
            idx = start + k
            if idx >= len(faces):
                break
            face = faces[idx]
            side = int(rng.integers(100, 181))
            pad = face.shape[0] // 4
            padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REFLECT)
            big_side = round(side * padded.shape[0] / face.shape[0])
            big = cv2.resize(padded, (big_side, big_side), interpolation=cv2.INTER_CUBIC)
            big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
            cell_h, cell_w = h // 2, w // 2
            oy = cy * cell_h + int(rng.integers(0, max(1, cell_h - big_side)))
            ox = cx * cell_w + int(rng.integers(0, max(1, cell_w - big_side)))
            bh, bw = min(big_side, h - oy), min(big_side, w - ox)
            frame[oy : oy + bh, ox : ox + bw] = big[:bh, :bw]
            off = round(pad * side / face.shape[0])
            rows.append([ox + off, oy + off, side, side, idx])
        frames.append(frame)
        truth.append(np.asarray(rows, np.float32))
    return frames, truth


def detected_crops(frames, truth, detector: str, iou_min: float = 0.3, max_side: int | None = -1):
    """Run the detector on pasted-face frames; per matched face: (frame index, detector box, face index)."""
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.tracker import iou_matrix

    det = create_detector(detector, max_side=max_side)
    matches = []
    total = 0
    for fi, (frame, gt) in enumerate(zip(frames, truth)):
        total += len(gt)
        boxes = det.detect(frame)
        if len(boxes) == 0 or len(gt) == 0:
            continue
        iou = iou_matrix(gt[:, :4], boxes[:, :4])
        used = set()
        for gi in np.argsort(-iou.max(axis=1)):
            j = int(iou[gi].argmax())
            if iou[gi, j] >= iou_min and j not in used:
                used.add(j)
                matches.append((fi, boxes[j], int(gt[gi, 4])))
    return matches, total


def classify_matches(classifier, frames, matches) -> np.ndarray:
    """Predicted class per matched face, cropped exactly as `fer-edge run` crops it."""
    from fer_edge.runtime.preprocess import FaceBatcher, crop_regions

    batcher = FaceBatcher(classifier.meta, max_faces=1)
    preds = np.empty(len(matches), np.int64)
    for i, (fi, box, _) in enumerate(matches):
        frame = frames[fi]
        rect = crop_regions(box[None], batcher.margin, frame.shape[1], frame.shape[0])
        preds[i] = int(classifier.predict(batcher(frame, rect)).argmax())
    return preds

