"""``fer-edge evaluate``: accuracy, per-class report and confusion matrix of models on labelled faces."""

from __future__ import annotations

import argparse
import sys

from fer_edge.cli_args import positive_int


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class report and confusion matrix of a model on labelled faces",
        description="Evaluate a training checkpoint (.pt), an ONNX file or an OpenVINO IR (.xml) on an ImageFolder "
                    "split or a fer2013.csv. ONNX/IR models run through the torch-free runtime preprocessing.")
    p.add_argument("model", metavar="MODEL", nargs="+", help="checkpoint .pt or folder, .onnx or OpenVINO .xml, or a "
                   "shipped model's name (accurate, fast); several "
                   "models are evaluated as an ensemble (their probabilities averaged)")
    p.add_argument("--data", required=True, metavar="DIR_OR_CSV",
                   help="a split folder of class folders, a root with val/ (or test/), or a fer2013.csv")
    p.add_argument("--split", metavar="NAME", help="fer2013.csv Usage (PublicTest, PrivateTest, Training; default "
                   "PublicTest) or a split folder name under --data")
    p.add_argument("--tta", choices=("flip", "tencrop"), help="test-time augmentation (averaged probabilities)")
    p.add_argument("--json", metavar="PATH", help="write accuracy, macro_f1, per_class, confusion, n as JSON")
    p.add_argument("--predictions", metavar="CSV", help="write one row per image: path, label, predicted class and "
                   "the probability of every class (to compare two machines or backends image by image)")
    p.add_argument("--confusion", metavar="PATH",
                   help="confusion matrix PNG (default: <model stem>_confusion.png beside the model or in --out)")
    p.add_argument("--no-confusion", action="store_true", help="do not write the confusion matrix PNG")
    p.add_argument("--out", metavar="DIR", help="folder for the default confusion matrix PNG")
    p.add_argument("--backend", choices=("onnxruntime", "openvino"), help="for .onnx/.xml (default: from the suffix)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="inference threads")
    p.add_argument("--quiet", action="store_true", help="only the report on stdout")
    p.set_defaults(func=_cmd_evaluate)
    return p


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fer_edge.evaluate import evaluate

    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    confusion = "" if args.no_confusion else args.confusion
    evaluate(args.model, args.data, split=args.split, tta=args.tta, json_path=args.json, confusion_path=confusion,
             predictions_path=args.predictions, out_dir=args.out, backend=args.backend, threads=args.threads, log=log)
    return 0
