"""Raspberry Pi frame rates, estimated: guest instructions per stage counted under qemu-user, scaled by published
Raspberry Pi 4 timings of YuNet. An estimate until someone measures on hardware.

Basis. ``python -m fer_edge.benchmarks.pi_estimate count`` runs each stage of ``fer-edge run`` (decode, YuNet at
several detect sizes, the crop + INT8 classifier for one face, the whole default frame) a few times on one thread,
with a marker system call between stages that the qemu plugin ``tests/aarch64/insncount.c`` turns into instruction
counts (``tests/aarch64/check.py --count-instructions`` drives it, as a Cortex-A72 and a Cortex-A76). Published Pi 4
YuNet timings turn instructions into milliseconds: one thread at 320x320 gives nanoseconds per instruction, the
4-thread timing of the same size gives OpenCV's multi-thread speed-up on the Pi 4, and the 160x120 timing is a
cross-check of instruction scaling across sizes. The assumption that fails first: other code (ONNX Runtime's INT8
kernels, image resizing, Python) retires instructions at a different rate than YuNet's convolutions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

# Published Raspberry Pi 4 (BCM2711, 4x Cortex-A72 at 1.5 GHz) timings of YuNet (face_detection_yunet_2023mar).
ANCHORS = {
    "yunet_320x320_1t_ms": (56.5, "TonyCongqianWang/cv_facedetection_eval time_comparison_pi.md: Raspberry Pi 4, "
                            "yunet 320x320, 1 thread, 54.4-58.7 ms over its test images (midpoint)"),
    "yunet_320x320_4t_ms": (35.0, "same table, 4 threads: 33.0-37.1 ms (midpoint); opencv_zoo quotes about 35 ms"),
    "yunet_160x120_4t_ms": (6.22, "opencv_zoo README benchmark table, RPI-CPU column (Raspberry Pi 4B, 4 threads)"),
}

# Instruction counts per call (guest instructions, one thread) from
# benchmarks/results/aarch64-instructions/instructions.json, written by `tests/aarch64/check.py --count-instructions`
# (the shipped models of 2026-12-03); tests/test_pi_estimate.py checks the two agree.
COUNTS: dict[str, dict[str, float]] = {
    "cortex-a72": {
        "yunet_160x120": 16400217, "yunet_320x320": 70888429, "decode": 4626702, "detect_640": 139351885,
        "detect_480": 107209768, "detect_320": 53705708, "detect_256": 38630421, "detect_160": 19625702,
        "classify_1_face": 38903424, "frame_default": 178365713, "carry_1_face": 10728689,
        "classify_fast_1_face": 16671394, "default_detect_side": 608,
    },
    "cortex-a76": {
        "yunet_160x120": 16392043, "yunet_320x320": 70879044, "decode": 5149461, "detect_640": 139340051,
        "detect_480": 107202594, "detect_320": 53698424, "detect_256": 38624004, "detect_160": 19623014,
        "classify_1_face": 14643089, "frame_default": 154111478, "carry_1_face": 10721202,
        "classify_fast_1_face": 7203824, "default_detect_side": 608,
    },
}

# the frame the counts are of (video_talking_woman_15s.mp4): any detect size from its longest side up runs YuNet on
# the full frame, the same work as the counted detect_640
COUNTED_FRAME_LONG_SIDE = 596

MARK_BASE = 0x5FE0000000
STAGES = ("yunet_160x120", "yunet_320x320", "decode", "detect_640", "detect_480", "detect_320", "detect_256",
          "detect_160", "classify_1_face", "frame_default", "carry_1_face", "classify_fast_1_face")


# the stage whose count charges each shipped model's classification of one face
CLASSIFY_STAGE = {"accurate": "classify_1_face", "fast": "classify_fast_1_face"}


def mark(k: int) -> None:
    """Tell the counting plugin that stage boundary ``k`` is here (a failing lseek on fd -1; nothing else)."""
    try:
        os.lseek(-1, MARK_BASE + k, 0)
    except OSError:
        pass


def count(video: str, yunet: str, reps: int, out: str | None) -> dict[str, Any]:
    """Run every stage ``reps`` times between markers (one thread; a warm-up call before each)."""
    import cv2
    import numpy as np

    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.detectors import YuNetDetector
    from fer_edge.runtime.models import default_classifier_path
    from fer_edge.runtime.pipeline import EmotionPipeline
    from fer_edge.runtime.preprocess import crop_regions

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(video)
    ok, frame = cap.read()
    if not ok:
        raise SystemExit(f"cannot read {video}")
    clf = load_classifier(default_classifier_path(), threads=1)
    plan: list[tuple[str, Any]] = []
    for w, h in ((160, 120), (320, 320)):
        net = cv2.FaceDetectorYN.create(yunet, "", (w, h), 0.7, 0.3, 5000)
        img = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        plan.append((f"yunet_{w}x{h}", lambda net=net, img=img: net.detect(img)))
    buf = frame.copy()
    plan.append(("decode", lambda: cap.read(buf)))
    for side in (640, 480, 320, 256, 160):
        det = YuNetDetector(yunet, "opencv", max_side=side)  # the engine the published Pi timings are of
        plan.append((f"detect_{side}", lambda det=det: det.detect(frame)))
    det = YuNetDetector(yunet, "opencv")
    boxes = det.detect(frame)
    pipe = EmotionPipeline(det, clf)
    rects = crop_regions(boxes[:1], pipe.batcher.margin, frame.shape[1], frame.shape[0])
    plan.append(("classify_1_face", lambda: clf.predict(pipe.batcher(frame, rects))))
    plan.append(("frame_default", lambda: pipe.process(frame)))
    # a frame between two full detections (--detect-every > 1): the track's box re-detected in a small region
    from fer_edge.runtime.carry import BoxCarrier
    from fer_edge.runtime.tracker import FaceTracker

    tracker = FaceTracker()
    tracker.update(boxes[:1], clf.predict(pipe.batcher(frame, rects))[:1].copy())
    carrier = BoxCarrier(det, "roi")
    plan.append(("carry_1_face", lambda: carrier.carry(frame, tracker.live())))
    # the same face through `--model fast` (its own input size and crop margin)
    from fer_edge.runtime.models import classifier_path

    fast = load_classifier(classifier_path("fast"), threads=1)
    pipe_fast = EmotionPipeline(det, fast)
    rects_fast = crop_regions(boxes[:1], pipe_fast.batcher.margin, frame.shape[1], frame.shape[0])
    plan.append(("classify_fast_1_face", lambda: fast.predict(pipe_fast.batcher(frame, rects_fast))))
    result = {"stages": [name for name, _ in plan], "reps": reps, "faces_in_frame": int(len(boxes)),
              "default_detect_side": det.max_side,
              "frame": list(frame.shape), "video": Path(video).name, "arch": platform.machine(),
              "qemu_cpu": os.environ.get("QEMU_CPU", ""), "opencv": cv2.__version__, "numpy": np.__version__}
    for k, (_, fn) in enumerate(plan):
        fn()  # warm-up: first-call allocations and kernel selection are not per-frame costs
        mark(2 * k)
        for _ in range(reps):
            fn()
        mark(2 * k + 1)
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
    return result


def per_call(marks: dict[int, int], stages: list[str], reps: int) -> dict[str, float]:
    """Instructions per call of each stage from the plugin's marker counts."""
    return {s: (marks[2 * k + 1] - marks[2 * k]) / reps for k, s in enumerate(stages)}


