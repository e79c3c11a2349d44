"""Drawing boxes and labels on frames, and the live window's overlay.

Label bands are laid out to stay readable in crowds: each band lies wholly inside the frame, above its box
where there is room and no other band, else below it or inside its top or bottom edge; when every place
would overlap a band already drawn, the text is shortened ('happy 0.93' -> 'happy' -> 'hap') before the
least-covered place is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

# BGR colour per common emotion name; other class names get grey.
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (40, 160, 255),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX

Rect = tuple[int, int, int, int]  # x, y, w, h


def _overlap(a: Rect, b: Rect) -> int:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _shorter(text: str) -> list[str]:
    """The text and its shortened forms: 'happy 0.93', 'happy', 'hap'."""
    forms = [text]
    label = text.rsplit(" ", 1)[0]
    if label != text:
        forms.append(label)
    if len(label) > 3:
        forms.append(label[:3])
    return forms


def layout_labels(boxes: Sequence[Rect], texts: Sequence[str], frame_w: int, frame_h: int,
                  measure: Callable[[str], tuple[int, int]]) -> list[tuple[Rect, str]]:
    """A band (x, y, w, h) inside the frame and the text to show in it, for each box in order.

    ``measure(text)`` gives a band's (width, height). Earlier boxes (the detector's best first) choose first.
    """
    placed: list[Rect] = []
    out: list[tuple[Rect, str]] = []
    for (x, y, _, h), text in zip(boxes, texts):
        best: tuple[int, Rect, str] | None = None
        for t in _shorter(text):
            bw, bh = measure(t)
            bw, bh = min(bw, frame_w), min(bh, frame_h)
            for cx, cy in ((x, y - bh), (x, y + h), (x, y), (x, y + h - bh)):
                r = (int(np.clip(cx, 0, frame_w - bw)), int(np.clip(cy, 0, frame_h - bh)), bw, bh)
                cover = sum(_overlap(r, p) for p in placed)
                if best is None or cover < best[0]:
                    best = (cover, r, t)
                if cover == 0:
                    break
            if best[0] == 0:
                break
        assert best is not None
        placed.append(best[1])
        out.append((best[1], best[2]))
    return out


def text_style(frame: np.ndarray) -> tuple[float, int]:
    """Font scale and stroke for labels that stay legible at any frame size: text about 3.3% of the shorter
    side tall (12 px on 360p, 36 px on 1080p), never under 11 px."""
    short = min(frame.shape[:2])
    scale = max(0.5, short / 650)
    return scale, max(1, round(scale * 1.6))


def draw_faces(frame: np.ndarray, faces: list) -> None:
    """Draw each face's box and 'label score' band in place."""
    fh, fw = frame.shape[:2]
    scale, thick = text_style(frame)
    box_thick = max(2, round(min(fh, fw) / 300))

    def measure(text: str) -> tuple[int, int]:
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        return tw + 4, th + base + 4

    for f in faces:
        x, y, w, h = f.box
        cv2.rectangle(frame, (x, y), (x + w, y + h), COLORS.get(f.label, (180, 180, 180)), box_thick)
    texts = [f"{f.label} {f.probs[f.label]:.2f}" for f in faces]
    for f, ((bx, by, bw, bh), text) in zip(faces, layout_labels([f.box for f in faces], texts, fw, fh, measure)):
        cv2.rectangle(frame, (bx, by), (bx + bw - 1, by + bh - 1), COLORS.get(f.label, (180, 180, 180)), cv2.FILLED)
        (_, th), base = cv2.getTextSize(text, FONT, scale, thick)
        cv2.putText(frame, text, (bx + 2, by + 2 + th), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)


def draw_overlay(frame: np.ndarray, lines: list[str]) -> None:
    """Lines of text top left on a darkened panel, in place."""
    scale, thick = text_style(frame)
    scale, thick = scale * 0.9, max(1, thick)
    sizes = [cv2.getTextSize(t, FONT, scale, thick) for t in lines]
    line_h = max(th + base for (_, th), base in sizes) + 4
    pw = min(frame.shape[1], max(tw for (tw, _), _ in sizes) + 12)
    ph = min(frame.shape[0], line_h * len(lines) + 8)
    panel = frame[:ph, :pw]
    np.multiply(panel, 0.35, out=panel, casting="unsafe")
    for i, t in enumerate(lines):
        cv2.putText(frame, t, (6, 4 + line_h * (i + 1) - 4), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
