"""Drawing boxes and labels on frames."""

from __future__ import annotations

import cv2
import numpy as np

# BGR colour per common emotion name; other class names get grey.
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (40, 160, 255),
}


def draw_faces(frame: np.ndarray, faces: list) -> None:
    """Draw each face's box and 'label score' in place."""
    thick = max(1, round(max(frame.shape[:2]) / 500))
    scale = max(0.4, max(frame.shape[:2]) / 1400)
    for f in faces:
        x, y, w, h = f.box
        color = COLORS.get(f.label, (180, 180, 180))
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, thick)
        text = f"{f.label} {f.probs[f.label]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
        cv2.rectangle(frame, (x, ty - th - base), (x + tw + 2, ty + base), color, cv2.FILLED)
        cv2.putText(frame, text, (x + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