def read_marks(path: str | Path) -> dict[int, int]:
    marks = {}
    for line in Path(path).read_text().splitlines():
        a, b = line.split()
        if a != "total":
            marks[int(a)] = int(b)
    return marks


def detect_count(counts: dict[str, float], side: int) -> float:
    """Instructions of one full detection at ``side``: counted, or the full frame's (detect_640) when ``side`` is at
    least the counted frame's longest side (frames are only ever scaled down)."""
    if f"detect_{side}" in counts:
        return counts[f"detect_{side}"]
    if side >= COUNTED_FRAME_LONG_SIDE:
        return counts["detect_640"]
    raise KeyError(f"no instruction count for --detect-size {side} (counted: 640, 480, 320, 256, 160)")


def estimate(counts: dict[str, float], detect_side: int = 640, faces: int = 1, detect_every: int = 1,
             model: str = "accurate") -> dict[str, float]:
    """Pi 4 milliseconds per frame by stage and the frame rate, from Cortex-A72 instruction counts; ``model``:
    the shipped classifier charged per face (``accurate``, the default, or ``fast``).

    Detection runs on OpenCV's 4 threads (the Pi's cores), scaled by YuNet's published 4-thread speed-up; the
    classifier and the rest are charged at one thread (ONNX Runtime gains little from threads on one 48x48
    face). Decoding is left out: the camera delivers raw frames."""
    ns_per_insn = ANCHORS["yunet_320x320_1t_ms"][0] * 1e6 / counts["yunet_320x320"]
    speedup4 = ANCHORS["yunet_320x320_1t_ms"][0] / ANCHORS["yunet_320x320_4t_ms"][0]
    ms = {
        "detect": detect_count(counts, detect_side) * ns_per_insn / 1e6 / speedup4 / detect_every,
        "classify": counts[CLASSIFY_STAGE[model]] * ns_per_insn / 1e6 * faces,
    }
    if detect_every > 1:
        # the frames in between re-detect each face in a small region (one thread): not counted before carry_1_face
        ms["carry"] = counts.get("carry_1_face", 0.0) * ns_per_insn / 1e6 * faces * (detect_every - 1) / detect_every
    # the frame's own bookkeeping (face records, tracking-free image path): what process() adds beyond the two
    side = int(counts.get("default_detect_side", 640))
    rest = counts["frame_default"] - detect_count(counts, side) - counts["classify_1_face"]
    ms["rest"] = max(rest, 0.0) * ns_per_insn / 1e6
    ms["total"] = sum(ms.values())
    ms["fps"] = 1000.0 / ms["total"]
    ms["ns_per_insn"] = ns_per_insn
    ms["speedup_4_threads"] = speedup4
    ms["check_160x120_ms"] = counts["yunet_160x120"] * ns_per_insn / 1e6 / speedup4
    return ms


