"""Test-time augmentation views of a face: the face and its mirror, or ten crops (shared by evaluation and by the
teacher scoring of distillation)."""

from __future__ import annotations

import numpy as np

TTA_MODES = ("flip", "tencrop")
TENCROP_FRACTION = 0.875


def crop_views(h: int, w: int, tta: str | None) -> list[tuple[np.ndarray, bool]]:
    """(rect [x0, y0, x1, y1], horizontally flipped?) views of an h x w image per TTA mode."""
    full = np.array([0, 0, w, h])
    if tta is None:
        return [(full, False)]
    if tta == "flip":
        return [(full, False), (full, True)]
    ch, cw = max(1, round(h * TENCROP_FRACTION)), max(1, round(w * TENCROP_FRACTION))
    y0c, x0c = (h - ch) // 2, (w - cw) // 2
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), (y0c, x0c)]
    rects = [np.array([x, y, x + cw, y + ch]) for y, x in corners]
    return [(r, False) for r in rects] + [(r, True) for r in rects]
