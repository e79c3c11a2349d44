"""Soak test: the real run loop for N minutes on a video played in a loop, sampling resident memory.

It reports the memory slope (least-squares fit of RSS against time, after a warm-up) so that a leak shows
as a number, not a feeling. The loop is the one `fer-edge run` uses, with its sinks: JSON Lines, CSV and
(unless ``--no-video``) an annotated MP4, written to a temporary folder that is removed at the end.

    python -m fer_edge.benchmarks.soak --video ../shared/media/video_talking_woman_15s.mp4 --minutes 30 \\
        --out benchmarks/results/soak
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


def rss_mb() -> float:
    """This process's resident memory now, in MB (from /proc, else psutil)."""
    from fer_edge.benchmarks.e2e import proc_status_mb

    rss = proc_status_mb("VmRSS")
    if rss is not None:
        return rss
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class LoopedVideo:
    """A VideoSource played from the start again each time it ends, until ``seconds`` have passed."""

    def __init__(self, path: str, seconds: float):
        from fer_edge.runtime.sources import VideoSource

        self.inner = VideoSource(path)
        self.fps, self.name, self.error, self.is_camera = self.inner.fps, self.inner.name, None, False
        self.deadline = time.monotonic() + seconds
        self.passes = 0

    def __iter__(self) -> Iterator:
        from fer_edge.runtime.sources import Frame

        offset = 0
        while time.monotonic() < self.deadline:
            n = 0
            for frame in self.inner:
                yield Frame(frame.image, offset + frame.index, (offset + frame.index) / self.fps, frame.source)
                n += 1
                if time.monotonic() >= self.deadline:
                    return
            offset += n
            self.passes += 1
            self.inner.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def close(self) -> None:
        self.inner.close()


def slope_mb_per_min(samples: list[tuple[float, float]], warmup_s: float) -> float:
    """Least-squares slope of RSS (MB) against time (minutes) for the samples after ``warmup_s``."""
    pts = [(t, m) for t, m in samples if t >= warmup_s] or samples
    if len(pts) < 2:
        return 0.0
    t, m = np.array(pts).T
    return float(np.polyfit(t / 60.0, m, 1)[0])


def soak(video: str, minutes: float, model: str | None = None, detector: str = "yunet", save_video: bool = True,
         interval_s: float = 5.0, warmup_s: float = 60.0, log=print) -> dict:
    from fer_edge.runtime import sinks as sk
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.models import default_classifier_path
    from fer_edge.runtime.pipeline import EmotionPipeline, run_loop
    from fer_edge.runtime.tracker import FaceTracker

    classifier = load_classifier(model or default_classifier_path())
    pipeline = EmotionPipeline(create_detector(detector), classifier, tracker=FaceTracker())
    source = LoopedVideo(video, minutes * 60.0)
    samples: list[tuple[float, float]] = []
    frames = [0]
    t0 = time.monotonic()
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            samples.append((time.monotonic() - t0, rss_mb()))
            if len(samples) % 12 == 0:
                log(f"  {samples[-1][0] / 60:6.1f} min  {frames[0]:7d} frames  rss {samples[-1][1]:.1f} MB")
            done.wait(interval_s)

    with tempfile.TemporaryDirectory(prefix="fer-edge-soak-") as d:
        outputs = [sk.JsonlSink(Path(d) / "faces.jsonl"), sk.CsvSink(Path(d) / "faces.csv", classifier.classes)]
        if save_video:
            outputs.append(sk.VideoSink(Path(d) / "annotated.mp4", source.fps))
        th = threading.Thread(target=sampler, daemon=True)
        th.start()

        def count(stats) -> None:
            frames[0] = stats.frames

        try:
            stats = run_loop(source, pipeline, outputs, draw=True, on_frame=count)
        finally:
            for s in outputs:
                s.close()
            source.close()
            done.set()
            th.join()
        samples.append((time.monotonic() - t0, rss_mb()))
    mem = [m for _, m in samples]
    after = [m for t, m in samples if t >= warmup_s] or mem
    slope = slope_mb_per_min(samples, warmup_s)
    return {
        "video": str(video), "minutes": round((time.monotonic() - t0) / 60, 2), "frames": stats.frames,
        "faces": stats.faces, "passes": source.passes, "fps": round(stats.fps, 2), "save_video": save_video,
        "detector": detector, "classifier": classifier.path.name, "interval_s": interval_s, "warmup_s": warmup_s,
        "rss_mb": {"first": round(mem[0], 1), "after_warmup": round(after[0], 1), "last": round(mem[-1], 1),
                   "peak": round(max(mem), 1)},
        "slope_mb_per_min": round(slope, 4), "slope_mb_per_hour": round(60 * slope, 2),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}, OpenCV {cv2.__version__}",
        "samples": [(round(t, 1), round(m, 2)) for t, m in samples],
    }


def write_report(r: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    head = json.dumps({k: v for k, v in r.items() if k != "samples"}, indent=1)[:-2]
    (out / "soak.json").write_text(f'{head},\n "samples": {json.dumps(r["samples"])}\n}}\n')
    (out / "soak.md").write_text(
        f"# Soak: the run loop for {r['minutes']} min on a looped video\n\n"
        f"Command: `{command}`\n\nMachine: {r['machine']}\n\n"
        f"| frames | passes | fps | RSS first | RSS after warm-up | RSS last | RSS peak | slope |\n"
        f"|---|---|---|---|---|---|---|---|\n"
        f"| {r['frames']} | {r['passes']} | {r['fps']} | {r['rss_mb']['first']} MB | {r['rss_mb']['after_warmup']} MB "
        f"| {r['rss_mb']['last']} MB | {r['rss_mb']['peak']} MB | {r['slope_mb_per_min']} MB/min "
        f"({r['slope_mb_per_hour']} MB/h) |\n\n"
        f"Slope: least-squares fit of RSS against time for the samples after the first {r['warmup_s']:.0f} s "
        f"(one sample every {r['interval_s']:.0f} s, in soak.json). Sinks: JSON Lines, CSV"
        f"{', annotated MP4' if r['save_video'] else ''}; detector {r['detector']}, classifier {r['classifier']}.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_edge.benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("--video", required=True, help="video file, played in a loop")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--model", help="classifier (default: the shipped one)")
    p.add_argument("--detector", default="yunet", choices=("yunet", "res10"))
    p.add_argument("--no-video", action="store_true", help="no annotated MP4 sink")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between memory samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slope fit")
    p.add_argument("--out", help="folder for soak.json and soak.md")
    a = p.parse_args(argv)
    r = soak(a.video, a.minutes, a.model, a.detector, not a.no_video, a.interval, a.warmup,
             log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{r['frames']} frames in {r['minutes']} min ({r['fps']} fps); RSS {r['rss_mb']['first']} -> "
          f"{r['rss_mb']['last']} MB (peak {r['rss_mb']['peak']}); slope {r['slope_mb_per_min']} MB/min "
          f"({r['slope_mb_per_hour']} MB/h)")
    if a.out:
        write_report(r, Path(a.out), "python -m fer_edge.benchmarks.soak " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
