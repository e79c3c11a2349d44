"""The ``fer-edge`` command line. Subcommands import their heavy dependencies lazily."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from fer_edge import __version__
from fer_edge.runtime.errors import FerEdgeError

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def positive_int(s: str) -> int:
    """argparse type for counts such as --threads: an integer of at least 1."""
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s} is not a positive integer")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other fer-edge error
        self.exit(EXIT_ERROR, f"fer-edge: error: {message} (see '{self.prog} --help')\n")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="detect faces and classify their emotions in a camera, video or images",
                       description="Find every face and classify its emotion, on the CPU, with no torch.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", type=int, metavar="N", help="camera index (0 = default webcam)")
    src.add_argument("--video", metavar="PATH_OR_URL", help="video file or stream URL")
    src.add_argument("--image", metavar="PATH", help="one image file")
    src.add_argument("--images", metavar="DIR", help="folder of images (recursive, sorted)")
    m = p.add_argument_group("models")
    m.add_argument("--model", metavar="FILE", help="emotion classifier (.onnx or OpenVINO .xml with fer_edge "
                   "metadata); default: the model shipped with fer-edge")
    m.add_argument("--backend", choices=("onnxruntime", "openvino"), help="default: from the model file suffix")
    m.add_argument("--threads", type=positive_int, metavar="N", help="classifier threads (default: the backend's)")
    m.add_argument("--detector", choices=("yunet", "res10"), default="yunet", help="face detector (default yunet)")
    m.add_argument("--detector-model", metavar="PATH", help="face detector file (default: searched in "
                   "$FER_EDGE_HOME/models, then the user cache, then (yunet) the package)")
    m.add_argument("--detector-config", metavar="PATH", help="res10 only: .prototxt / .pbtxt beside the model")
    d = p.add_argument_group("detection and smoothing")
    d.add_argument("--score-threshold", type=float, metavar="X",
                   help="detector confidence (default: yunet 0.7, res10 0.5)")
    d.add_argument("--min-face", type=int, default=20, metavar="PX", help="smallest face side in pixels (20)")
    d.add_argument("--detect-size", type=int, metavar="PX", help="longest side frames are scaled down to for "
                   "detection (default: yunet 640, res10 480; 0 = full size)")
    d.add_argument("--crop-margin", type=float, metavar="X", help="margin around a face box as a fraction of "
                   "its side, negative to shrink (default: the model's)")
    d.add_argument("--smooth", type=float, default=0.5, metavar="ALPHA", help="weight of the newest frame in "
                   "per-face smoothing for video/camera, (0, 1]; 1 = off (0.5)")
    d.add_argument("--no-smooth", action="store_true", help="no tracking or smoothing")
    o = p.add_argument_group("outputs")
    o.add_argument("--show", action="store_true", help="show a window (when a display exists)")
    o.add_argument("--save", metavar="PATH", help="annotated video (.mp4/.avi), or a folder of annotated images "
                   "for image input (or one image file for --image)")
    o.add_argument("--json", metavar="PATH", help="JSON Lines, one object per face per frame")
    o.add_argument("--csv", metavar="PATH", help="CSV, the JSON fields flattened")
    o.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    o.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    p.set_defaults(func=_cmd_run)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list or fetch the face detector files")
    msub = p.add_subparsers(dest="models_cmd", required=True, parser_class=_Parser)
    msub.add_parser("list", help="where each model file is found, or that it is missing")
    f = msub.add_parser("fetch", help="download official model files and verify their SHA-256")
    f.add_argument("names", nargs="*", help="assets to fetch (default: all but the YuNet shipped in the package)")
    f.add_argument("--dir", metavar="DIR", help="models folder (default: $FER_EDGE_HOME/models or the user cache)")
    f.add_argument("--mirror", metavar="DIR_OR_URL", help="fetch <DIR_OR_URL>/<relative path> instead of the "
                   "upstream URLs (a local folder, file://, http(s)://)")
    f.add_argument("--force", action="store_true", help="download even when a verified copy exists")
    p.set_defaults(func=_cmd_models)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fer-edge", description="Facial emotion recognition on the edge.")
    parser.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_models(sub)
    from fer_edge.cli_train import add_evaluate_parser, add_train_parser

    add_train_parser(sub)
    add_evaluate_parser(sub)
    from fer_edge.cli_export import add_calibrate_parser, add_export_parser

    add_export_parser(sub)
    add_calibrate_parser(sub)
    from fer_edge.cli_bench import add_benchmark_parser

    add_benchmark_parser(sub)
    return parser


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


def _cmd_run(args) -> int:
    from pathlib import Path

    from fer_edge.recognizer import EmotionRecognizer
    from fer_edge.runtime import sinks as sk
    from fer_edge.runtime.sources import VideoSource

    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not 0.0 < args.smooth <= 1.0:
        raise FerEdgeError(f"--smooth {args.smooth} is outside (0, 1]")
    if args.crop_margin is not None and not -0.25 <= args.crop_margin <= 1.0:
        raise FerEdgeError(f"--crop-margin {args.crop_margin} is outside [-0.25, 1]")
    # Models first: a missing model fails before any source is opened or file written.
    recognizer = EmotionRecognizer(
        args.model, args.detector, backend=args.backend, threads=args.threads, detector_model=args.detector_model,
        detector_config=args.detector_config, score_threshold=args.score_threshold, min_face=args.min_face,
        detect_size=args.detect_size, crop_margin=args.crop_margin, smooth=None if args.no_smooth else args.smooth)
    classifier = recognizer.classifier
    if args.image or args.images:
        source = recognizer.open_source(args.image or args.images, "image" if args.image else "images")
    elif args.video is not None:
        source = recognizer.open_source(args.video, "video")
    else:
        source = recognizer.open_source(args.camera, "camera")
    streaming = isinstance(source, VideoSource)
    outputs: list = []
    try:
        if args.json:
            outputs.append(sk.JsonlSink(args.json))
        if args.csv:
            outputs.append(sk.CsvSink(args.csv, classifier.classes))
        if args.save:
            if streaming:
                outputs.append(sk.VideoSink(args.save, source.fps))
            else:
                root = Path(args.images).expanduser() if args.images else None
                outputs.append(sk.ImageFolderSink(args.save, single=bool(args.image), root=root))
        if args.show:
            if sk.display_available():
                outputs.append(sk.WindowSink())
            else:
                log("fer-edge: --show ignored: no display found (DISPLAY/WAYLAND_DISPLAY unset)")
        log(f"fer-edge: {source.name} | detector {args.detector} | classifier {classifier.path.name} "
            f"({classifier.backend}, {len(classifier.classes)} classes)")

        def progress(stats):
            if streaming and stats.frames % 100 == 0:
                log(f"  frame {stats.frames}: {stats.faces} faces so far")

        stats = recognizer.run(source, outputs, draw=bool(args.save or args.show), max_frames=args.max_frames,
                               on_frame=progress)
    finally:
        for s in outputs:
            s.close()
        source.close()
    n = max(stats.frames, 1)
    t = stats.timings
    log(f"fer-edge: {stats.frames} frames, {stats.faces} faces in {stats.seconds:.2f} s ({stats.fps:.1f} fps); "
        f"per frame: decode {1e3 * t['decode'] / n:.1f} ms, detect {1e3 * t['detect'] / n:.1f} ms, "
        f"classify {1e3 * t['classify'] / n:.1f} ms, output {1e3 * t['output'] / n:.1f} ms")
    if stats.interrupted:
        log("fer-edge: interrupted; everything processed so far was written")
        return EXIT_INTERRUPTED
    if source.error:
        print(f"fer-edge: error: {source.error}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


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
