"""Batched augmentation on whole uint8 batches, on the CPU or the GPU (wherever the batch lives).

One ``grid_sample`` applies random resized crop / shift, horizontal flip, rotation and perspective
(a per-sample 3x3 homography); brightness/contrast jitter and random erasing are elementwise masks.
No per-image Python loop, so a 2-core CPU keeps up and a GPU never waits on a data loader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.8, 1.0)  # random resized crop: fraction of the image side kept
    shift: float = 0.1  # max translation, fraction of the side
    flip: bool = True
    rotate: float = 10.0  # degrees
    perspective: float = 0.05  # homography distortion strength (0 = off)
    brightness: float = 0.2
    contrast: float = 0.2
    erase: float = 0.25  # probability of one random-erasing rectangle per image
    erase_area: tuple[float, float] = (0.02, 0.2)
    enabled: bool = True

    def geometric(self) -> bool:
        return self.enabled and (self.scale[0] < 1.0 or self.shift > 0 or self.flip or self.rotate > 0
                                 or self.perspective > 0)


def normalize(x: torch.Tensor, channels: int, mean: float, std: float) -> torch.Tensor:
    """uint8 (B, H, W) or float (B, 1, H, W) in [0, 1] -> normalised float (B, channels, H, W)."""
    if x.dtype == torch.uint8:
        x = x.unsqueeze(1).float().div_(255.0)
    x = (x - mean) / std
    return x.expand(-1, channels, -1, -1).contiguous() if channels > 1 else x


def _uniform(n: int, lo: float, hi: float, device, gen=None) -> torch.Tensor:
    return torch.rand(n, device=device, generator=gen) * (hi - lo) + lo


def random_homographies(n: int, cfg: AugmentConfig, device, gen=None) -> torch.Tensor:
    """(n, 3, 3) maps from output to input normalised coordinates ([-1, 1], align_corners=False)."""
    s = _uniform(n, cfg.scale[0], cfg.scale[1], device, gen) if cfg.scale[0] < 1.0 else torch.ones(n, device=device)
    a = torch.deg2rad(_uniform(n, -cfg.rotate, cfg.rotate, device, gen)) if cfg.rotate > 0 \
        else torch.zeros(n, device=device)
    # keep the crop inside the image: the free room is (1 - s), plus the requested shift
    room = (1.0 - s) + cfg.shift
    tx = (torch.rand(n, device=device, generator=gen) * 2 - 1) * room
    ty = (torch.rand(n, device=device, generator=gen) * 2 - 1) * room
    fx = torch.ones(n, device=device)
    if cfg.flip:
        fx = torch.where(torch.rand(n, device=device, generator=gen) < 0.5, -fx, fx)
    cos, sin = torch.cos(a), torch.sin(a)
    m = torch.zeros(n, 3, 3, device=device)
    m[:, 0, 0] = s * cos * fx
    m[:, 0, 1] = -s * sin
    m[:, 0, 2] = tx
    m[:, 1, 0] = s * sin * fx
    m[:, 1, 1] = s * cos
    m[:, 1, 2] = ty
    m[:, 2, 2] = 1.0
    if cfg.perspective > 0:
        m[:, 2, 0] = _uniform(n, -cfg.perspective, cfg.perspective, device, gen)
        m[:, 2, 1] = _uniform(n, -cfg.perspective, cfg.perspective, device, gen)
    return m


def warp(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Sample (B, C, H, W) float ``x`` through homographies ``h`` (B, 3, 3); borders reflect."""
    b, _, hh, ww = x.shape
    ys = (torch.arange(hh, device=x.device, dtype=x.dtype) * 2 + 1) / hh - 1
    xs = (torch.arange(ww, device=x.device, dtype=x.dtype) * 2 + 1) / ww - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, hh * ww, 3)  # (1, HW, 3)
    pts = base @ h.to(x.dtype).transpose(1, 2)  # (B, HW, 3)
    grid = pts[..., :2] / pts[..., 2:].clamp(min=1e-3)
    return F.grid_sample(x, grid.reshape(b, hh, ww, 2), mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def random_erase(x: torch.Tensor, p: float, area: tuple[float, float], gen=None) -> torch.Tensor:
    """With probability ``p`` per image, fill one random rectangle with uniform noise (x in [0, 1])."""
    b, c, h, w = x.shape
    dev = x.device
    on = torch.rand(b, device=dev, generator=gen) < p
    frac = _uniform(b, area[0], area[1], dev, gen)
    logr = _uniform(b, math.log(0.3), math.log(3.3), dev, gen)
    ratio = torch.exp(logr)
    eh = (torch.sqrt(frac * ratio) * h).clamp(1, h)
    ew = (torch.sqrt(frac / ratio) * w).clamp(1, w)
    y0 = torch.rand(b, device=dev, generator=gen) * (h - eh)
    x0 = torch.rand(b, device=dev, generator=gen) * (w - ew)
    yy = torch.arange(h, device=dev).view(1, h, 1)
    xx = torch.arange(w, device=dev).view(1, 1, w)
    mask = ((yy >= y0.view(b, 1, 1)) & (yy < (y0 + eh).view(b, 1, 1)) & (xx >= x0.view(b, 1, 1))
            & (xx < (x0 + ew).view(b, 1, 1)) & on.view(b, 1, 1)).unsqueeze(1)
    noise = torch.rand(x.shape, device=dev, generator=gen, dtype=x.dtype)
    return torch.where(mask, noise, x)


class BatchAugment:
    """``aug(uint8 (B, H, W)) -> normalised float (B, channels, H, W)`` with random augmentation."""

    def __init__(self, cfg: AugmentConfig, channels: int, mean: float, std: float):
        self.cfg, self.channels, self.mean, self.std = cfg, channels, mean, std

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.cfg
        x = images.unsqueeze(1).float().div_(255.0)
        if cfg.enabled:
            b = x.shape[0]
            if cfg.geometric():
                x = warp(x, random_homographies(b, cfg, x.device, gen))
            if cfg.brightness > 0 or cfg.contrast > 0:
                bright = _uniform(b, 1 - cfg.brightness, 1 + cfg.brightness, x.device, gen).view(b, 1, 1, 1)
                contr = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, x.device, gen).view(b, 1, 1, 1)
                mu = x.mean(dim=(1, 2, 3), keepdim=True)
                x = ((x - mu) * contr + mu) * bright
                x = x.clamp_(0.0, 1.0)
            if cfg.erase > 0:
                x = random_erase(x, cfg.erase, cfg.erase_area, gen)
        return normalize(x, self.channels, self.mean, self.std)
