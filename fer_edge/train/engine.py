"""The training loop: in-memory data, batched augmentation, transfer schedule, EMA, schedulers, early
stopping, DistributedDataParallel (torchrun), resume, checkpoints and metrics files.

``train(TrainConfig(...))`` is what ``fer-edge train`` calls; tests call it directly.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_edge.classes import EMOTIONS
from fer_edge.data import apply_ferplus, load_train_val
from fer_edge.metrics import metrics_from_confusion
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.train import models as M
from fer_edge.train.augment import AugmentConfig, BatchAugment, normalize
from fer_edge.train.checkpoint import FORMAT, make_model_card, read_checkpoint, save_checkpoint
from fer_edge.train.distill import (
    TEACHER_TARGETS,
    Teachers,
    distillation_loss,
    read_targets,
    targets_key,
    write_targets,
)
from fer_edge.tta import crop_views

SELECT_METRICS = ("accuracy", "macro_f1")


@dataclass
class TrainConfig:
    data: str
    arch: str = "cnn"
    epochs: int = 30
    out: str | None = None
    input_size: int | None = None
    channels: int = 1
    batch_size: int = 128  # global: split across DDP ranks
    eval_batch_size: int = 512
    optimizer: str = "adamw"
    lr: float | None = None  # default: 1e-3 (adamw) / 0.01 (sgd)
    weight_decay: float | None = None  # default: 0.05 (adamw) / 5e-4 (sgd)
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    pretrained: bool = False
    weights: str | None = None
    freeze_epochs: int = 0
    unfreeze_last: int | None = None
    backbone_lr_scale: float = 0.1
    drop_rate: float | None = None
    class_weights: bool = True
    label_smoothing: float = 0.0
    zero_init_head: bool = False
    teacher: list[str] | None = None  # checkpoints to distil from (an ensemble when several)
    teacher_once: bool = False  # score the un-augmented training faces once instead of every augmented batch
    teacher_tta: str = "flip"  # the views scored with teacher_once: "flip" (face + mirror) or "tencrop"
    teacher_targets: str | None = None  # where teacher_once keeps its scores (default: <out>/teacher_targets.pt)
    distill_alpha: float = 0.5  # weight of the distillation term; 1 - alpha on the labels
    distill_temperature: float = 2.0
    balanced_sampler: bool = False
    ferplus: str | None = None
    ferplus_mode: str = "majority"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    amp: bool | None = None  # None: on for CUDA, off on the CPU
    channels_last: bool = False
    ema: float | None = None
    clip_grad: float | None = None
    patience: int | None = None
    select_metric: str = "accuracy"
    seed: int = 0
    deterministic: bool = True
    resume: bool = False
    resume_from: str | None = None  # a resumable release folder (checkpoints/NAME) to carry a schedule on from
    quiet: bool = False
    data_on_gpu: bool | None = None  # None: on when training on CUDA
    device: str | None = None
    max_steps: int | None = None  # per epoch (throughput measurements, smoke runs)
    limit_per_class: int | None = None
    threads: int | None = None
    command: list[str] | None = None


# ---- small helpers ---------------------------------------------------------------------------------

def class_weights(counts: np.ndarray | list[int]) -> torch.Tensor:
    """Inverse-frequency class weights for the loss: ``w_c = N / (K * n_c)``.

    ``N`` is the number of training images, ``K`` the number of classes and ``n_c`` the images of
    class ``c``; a class with no image gets weight 0. No further normalisation: with every class present
    the sample-weighted mean of the weights is exactly 1 (``sum_c n_c * w_c / N = 1``), so the loss keeps
    the scale of plain cross-entropy, and a balanced set gets all weights 1.
    """
    c = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    n, k = c.sum(), len(c)
    w = torch.where(c > 0, n / (k * c.clamp(min=1)), torch.zeros_like(c))
    return w.float()


def cosine_lambda(total_steps: int, warmup_steps: int, min_ratio: float):
    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        t = min(max(t, 0.0), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


class _Dist:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.on = self.world > 1
        self.main = self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.on and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend, timeout=_dt.timedelta(minutes=30))

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.on:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, obj: Any) -> Any:
        if not self.on:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.on and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _pick_device(cfg: TrainConfig, dist: _Dist) -> torch.device:
    if cfg.device:
        dev = torch.device(cfg.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise FerEdgeError(f"--device {cfg.device}: CUDA is not available")
    else:
        dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if dev.type == "cuda":
        if dist.on:
            dev = torch.device("cuda", dist.local_rank)
        elif dev.index is None:  # set_device needs an index on recent torch
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    return dev


def _seed_all(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "gen": gen.get_state(),
          "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
          "numpy_pos": int(np.random.get_state()[2]), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def _set_rng_state(st: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"].cpu())
    gen.set_state(st["gen"].cpu())
    np.random.set_state(("MT19937", st["numpy"].numpy().astype(np.uint32), st["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(int(v) for v in st["python"]), None))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"].cpu())


def epoch_indices(n: int, labels: np.ndarray, epoch: int, seed: int, balanced: bool, world: int, rank: int
                  ) -> np.ndarray:
    """This rank's shard of the epoch's sample order (the same permutation on every rank, then rank::world).

    Every rank gets the same number of samples, so DDP ranks run the same number of steps.
    """
    g = np.random.default_rng([seed, epoch])
    if balanced:
        counts = np.bincount(labels)
        w = 1.0 / counts[labels]
        order = g.choice(n, size=n, replace=True, p=w / w.sum())
    else:
        order = g.permutation(n)
    per = len(order) // world
    return order[: per * world][rank::world]


# ---- the trainer -----------------------------------------------------------------------------------

def _view(x: torch.Tensor, rect, flipped: bool) -> torch.Tensor:
    """The ``[x0, y0, x1, y1]`` window of a (B, C, H, W) batch, mirrored when ``flipped``."""
    x0, y0, x1, y1 = (int(v) for v in rect)
    v = x[..., y0:y1, x0:x1]
    return v.flip(-1) if flipped else v


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.dist = _Dist()
        self.log = (lambda msg: None) if (cfg.quiet or not self.dist.main) else \
            (lambda msg: print(msg, file=sys.stderr, flush=True))

    # -- setup --
    def _check(self) -> None:
        c = self.cfg
        if c.epochs < 1:
            raise FerEdgeError("--epochs must be at least 1")
        if c.channels not in (1, 3):
            raise FerEdgeError("--channels must be 1 or 3")
        if c.optimizer not in ("adamw", "sgd"):
            raise FerEdgeError(f"unknown --optimizer '{c.optimizer}' (choose adamw or sgd)")
        if c.scheduler not in ("cosine", "plateau"):
            raise FerEdgeError(f"unknown --scheduler '{c.scheduler}' (choose cosine or plateau)")
        if c.select_metric not in SELECT_METRICS:
            raise FerEdgeError(f"unknown --select-metric '{c.select_metric}' (choose accuracy or macro_f1)")
        if c.batch_size < 2 * self.dist.world:
            raise FerEdgeError(f"--batch-size {c.batch_size} is too small for {self.dist.world} process(es)")
        if c.ema is not None and not 0.0 < c.ema < 1.0:
            raise FerEdgeError(f"--ema {c.ema} must lie in (0, 1), e.g. 0.999")
        if not 0.0 <= c.label_smoothing < 1.0:
            raise FerEdgeError(f"--label-smoothing {c.label_smoothing} must lie in [0, 1)")
        if c.freeze_epochs < 0:
            raise FerEdgeError("--freeze-epochs must not be negative")
        if c.unfreeze_last is not None and c.unfreeze_last < 0:
            raise FerEdgeError("--unfreeze-last must not be negative")
        if c.input_size is not None and c.input_size < 16:
            raise FerEdgeError("--input-size must be at least 16")
        if c.resume and not c.out:
            raise FerEdgeError("--resume needs --out, the run folder holding last.pt")
        if c.teacher and not 0.0 < c.distill_alpha <= 1.0:
            raise FerEdgeError(f"--distill-alpha {c.distill_alpha} must lie in (0, 1]")
        if c.teacher and c.distill_temperature <= 0:
            raise FerEdgeError(f"--distill-temperature {c.distill_temperature} must be positive")
        if c.teacher_once and not c.teacher:
            raise FerEdgeError("--teacher-once needs --teacher")
        if c.teacher_tta not in ("flip", "tencrop"):
            raise FerEdgeError(f"unknown --teacher-tta '{c.teacher_tta}' (choose flip, tencrop)")
        if (c.teacher_tta != "flip" or c.teacher_targets) and not c.teacher_once:
            raise FerEdgeError("--teacher-tta and --teacher-targets apply to --teacher-once (the faces scored once "
                               "before training)")
        if c.pretrained and c.weights:
            raise FerEdgeError("give either --pretrained or --weights, not both")
        if c.resume_from and (c.resume or c.weights or c.pretrained):
            raise FerEdgeError("--resume-from starts from its own weights: give it without --resume, --weights "
                               "and --pretrained")

    def setup(self) -> None:
        c = self.cfg
        self._check()
        if c.threads:
            torch.set_num_threads(c.threads)
        torch.set_flush_denormal(True)  # tiny weights must not slow CPU training down
        self.device = _pick_device(c, self.dist)
        self.dist.init(self.device)
        _seed_all(c.seed + self.dist.rank, c.deterministic)
        self.model_kwargs = M.model_kwargs_for(c.arch, len(EMOTIONS), c.channels, c.input_size, c.drop_rate)
        self.arch = self.model_kwargs["arch"]
        size = int(self.model_kwargs.get("img_size") or c.input_size or M.resolve_arch(c.arch)[2])
        self.input_size = (size, size)

        # output folder (rank 0 decides, so all ranks agree on a timestamped name)
        out = c.out
        if not out:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = str(Path("runs") / f"{c.arch.replace('/', '_')}-{stamp}")
        self.out = Path(self.dist.broadcast(out)).expanduser()
        if c.resume and not (self.out / "last.pt").is_file():
            raise FerEdgeError(f"--resume: {self.out / 'last.pt'} does not exist")

        # data
        t0 = time.perf_counter()
        tr, va = load_train_val(c.data, EMOTIONS, self.input_size, log=self.log if self.dist.main else None,
                                limit_per_class=c.limit_per_class)
        if c.ferplus:
            tr = apply_ferplus(tr, c.ferplus, c.ferplus_mode, self.log)
            va = apply_ferplus(va, c.ferplus, "majority", self.log)
        self.log(f"fer-edge: data in memory in {time.perf_counter() - t0:.1f} s")
        self.log("  " + tr.describe("train"))
        self.log("  " + va.describe("val"))
        self.train_set, self.val_set = tr, va
        self.fingerprint = tr.fingerprint()
        px = tr.images.astype(np.float32) / 255.0
        self.mean = round(float(px.mean()), 4)
        self.std = round(float(px.std()), 4) or 1.0
        del px
        self.classes = tr.classes

        on_gpu = c.data_on_gpu if c.data_on_gpu is not None else self.device.type == "cuda"
        self.data_device = self.device if on_gpu else torch.device("cpu")
        self.x_train = torch.from_numpy(tr.images).to(self.data_device)
        self.y_train = torch.from_numpy(tr.labels).to(self.data_device)
        self.soft_train = None if tr.soft is None else torch.from_numpy(tr.soft).to(self.data_device)
        self.x_val = torch.from_numpy(va.images).to(self.data_device)
        self.y_val = torch.from_numpy(va.labels)

        # model
        self.model = M.build_model(self.model_kwargs, pretrained=c.pretrained)
        if c.weights:
            M.load_weights(self.model, c.weights, log=self.log)
        carried = self._read_carried() if c.resume_from else None
        self.transfer = bool(c.pretrained or c.weights or c.freeze_epochs > 0)
        if c.zero_init_head and not c.resume:
            M.zero_init_head(self.model)
        self.amp = c.amp if c.amp is not None else self.device.type == "cuda"
        self.channels_last = c.channels_last or (self.amp and self.device.type == "cuda")
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.log(f"fer-edge: {c.arch} ({self.arch}, {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M "
                 f"params), input {size}x{size}x{c.channels}, device {self.device}"
                 + (f" x{self.dist.world} processes" if self.dist.on else "") + (", bf16 autocast" if self.amp else ""))

        # loss
        counts = tr.counts()
        self.loss_weight = class_weights(counts).to(self.device) if c.class_weights else None
        if self.loss_weight is not None:
            self.log("  class weights: " + ", ".join(f"{k} {w:.2f}" for k, w in zip(self.classes,
                                                                                     self.loss_weight.tolist())))

        self.teachers = None
        if c.teacher:
            self.teachers = Teachers(c.teacher, self.classes, self.device, self.mean, self.std, exact=not self.amp)
            self.log(f"  distilling from {len(c.teacher)} teacher(s), alpha {c.distill_alpha}, "
                     f"T {c.distill_temperature}" + (f", scored once on the un-augmented faces ({c.teacher_tta})"
                                                     if c.teacher_once else ""))
        self.teacher_train = None
        if c.teacher_once:
            t_train, t_val = self._teacher_targets(tr, va)
            self.teacher_train = t_train.to(self.data_device)
            self.log(f"  teacher on val ({c.teacher_tta}): accuracy "
                     f"{float((t_val.argmax(1) == self.y_val.to(t_val.device)).float().mean()):.4f}")

        # optimiser + scheduler
        lr = c.lr if c.lr is not None else (1e-3 if c.optimizer == "adamw" else 0.01)
        wd = c.weight_decay if c.weight_decay is not None else (0.05 if c.optimizer == "adamw" else 5e-4)
        groups = M.param_groups(self.model, lr, wd, c.backbone_lr_scale if self.transfer else 1.0)
        if c.optimizer == "adamw":
            self.opt = torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
        else:
            self.opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
        self.per_rank_batch = c.batch_size // self.dist.world
        n_local = len(tr) // self.dist.world
        self.steps_per_epoch = max(1, n_local // self.per_rank_batch + (1 if n_local % self.per_rank_batch > 1 else 0))
        if c.max_steps:
            self.steps_per_epoch = min(self.steps_per_epoch, c.max_steps)
        if c.scheduler == "cosine":
            total = self.steps_per_epoch * c.epochs
            warm = int(round(c.warmup_epochs * self.steps_per_epoch))
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, cosine_lambda(total, warm, c.min_lr_ratio))
        else:
            self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="max", factor=c.plateau_factor,
                                                                    patience=c.plateau_patience)
        self.ema = None
        if c.ema:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=c.ema, use_warmup=True)
        self.aug = BatchAugment(c.augment, c.channels, self.mean, self.std)
        self.gen = torch.Generator(device=self.data_device)
        self.gen.manual_seed(c.seed * 1000 + self.dist.rank)

        self.start_epoch = 1
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.bad_epochs = 0
        self.global_step = 0
        if c.resume:
            self._load_last()
        if carried is not None:
            self._carry_on(carried)
        self.frozen_state: tuple | None = None
        self.ddp: nn.Module | None = None

    def _load_last(self) -> None:
        path = self.out / "last.pt"
        ckpt = read_checkpoint(path, map_location="cpu")
        self._check_same_run(ckpt, path, "--resume", ckpt.get("fingerprint"))
        self.model.load_state_dict(ckpt["train_state_dict"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            if ckpt.get("ema_state_dict") is None:
                raise FerEdgeError(f"--resume: {path} was trained without --ema")
            self.ema.load_state_dict(ckpt["ema_state_dict"])
        rng = ckpt.get("rng_per_rank", {}).get(self.dist.rank)
        if rng is not None:
            _set_rng_state(rng, self.gen)
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.history = list(ckpt.get("history", []))
        self.best = ckpt.get("best")
        self.bad_epochs = int(ckpt.get("bad_epochs", 0))
        self.global_step = int(ckpt.get("global_step", 0))
        self.log(f"fer-edge: resuming {path} after epoch {ckpt['epoch']}")

    def _check_same_run(self, ckpt: dict[str, Any], path, flag: str, fingerprint: str | None) -> None:
        """A checkpoint to continue must hold this architecture, trained on these data."""
        if ckpt["model_kwargs"] != self.model_kwargs:
            raise FerEdgeError(f"{flag}: {path} was trained as {ckpt['arch']} {ckpt['model_kwargs']}, not as "
                               f"{self.arch} {self.model_kwargs}")
        if fingerprint != self.fingerprint:
            raise FerEdgeError(f"{flag}: the training data differ from the data {path} was trained on")

    def _read_carried(self) -> dict[str, Any]:
        """Read a resumable release (``--resume-from``) and load its weights into the model."""
        path = self.cfg.resume_from
        ckpt = read_checkpoint(path, map_location="cpu")
        state = ckpt.get("resume")
        if not isinstance(state, dict) or "global_step" not in state:
            raise FerEdgeError(f"--resume-from: {path} holds no training state (write it from a run's last.pt with "
                               "python -m fer_edge.train.release RUN/last.pt OUT)")
        self._check_same_run(ckpt, path, "--resume-from", ckpt["model_card"].get("training_data_fingerprint"))
        self.model.load_state_dict(ckpt["state_dict"])
        return {**state, "epoch": int(ckpt["epoch"])}

    def _carry_on(self, state: dict[str, Any]) -> None:
        """Continue a schedule after a resumable release's epoch: its weights (the EMA's when it kept one) start both
        the training weights and the EMA; the optimiser's momentum starts afresh; the learning rate resumes at the
        release's step of a schedule of this run's ``--epochs``."""
        c = self.cfg
        self.start_epoch = state["epoch"] + 1
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))
        self.best = state.get("best")
        self.bad_epochs = int(state.get("bad_epochs", 0))
        if c.scheduler == "cosine":
            self.sched.last_epoch = self.global_step
            for g, base, f in zip(self.opt.param_groups, self.sched.base_lrs, self.sched.lr_lambdas):
                g["lr"] = base * f(self.global_step)
        was = (state.get("config") or {}).get("epochs")
        self.log(f"fer-edge: carrying {c.resume_from} on after epoch {state['epoch']} (step {self.global_step}, "
                 f"learning rate {max(g['lr'] for g in self.opt.param_groups):.3g}"
                 + (f"; its schedule had {was} epochs, this one {c.epochs}" if was and was != c.epochs else "") + ")")

    # -- freezing / DDP --
    def _prepare_epoch(self, epoch: int) -> nn.Module:
        c = self.cfg
        head_only = epoch <= c.freeze_epochs
        state = (head_only, None if head_only else c.unfreeze_last)
        if state != self.frozen_state:
            if head_only:
                self.log(f"  epochs 1-{c.freeze_epochs}: training the classifier head only")
            elif c.unfreeze_last is not None:
                self.log(f"  epoch {epoch}: unfreezing the last {c.unfreeze_last} backbone block(s)")
            self.frozen = M.set_trainable(self.model, c.unfreeze_last, head_only)
            self.frozen_state = state
            if self.dist.on:
                from torch.nn.parallel import DistributedDataParallel as DDP

                ids = [self.device.index] if self.device.type == "cuda" else None
                self.ddp = DDP(self.model, device_ids=ids)
            else:
                self.ddp = self.model
        M.frozen_train_mode(self.model, self.frozen)
        return self.ddp

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _teacher_targets(self, tr, va) -> tuple[torch.Tensor, torch.Tensor]:
        """``--teacher-once``: the teachers' probabilities at the distillation temperature for every training face
        and at T=1 for every val face, read from the targets file when it holds these teachers' scores of these
        faces with these views, else scored now and saved there."""
        c = self.cfg
        path = Path(c.teacher_targets).expanduser() if c.teacher_targets else self.out / TEACHER_TARGETS
        size = self._teacher_face_size()
        t_tr, t_va, faces = self._teacher_faces(tr, va, size)
        # keyed on the faces as the teachers see them, so students of other input sizes share the file
        key = targets_key(c.teacher, faces, c.teacher_tta, c.distill_temperature, self.classes, size,
                          bool(c.ferplus), c.ferplus_mode, c.limit_per_class)
        kept = read_targets(path, key)
        if kept is not None and len(kept["train"]) == len(tr.labels) and len(kept["val"]) == len(va.labels):
            self.log(f"  teacher targets read from {path}")
            return kept["train"], kept["val"]
        t0 = time.perf_counter()
        with self._autocast():
            t_train = self._score_once(t_tr, c.distill_temperature).float()
            t_val = self._score_once(t_va, 1.0).float()
        if self.dist.main:
            write_targets(path, key, t_train, t_val)
        self.log(f"  teachers scored {len(t_tr) + len(t_va)} faces at {t_tr.shape[-1]}x{t_tr.shape[-2]} in "
                 f"{time.perf_counter() - t0:.0f} s" + (" (bf16)" if self.amp else "") + f", kept in {path}")
        return t_train, t_val

    def _teacher_face_size(self) -> tuple[int, int]:
        """The size the teachers score the faces at: the largest teacher input size, or the student's if larger."""
        size = max((m[1] for m in self.teachers.models), key=lambda s: s[0] * s[1])
        student = tuple(self.input_size)
        return student if size[0] * size[1] <= student[0] * student[1] else size

    def _teacher_faces(self, tr, va, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The training and val faces at ``size``, the largest teacher input size (read again when the student's
        is smaller, so a 40 px student still learns from what the teacher sees at its own size), and the training
        faces' fingerprint at that size."""
        c = self.cfg
        if size == tuple(self.input_size):
            return self.x_train, self.x_val, self.fingerprint
        quiet = lambda *_a, **_k: None  # noqa: E731
        t_tr, t_va = load_train_val(c.data, EMOTIONS, size, log=quiet, limit_per_class=c.limit_per_class)
        if c.ferplus:
            t_tr = apply_ferplus(t_tr, c.ferplus, c.ferplus_mode, quiet)
            t_va = apply_ferplus(t_va, c.ferplus, "majority", quiet)
        if not (np.array_equal(t_tr.labels, tr.labels) and np.array_equal(t_va.labels, va.labels)):
            raise FerEdgeError("--teacher-once: the data read again at the teacher's size does not match")
        return torch.from_numpy(t_tr.images), torch.from_numpy(t_va.images), t_tr.fingerprint()

    @torch.no_grad()
    def _score_once(self, images: torch.Tensor, temperature: float) -> torch.Tensor:
        """The teachers' probabilities for uint8 faces (N, H, W), averaged over the ``--teacher-tta`` views
        (N, 7): the face and its mirror, or the ten crops of ``fer-edge evaluate --tta tencrop`` (each view is
        resized to a teacher's input size by :meth:`Teachers.probs`)."""
        h, w = images.shape[-2:]
        views = crop_views(h, w, self.cfg.teacher_tta)
        out = []
        bs = self.cfg.eval_batch_size
        for i in range(0, len(images), bs):
            x = normalize(images[i:i + bs].to(self.device), self.cfg.channels, self.mean, self.std)
            p = sum(self.teachers.probs(_view(x, rect, flipped), temperature) for rect, flipped in views)
            out.append((p / len(views)).cpu())
        return torch.cat(out)

    # -- one epoch --
    def train_epoch(self, epoch: int) -> dict[str, float]:
        c = self.cfg
        net = self._prepare_epoch(epoch)
        idx_all = epoch_indices(len(self.train_set), self.train_set.labels, epoch, c.seed, c.balanced_sampler,
                                self.dist.world, self.dist.rank)
        bs = self.per_rank_batch
        batches = [idx_all[i:i + bs] for i in range(0, len(idx_all), bs)]
        batches = [b for b in batches if len(b) > 1][: self.steps_per_epoch]
        tot = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, seen
        bar = _progress(len(batches), f"epoch {epoch}/{c.epochs}", c.quiet or not self.dist.main)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            ib = torch.from_numpy(b).to(self.data_device)
            x = self.aug(self.x_train.index_select(0, ib), self.gen).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.y_train.index_select(0, ib).to(self.device, non_blocking=True)
            target = y if self.soft_train is None else self.soft_train.index_select(0, ib).to(self.device)
            with self._autocast():
                logits = net(x)
            loss = F.cross_entropy(logits.float(), target, weight=self.loss_weight,
                                   label_smoothing=c.label_smoothing)
            if self.teachers is not None:
                if self.teacher_train is not None:
                    t_probs = self.teacher_train.index_select(0, ib).to(self.device)
                else:
                    with self._autocast():
                        t_probs = self.teachers.probs(x, c.distill_temperature)
                kd = distillation_loss(logits, t_probs, c.distill_temperature)
                loss = (1.0 - c.distill_alpha) * loss + c.distill_alpha * kd
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.clip_grad:
                nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], c.clip_grad)
            self.opt.step()
            if c.scheduler == "cosine":
                self.sched.step()
            self.global_step += 1
            if self.ema is not None:
                self.ema.update(self.model, step=self.global_step)
            with torch.no_grad():
                tot[0] += loss.detach().double() * len(b)
                tot[1] += (logits.argmax(1) == y).sum()
                tot[2] += len(b)
            bar.update(1)
            if not isinstance(bar, _NoBar):  # .item() waits for the GPU: only for a visible bar
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        bar.close()
        self.dist.sum_(tot)
        seen = max(float(tot[2]), 1.0)
        return {"train_loss": float(tot[0]) / seen, "train_accuracy": float(tot[1]) / seen,
                "train_images": int(tot[2]), "train_seconds": secs, "images_per_s": float(tot[2]) / max(secs, 1e-9)}

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        k = len(self.classes)
        idx = np.arange(self.dist.rank, len(self.val_set), self.dist.world)
        cm = torch.zeros(k, k, dtype=torch.float64, device=self.device)
        loss = torch.zeros(1, dtype=torch.float64, device=self.device)
        for i in range(0, len(idx), self.cfg.eval_batch_size):
            ib = torch.from_numpy(idx[i:i + self.cfg.eval_batch_size])
            x = normalize(self.x_val.index_select(0, ib.to(self.data_device)), self.cfg.channels, self.mean,
                          self.std).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.y_val.index_select(0, ib).to(self.device)
            with self._autocast():
                logits = model(x).float()
            loss += F.cross_entropy(logits, y, reduction="sum").double()
            cm += torch.bincount(y * k + logits.argmax(1), minlength=k * k).view(k, k).double()
        self.dist.sum_(cm)
        self.dist.sum_(loss)
        m = metrics_from_confusion(cm.round().long().cpu().numpy(), self.classes)
        return {"val_loss": float(loss) / max(m["n"], 1), "val_accuracy": m["accuracy"],
                "val_macro_f1": m["macro_f1"], "per_class": m["per_class"]}

    # -- outputs --
    def _checkpoint(self, epoch: int, metrics: dict[str, Any], last: bool) -> dict[str, Any]:
        c = self.cfg
        deploy = self.ema.module if self.ema is not None else self.model
        card = make_model_card(classes=self.classes, input_size=self.input_size, channels=c.channels,
                               mean=self.mean, std=self.std, arch=self.arch, fingerprint=self.fingerprint,
                               metrics=metrics, command=c.command or sys.argv)
        ck: dict[str, Any] = {
            "format": FORMAT, "state_dict": {k: v.detach().cpu() for k, v in deploy.state_dict().items()},
            "arch": self.arch, "model_kwargs": dict(self.model_kwargs), "model_card": card, "epoch": epoch,
            "fingerprint": self.fingerprint,
        }
        if last:
            ck.update({
                "train_state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "ema_state_dict": None if self.ema is None else self.ema.state_dict(),
                "rng_per_rank": self._gather_rng(), "history": self.history, "best": self.best,
                "bad_epochs": self.bad_epochs, "global_step": self.global_step, "config": _plain(asdict(c)),
            })
        return ck

    def _gather_rng(self) -> dict[int, Any]:
        st = _rng_state(self.gen)
        if not self.dist.on:
            return {0: st}
        box: list[Any] = [None] * self.dist.world
        torch.distributed.all_gather_object(box, {k: v for k, v in st.items()})
        return {r: s for r, s in enumerate(box)}

    def _write_metrics(self) -> None:
        rows = [{k: v for k, v in h.items() if k != "per_class"} for h in self.history]
        keys = list(rows[0]) if rows else []
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        doc = {"arch": self.arch, "select_metric": self.cfg.select_metric, "best": self.best,
               "epochs": self.history}
        tmp = self.out / "metrics.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.out / "metrics.json")

    # -- main loop --
    def fit(self) -> dict[str, Any]:
        c = self.cfg
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.log(f"fer-edge: writing to {self.out}")
        key = "val_" + c.select_metric
        stopped = False
        for epoch in range(self.start_epoch, c.epochs + 1):
            tr = self.train_epoch(epoch)
            va = self.validate()
            if c.scheduler == "plateau":
                self.sched.step(va[key])
            row = {"epoch": epoch, **tr, **va, "lr": max(g["lr"] for g in self.opt.param_groups)}
            self.history.append(row)
            improved = self.best is None or va[key] > self.best[key]
            if improved:
                self.best = {"epoch": epoch, "val_accuracy": va["val_accuracy"], "val_macro_f1": va["val_macro_f1"],
                             "val_loss": va["val_loss"], "per_class": va["per_class"]}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            stopped = c.patience is not None and self.bad_epochs >= c.patience
            self.log(f"epoch {epoch}/{c.epochs}: train loss {tr['train_loss']:.4f} acc {tr['train_accuracy']:.4f} | "
                     f"val loss {va['val_loss']:.4f} acc {va['val_accuracy']:.4f} macro-F1 {va['val_macro_f1']:.4f}"
                     f" | {tr['images_per_s']:.0f} img/s, {tr['train_seconds']:.1f} s" + (" *" if improved else ""))
            rng_ck = self._checkpoint(epoch, _summary(self.best), last=True)  # collective when DDP: all ranks
            if self.dist.main:
                if improved:
                    best_ck = {k: rng_ck[k] for k in ("format", "state_dict", "arch", "model_kwargs", "model_card",
                                                      "epoch", "fingerprint")}
                    save_checkpoint(self.out / "best.pt", best_ck)
                save_checkpoint(self.out / "last.pt", rng_ck)
                self._write_metrics()
            if stopped:
                self.log(f"fer-edge: early stop: no better val {c.select_metric} for {c.patience} epoch(s)")
                break
        if self.dist.on:
            torch.distributed.barrier()
        if self.best is not None:
            self.log(f"fer-edge: best epoch {self.best['epoch']}: val accuracy {self.best['val_accuracy']:.4f}, "
                     f"macro-F1 {self.best['val_macro_f1']:.4f} -> {self.out / 'best.pt'}")
        return {"out": str(self.out), "best": self.best, "history": self.history, "early_stopped": stopped}


def _summary(best: dict[str, Any] | None) -> dict[str, Any]:
    if not best:
        return {}
    return {k: best[k] for k in ("epoch", "val_accuracy", "val_macro_f1", "val_loss")}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train per ``cfg``; under torchrun each process runs this and rank 0 writes the files."""
    t = Trainer(cfg)
    try:
        t.setup()
        return t.fit()
    finally:
        t.dist.close()
        torch.set_flush_denormal(False)  # setup() turned it on for training only: not for the rest of the process
