"""``fer-edge benchmark``: the FPS-versus-accuracy report of models on this machine."""

from __future__ import annotations

from fer_edge.cli_args import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="FPS-versus-accuracy report of models on this machine",
                       description="Measure every model in one run on this machine: accuracy, per-face latency "
                       "against PyTorch eager FP32, throughput, detectors, the end-to-end run loop, and detection "
                       "+ crop accuracy on labelled faces pasted into frames. Writes benchmark.md, benchmark.json "
                       "and tradeoff.png.")
    p.add_argument("models", nargs="*", help="exported models (.onnx, OpenVINO .xml)")
    p.add_argument("--checkpoint", nargs="+", metavar="PT",
                   help="training checkpoint(s): the PyTorch eager FP32 baselines; each exported model is compared "
                   "with the checkpoint it was exported from")
    p.add_argument("--data", metavar="DIR", help="labelled faces (ImageFolder split; default: "
                   "datasets/fer2013/val under $FER_EDGE_HOME)")
    p.add_argument("--videos", nargs="*", metavar="VIDEO", help="videos for the end-to-end loop (default: "
                   "media/video_*.mp4 under $FER_EDGE_HOME)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="inference threads for every backend (default: all)")
    p.add_argument("--rounds", type=int, metavar="N", help="interleaved timing rounds (10; quick 3)")
    p.add_argument("--peer-fer", metavar="TFLITE", help="fer's emotion_model_quantized.tflite, measured as a peer "
                   "row (needs the bench extra: ai-edge-litert); default: $FER_EDGE_HOME/peers/fer/ or "
                   "~/.cache/fer-edge/peers/fer/, skipped with a hint when absent")
    p.add_argument("--loop-only", action="store_true", help="only the detectors, today's run loop against the new "
                   "defaults on each video, and detection recall on pasted faces (skips accuracy and latency)")
    p.add_argument("--loop-threads", type=positive_int, nargs="+", metavar="N",
                   help="thread counts for the end-to-end loop comparison (default: --threads)")
    p.add_argument("--loop-rounds", type=positive_int, metavar="N", help="alternating rounds of the loop comparison "
                   "(default 1; --loop-only 2)")
    p.add_argument("--loop-frames", type=positive_int, metavar="N", help="frames per loop run (default: the whole "
                   "video; quick 60)")
    p.add_argument("--quick", action="store_true", help="reduced run for tests (well under a minute)")
    p.add_argument("--out", default="benchmark-results", metavar="DIR", help="report folder (benchmark-results)")
    p.set_defaults(func=_cmd_benchmark)


def _cmd_benchmark(args) -> int:
    from fer_edge.benchmarks.bench import command_line, run_benchmark

    if not args.models and not args.checkpoint:
        from fer_edge.runtime.models import default_classifier_path

        args.models = [str(default_classifier_path())]
    run_benchmark(args.models, args.checkpoint, args.data, args.videos, args.out, args.threads, args.quick,
                  args.rounds, command_line(), peer_fer=args.peer_fer, loop_only=args.loop_only,
                  loop_threads=args.loop_threads, loop_rounds=args.loop_rounds, loop_frames=args.loop_frames)
    return 0
