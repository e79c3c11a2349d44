"""The ``fer-edge`` command line: builds the parser from :mod:`fer_edge.commands` (one module per command) and
turns a FerEdgeError into one line and exit code 2. Commands import their heavy dependencies lazily."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import import_module

from fer_edge import __version__
from fer_edge.cli_args import EXIT_ERROR, EXIT_INTERRUPTED, CliParser
from fer_edge.commands import COMMANDS
from fer_edge.runtime.errors import FerEdgeError


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="fer-edge", description="Facial emotion recognition on the edge.")
    parser.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CliParser)
    for name in COMMANDS:
        import_module(f"fer_edge.commands.{name}").add_parser(sub)
    return parser


def _quiet_opencv(debug: bool) -> None:
    """Keep OpenCV's and FFmpeg's own log lines off stderr (our one-line errors say what failed)."""
    import os

    if not debug:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_opencv(args.debug)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FerEdgeError as e:
        if args.debug:
            traceback.print_exc()
        print(f"fer-edge: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("fer-edge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: say so in one line unless --debug
        if args.debug:
            raise
        print(f"fer-edge: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
