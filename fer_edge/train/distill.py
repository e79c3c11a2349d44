"""Knowledge distillation: frozen teacher checkpoints score the student's own augmented batch.

The student's batch arrives normalised with the student's mean/std (and channel count); each teacher
gets the same pixels re-normalised with its own statistics, resized to its own input size, so a teacher
may differ from the student in architecture, input size and channels. Several teachers are an ensemble:
their temperature-softened probabilities are averaged. A teacher is a fer-edge checkpoint or an exported
model (``.onnx`` / OpenVINO ``.xml``, run through the runtime's own classifier on the CPU, for example the
shipped INT8 model); an exported teacher's probabilities are re-tempered as ``p ** (1/T)``, renormalised,
which equals ``softmax(logits / T)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_edge.runtime.errors import FerEdgeError
from fer_edge.train.checkpoint import load_checkpoint

EXPORTED_SUFFIXES = (".onnx", ".xml")
TARGETS_FORMAT = "fer_edge.teacher_targets/2"  # safetensors: tensors train and val, the key as JSON metadata
TEACHER_TARGETS = "teacher_targets.safetensors"  # file name of the --teacher-once targets in a run folder


class _ExportedTeacher:
    """An exported classifier as a teacher: a torch batch in, probabilities out (no gradients)."""

    def __init__(self, path: str | os.PathLike, exact: bool = True):
        from fer_edge.runtime.classifier import MAX_BATCH, load_classifier

        # OpenVINO runs FP32 layers in bf16 on CPUs with AMX / AVX512-BF16 unless told f32
        self.clf = load_classifier(path, precision_hint="f32" if exact else None)
        self.max_batch = MAX_BATCH

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        arr = x.detach().float().cpu().contiguous().numpy()
        out = [np.array(self.clf.predict(np.ascontiguousarray(arr[i:i + self.max_batch])))
               for i in range(0, len(arr), self.max_batch)]
        return torch.from_numpy(np.concatenate(out)).to(x.device)


class Teachers:
    """One or more frozen teachers (fer-edge checkpoints or exported models), averaged probabilities."""

    def __init__(self, paths: Sequence[str | os.PathLike], classes: Sequence[str], device: torch.device,
                 mean: float, std: float, exact: bool = True):
        """``exact=False`` (the trainer's ``--amp``) lets an OpenVINO teacher run its FP32 layers in bf16 where
        the CPU has it, as autocast does for a checkpoint teacher: 5-8x faster scoring on AMX."""
        if not paths:
            raise FerEdgeError("--teacher needs at least one checkpoint")
        self.mean, self.std = float(mean), float(std)
        self.models: list[tuple[nn.Module | _ExportedTeacher, tuple[int, int], int, torch.Tensor, torch.Tensor]] = []
        for p in paths:
            if str(p).lower().endswith(EXPORTED_SUFFIXES):
                model = _ExportedTeacher(p, exact)
                card = model.clf.meta.to_dict()
            else:
                model, card = load_checkpoint(p, map_location=device)
                for q in model.parameters():
                    q.requires_grad_(False)
                model.eval()
            if list(card["classes"]) != list(classes):
                raise FerEdgeError(f"teacher {p} predicts {card['classes']}, not the student's classes {list(classes)}")
            size = (int(card["input_size"][0]), int(card["input_size"][1]))
            ch = int(card["channels"])
            t_mean = torch.tensor(card["mean"], dtype=torch.float32, device=device).view(1, ch, 1, 1)
            t_std = torch.tensor(card["std"], dtype=torch.float32, device=device).view(1, ch, 1, 1)
            self.models.append((model, size, ch, t_mean, t_std))

    @torch.no_grad()
    def probs(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """Averaged softmax(logits / T) of the teachers for a student batch ``x`` (B, C, H, W)."""
        gray = x[:, :1].float() * self.std + self.mean  # back to [0, 1] pixels
        out = None
        for model, size, ch, t_mean, t_std in self.models:
            g = gray if tuple(gray.shape[-2:]) == size else F.interpolate(gray, size=size, mode="bilinear",
                                                                           align_corners=False, antialias=True)
            t_in = (g.expand(-1, ch, -1, -1) - t_mean) / t_std
            if isinstance(model, _ExportedTeacher):
                p = model(t_in).clamp_min(1e-12) ** (1.0 / temperature)
                p = p / p.sum(dim=1, keepdim=True)
            else:
                p = F.softmax(model(t_in.contiguous()).float() / temperature, dim=1)
            out = p if out is None else out + p
        return out / len(self.models)


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: ``T^2 * KL(teacher || student)`` at temperature ``T`` (batch mean)."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_p, teacher_probs, reduction="batchmean") * temperature**2


# ---- --teacher-once targets, kept so a resumed or a second student does not score the faces again -------------

def teacher_digests(paths: Sequence[str | os.PathLike]) -> list[str]:
    """SHA-256 of each teacher's weights file (a release folder's ``model.safetensors``; an IR's ``.bin`` too)."""
    from fer_edge.runtime.assets import sha256_of

    out = []
    for p in map(Path, paths):
        files = [p / "model.safetensors"] if p.is_dir() else [p]
        if p.suffix.lower() == ".xml":
            files.append(p.with_suffix(".bin"))
        out.append("+".join(sha256_of(f) for f in files if f.is_file()))
    return out


def targets_key(teachers: Sequence[str | os.PathLike], fingerprint: str, tta: str, temperature: float,
                classes: Sequence[str], faces_at: Sequence[int], ferplus: bool = False, ferplus_mode: str = "majority",
                limit_per_class: int | None = None) -> dict[str, Any]:
    """What a targets file was scored for: the teachers' weights, the training faces as the teachers saw them (the
    fingerprint at ``faces_at``), the views, the temperature, the classes and the label options."""
    return {"teachers": teacher_digests(teachers), "data": fingerprint, "tta": tta, "temperature": float(temperature),
            "classes": list(classes), "faces_at": list(faces_at), "ferplus": bool(ferplus),
            "ferplus_mode": ferplus_mode, "limit_per_class": limit_per_class}


def read_targets(path: Path, key: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The targets saved at ``path`` when they were scored for ``key``; None when absent or scored otherwise."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    unreadable = FerEdgeError(f"{path} cannot be read as teacher targets; delete it or give another "
                              "--teacher-targets FILE")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != TARGETS_FORMAT or set(f.keys()) != {"train", "val"}:
                raise unreadable
            if json.loads(meta.get("key", "null")) != json.loads(json.dumps(key)):
                return None
            return {"train": f.get_tensor("train"), "val": f.get_tensor("val")}
    except FerEdgeError:
        raise
    except Exception:  # noqa: BLE001 - whatever it is, it is not ours: never overwrite it
        raise unreadable from None


def write_targets(path: Path, key: dict[str, Any], train: torch.Tensor, val: torch.Tensor) -> None:
    """Save the training targets and the val probabilities with the key they were scored for (atomically), as
    safetensors: no pickle, so a kept file can be shared like a release's weights."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"train": train.float().cpu().contiguous(), "val": val.float().cpu().contiguous()}, str(tmp),
              metadata={"format": TARGETS_FORMAT, "key": json.dumps(key, sort_keys=True)})
    os.replace(tmp, path)
