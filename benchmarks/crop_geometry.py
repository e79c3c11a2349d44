"""Where the detector's box falls on a FER2013 face, measured on training faces pasted into frames (issue 17, item 4).

    python -m fer_edge.benchmarks.crop_geometry --faces 2000 --out benchmarks/results/crop-geometry

Training faces (never ``val/``) are pasted into VOC frames exactly as ``fer-edge benchmark``'s pasted-face check
pastes them, found by the detector, and each matched box is compared with the face's own 48x48 crop, in units of
the box's longest side S (the side ``fer-edge run`` squares and scales by the crop margin): the dataset crop's side
over S and its centre's offset from the box centre. From the median side it prints the crop margin that gives the
dataset crop itself, and the one that gives the mean view the trainer's random-resized crop shows the model
(``--scale-min`` .. 1 of the face's side).

Data: ``$FER_EDGE_SHARED`` (default ../shared): media/ (VOC frames) and datasets/fer2013/train. Writes
``geometry.json`` and ``geometry.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def box_geometry(truth: list[np.ndarray], matches: list) -> np.ndarray:
    """Per matched face (rows of :func:`detected_crops`): [dx, dy, side, aspect] with dx, dy the dataset crop's
    centre minus the box centre and side the dataset crop's side, all over the box's longest side; aspect = w / h."""
    gt = {int(r[4]): r for t in truth for r in t}
    rows = []
    for _, b, idx in matches:
        g = gt[idx]
        s = float(max(b[2], b[3]))
        rows.append([(g[0] + g[2] / 2 - b[0] - b[2] / 2) / s, (g[1] + g[3] / 2 - b[1] - b[3] / 2) / s, g[2] / s,
                     b[2] / b[3]])
    return np.asarray(rows, np.float64).reshape(-1, 4)


def summarize(geo: np.ndarray, scale_min: float) -> dict:
    stats = {name: {"mean": float(col.mean()), "median": float(np.median(col)), "sd": float(col.std()),
                    "p10": float(np.percentile(col, 10)), "p90": float(np.percentile(col, 90))}
             for name, col in zip(("dx", "dy", "side", "aspect"), geo.T)}
    side = stats["side"]["median"]
    # fer-edge run crops a square of side S * (1 + 2 * margin) around the box centre
    return {"stats": stats, "margin_for_dataset_crop": (side - 1) / 2,
            "margin_for_mean_training_view": (side * (1 + scale_min) / 2 - 1) / 2}


def main(argv: list[str] | None = None) -> int:
    from fer_edge.benchmarks.e2e import detected_crops, paste_backgrounds, paste_faces
    from fer_edge.benchmarks.sweep_detect import shared
    from fer_edge.data import read_image_folder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", type=int, default=2000, help="training faces to paste (default 2000)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detect-size", type=int, default=608,
                   help="detector's longest side (default 608, the run default)")
    p.add_argument("--scale-min", type=float, default=0.8, help="the trainer's --scale-min (default 0.8)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)

    ds = read_image_folder(shared() / "datasets" / "fer2013" / "train")
    pick = np.sort(np.random.default_rng(a.seed).permutation(len(ds))[: a.faces])
    frames, truth = paste_faces(ds.images[pick], paste_backgrounds(shared() / "media"), per_frame=4, seed=a.seed)
    matches, total = detected_crops(frames, truth, a.detector, max_side=a.detect_size)
    res = {"detector": f"{a.detector} {a.detect_size} px", "faces": total, "matched": len(matches),
           "scale_min": a.scale_min, **summarize(box_geometry(truth, matches), a.scale_min)}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "geometry.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [f"# Detector box vs the dataset crop: {res['detector']}, {len(matches)} of {total} pasted training faces",
             "", f"- command: `python -m fer_edge.benchmarks.crop_geometry {' '.join(argv)}`".rstrip(), "",
             "| over the box's longest side | mean | median | sd | p10 | p90 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for k, st in res["stats"].items():
        lines.append(f"| {k} | " + " | ".join(f"{st[c]:.3f}" for c in ("mean", "median", "sd", "p10", "p90")) + " |")
    lines += ["", f"Crop margin giving the dataset crop: {res['margin_for_dataset_crop']:+.3f}; giving the mean "
              f"training view (random-resized crop {a.scale_min}-1): {res['margin_for_mean_training_view']:+.3f}."]
    (a.out / "geometry.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
