"""``python -m fer_edge.train.widen checkpoints/NAME --arch PRESET --out FILE``: a trained FerCNN made wider
without changing what it computes (Net2WiderNet, Chen, Goodfellow & Shlens 2016), as start weights for
``fer-edge train --arch PRESET --weights FILE``.

Each conv stage gets the preset's wider channel count: the first channels are the old ones, each new channel a copy
of a randomly chosen old one (its 3x3 filter and BatchNorm), and every layer reading a copied channel (the next
conv, or the first FC layer's inputs of that channel's pooled map) divides its weights by the number of copies, so
the wider network gives the same logits. Small noise on the copies' filters lets them part during training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from fer_edge.runtime.errors import FerEdgeError


def _convs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    mods = [m for m in model.blocks.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return [(mods[i], mods[i + 1]) for i in range(0, len(mods), 2)]


@torch.no_grad()
def widen(src: nn.Module, dst: nn.Module, noise: float = 0.01, seed: int = 0) -> None:
    """Copy ``src`` (a FerCNN) into the wider ``dst`` (same depth, pool and head, channels >= src's) so that
    ``dst`` computes the same function up to the noise, a fraction of each copied filter's standard deviation."""
    from fer_edge.train.models import FerCNN

    if not isinstance(src, FerCNN) or not isinstance(dst, FerCNN):
        raise FerEdgeError("widening works on the from-scratch CNN presets only")
    s_convs, d_convs = _convs(src), _convs(dst)
    if len(s_convs) != len(d_convs) or src.pool.output_size != dst.pool.output_size:
        raise FerEdgeError("the wider network must have the same depth and pooled map as the trained one")
    s_fc = [m for m in src.classifier if isinstance(m, (nn.Linear, nn.BatchNorm1d))]
    d_fc = [m for m in dst.classifier if isinstance(m, (nn.Linear, nn.BatchNorm1d))]
    if [tuple(m.weight.shape) for m in s_fc[1:]] != [tuple(m.weight.shape) for m in d_fc[1:]]:
        raise FerEdgeError("the wider network must keep the trained network's FC widths")
    g = torch.Generator().manual_seed(seed)
    in_map = torch.arange(s_convs[0][0].in_channels)  # new input channel -> old channel
    in_count = torch.ones(len(in_map))
    for (sc, sb), (dc, db) in zip(s_convs, d_convs):
        old, new = sc.out_channels, dc.out_channels
        if new < old:
            raise FerEdgeError(f"cannot widen {old} channels to {new}")
        out_map = torch.cat([torch.arange(old), torch.randint(old, (new - old,), generator=g)])
        w = sc.weight[out_map][:, in_map] / in_count[in_map].view(1, -1, 1, 1)
        copies = torch.arange(new) >= old
        if copies.any():
            w[copies] += noise * w[copies].std(dim=(1, 2, 3), keepdim=True) * torch.randn(w[copies].shape, generator=g)
        dc.weight.copy_(w)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(db, name).copy_(getattr(sb, name)[out_map])
        in_map, in_count = out_map, torch.bincount(out_map, minlength=old).float()
    cells = src.pool.output_size
    cells = cells * cells if isinstance(cells, int) else cells[0] * cells[1]
    fc_map = (in_map.view(-1, 1) * cells + torch.arange(cells).view(1, -1)).reshape(-1)
    fc_div = in_count[in_map].repeat_interleave(cells)
    d_fc[0].weight.copy_(s_fc[0].weight[:, fc_map] / fc_div.view(1, -1))
    d_fc[0].bias.copy_(s_fc[0].bias)
    dst.classifier.load_state_dict({k: v for k, v in src.classifier.state_dict().items()
                                    if not k.startswith(f"{_index_of(src.classifier, s_fc[0])}.")}, strict=False)


def _index_of(seq: nn.Sequential, module: nn.Module) -> int:
    return next(i for i, m in enumerate(seq) if m is module)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_edge.train.widen", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a trained FerCNN: checkpoints/NAME, a run's best.pt or a release folder")
    p.add_argument("--arch", required=True, help="the wider preset (same depth, pool and FC widths)")
    p.add_argument("--out", required=True, help="the .safetensors file to write (for train --weights)")
    p.add_argument("--noise", type=float, default=0.01, help="noise on copied filters, x their std (0.01)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        from safetensors.torch import save_file

        from fer_edge.train.checkpoint import read_checkpoint
        from fer_edge.train.models import build_model, model_kwargs_for

        ckpt = read_checkpoint(args.checkpoint)
        src = build_model(ckpt["model_kwargs"])
        src.load_state_dict(ckpt["state_dict"])
        kw = model_kwargs_for(args.arch, ckpt["model_kwargs"]["num_classes"], ckpt["model_kwargs"]["in_chans"])
        dst = build_model(kw)
        widen(src, dst, noise=args.noise, seed=args.seed)
        src.eval(), dst.eval()
        x = torch.randn(8, kw["in_chans"], 48, 48)
        diff = (src(x) - dst(x)).abs().max().item()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in dst.state_dict().items()}, str(out))
    except FerEdgeError as e:
        print(f"fer-edge: error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {args.arch} from {args.checkpoint}; largest logit change on random faces {diff:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
