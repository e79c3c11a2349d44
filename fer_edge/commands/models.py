"""``fer-edge models``: list or fetch the face detector files."""

from __future__ import annotations

from fer_edge.cli_args import EXIT_OK, CliParser
from fer_edge.runtime.errors import FerEdgeError


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list or fetch the face detector files")
    msub = p.add_subparsers(dest="models_cmd", required=True, parser_class=CliParser)
    msub.add_parser("list", help="where each model file is found, or that it is missing")
    f = msub.add_parser("fetch", help="download official model files and verify their SHA-256")
    f.add_argument("names", nargs="*", help="assets to fetch (default: all but the YuNet shipped in the package)")
    f.add_argument("--dir", metavar="DIR", help="models folder (default: $FER_EDGE_HOME/models or the user cache)")
    f.add_argument("--mirror", metavar="DIR_OR_URL", help="fetch <DIR_OR_URL>/<relative path> instead of the "
                   "upstream URLs (a local folder, file://, http(s)://)")
    f.add_argument("--force", action="store_true", help="download even when a verified copy exists")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args) -> int:
    import os
    from pathlib import Path

    from fer_edge.runtime import assets

    if args.models_cmd == "list":
        for name in assets.ASSETS:
            found = assets.locate(name)
            if found is None:
                where = f"missing ({assets.FETCH_HINT} {name})"
            elif not os.access(found, os.R_OK):
                where = f"{found} (exists but this user cannot read it)"
            else:
                where = f"{found}{' (shipped in the package)' if found == assets.packaged_path(name) else ''}"
            print(f"{name:22s} {where}")
        print("searched: " + ", ".join(str(d) for d in assets.search_dirs()) + ", then the package")
        return EXIT_OK
    names = args.names or assets.default_fetch_names()
    unknown = [n for n in names if n not in assets.ASSETS]
    if unknown:
        raise FerEdgeError(f"unknown model file '{unknown[0]}' (choose from {', '.join(assets.ASSETS)})")
    dest = Path(args.dir) if args.dir else None
    for n in names:
        assets.fetch(n, dest, mirror=args.mirror, force=args.force)
    return EXIT_OK
