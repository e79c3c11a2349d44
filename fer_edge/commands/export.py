"""``fer-edge export`` (the ``[export]`` extra): checkpoint -> ONNX / OpenVINO IR, optionally INT8."""

from __future__ import annotations

import sys

from fer_edge.cli_args import positive_int


def add_parser(sub) -> None:
    from fer_edge.export.formats import EXPORT_TTA, FORMATS, OPENVINO_INT8_PRESETS

    p = sub.add_parser("export", help="checkpoint -> ONNX / OpenVINO IR, optionally INT8, accuracy-checked",
                       description="Export a training checkpoint for the torch-free runtime. Formats: "
                       + "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values()))
    p.add_argument("checkpoint", help="training checkpoint: a .pt from fer-edge train or a released folder "
                   "(checkpoints/NAME: model.safetensors + model_card.json)")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), help="onnx or openvino")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="float precision (fp32)")
    p.add_argument("--quantize", choices=("int8",), help="post-training INT8 quantization")
    p.add_argument("--calibration", metavar="MANIFEST_OR_DIR",
                   help="calibration faces: a manifest from 'fer-edge calibrate', or a dataset folder")
    p.add_argument("--calibration-root", metavar="DIR", help="where the manifest's images are (default: its root)")
    p.add_argument("--max-drop", type=float, metavar="X",
                   help="largest accepted INT8 accuracy drop (0.01 = 1 point); OpenVINO uses NNCF accuracy control")
    p.add_argument("--preset", choices=OPENVINO_INT8_PRESETS,
                   help="OpenVINO INT8 quantization: an NNCF preset (default: performance for CNNs, mixed for "
                   "MobileNetV3 and transformers), or ort-qdq: ONNX Runtime's static QDQ model (the --format onnx "
                   "INT8 file) read by OpenVINO, so x86 and Arm give the same answers")
    p.add_argument("--data", metavar="DIR", help="labelled validation faces (ImageFolder split) for the parity "
                   "check and the report (default: val/ beside the calibration data)")
    p.add_argument("--val-limit", type=int, metavar="N", help="measure on at most N validation faces")
    p.add_argument("--out", metavar="DIR", help="output folder (default: beside a training run's checkpoint; "
                   "exports/NAME for a released checkpoint folder such as checkpoints/NAME)")
    p.add_argument("--name", help="artifact file stem (default: the run folder's name)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for inference and timing")
    p.add_argument("--crop-margin", type=float, metavar="X", help="the runtime's face crop margin to store in the "
                   "artifacts (default: the checkpoint's; see the pasted-face check of 'fer-edge benchmark')")
    p.add_argument("--tta", choices=EXPORT_TTA, help="test-time augmentation inside the exported graph: flip = "
                   "each face and its mirror as one batch of two; diagonal = the top-left and the mirrored "
                   "bottom-right 0.875 crops (two of ten-crop's views); probabilities averaged (either is "
                   "twice the work per face; the runtime needs nothing else)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from fer_edge.export.exporter import run_export
    from fer_edge.export.formats import ExportRequest

    report = run_export(ExportRequest(
        args.format, args.precision, args.quantize, args.max_drop, args.calibration, args.preset,
        checkpoint=args.checkpoint, out=args.out, name=args.name, data=args.data,
        calibration_root=args.calibration_root, val_limit=args.val_limit, threads=args.threads,
        crop_margin=args.crop_margin, tta=args.tta))
    for a in report["artifacts"]:
        print(f"wrote {a}", file=sys.stderr)
    return 0
