"""``fer-edge calibrate``: a class-balanced calibration manifest for INT8 export."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="write a class-balanced calibration manifest for INT8 export")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset root (uses its train/) or a split folder")
    p.add_argument("--per-class", type=int, metavar="N", help="images per class (default: ~300 in all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="MANIFEST", help="manifest path (default calibration_data/<data>_<split>.json)")
    p.add_argument("--relative-root", action="store_true",
                   help="store the dataset root relative to the manifest's folder (for a manifest kept in a repo)")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args) -> int:
    from pathlib import Path

    from fer_edge.classes import EMOTIONS
    from fer_edge.export.calibration import build_manifest, write_manifest

    m = build_manifest(args.data, EMOTIONS, args.per_class, args.seed)
    out = args.out or f"calibration_data/{Path(m['root']).name}_{m['split']}_{len(m['items'])}.json"
    path = write_manifest(m, out, args.relative_root)
    counts = {c: sum(1 for it in m["items"] if it["label"] == c) for c in EMOTIONS}
    print(f"wrote {path}: {len(m['items'])} images ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"seed {m['seed']}, root {m['root']}")
    return 0
