"""Model registry: presets, a small from-scratch CNN, any timm model, local weights and freezing helpers.

``build_model(model_kwargs)`` rebuilds a network from the plain dict stored in every checkpoint, so a
checkpoint needs no code beyond this module to be loaded.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fer_edge.runtime.errors import FerEdgeError

# preset name -> (timm name or "cnn", extra timm kwargs, default input size)
PRESETS: dict[str, tuple[str, dict[str, Any], int]] = {
    "cnn": ("cnn", {}, 48),
    # VGG-style teacher after Khaireddin & Chen 2021: 2 convs per stage (64-128-256-512), the 3x3 map flattened
    # into two 1024-wide FC layers
    "vgg": ("cnn", {"convs_per_block": 2, "pool": 3, "fc_layers": 2, "hidden": 1024, "dropout": 0.1,
                    "head_dropout": 0.4}, 48),
    # the same network at half the widths (32-64-128-256, two 512 FC; 2.6 M params): an `accurate` candidate that
    # runs faster in INT8 than the 96 px MobileNetV2 (benchmarks/results/accurate-candidates-vnni/)
    "vgg-half": ("cnn", {"widths": (32, 64, 128, 256), "convs_per_block": 2, "pool": 3, "fc_layers": 2,
                         "hidden": 512, "dropout": 0.1, "head_dropout": 0.4}, 48),
    # 0.625 of the VGG's widths (40-80-160-320, the same two 512 FC; 3.6 M params): still 0.45-0.68x the 96 px
    # MobileNetV2's INT8 time per face (benchmarks/results/accurate-wider-candidates/), and a vgg-half widens into
    # it without changing its function (python -m fer_edge.train.widen)
    "vgg-wide": ("cnn", {"widths": (40, 80, 160, 320), "convs_per_block": 2, "pool": 3, "fc_layers": 2,
                         "hidden": 512, "dropout": 0.1, "head_dropout": 0.4}, 48),
    # the latency-first student: one 3x3 conv per stage (32-64-128-256), a 128-wide head, 40 px
    "cnn-tiny": ("cnn", {"widths": (32, 64, 128, 256), "hidden": 128}, 40),
    # the same MACs at twice the depth (two convs per stage, 16-32-64-128) and light dropout: the fast student
    "cnn-fast": ("cnn", {"widths": (16, 32, 64, 128), "convs_per_block": 2, "hidden": 128, "dropout": 0.05,
                         "head_dropout": 0.2}, 40),
    # cnn-fast at 1.5x the widths (24-48-96-192, about twice the work): still 0.67-0.75x fer's classifier time on
    # AVX-512 VNNI (benchmarks/results/student-candidates-vnni/, cnn-mid2-40), the second `fast` candidate
    "cnn-mid": ("cnn", {"widths": (24, 48, 96, 192), "convs_per_block": 2, "hidden": 128, "dropout": 0.05,
                        "head_dropout": 0.2}, 40),
    "mobilenetv3": ("mobilenetv3_large_100", {}, 48),
    "vit": ("vit_tiny_patch16_224", {"patch_size": 6}, 48),
    # ViT-tiny at half depth on 6x6 patches of 8 px, average-pooled tokens: ~3.5x cheaper than "vit" on a CPU
    "vit-lite": ("vit_tiny_patch16_224", {"patch_size": 8, "depth": 6, "class_token": False, "global_pool": "avg"},
                 48),
    # ViT-lite with a convolutional stem (three stride-2 3x3 convs) instead of the 8x8 patch projection
    "vit-conv": ("vit_convstem", {"patch_size": 8, "depth": 6}, 48),
}


class FerCNN(nn.Module):
    """The from-scratch baseline: 4 conv blocks of 64-128-256-512 channels, each ``convs_per_block`` x
    (3x3 conv + BN + ReLU), 2x2 max-pool and dropout; average pooling to ``pool`` x ``pool`` and a head of
    ``fc_layers`` hidden FC layers (Linear + BN + ReLU + dropout) before the classifier Linear."""

    def __init__(self, in_chans: int = 1, num_classes: int = 7, widths: tuple[int, ...] = (64, 128, 256, 512),
                 convs_per_block: int = 1, dropout: float = 0.25, head_dropout: float = 0.5, hidden: int = 256,
                 pool: int = 1, fc_layers: int = 1):
        super().__init__()
        blocks = []
        c = in_chans
        for w in widths:
            layers: list[nn.Module] = []
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            blocks.append(nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(dropout)))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        head: list[nn.Module] = [nn.Flatten()]
        d = c * pool * pool
        for _ in range(fc_layers):
            head += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(head_dropout)]
            d = hidden
        self.classifier = nn.Sequential(*head, nn.Linear(d, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(x)))


class ConvStemPatchEmbed(nn.Module):
    """A ViT patch embedding made of stride-2 3x3 convs (Xiao et al., "Early convolutions help transformers
    see better", 2021) in place of one patch-sized conv: same tokens, far easier to train from scratch on
    small data. ``patch_size`` must be a power of two (one conv per factor of 2, then a 1x1 projection)."""

    def __init__(self, img_size=48, patch_size=8, in_chans=1, embed_dim=192, bias=True, **_ignored):
        super().__init__()
        from timm.layers import to_2tuple

        n = int(patch_size).bit_length() - 1
        if 2**n != patch_size or n < 1:
            raise FerEdgeError(f"a convolutional ViT stem needs a power-of-two patch size, not {patch_size}")
        self.img_size, self.patch_size = to_2tuple(img_size), to_2tuple(patch_size)
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.dynamic_img_size = False
        layers: list[nn.Module] = []
        c = in_chans
        for i in range(n):
            w = embed_dim // 2 ** (n - 1 - i)  # widths double up to embed_dim (48, 96, 192)
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers.append(nn.Conv2d(c, embed_dim, 1, bias=bias))
        self.proj = nn.Sequential(*layers)

    def feat_ratio(self, as_scalar: bool = True):
        return max(self.patch_size) if as_scalar else self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def _conv_stem_vit(**kw) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    defaults = {"embed_dim": 192, "depth": 6, "num_heads": 3, "class_token": False, "global_pool": "avg"}
    return VisionTransformer(embed_layer=ConvStemPatchEmbed, **{**defaults, **kw})


def resolve_arch(name: str, input_size: int | None = None) -> tuple[str, dict[str, Any], int]:
    """(timm name or 'cnn', extra kwargs, input size) for a preset or a timm model name."""
    if name in PRESETS:
        arch, extra, size = PRESETS[name]
        return arch, dict(extra), int(input_size or size)
    import timm

    if name == "cnn" or timm.is_model(name):
        return name, {}, int(input_size or 48)
    raise FerEdgeError(f"unknown architecture '{name}' (use a preset: {', '.join(PRESETS)}, or a timm model name)")


def model_kwargs_for(name: str, num_classes: int, in_chans: int, input_size: int | None = None,
                     drop_rate: float | None = None) -> dict[str, Any]:
    """Everything needed to rebuild the network without weights."""
    arch, extra, size = resolve_arch(name, input_size)
    kw: dict[str, Any] = {"arch": arch, "num_classes": int(num_classes), "in_chans": int(in_chans), **extra}
    if arch != "cnn" and _is_vit_like(arch):
        kw["img_size"] = size
        if "patch_size" not in kw:
            kw["patch_size"] = 6 if size % 6 == 0 else (4 if size % 4 == 0 else 8)
        if size % kw["patch_size"]:
            raise FerEdgeError(f"input size {size} is not a multiple of the ViT patch size {kw['patch_size']}")
    if drop_rate is not None:
        kw["drop_rate"] = float(drop_rate)
    return kw


def _is_vit_like(arch: str) -> bool:
    return arch.split("_")[0] in ("vit", "deit", "deit3", "eva", "beit")


def build_model(model_kwargs: dict[str, Any], pretrained: bool = False) -> nn.Module:
    kw = dict(model_kwargs)
    arch = kw.pop("arch")
    if arch == "cnn":
        if pretrained:
            raise FerEdgeError("the 'cnn' preset has no pretrained weights; train it from scratch")
        drop = kw.pop("drop_rate", None)
        if drop is not None:
            kw["head_dropout"] = drop
        return FerCNN(**kw)
    if arch == "vit_convstem":
        if pretrained:
            raise FerEdgeError("the 'vit-conv' preset has no pretrained weights; train it from scratch")
        try:
            return _conv_stem_vit(**kw)
        except (TypeError, ValueError) as e:
            raise FerEdgeError(f"cannot build '{arch}' with {kw} ({_first_line(e)})")
    import timm

    if not pretrained:
        try:
            return timm.create_model(arch, pretrained=False, **kw)
        except (TypeError, ValueError, RuntimeError, AssertionError) as e:
            raise FerEdgeError(f"cannot build timm model '{arch}' with {kw} ({_first_line(e)})")
    return _create_pretrained(arch, kw)


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _create_pretrained(arch: str, kw: dict[str, Any]) -> nn.Module:
    """timm hub weights: the local HF cache first, the hub only if it answers; never a long hang offline."""
    import timm

    try:
        import huggingface_hub.constants as hfc
    except ImportError:  # pragma: no cover - timm depends on it
        hfc = None
    offline_before = getattr(hfc, "HF_HUB_OFFLINE", None)
    try:
        if hfc is not None:
            hfc.HF_HUB_OFFLINE = True  # cache only: returns at once when the weights are absent
        return timm.create_model(arch, pretrained=True, **kw)
    except Exception:
        pass
    finally:
        if hfc is not None:
            hfc.HF_HUB_OFFLINE = offline_before
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or not _hub_reachable():
        raise FerEdgeError(f"--pretrained: the timm weights for '{arch}' are not cached and the Hugging Face hub "
                           "is unreachable; run once online or give a local file with --weights")
    try:
        return timm.create_model(arch, pretrained=True, **kw)
    except Exception as e:
        raise FerEdgeError(f"--pretrained: cannot download the timm weights for '{arch}' ({_first_line(e)})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def head_module(model: nn.Module) -> nn.Module:
    """The classifier head (the last Linear of the network for timm models)."""
    if isinstance(model, FerCNN):
        return model.classifier
    get = getattr(model, "get_classifier", None)
    if get is not None:
        head = get()
        if isinstance(head, nn.Module) and any(True for _ in head.parameters()):
            return head
    raise FerEdgeError(f"cannot find the classifier head of {type(model).__name__}")


def zero_init_head(model: nn.Module) -> None:
    """Zero the classifier's last Linear so training starts from uniform predictions.

    MobileNetV3 from scratch needs it: its 1280-wide head conv has no norm, so the first AdamW steps
    push the logits past 300 and the network collapses onto one class (measured at 48 px, lr 2e-3).
    """
    linears = [m for m in head_module(model).modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise FerEdgeError(f"cannot find the classifier Linear of {type(model).__name__}")
    nn.init.zeros_(linears[-1].weight)
    if linears[-1].bias is not None:
        nn.init.zeros_(linears[-1].bias)


def head_param_names(model: nn.Module) -> set[str]:
    head = head_module(model)
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def _head_state_prefixes(model: nn.Module) -> tuple[str, ...]:
    head = head_module(model)
    for n, m in model.named_modules():
        if m is head:
            return (n + ".",)
    return ()


def load_weights(model: nn.Module, path: str | os.PathLike, log=None) -> None:
    """Load a local timm state dict (.safetensors / .pth / .pt) into ``model``.

    A 3-channel first conv is summed over its input channels for a 1-channel model (timm's
    ``adapt_input_conv``); classifier weights whose shape does not match (another number of classes)
    are dropped; any other missing, unexpected or mis-shaped key is an error.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FerEdgeError(f"weights file {p} does not exist")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FerEdgeError(f"cannot read weights file {p} ({_first_line(e)})")
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise FerEdgeError(f"weights file {p} does not hold a state dict of tensors")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    own = model.state_dict()
    head = _head_state_prefixes(model)
    out: dict[str, torch.Tensor] = {}
    dropped, bad = [], []
    first = str(getattr(model, "pretrained_cfg", {}).get("first_conv") or "") + ".weight"
    for k, v in sd.items():
        if k not in own:
            if k.startswith(head):
                dropped.append(k)
            else:
                bad.append(f"unexpected {k}")
            continue
        want = own[k].shape
        if v.shape != want:
            if v.ndim == 4 and len(want) == 4 and v.shape[0] == want[0] and v.shape[2:] == want[2:] \
                    and (k == first or (v.shape[1] == 3 and want[1] == 1)):
                from timm.models import adapt_input_conv

                try:
                    v = adapt_input_conv(want[1], v)
                except (NotImplementedError, AssertionError, RuntimeError):
                    bad.append(f"{k} {tuple(v.shape)} vs {tuple(want)}")
                    continue
            elif k.startswith(head):
                dropped.append(k)
                continue
            else:
                bad.append(f"{k} {tuple(v.shape)} vs {tuple(want)}")
                continue
        out[k] = v
    missing = [k for k in own if k not in out and not k.startswith(head)
               and not k.endswith("num_batches_tracked")]
    bad += [f"missing {k}" for k in missing]
    if bad:
        raise FerEdgeError(f"weights file {p} does not fit this architecture ({len(bad)} problem(s), e.g. "
                           f"{'; '.join(bad[:3])})")
    model.load_state_dict(out, strict=False)
    if log:
        log(f"fer-edge: loaded {len(out)} tensors from {p.name}" +
            (f"; new {len(dropped) and 'classifier head'} for {model_num_classes(model)} classes" if dropped else ""))


def model_num_classes(model: nn.Module) -> int:
    head = head_module(model)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(head, nn.Linear) else [head]
    return linears[-1].out_features if linears else -1


# ---- freezing ----------------------------------------------------------------------------------------

def backbone_groups(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module], list[nn.Parameter]]:
    """(stem modules, block modules in forward order, post-block modules, loose parameters), head excluded."""
    head = head_module(model)
    children = [(n, m) for n, m in model.named_children() if m is not head]
    container = None
    for n, m in children:
        if n in ("blocks", "stages", "layers", "features") and isinstance(m, (nn.Sequential, nn.ModuleList)):
            container = n
            break
    if container is None:  # e.g. resnets: layer1..layer4 as top-level children
        layer_names = [n for n, _ in children if n.startswith("layer")]
        if layer_names:
            first = [n for n, _ in children].index(layer_names[0])
            last = [n for n, _ in children].index(layer_names[-1])
            stem = [m for _, m in children[:first]]
            blocks = [m for _, m in children[first:last + 1]]
            post = [m for _, m in children[last + 1:]]
        else:
            stem, blocks, post = [], [m for _, m in children], []
    else:
        names = [n for n, _ in children]
        i = names.index(container)
        stem = [m for _, m in children[:i]]
        blocks = list(dict(children)[container])
        post = [m for _, m in children[i + 1:]]
    loose = list(model.parameters(recurse=False))
    return stem, blocks, post, loose


