"""A copy of a FER2013 split as `fer-edge run` would crop it: each face pasted into a frame, found by the detector,
cropped with the run's crop margin (issue 17, item 4: "train on the runtime's own crop").

    python -m fer_edge.benchmarks.runtime_crops --split train --out runs/runtime-crops

Faces are pasted exactly as ``fer-edge benchmark``'s pasted-face check pastes them (four to a blurred photo frame,
100-180 px), found by YuNet at the run's detect size, and cropped as the run loop crops (square on the box's longest
side, ``--crop-margin``, INTER_AREA to 48 px, then gray). A face the detector misses keeps its dataset crop. Written
as PNG (no second JPEG loss) under ``OUT/<split>/<class>/``; ``OUT/val`` links to the split's own ``val/``, so
``fer-edge train --data OUT`` trains on runtime crops and selects on the untouched dataset crops. Data:
``$FER_EDGE_SHARED`` (default ../shared).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def runtime_crop(frame: np.ndarray, box: np.ndarray, margin: float, size: int = 48) -> np.ndarray:
    """The gray face `fer-edge run` classifies for one detector box (runtime.preprocess.FaceBatcher's steps)."""
    import cv2

    from fer_edge.runtime.preprocess import crop_regions

    x0, y0, x1, y1 = crop_regions(box[None], margin, frame.shape[1], frame.shape[0])[0]
    bgr = cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def main(argv: list[str] | None = None) -> int:
    import cv2

    from fer_edge.benchmarks.e2e import detected_crops, paste_backgrounds, paste_faces
    from fer_edge.benchmarks.sweep_detect import shared
    from fer_edge.data import read_image_folder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", default="train", help="the FER2013 split folder to copy (default train)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--crop-margin", type=float, default=-0.1, help="the shipped models' margin (-0.1)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detect-size", type=int, default=608, help="the run default (608)")
    p.add_argument("--limit", type=int, help="at most N faces per class (tests)")
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)

    root = shared() / "datasets" / "fer2013"
    ds = read_image_folder(root / a.split, limit=a.limit)
    if a.out.exists() and any(a.out.iterdir()):
        print(f"fer-edge: error: {a.out} is not empty", file=sys.stderr)
        return 2
    frames, truth = paste_faces(ds.images, paste_backgrounds(shared() / "media"), per_frame=4, seed=a.seed)
    matches, total = detected_crops(frames, truth, a.detector, max_side=a.detect_size)
    faces = ds.images.copy()
    for fi, box, idx in matches:
        faces[idx] = runtime_crop(frames[fi], box, a.crop_margin, faces.shape[1])
    for rel, label, face in zip(ds.paths, ds.labels, faces):
        dst = a.out / a.split / ds.classes[label] / (Path(rel).stem + ".png")
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), face)
    if a.split != "val" and (root / "val").is_dir():
        (a.out / "val").symlink_to((root / "val").resolve(), target_is_directory=True)
    doc = {"split": a.split, "faces": total, "found": len(matches), "crop_margin": a.crop_margin,
           "detector": f"{a.detector} {a.detect_size} px", "seed": a.seed}
    (a.out / "runtime_crops.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{a.out}: {len(matches)} of {total} {a.split} faces found and cropped as `fer-edge run` crops them; "
          f"the other {total - len(matches)} keep their dataset crop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
