"""Teacher targets carried from one dataset's faces to another dataset's copies of the same faces.

    python -m fer_edge.train.carry_targets checkpoints/teacher-targets/vgg120-mnv2-96-flip-T2.safetensors \
        --source ../shared/datasets/fer2013 --data runs/mixed \
        --teacher checkpoints/teacher-vgg-120 checkpoints/default-mobilenetv2-96 --teacher-tta flip \
        --distill-temperature 2 --out runs/targets/mixed-carried-flip-T2.safetensors

A face of ``--data`` takes the target of the ``--source`` face with the same class folder and file stem (so the
runtime crops of ``python -m fer_edge.benchmarks.runtime_crops``, saved as ``<stem>.png``, learn what the teachers
said of the dataset crop ``<stem>.jpg``, not of the softer, tighter crop). The output is keyed for ``--data`` as
``fer-edge train --teacher-once --teacher-targets FILE`` keys it, so that command with the same teachers, views and
temperature reads it instead of scoring the faces. Every face of ``--data`` must have its source face, and the
source targets must have been scored for ``--source`` with these teachers, views and temperature.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fer_edge.classes import EMOTIONS
from fer_edge.data import FaceSet, load_train_val
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.train.distill import Teachers, read_targets, targets_key, write_targets


def face_key(path: str) -> tuple[str, str]:
    """(class folder, file stem) of a face's path relative to its data root, e.g. ``train/happy/x.png``."""
    p = Path(path)
    return p.parent.name, p.stem


def carried(src: FaceSet, src_targets: torch.Tensor, dst: FaceSet) -> torch.Tensor:
    """``dst``'s targets: for each of its faces, the row of ``src_targets`` of the source face with the same key
    (and the same label)."""
    if len(src_targets) != len(src.paths):
        raise FerEdgeError(f"the source targets hold {len(src_targets)} faces, the source data {len(src.paths)}")
    index = {face_key(p): i for i, p in enumerate(src.paths)}
    rows = [index.get(face_key(p), -1) for p in dst.paths]
    missing = [p for p, i in zip(dst.paths, rows) if i < 0]
    if missing:
        raise FerEdgeError(f"faces of the data without a face of the same class and name in the source: "
                           f"{len(missing)} (first: {missing[0]})")
    if not np.array_equal(src.labels[rows], dst.labels):
        raise FerEdgeError("the data's labels differ from the source's for the same faces")
    return src_targets[torch.as_tensor(rows, dtype=torch.long)]


def teacher_face_size(teachers: Sequence[str], student: tuple[int, int]) -> tuple[int, int]:
    """The size the trainer has the teachers score faces at: the largest teacher input, or the student's if larger."""
    sizes = [m[1] for m in Teachers(teachers, EMOTIONS, torch.device("cpu"), 0.0, 1.0).models]
    size = max(sizes, key=lambda s: s[0] * s[1])
    return student if size[0] * size[1] <= student[0] * student[1] else size


def carry(targets: str, source: str, data: str, teachers: Sequence[str], tta: str, temperature: float,
          out: str, student: tuple[int, int] = (48, 48), log=print) -> Path:
    """Write ``out``: ``targets`` (scored on ``source``) carried to the faces of ``data``, keyed for ``data``."""
    size = teacher_face_size(teachers, student)
    quiet = lambda *_a, **_k: None  # noqa: E731
    s_tr, s_va = load_train_val(source, EMOTIONS, size, log=quiet)
    d_tr, d_va = load_train_val(data, EMOTIONS, size, log=quiet)
    src = read_targets(Path(targets), targets_key(teachers, s_tr.fingerprint(), tta, temperature, EMOTIONS, size))
    if src is None:
        raise FerEdgeError(f"{targets} was not scored for {source} with these teachers, --teacher-tta {tta} and "
                           f"--distill-temperature {temperature}")
    train, val = carried(s_tr, src["train"], d_tr), carried(s_va, src["val"], d_va)
    write_targets(Path(out), targets_key(teachers, d_tr.fingerprint(), tta, temperature, EMOTIONS, size), train, val)
    log(f"fer-edge: {len(train)} training and {len(val)} val targets carried from {source} to {data}: {out}")
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.carry_targets", description=__doc__.splitlines()[0])
    ap.add_argument("targets", help="a --teacher-targets file scored on --source")
    ap.add_argument("--source", required=True, help="the data the targets were scored on")
    ap.add_argument("--data", required=True, help="the data to carry them to (the same faces by class and name)")
    ap.add_argument("--teacher", nargs="+", required=True, help="the teachers the targets were scored with")
    ap.add_argument("--teacher-tta", default="flip", choices=("flip", "tencrop"))
    ap.add_argument("--distill-temperature", type=float, default=2.0)
    ap.add_argument("--input-size", type=int, default=48, help="the student's input size (px; the teachers score "
                    "the faces at the larger of it and their own)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        carry(args.targets, args.source, args.data, args.teacher, args.teacher_tta, args.distill_temperature, args.out,
              (args.input_size, args.input_size))
    except FerEdgeError as e:
        print(f"fer-edge: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