def set_trainable(model: nn.Module, unfreeze_last: int | None, head_only: bool) -> list[nn.Module]:
    """Freeze the backbone (``head_only``) or all but its last ``unfreeze_last`` blocks (None = all).

    Returns the frozen modules: keep them in eval mode while training so BatchNorm statistics stay put.
    """
    stem, blocks, post, loose = backbone_groups(model)
    for p in model.parameters():
        p.requires_grad_(True)
    if head_only:
        frozen = stem + blocks + post
        frozen_params = loose
    elif unfreeze_last is None or unfreeze_last >= len(blocks):
        frozen, frozen_params = [], []
    else:
        k = max(int(unfreeze_last), 0)
        frozen = stem + blocks[: len(blocks) - k] + ([] if k else post)
        frozen_params = loose
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    for p in frozen_params:
        p.requires_grad_(False)
    return frozen


def frozen_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    model.train()
    for m in frozen:
        m.eval()


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_scale: float) -> list[dict[str, Any]]:
    """Head and backbone groups, each split into decayed (weights) and undecayed (biases, norms, tokens)."""
    head = head_param_names(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        no_decay = p.ndim <= 1 or n.endswith(("cls_token", "pos_embed", "dist_token"))
        groups.setdefault((n in head, no_decay), []).append(p)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr * (1.0 if is_head else backbone_scale),
                    "weight_decay": 0.0 if no_decay else weight_decay,
                    "name": ("head" if is_head else "backbone") + ("_no_decay" if no_decay else "")})
    return out
