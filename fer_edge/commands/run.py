"""``fer-edge run``: faces and emotions in a camera, video or images, into JSON Lines, CSV, video, a window.

The wiring lives in :class:`fer_edge.recognizer.EmotionRecognizer`; this module maps the flags onto it.
"""

from __future__ import annotations

import sys

from fer_edge.cli_args import EXIT_OK, EXIT_PARTIAL, camera_arg, detect_size, positive_int
from fer_edge.runtime.carry import CARRY_MODES, DEFAULT_CARRY
from fer_edge.runtime.detectors import YUNET_ENGINES
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.models import arm_speed_hint
from fer_edge.runtime.pipeline import CLASSIFY_EVERY, DETECT_EVERY
from fer_edge.runtime.tracker import HOLD_FRAMES, HOLD_MARGIN


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="detect faces and classify their emotions in a camera, video or images",
                       description="Find every face and classify its emotion, on the CPU, with no torch.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", type=camera_arg, metavar="N|picam", help="camera index (0 = default webcam), or "
                     "'picam': the Raspberry Pi camera module through picamera2")
    src.add_argument("--video", metavar="PATH_OR_URL", help="video file or stream URL")
    src.add_argument("--image", metavar="PATH", help="one image file")
    src.add_argument("--images", metavar="DIR", help="folder of images (recursive, sorted)")
    m = p.add_argument_group("models")
    m.add_argument("--model", metavar="NAME|FILE", help="emotion classifier: a model shipped with fer-edge by name "
                   "('accurate', the default; 'fast' where this install ships it) or a file (.onnx or OpenVINO .xml "
                   "with fer_edge metadata)")
    m.add_argument("--backend", choices=("onnxruntime", "openvino"), help="default: from the model file suffix")
    m.add_argument("--threads", type=positive_int, metavar="N", help="inference threads (default: one per core): "
                   "with 2 or more the face detector and the classifier run side by side on frames t+1 and t, "
                   "splitting them (the detector takes the larger half); with 1, or --serial, each stage uses all N "
                   "in turn; decoding and writing have a thread each")
    m.add_argument("--detector", choices=("yunet", "res10"), default="yunet", help="face detector (default yunet)")
    m.add_argument("--detector-model", metavar="PATH", help="face detector file (default: searched in "
                   "$FER_EDGE_HOME/models, then the user cache, then (yunet) the package)")
    m.add_argument("--detector-engine", choices=YUNET_ENGINES, default="onnxruntime", help="what runs YuNet: "
                   "ONNX Runtime (default; the same boxes as OpenCV's FaceDetectorYN, about twice as fast) or OpenCV")
    m.add_argument("--detector-config", metavar="PATH", help="res10 only: .prototxt / .pbtxt beside the model")
    d = p.add_argument_group("detection and smoothing")
    d.add_argument("--score-threshold", type=float, metavar="X",
                   help="detector confidence (default: yunet 0.7, res10 0.5)")
    d.add_argument("--min-face", type=int, default=20, metavar="PX", help="smallest face side in pixels (20)")
    d.add_argument("--detect-size", type=detect_size, metavar="PX", help="longest side frames are scaled down to "
                   "for detection (default: yunet 608, res10 480; 0 = full size); the detector's input is kept "
                   "within 8 megapixels either way, which bounds its memory. Faces under about 10-15 px at this "
                   "size are missed (about 20-30 px in a 1280x720 frame): for small or distant faces in large frames "
                   "raise it, or use 0")
    d.add_argument("--detect-every", type=int, default=DETECT_EVERY, metavar="N",
                   help=f"video/camera: full detection on every N-th frame; in between each face's box is carried "
                   f"forward by --carry, a lost face triggers a full detection at once, and new faces appear "
                   f"within N frames; images always get full detection (default {DETECT_EVERY})")
    d.add_argument("--classify-every", type=int, default=CLASSIFY_EVERY, metavar="K",
                   help="video/camera: classify each tracked face on every K-th frame (staggered across faces, a "
                   "new face at once); in between it keeps its smoothed probabilities and label (default "
                   f"{CLASSIFY_EVERY})")
    d.add_argument("--carry", choices=CARRY_MODES, default=DEFAULT_CARRY, help="how boxes are carried between "
                   "full detections: 'mosaic' re-detects each face in a small region around it, all regions tiled "
                   "into one detector call (default), 'roi' the same with one call per region; a face its region "
                   "cannot see (lost there twice while full detection finds it) moves at its last speed; 'motion' "
                   "moves every box at its last speed")
    d.add_argument("--max-megapixels", type=positive_int, default=120, metavar="MP", help="refuse images larger "
                   "than this, from their header, before decoding (120; the run needs about 6 bytes a pixel)")
    d.add_argument("--crop-margin", type=float, metavar="X", help="margin around a face box as a fraction of "
                   "its side, negative to shrink (default: the model's)")
    d.add_argument("--smooth", type=float, default=0.5, metavar="ALPHA", help="weight of the newest frame in "
                   "per-face smoothing for video/camera, (0, 1]; 1 = off (0.5)")
    d.add_argument("--no-smooth", action="store_true", help="no smoothing or label hysteresis (tracks are still "
                   "kept when --detect-every is above 1)")
    d.add_argument("--hold-margin", type=float, default=HOLD_MARGIN, metavar="X", help="label hysteresis: a face's "
                   f"label changes when another class leads it by X in smoothed probability ... ({HOLD_MARGIN})")
    d.add_argument("--hold-frames", type=int, default=HOLD_FRAMES, metavar="K", help="... or leads it for K frames "
                   f"in a row ({HOLD_FRAMES}); --hold-frames 1 turns hysteresis off")
    o = p.add_argument_group("outputs")
    o.add_argument("--show", action="store_true", help="show a window (when a display exists)")
    o.add_argument("--save", metavar="PATH", help="annotated video (.mp4/.avi), or a folder of annotated images "
                   "for image input (or one image file for --image)")
    o.add_argument("--json", metavar="PATH", help="JSON Lines, one object per face per frame")
    o.add_argument("--csv", metavar="PATH", help="CSV, the JSON fields flattened")
    o.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    o.add_argument("--overwrite", action="store_true", help="replace output files that already exist (without it "
                   "they are refused); an input is never written over")
    o.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    o.add_argument("--serial", action="store_true", help="decode, detect, classify and write in one thread, one "
                   "after another (default: decoding, detection and file outputs run in threads of their own)")
    p.set_defaults(func=_cmd_run)


