"""OpenVINO classifier calls at the batch sizes of a frame loop: the dynamic-batch model against static-shape ones.

A loop's face count changes from frame to frame (2, 3, 2, 1 ...). The runtime's OpenVINO classifier compiles batch
sizes 1..STATIC_BATCHES with static shapes before a frame loop (``prepare_stream``); this measures why, on the real
classifier (``predict``: the same tensors and requests as ``fer-edge run``), in interleaved rounds::

    python -m fer_edge.benchmarks.static_batches fer_edge/assets/accurate_int8.xml \
        --out benchmarks/results/static-batches

Each round times every batch size alone (steady) and the alternating sequence, first on a classifier as loaded
(dynamic) and then on one after ``prepare_stream`` (static); medians over rounds, ms per call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SEQUENCE = (2, 3, 2, 3, 1)  # an alternating face count, as on the 2-3-face Hamilton video


def _ms_per_call(predict, batches: list[np.ndarray], calls: int) -> float:
    for b in batches:
        predict(b)  # warm-up
    t = time.perf_counter()
    for i in range(calls):
        predict(batches[i % len(batches)])
    return 1e3 * (time.perf_counter() - t) / calls


def measure(model: str, threads: int = 1, rounds: int = 5, calls: int = 200) -> dict:
    from fer_edge.runtime.classifier import STATIC_BATCHES, load_classifier

    dynamic = load_classifier(model, backend="openvino", threads=threads)
    static = load_classifier(model, backend="openvino", threads=threads)
    static.prepare_stream()
    meta = dynamic.meta
    rng = np.random.default_rng(0)
    x = {n: rng.normal(size=(n, meta.channels, *meta.input_size)).astype(np.float32)
         for n in range(1, STATIC_BATCHES + 1)}
    cases = {f"batch {n}": [x[n]] for n in x}
    cases["alternating " + "/".join(map(str, SEQUENCE))] = [x[n] for n in SEQUENCE]
    times: dict[str, dict[str, list[float]]] = {c: {"dynamic": [], "static": []} for c in cases}
    for _ in range(rounds):
        for case, batches in cases.items():
            for kind, clf in (("dynamic", dynamic), ("static", static)):
                times[case][kind].append(_ms_per_call(clf.predict, batches, calls))
    return {"model": model, "threads": threads, "rounds": rounds, "calls": calls, "static_batches": STATIC_BATCHES,
            "static_compiled": sorted(static._static),
            "rows": [{"case": c, "dynamic_ms": float(np.median(t["dynamic"])),
                      "static_ms": float(np.median(t["static"]))} for c, t in times.items()]}


def main(argv: list[str] | None = None) -> int:
    from fer_edge.machine import machine_summary

    ap = argparse.ArgumentParser(prog="python -m fer_edge.benchmarks.static_batches",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("model", help="an OpenVINO IR (.xml) with a dynamic batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", default=None, help="folder for static_batches.{md,json}")
    args = ap.parse_args(argv)
    r = measure(args.model, args.threads, args.rounds, args.calls)
    m = machine_summary(args.threads)
    lines = ["# OpenVINO classifier: dynamic batch against static-shape compilations", "",
             f"- command: `python -m fer_edge.benchmarks.static_batches {' '.join(argv or sys.argv[1:])}`",
             f"- machine: {m['cpu']}, {m['cores']} cores, {args.threads} inference thread(s); ISA: {m['isa']}",
             f"- median of {args.rounds} interleaved rounds of {args.calls} calls; static compilations for batch sizes "
             f"{r['static_compiled']}", "",
             "| calls | dynamic ms/call | static ms/call | static / dynamic |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {row['case']} | {row['dynamic_ms']:.3f} | {row['static_ms']:.3f} | "
              f"{row['static_ms'] / row['dynamic_ms']:.2f}x |" for row in r["rows"]]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "static_batches.json").write_text(json.dumps({"machine": m, **r}, indent=1) + "\n")
        (out / "static_batches.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
