"""Batch-1 latency of untrained student candidates in both INT8 forms, against fer's classifier, in one run.

Weights do not change an INT8 network's latency, so candidates are measured before any of them is trained
(issue: "design for latency, not FLOPs"). Each candidate is a random-weight checkpoint written by the training
code, exported by ``fer-edge export`` (ONNX INT8 for ONNX Runtime / Arm, OpenVINO INT8 for x86), then timed in
interleaved rounds with fer's TFLite model (``--peer-fer``), at 1 and 2 threads::

    python -m fer_edge.benchmarks.student_candidates --peer-fer PATH --out benchmarks/results/student-candidates
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# name -> (preset or timm name, input size, extra model kwargs)
CANDIDATES: dict[str, tuple[str, int, dict]] = {
    "cnn-tiny-48": ("cnn", 48, {"widths": (32, 64, 128, 256), "hidden": 128}),
    "cnn-tiny-40": ("cnn", 40, {"widths": (32, 64, 128, 256), "hidden": 128}),
    "cnn-tiny2-48": ("cnn", 48, {"widths": (32, 64, 128, 256), "convs_per_block": 2, "hidden": 128}),
    "cnn-48": ("cnn", 48, {}),
    "cnn-tiny-64": ("cnn", 64, {"widths": (32, 64, 128, 256), "hidden": 128}),
    # twice the depth at about the same MACs: two 3x3 convs per stage, half the widths
    "cnn-narrow2-40": ("cnn", 40, {"widths": (16, 32, 64, 128), "convs_per_block": 2, "hidden": 128}),
    "cnn-mid2-40": ("cnn", 40, {"widths": (24, 48, 96, 192), "convs_per_block": 2, "hidden": 128}),
    # around the shipped `fast` (the cnn-fast preset = cnn-narrow2-40 with dropout): larger input, a third conv
    # per stage, wider stages at 48 px
    "cnn-narrow2-48": ("cnn", 48, {"widths": (16, 32, 64, 128), "convs_per_block": 2, "hidden": 128}),
    "cnn-narrow3-40": ("cnn", 40, {"widths": (16, 32, 64, 128), "convs_per_block": 3, "hidden": 128}),
    "cnn-mid2-48": ("cnn", 48, {"widths": (24, 48, 96, 192), "convs_per_block": 2, "hidden": 128}),
    # for `accurate` (time it against the shipped 96 px MobileNetV2 with --reference): a half-width VGG, the VGG itself
    "vgg-half-48": ("vgg", 48, {"widths": (32, 64, 128, 256), "hidden": 512}),
    "vgg-48": ("vgg", 48, {}),
    # between the two, for a wider `accurate` within today's default's time: 0.625 and 0.75 of the VGG's widths
    "vgg-5q-48": ("vgg", 48, {"widths": (40, 80, 160, 320), "hidden": 512}),
    "vgg-3q-48": ("vgg", 48, {"widths": (48, 96, 192, 384), "hidden": 512}),
}


def write_checkpoint(path: Path, preset: str, size: int, extra: dict) -> None:
    import torch

    from fer_edge.classes import EMOTIONS
    from fer_edge.train.checkpoint import FORMAT, make_model_card, save_checkpoint
    from fer_edge.train.models import build_model, model_kwargs_for

    torch.manual_seed(0)
    kw = {**model_kwargs_for(preset, len(EMOTIONS), 1, size), **extra}
    model = build_model(kw).eval()
    card = make_model_card(classes=EMOTIONS, input_size=(size, size), channels=1, mean=0.5, std=0.25,
                           arch=kw["arch"], fingerprint="untrained", metrics={}, command=["student_candidates"])
    save_checkpoint(path, {"format": FORMAT, "state_dict": model.state_dict(), "arch": kw["arch"],
                           "model_kwargs": kw, "model_card": card, "epoch": 0})


def export(ckpt: Path, fmt: str, out: Path, name: str, data: str, calibration: str) -> Path:
    cmd = [sys.executable, "-m", "fer_edge", "export", str(ckpt), "--format", fmt, "--quantize", "int8",
           "--calibration", calibration, "--data", data, "--val-limit", "64", "--out", str(out), "--name", name]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"export of {name} ({fmt}) failed: {r.stderr.strip().splitlines()[-1]}")
    return out / (f"{name}_int8.onnx" if fmt == "onnx" else f"{name}_int8.xml")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-fer", required=True, metavar="TFLITE")
    ap.add_argument("--data", default="../shared/datasets/fer2013/val")
    ap.add_argument("--calibration", default="calibration_data/fer2013_train_301.json")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--only", nargs="*", choices=tuple(CANDIDATES), help="a subset of the candidates")
    ap.add_argument("--reference", nargs="*", default=[], metavar="MODEL",
                    help="exported models (.onnx / .xml) timed in the same rounds, for example the shipped "
                         "fer_edge/assets/accurate_int8.xml and .onnx")
    ap.add_argument("--out", default="benchmarks/results/student-candidates")
    a = ap.parse_args(argv)

    from fer_edge.benchmarks.peers import FerPeer
    from fer_edge.benchmarks.timing import interleaved_latency
    from fer_edge.classes import EMOTIONS
    from fer_edge.machine import machine_summary
    from fer_edge.runtime.classifier import load_classifier

    FerPeer(a.peer_fer, EMOTIONS, 1)  # a missing or unreadable peer file stops here, before any export
    for ref in a.reference:
        load_classifier(ref, threads=1)  # and so does a missing or unreadable reference model
    names = a.only or list(CANDIDATES)
    work = Path(tempfile.mkdtemp(prefix="fer-edge-candidates-"))
    artifacts: dict[str, dict[str, Path]] = {}
    for n in names:
        preset, size, extra = CANDIDATES[n]
        ck = work / f"{n}.pt"
        write_checkpoint(ck, preset, size, extra)
        artifacts[n] = {fmt: export(ck, fmt, work / n, n.replace("-", "_"), a.data, a.calibration)
                        for fmt in ("onnx", "openvino")}
        print(f"exported {n}", file=sys.stderr, flush=True)
    rows = []
    for threads in (1, 2):
        peer = FerPeer(a.peer_fer, EMOTIONS, threads)
        subjects = [("fer 25.10.3 TFLite INT8", peer.predict, peer.inputs(np.zeros((1, 48, 48), np.uint8)))]
        labelled = [(f"{n} ", path) for n in names for path in artifacts[n].values()]
        labelled += [(f"reference {Path(ref).name} ", Path(ref)) for ref in a.reference]
        for label, path in labelled:
            clf = load_classifier(path, threads=threads)
            h, w = clf.meta.input_size
            c = clf.meta.channels
            subjects.append((f"{label}{clf.backend} INT8", clf.predict, np.zeros((1, c, h, w), np.float32)))
        times = interleaved_latency([s[1] for s in subjects], [s[2] for s in subjects], a.rounds, a.calls)
        fer_ms = float(np.median(times[0]) * 1e3)
        for (label, _, _), t in zip(subjects, times):
            ms = float(np.median(t) * 1e3)
            rows.append({"threads": threads, "model": label, "ms_per_face": ms, "ratio_to_fer": ms / fer_ms})
            print(f"{threads} thread(s) | {label}: {ms:.3f} ms ({ms / fer_ms:.2f}x fer)", file=sys.stderr)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    m = machine_summary(2)
    report = {"command": "python -m fer_edge.benchmarks.student_candidates " + " ".join(argv or sys.argv[1:]),
              "machine": m, "candidates": {n: {"preset": CANDIDATES[n][0], "input_size": CANDIDATES[n][1],
                                                "kwargs": CANDIDATES[n][2]} for n in names}, "rows": rows}
    (out / "candidates.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Untrained student candidates: batch-1 latency against fer's classifier", "",
             f"- command: `{report['command']}`",
             f"- machine: {m['cpu']} ({m['arch']}), {m['cores']} cores; ISA: {m['isa']}",
             "- median of interleaved rounds; ratio = ms/face divided by fer's in the same run and thread count", "",
             "| threads | model | ms/face | / fer's |", "| ---: | --- | ---: | ---: |"]
    lines += [f"| {r['threads']} | {r['model']} | {r['ms_per_face']:.3f} | {r['ratio_to_fer']:.2f}x |" for r in rows]
    (out / "candidates.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'candidates.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from fer_edge.runtime.errors import FerEdgeError

    try:
        sys.exit(main())
    except FerEdgeError as e:
        print(f"fer-edge: {e}", file=sys.stderr)
        sys.exit(2)
