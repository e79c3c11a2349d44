"""Training checkpoints: the format, atomic saving and :func:`load_checkpoint` for evaluation and export.

A checkpoint is a dict saved with ``torch.save`` (loadable with ``weights_only=True``)::

    format        "fer_edge.checkpoint/1"
    state_dict    the weights to deploy (the EMA weights when --ema was used)
    arch          timm model name, or "cnn"
    model_kwargs  everything build_model() needs to rebuild the network without weights
    model_card    schema, classes, input_size [H, W], channels, mean, std, crop_margin, output, color
                  (written by the runtime's ModelMeta, the one metadata schema) + arch,
                  training_data_fingerprint, metrics, command, versions, git_commit, created
    epoch         the epoch (1-based) these weights come from
    # last.pt only, for --resume:
    train_state_dict, optimizer, scheduler, ema_state_dict, rng, history, best, bad_epochs, config

A *released* checkpoint (the repository's ``checkpoints/NAME/``) is the same thing without pickles: the
weights in ``model.safetensors`` and everything else (format, arch, model_kwargs, epoch, model_card) in
``model_card.json``. :func:`read_checkpoint` reads both forms: a ``.pt`` file, or the folder (or its
``.safetensors`` file). :func:`write_release` turns a ``.pt`` checkpoint into one (``python -m
fer_edge.train.release``); from a run's ``last.pt`` it also keeps, under ``resume``, the step, history and
config that ``fer-edge train --resume-from`` needs to carry the schedule on elsewhere (the deployed weights
start it again; the optimiser state stays behind, which keeps the folder one set of weights in size).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.metadata import META_FIELDS, SCHEMA_KEY, ModelMeta

FORMAT = "fer_edge.checkpoint/1"


def versions() -> dict[str, str]:
    import numpy

    out = {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(numpy.__version__)}
    try:
        import timm

        out["timm"] = str(timm.__version__)
    except ImportError:  # pragma: no cover
        out["timm"] = None
    return out


def git_commit() -> str | None:
    """HEAD of the checkout holding this file, else ``$FER_EDGE_GIT_COMMIT`` (a copied tree with no .git)."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                           text=True, timeout=5)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("FER_EDGE_GIT_COMMIT") or None