def check_detection_flags(args) -> None:
    """--detect-size, --detect-every, --hold-*: one clear error for values that cannot work."""
    if args.detect_size is not None and args.detect_size != 0 and not 64 <= args.detect_size <= 4096:
        raise FerEdgeError(f"--detect-size {args.detect_size} is outside 64..4096 pixels (0 = full size)")
    if not 1 <= args.detect_every <= 1000:
        raise FerEdgeError(f"--detect-every {args.detect_every} must be a whole number of frames from 1 to 1000")
    if not 1 <= args.classify_every <= 1000:
        raise FerEdgeError(f"--classify-every {args.classify_every} must be a whole number of frames from 1 to 1000")
    if not 0.0 <= args.hold_margin <= 1.0:
        raise FerEdgeError(f"--hold-margin {args.hold_margin} is outside [0, 1]")
    if not 1 <= args.hold_frames <= 1000:
        raise FerEdgeError(f"--hold-frames {args.hold_frames} must be from 1 to 1000")


def _cmd_run(args) -> int:
    from pathlib import Path

    from fer_edge.recognizer import EmotionRecognizer
    from fer_edge.runtime import sinks as sk
    from fer_edge.runtime.outputs import check_run_outputs
    from fer_edge.runtime.pipeline import run_loop
    from fer_edge.runtime.sources import VideoSource
    from fer_edge.runtime.stages import run_loop_threaded
    from fer_edge.runtime.stopping import GracefulStop

    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not 0.0 < args.smooth <= 1.0:
        raise FerEdgeError(f"--smooth {args.smooth} is outside (0, 1]")
    if args.crop_margin is not None and not -0.25 <= args.crop_margin <= 1.0:
        raise FerEdgeError(f"--crop-margin {args.crop_margin} is outside [-0.25, 1]")
    check_detection_flags(args)
    # Models first: a missing model fails before any source is opened or file written.
    recognizer = EmotionRecognizer(
        args.model, args.detector, backend=args.backend, threads=args.threads, detector_model=args.detector_model,
        detector_config=args.detector_config, score_threshold=args.score_threshold, min_face=args.min_face,
        detect_size=args.detect_size, crop_margin=args.crop_margin, smooth=None if args.no_smooth else args.smooth,
        detect_every=args.detect_every, carry=args.carry, hold_margin=args.hold_margin, hold_frames=args.hold_frames,
        overlap=not args.serial, classify_every=args.classify_every, detector_engine=args.detector_engine)
    classifier = recognizer.classifier
    if args.image or args.images:
        source = recognizer.open_source(args.image or args.images, "image" if args.image else "images",
                                        max_pixels=args.max_megapixels * 1_000_000)
    elif args.video is not None:
        source = recognizer.open_source(args.video, "video")
    else:
        source = recognizer.open_source(args.camera, "camera")
    streaming = source.is_camera or isinstance(source, VideoSource)
    check_run_outputs(save=args.save, json=args.json, csv=args.csv, streaming=streaming, image=args.image,
                      images=args.images, image_paths=None if streaming else source.paths, video=args.video,
                      other_inputs=(classifier.path, args.detector_model, args.detector_config),
                      overwrite=args.overwrite)
    outputs: list = []
    stop = GracefulStop().__enter__()  # SIGTERM/SIGHUP/SIGINT: finish the frame, finalise every output
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
        if streaming and (hint := arm_speed_hint(args.model)):
            log(hint)

        def progress(stats):
            if streaming and stats.frames % 100 == 0:
                log(f"  frame {stats.frames}: {stats.faces} faces so far")

        pipeline = recognizer.pipeline(source)
        draw = bool(args.save or args.show)
        if args.serial:
            stats = run_loop(stop.wrap(source), pipeline, outputs, draw=draw, max_frames=args.max_frames,
                             on_frame=progress)
        else:
            stats = run_loop_threaded(stop.wrap(source), pipeline, outputs, draw=draw, max_frames=args.max_frames,
                                      on_frame=progress, overlap=recognizer.threads.overlap)
    finally:
        source.close()
        try:
            sk.close_all(outputs)
        finally:
            stop.__exit__()
    n = max(stats.frames, 1)
    t = stats.timings
    log(f"fer-edge: {stats.frames} frames, {stats.faces} faces in {stats.seconds:.2f} s ({stats.fps:.1f} fps); "
        f"per frame: decode {1e3 * t['decode'] / n:.1f} ms, detect {1e3 * t['detect'] / n:.1f} ms, "
        f"classify {1e3 * t['classify'] / n:.1f} ms, output {1e3 * t['output'] / n:.1f} ms"
        + ("" if args.serial else " (decode, output" + (" and detect" if recognizer.threads.overlap else "")
           + " overlapped)")
        + (f"; full detection on {pipeline.full_detections} frames" if pipeline.detect_every > 1 else "")
        + (f"; {stats.dropped} camera frames skipped for newer ones" if stats.dropped else ""))
    code = stop.exit_code(stats.interrupted)
    if code is not None:
        log(f"fer-edge: interrupted ({stop.name or 'SIGINT'}); everything processed so far was written")
        return code
    if source.error:
        print(f"fer-edge: error: {source.error}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
