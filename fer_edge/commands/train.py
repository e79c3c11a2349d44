"""``fer-edge train`` (the ``[train]`` extra). Heavy imports happen in the handler."""

from __future__ import annotations

import argparse
import sys

from fer_edge.cli_args import positive_int
from fer_edge.runtime.errors import FerEdgeError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train an emotion classifier (needs the [train] extra)",
        description="Train a facial-emotion classifier on FER2013-style data; the whole set is decoded once and "
                    "kept in memory. Runs under torchrun for DistributedDataParallel (only rank 0 writes files).")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, metavar="DIR_OR_CSV",
                   help="ImageFolder root with train/ and val/ (or test/) class folders, or a Kaggle fer2013.csv "
                        "(train = Training, val = PublicTest)")
    d.add_argument("--ferplus", metavar="CSV", help="FER+ votes CSV (path,neutral,happiness,...) to relabel the faces")
    d.add_argument("--ferplus-mode", choices=("majority", "soft"), default="majority",
                   help="FER+ labels: majority vote, or the vote distribution as a soft target (majority)")
    d.add_argument("--limit-per-class", type=positive_int, metavar="N",
                   help="use at most N images per class of each split (smoke runs)")
    m = p.add_argument_group("model")
    m.add_argument("--arch", required=True, metavar="NAME",
                   help="preset (cnn, mobilenetv3, vit) or any timm model name")
    m.add_argument("--input-size", type=int, metavar="PX", help="square input side (default 48)")
    m.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 = gray, 3 = gray replicated (1)")
    m.add_argument("--pretrained", action="store_true", help="start from timm hub weights (needs the hub or its cache)")
    m.add_argument("--weights", metavar="FILE", help="start from a local timm state dict (.safetensors/.pth)")
    m.add_argument("--drop-rate", type=float, metavar="P", help="classifier dropout (default: the model's)")
    m.add_argument("--zero-init-head", action="store_true",
                   help="start the classifier's last layer at zero (recommended for MobileNetV3 from scratch)")
    m.add_argument("--freeze-epochs", type=int, default=0, metavar="N", help="train only the head for N epochs (0)")
    m.add_argument("--unfreeze-last", type=int, metavar="K",
                   help="after the frozen epochs train only the last K backbone blocks (default: all)")
    m.add_argument("--backbone-lr-scale", type=float, default=0.1, metavar="X",
                   help="backbone LR = X * head LR when starting from weights or freezing (0.1)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=30, metavar="N", help="(30)")
    o.add_argument("--batch-size", type=positive_int, default=128, metavar="N",
                   help="global batch size, split across DDP processes (128)")
    o.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="(adamw; sgd = Nesterov, 0.9)")
    o.add_argument("--lr", type=float, metavar="X", help="head/base learning rate (adamw 1e-3, sgd 0.01)")
    o.add_argument("--weight-decay", type=float, metavar="X", help="(adamw 0.05, sgd 5e-4)")
    o.add_argument("--scheduler", choices=("cosine", "plateau"), default="cosine", help="(cosine)")
    o.add_argument("--warmup-epochs", type=float, default=1.0, metavar="N", help="cosine: linear warm-up (1)")
    o.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                   help="plain cross-entropy instead of inverse-frequency class weights N/(K*n_c)")
    o.add_argument("--label-smoothing", type=float, default=0.0, metavar="X", help="(0)")
    o.add_argument("--teacher", nargs="+", metavar="MODEL",
                   help="distil from these fer-edge checkpoints or exported models (.onnx, .xml), probabilities "
                        "averaged, scored on the same augmented batch")
    o.add_argument("--teacher-once", action="store_true",
                   help="score each training face (and its mirror) with the teachers once before training and "
                        "distil every augmented view towards that: many times cheaper on a CPU than scoring "
                        "each augmented batch")
    o.add_argument("--teacher-tta", choices=("flip", "tencrop"), default="flip",
                   help="views the teachers score each face in with --teacher-once, probabilities averaged: the face "
                        "and its mirror (flip, default) or the ten 87.5%% crops of `fer-edge evaluate --tta tencrop` "
                        "(5x the scoring time, a more accurate teacher)")
    o.add_argument("--teacher-targets", metavar="FILE",
                   help="with --teacher-once: keep the teachers' scores in FILE (default "
                        "OUT/teacher_targets.safetensors) and read them from there when FILE holds the same teachers, "
                        "data, views and temperature, so a resumed run or another student skips the scoring")
    o.add_argument("--distill-alpha", type=float, default=0.5, metavar="X",
                   help="weight of the distillation loss; 1 - X goes to the labels (0.5)")
    o.add_argument("--distill-temperature", type=float, default=2.0, metavar="T", help="(2)")
    o.add_argument("--balanced-sampler", action="store_true", help="sample classes uniformly (with replacement)")
    o.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA, off on the CPU)")
    o.add_argument("--channels-last", action="store_true", help="channels_last memory format (on with CUDA AMP)")
    o.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of the weights, e.g. 0.999; "
                   "it is what gets validated and saved")
    o.add_argument("--clip-grad", type=float, metavar="X", help="clip the gradient norm at X")
    o.add_argument("--patience", type=positive_int, metavar="N",
                   help="stop after N epochs without a better val metric")
    o.add_argument("--select-metric", choices=("accuracy", "macro_f1"), default="accuracy",
                   help="val metric for best.pt and early stopping (accuracy)")
    o.add_argument("--seed", type=int, default=0, help="(0)")
    o.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="allow non-deterministic (faster) kernels")
    a = p.add_argument_group("augmentation (batched tensor ops on the training device)")
    a.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    a.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    a.add_argument("--rotate", type=float, default=10.0, metavar="DEG", help="max rotation (10; 0 = off)")
    a.add_argument("--scale-min", type=float, default=0.8, metavar="X",
                   help="random resized crop: smallest side fraction kept (0.8; 1 = off)")
    a.add_argument("--shift", type=float, default=0.1, metavar="X", help="max shift, fraction of the side (0.1)")
    a.add_argument("--perspective", type=float, default=0.05, metavar="X", help="perspective strength (0.05)")
    a.add_argument("--brightness", type=float, default=0.2, metavar="X", help="brightness jitter (0.2)")
    a.add_argument("--contrast", type=float, default=0.2, metavar="X", help="contrast jitter (0.2)")
    a.add_argument("--erase", type=float, default=0.25, metavar="P", help="random erasing probability (0.25)")
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="DIR", help="run folder (default runs/<arch>-<timestamp>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    r.add_argument("--resume-from", metavar="CHECKPOINT",
                   help="continue a schedule from a resumable release folder (from another machine or session: "
                   "python -m fer_edge.train.release RUN/last.pt checkpoints/NAME); fresh optimiser momentum")
    r.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1 (default: cuda if available)")
    r.add_argument("--data-on-gpu", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the dataset on the GPU (default: on when training on CUDA)")
    r.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads")
    r.add_argument("--max-steps", type=positive_int, metavar="N", help="at most N steps per epoch (timing, smoke)")
    r.add_argument("--eval-batch-size", type=positive_int, default=512, metavar="N", help="(512)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_cmd_train)
    return p


def config_from_args(args: argparse.Namespace):
    from fer_edge.train.augment import AugmentConfig
    from fer_edge.train.engine import TrainConfig

    for name in ("scale_min", "shift", "perspective", "brightness", "contrast", "erase"):
        if getattr(args, name) < 0:
            raise FerEdgeError(f"--{name.replace('_', '-')} must not be negative")
    if not 0 < args.scale_min <= 1:
        raise FerEdgeError("--scale-min must lie in (0, 1]")
    if args.erase > 1:
        raise FerEdgeError("--erase is a probability in [0, 1]")
    aug = AugmentConfig(scale=(args.scale_min, 1.0), shift=args.shift, flip=not args.no_flip, rotate=args.rotate,
                        perspective=args.perspective, brightness=args.brightness, contrast=args.contrast,
                        erase=args.erase, enabled=not args.no_augment)
    keys = ("data", "arch", "epochs", "out", "input_size", "channels", "batch_size", "eval_batch_size", "optimizer",
            "lr", "weight_decay", "scheduler", "warmup_epochs", "pretrained", "weights", "freeze_epochs",
            "unfreeze_last", "backbone_lr_scale", "drop_rate", "class_weights", "label_smoothing",
            "zero_init_head", "teacher", "teacher_once", "teacher_tta", "teacher_targets", "distill_alpha",
            "distill_temperature",
            "balanced_sampler", "ferplus", "ferplus_mode", "amp", "channels_last", "ema", "clip_grad", "patience",
            "select_metric", "seed", "deterministic", "resume", "resume_from", "quiet", "data_on_gpu", "device",
            "max_steps", "limit_per_class", "threads")
    return TrainConfig(**{k: getattr(args, k) for k in keys}, augment=aug, command=list(sys.argv))


def _cmd_train(args: argparse.Namespace) -> int:
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise FerEdgeError(f"'fer-edge train' needs the training extra: pip install 'fer-edge[train]' ({e.name} "
                           "is missing)")
    from fer_edge.train.engine import train

    train(config_from_args(args))
    return 0