def estimate_lines(counts: dict[str, dict[str, float]] | None = None) -> list[str]:
    """The estimate's inputs and results as text lines (printed by `fer-edge benchmark` on aarch64)."""
    counts = counts if counts is not None else COUNTS
    lines = ["Raspberry Pi 4 estimate (not a measurement): instructions counted under qemu-user, scaled by "
             "published Pi 4 YuNet timings"]
    for k, (v, src) in ANCHORS.items():
        lines.append(f"  anchor {k} = {v} ms ({src})")
    a72 = counts.get("cortex-a72")
    if not a72:
        return lines + ["  no instruction counts recorded (tests/aarch64/check.py --count-instructions)"]
    for cpu, c in counts.items():
        lines.append(f"  {cpu} instructions per call: " + ", ".join(f"{s} {c[s] / 1e6:.1f}M" for s in STAGES
                                                                       if s in c))
    e = estimate(a72)
    lines.append(f"  scale: {e['ns_per_insn']:.3f} ns per instruction (1 thread), YuNet 4-thread speed-up "
                 f"{e['speedup_4_threads']:.2f}x; cross-check: YuNet 160x120 estimated {e['check_160x120_ms']:.1f} "
                 f"ms vs {ANCHORS['yunet_160x120_4t_ms'][0]} ms published")
    if "carry_1_face" not in a72:
        lines.append("  (no carry_1_face count: the region re-detection of --detect-every frames is left out)")
    models = [m for m, stage in CLASSIFY_STAGE.items() if stage in a72]
    for side in (640, 608, 480, 320, 256):
        for every in (1, 3):
            for faces in (1, 3):
                for model in models:
                    x = estimate(a72, side, faces, every, model)
                    carry = f" + carry {x['carry']:.1f}" if "carry" in x else ""
                    lines.append(f"  --detect-size {side} --detect-every {every}, {faces} face(s), {model}: "
                                 f"detect {x['detect']:.1f} + classify {x['classify']:.1f}{carry} + rest "
                                 f"{x['rest']:.1f} ms = {x['fps']:.1f} fps")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.benchmarks.pi_estimate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", help="run the stages between markers (under the counting qemu plugin)")
    c.add_argument("--video", required=True)
    c.add_argument("--yunet", required=True)
    c.add_argument("--reps", type=int, default=5)
    c.add_argument("--out")
    sub.add_parser("show", help="print the estimate from the recorded counts")
    args = ap.parse_args(argv)
    if args.cmd == "count":
        count(args.video, args.yunet, args.reps, args.out)
    else:
        print("\n".join(estimate_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
