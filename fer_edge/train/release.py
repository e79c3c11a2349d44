"""``python -m fer_edge.train.release RUN/best.pt|last.pt checkpoints/NAME``: a training checkpoint as a release folder.

The folder (``model.safetensors`` + ``model_card.json``, no pickles) is what the repository's ``checkpoints/`` keeps;
``fer-edge export``, ``evaluate`` and ``train --teacher`` read it. Written from a run's ``last.pt`` it is also
resumable: ``fer-edge train ... --resume-from checkpoints/NAME`` carries the schedule on in another session.
"""

from __future__ import annotations

import argparse
import sys

from fer_edge.runtime.errors import FerEdgeError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_edge.train.release", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a run's best.pt or last.pt")
    p.add_argument("out", help="the release folder to write (e.g. checkpoints/NAME)")
    args = p.parse_args(argv)
    try:
        from fer_edge.train.checkpoint import read_checkpoint, write_release

        ckpt = read_checkpoint(args.checkpoint)
        out = write_release(ckpt, args.out)
    except FerEdgeError as e:
        print(f"fer-edge: error: {e}", file=sys.stderr)
        return 2
    kind = "resumable with --resume-from" if "global_step" in ckpt else "weights only (best.pt: not resumable)"
    print(f"{out}: epoch {ckpt.get('epoch')}, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
