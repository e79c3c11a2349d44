"""The speed/accuracy frontier of the shipped classifiers against fer's, in one run.

For each model (shipped names or files) and fer's TFLite classifier: accuracy and macro-F1 on a labelled split,
then batch-1 latency at each thread count in interleaved rounds, as ratios to fer's in the same round set.

    python -m fer_edge.benchmarks.frontier accurate fast --peer-fer PATH --threads 1 2 \\
        --out benchmarks/results/frontier
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fer_edge.runtime.errors import FerEdgeError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.benchmarks.frontier", description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="shipped model names (accurate, fast) or .onnx / .xml files")
    ap.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime"], choices=("openvino", "onnxruntime"))
    ap.add_argument("--peer-fer", help="fer's emotion_model_quantized.tflite (default location: see benchmark)")
    ap.add_argument("--data", default=str(Path("..") / "shared" / "datasets" / "fer2013" / "val"))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--out", default="benchmarks/results/frontier")
    a = ap.parse_args(argv)
    try:
        return _run(a)
    except FerEdgeError as e:
        print(f"fer-edge: {e}", file=sys.stderr)
        return 2


def _run(a) -> int:
    from fer_edge.classes import EMOTIONS
    from fer_edge.data import resolve_eval_data
    from fer_edge.evaluate import predict_faces
    from fer_edge.machine import machine_summary
    from fer_edge.metrics import confusion_from_labels, metrics_from_confusion
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.models import classifier_path
    from fer_edge.runtime.preprocess import normalized_faces

    from .peers import load_fer_peer
    from .timing import interleaved_latency

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    ds = resolve_eval_data(a.data, EMOTIONS, log=None)
    subjects = []  # (label, path, backend)
    for m in a.models:
        for b in a.backends:
            p = classifier_path(m, b)
            if b == "openvino" and p.suffix != ".xml":
                continue
            subjects.append((f"{m} ({'OpenVINO' if b == 'openvino' else 'ONNX Runtime'} INT8)", p, b))
    rows = []
    for label, p, b in subjects:
        probs = predict_faces(load_classifier(p, b), ds.images)
        m = metrics_from_confusion(confusion_from_labels(ds.labels, probs.argmax(1), len(EMOTIONS)), EMOTIONS)
        rows.append({"label": label, "file": p.name, "backend": b, "accuracy": m["accuracy"],
                     "macro_f1": m["macro_f1"], "disgust_f1": m["per_class"]["disgust"]["f1"], "latency_ms": {}})
        log(f"{label}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    peer = load_fer_peer(a.peer_fer, EMOTIONS, a.threads[0], log)
    if peer is not None:
        m = metrics_from_confusion(confusion_from_labels(ds.labels, peer.predict_faces(ds.images).argmax(1),
                                                         len(EMOTIONS)), EMOTIONS)
        rows.append({"label": peer.label, "file": peer.path.name, "backend": peer.backend, "peer": True,
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "disgust_f1": m["per_class"]["disgust"]["f1"], "latency_ms": {}})
        log(f"{peer.label}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    faces = ds.images[:64]
    for t in a.threads:
        predicts, xs = [], []
        for _label, p, b in subjects:
            clf = load_classifier(p, b, threads=t)
            predicts.append(clf.predict)
            xs.append(np.ascontiguousarray(normalized_faces(clf.meta, faces)[:1]))
        if peer is not None:
            from .peers import FerPeer

            tp = FerPeer(peer.path, EMOTIONS, t)
            predicts.append(tp.predict)
            xs.append(tp.inputs(faces)[:1])
        log(f"latency, {t} thread(s): {a.rounds} interleaved rounds of {a.calls} calls")
        for r, times in zip(rows, interleaved_latency(predicts, xs, a.rounds, a.calls)):
            r["latency_ms"][str(t)] = float(np.median(times) * 1e3)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python -m fer_edge.benchmarks.frontier " + " ".join(sys.argv[1:]),
              "machine": machine_summary(), "data": f"{a.data} ({len(ds)} faces)", "rows": rows}
    (out / "frontier.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "frontier.md").write_text(markdown(report, a.threads))
    print(markdown(report, a.threads))
    return 0


def markdown(report: dict, threads: list[int]) -> str:
    m = report["machine"]
    peer = next((r for r in report["rows"] if r.get("peer")), None)
    head = "| model | accuracy | macro-F1 | disgust F1 | " + " | ".join(
        f"ms/face {t} thr (/ fer's)" for t in threads) + " |"
    lines = ["# Speed/accuracy frontier: shipped classifiers against fer's, one run", "",
             f"- command: `{report['command']}`",
             f"- machine: {m.get('cpu')} ({m.get('arch')}), {m.get('cores')} cores; ISA: {m.get('isa')}",
             f"- data: {report['data']}; latency: batch 1, median of interleaved rounds", "", head,
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in threads) + " |"]
    for r in report["rows"]:
        cells = []
        for t in threads:
            ms = r["latency_ms"].get(str(t))
            ratio = f" ({ms / peer['latency_ms'][str(t)]:.2f}x)" if peer and ms and peer["latency_ms"].get(str(t)) \
                else ""
            cells.append(f"{ms:.3f}{ratio}" if ms else "")
        lines.append(f"| {r['label']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['disgust_f1']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