def make_model_card(*, classes, input_size, channels, mean, std, arch, fingerprint, metrics, command,
                    crop_margin: float = 0.1) -> dict[str, Any]:
    """The model card: the runtime metadata (validated and written by :class:`ModelMeta`) + training provenance."""
    meta = ModelMeta.from_dict({
        "classes": list(classes),
        "input_size": [int(input_size[0]), int(input_size[1])],
        "channels": int(channels),
        "mean": [float(mean)] * channels if isinstance(mean, (int, float)) else [float(v) for v in mean],
        "std": [float(std)] * channels if isinstance(std, (int, float)) else [float(v) for v in std],
        "crop_margin": float(crop_margin),
        "output": "logits",
        "color": "gray",
    }, "model card")
    return {
        **meta.to_dict(),
        "arch": arch,
        "training_data_fingerprint": fingerprint,
        "metrics": dict(metrics),
        "command": list(command),
        "versions": versions(),
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def runtime_meta(card: dict[str, Any]) -> dict[str, Any]:
    """The runtime ``fer_edge`` metadata of a model card: its schema tag and ModelMeta fields."""
    return {SCHEMA_KEY: card.get(SCHEMA_KEY, 1), **{k: card[k] for k in META_FIELDS}}


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> None:
    """Write atomically (a temporary file renamed into place), so an interruption never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


RELEASE_WEIGHTS = "model.safetensors"
RELEASE_CARD = "model_card.json"
RESUME_KEYS = ("global_step", "history", "best", "bad_epochs", "config")


def weights_file(checkpoint: str | os.PathLike) -> Path:
    """The file whose SHA-256 identifies a checkpoint (and is stored in its exports): the .pt, or a release
    folder's safetensors."""
    p = Path(checkpoint)
    return p / RELEASE_WEIGHTS if p.is_dir() else p


def write_release(ckpt: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write a checkpoint dict as a release folder (``model.safetensors`` + ``model_card.json``)."""
    import json

    from safetensors.torch import save_file

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt["state_dict"].items()}
    save_file(tensors, str(out / RELEASE_WEIGHTS), metadata={"format": FORMAT})
    meta = {k: ckpt[k] for k in ("format", "arch", "model_kwargs", "epoch", "model_card") if k in ckpt}
    if "global_step" in ckpt:  # a run's last.pt: keep what `fer-edge train --resume-from` needs to carry it on
        meta["resume"] = {k: ckpt.get(k) for k in RESUME_KEYS}
    (out / RELEASE_CARD).write_text(json.dumps(meta, indent=1, sort_keys=True, default=list) + "\n")
    return out


def _read_release(folder: Path, map_location: Any) -> dict[str, Any]:
    import json

    from safetensors.torch import load_file

    card_path, weights = folder / RELEASE_CARD, folder / RELEASE_WEIGHTS
    if not card_path.is_file() or not weights.is_file():
        raise FerEdgeError(f"checkpoint folder {folder} needs {RELEASE_WEIGHTS} and {RELEASE_CARD}")
    try:
        ckpt = json.loads(card_path.read_text())
        device = map_location if isinstance(map_location, str) else "cpu"
        ckpt["state_dict"] = load_file(str(weights), device=device)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise FerEdgeError(f"checkpoint {folder} is not a readable fer-edge checkpoint ({first})")
    if isinstance(ckpt.get("model_kwargs"), dict) and isinstance(ckpt["model_kwargs"].get("widths"), list):
        ckpt["model_kwargs"]["widths"] = tuple(ckpt["model_kwargs"]["widths"])
    return ckpt


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated; FerEdgeError for a missing or corrupt file."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix.lower() == ".safetensors":
        p = p.parent
    if p.is_dir():
        ckpt = _read_release(p, map_location)
    elif not p.is_file():
        raise FerEdgeError(f"checkpoint {p} does not exist")
    else:
        try:
            ckpt = torch.load(str(p), map_location=map_location, weights_only=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise FerEdgeError(f"checkpoint {p} is not a readable fer-edge checkpoint ({first})")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FerEdgeError(f"{p} is not a fer-edge training checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in ("state_dict", "arch", "model_kwargs", "model_card") if k not in ckpt]
    if missing:
        raise FerEdgeError(f"checkpoint {p} lacks {', '.join(missing)}")
    card = ckpt["model_card"]
    missing = [k for k in META_FIELDS if k not in card]
    if missing:
        raise FerEdgeError(f"checkpoint {p}: its model card lacks {', '.join(missing)}")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", expect_arch: str | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a checkpoint and load its weights: ``(model in eval mode, model_card)``.

    FerEdgeError when the file is missing or corrupt, when ``expect_arch`` is given and differs, or when
    the weights do not fit the architecture the checkpoint names.
    """
    from fer_edge.train.models import build_model

    p = Path(path).expanduser()
    ckpt = read_checkpoint(p, map_location)
    card = ckpt["model_card"]
    kw = dict(ckpt["model_kwargs"])
    arch = ckpt["arch"]
    if kw.get("arch") != arch or card.get("arch", arch) != arch:
        raise FerEdgeError(f"checkpoint {p} is inconsistent: it names architecture '{arch}' but its model "
                           f"kwargs say '{kw.get('arch')}'")
    if expect_arch is not None and expect_arch != arch:
        raise FerEdgeError(f"checkpoint {p} holds a '{arch}' model, not '{expect_arch}'")
    if int(kw.get("num_classes", -1)) != len(card["classes"]):
        raise FerEdgeError(f"checkpoint {p}: {kw.get('num_classes')} outputs but {len(card['classes'])} classes in "
                           "its model card")
    model = build_model(kw)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise FerEdgeError(f"checkpoint {p}: its weights do not fit architecture '{arch}' ({first})")
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, card
