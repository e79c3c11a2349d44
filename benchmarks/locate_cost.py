"""What locating faces costs: YuNet per call in each engine (whole frames and the small regions the run loop
re-detects in), and the run loop's locate step (full detections + carried boxes + tracking) per carry mode.

One inference thread, settings alternating pass by pass in one process (this machine's speed drifts by ±10%
between runs, so only ratios within a run mean anything)::

    python -m fer_edge.benchmarks.locate_cost --out benchmarks/results/locate-cost
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

VIDEO = "video_hamilton_whitehouse_9s.mp4"


def engine_calls(frames: list[np.ndarray], passes: int) -> list[dict]:
    """ms per YuNet call, ONNX Runtime vs OpenCV, on 480 px frames and on 96 px regions (1 and 3 in a row)."""
    import cv2

    from fer_edge.runtime.detectors import create_detector

    h, w = frames[0].shape[:2]
    s = 480 / max(h, w)
    small = [cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) for f in frames[::5]]
    face = create_detector("yunet", engine="opencv").detect(frames[0])[0]
    x, y, bw, bh = (int(v) for v in face[:4])
    region = cv2.resize(frames[0][max(0, y - bh // 2) : y + 3 * bh // 2, max(0, x - bw // 2) : x + 3 * bw // 2],
                        (96, 96))
    inputs = {"frame 480 px": small, "one 96 px region": [region],
              "three 96 px regions in a row": [np.hstack([region] * 3)]}
    rows = []
    for what, imgs in inputs.items():
        dets = {e: create_detector("yunet", engine=e, threads=1, max_side=None, min_face=0, score_threshold=0.5)
                for e in ("onnxruntime", "opencv")}
        times: dict[str, list[float]] = {e: [] for e in dets}
        reps = max(1, 60 // len(imgs))
        for _ in range(passes):
            for e, d in dets.items():
                for img in imgs[:3]:
                    d.detect(img)  # warm-up
                t = time.perf_counter()
                for _ in range(reps):
                    for img in imgs:
                        d.detect(img)
                times[e].append(1e3 * (time.perf_counter() - t) / (reps * len(imgs)))
        ratios = [a / b for a, b in zip(times["onnxruntime"], times["opencv"])]
        rows.append({"input": what, "onnxruntime_ms": float(np.median(times["onnxruntime"])),
                     "opencv_ms": float(np.median(times["opencv"])), "ratio": float(np.median(ratios)),
                     "ratios": ratios})
        print(rows[-1], flush=True)
    return rows


def locate_per_frame(frames: list[np.ndarray], passes: int, modes: tuple[str, ...]) -> list[dict]:
    """ms per frame of ``EmotionPipeline.locate`` over the whole video, every carry mode, alternating."""
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.detectors import create_detector
    from fer_edge.runtime.models import default_classifier_path
    from fer_edge.runtime.pipeline import DETECT_EVERY, EmotionPipeline
    from fer_edge.runtime.tracker import FaceTracker

    clf = load_classifier(default_classifier_path(), threads=1)  # never called: locate() does not classify
    times: dict[str, list[float]] = {m: [] for m in modes}
    full: dict[str, int] = {}
    for _ in range(passes):
        for m in modes:
            pipe = EmotionPipeline(create_detector("yunet", threads=1), clf, tracker=FaceTracker(),
                                   detect_every=DETECT_EVERY, carry=m)
            t = time.perf_counter()
            for f in frames:
                pipe.locate(f)
            times[m].append(1e3 * (time.perf_counter() - t) / len(frames))
            full[m] = pipe.full_detections
    base = modes[0]
    rows = []
    for m in modes:
        ratios = [a / b for a, b in zip(times[m], times[base])]
        rows.append({"carry": m, "ms_per_frame": float(np.median(times[m])), "passes_ms": times[m],
                     f"ratio_to_{base}": float(np.median(ratios)), "ratios": ratios, "full_detections": full[m],
                     "frames": len(frames)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    import cv2

    from fer_edge.machine import machine_summary

    from .e2e import read_frames
    from .sweep_detect import shared

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/locate-cost")
    ap.add_argument("--passes", type=int, default=10)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    frames = read_frames(str(shared() / "media" / VIDEO), 10**6)
    engines = engine_calls(frames, args.passes)
    modes = ("roi", "mosaic", "motion")
    locate = locate_per_frame(frames, args.passes, modes)
    m = machine_summary(1)
    report = {"command": f"python -m fer_edge.benchmarks.locate_cost --out {args.out} --passes {args.passes}",
              "machine": m, "video": VIDEO, "engines": engines, "locate": locate}
    lines = ["# What locating faces costs", "", f"- command: `{report['command']}`",
             f"- machine: {m['cpu']} ({m['arch']}), {m['cores']} cores, one thread; ISA: {m['isa']}",
             f"- video: {VIDEO} ({len(frames)} frames); medians of {args.passes} alternating passes", "",
             "## YuNet per call", "", "| input | ONNX Runtime ms | OpenCV ms | ratio (median of passes) |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['input']} | {r['onnxruntime_ms']:.2f} | {r['opencv_ms']:.2f} | {r['ratio']:.2f} |"
              for r in engines]
    lines += ["", "## The run loop's locate step per frame (full detection every "
              "3rd frame, carried boxes in between, tracking; YuNet in ONNX Runtime)", "",
              "| carry | ms per frame | ratio to roi (median of passes; range) | frames with full detection |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['carry']} | {r['ms_per_frame']:.2f} | {r['ratio_to_roi']:.2f} ({min(r['ratios']):.2f}-"
              f"{max(r['ratios']):.2f}) | {r['full_detections']} / {r['frames']} |" for r in locate]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "locate_cost.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "locate_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
