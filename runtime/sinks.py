"""Where results go: JSON Lines, CSV, an annotated video or image folder, a window.

Every sink flushes per frame, so an interrupted run keeps every frame already processed and the
files stay valid.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import cv2

from .errors import FerEdgeError
from .sources import IMAGE_SUFFIXES, Frame

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}


def _open_for_write(path: str | Path, newline: str | None = None):
    p = Path(path).expanduser()
    try:
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "w", encoding="utf-8", newline=newline)
    except OSError as e:
        raise FerEdgeError(f"cannot write {p}: {e.strerror}")


def face_record(frame: Frame, face) -> dict:
    """The JSON Lines object for one face in one frame."""
    return {
        "source": frame.source, "frame": frame.index, "time_s": round(frame.time_s, 4), "face": face.index,
        "track": face.track, "box": list(face.box), "score": round(face.score, 4), "label": face.label,
        "probs": {k: round(v, 5) for k, v in face.probs.items()},
    }


class Sink:
    def write(self, frame: Frame, faces: list) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    def __init__(self, path: str | Path):
        self.f = _open_for_write(path)

    def write(self, frame: Frame, faces: list) -> None:
        if faces:
            self.f.write("".join(json.dumps(face_record(frame, f)) + "\n" for f in faces))
            self.f.flush()

    def close(self) -> None:
        self.f.close()


class CsvSink(Sink):
    """The JSON Lines fields flattened: ``box`` to box_x..box_h, ``probs`` to prob_<class>."""

    def __init__(self, path: str | Path, classes: tuple[str, ...]):
        self.f = _open_for_write(path, newline="")
        self.classes = classes
        self.w = csv.writer(self.f)
        self.w.writerow(["source", "frame", "time_s", "face", "track", "box_x", "box_y", "box_w", "box_h",
                         "score", "label", *(f"prob_{c}" for c in classes)])
        self.f.flush()

    def write(self, frame: Frame, faces: list) -> None:
        for f in faces:
            r = face_record(frame, f)
            self.w.writerow([r["source"], r["frame"], r["time_s"], r["face"],
                             "" if r["track"] is None else r["track"], *r["box"], r["score"], r["label"],
                             *(r["probs"][c] for c in self.classes)])
        if faces:
            self.f.flush()

    def close(self) -> None:
        self.f.close()


class VideoSink(Sink):
    """Annotated video; opened on the first frame (its size is known then)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path).expanduser()
        if self.path.suffix.lower() not in VIDEO_FOURCC:
            raise FerEdgeError(f"--save {self.path}: use a video file name ending in {', '.join(VIDEO_FOURCC)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, faces: list) -> None:
        if self.writer is None:
            h, w = frame.image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise FerEdgeError(f"cannot write video {self.path} (no encoder for {self.path.suffix})")
        self.writer.write(frame.image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class ImageFolderSink(Sink):
    """Annotated images: into a folder (named after the input), or one file for a single image."""

    def __init__(self, path: str | Path, single: bool, root: Path | None):
        self.path = Path(path).expanduser()
        self.single_file = single and self.path.suffix.lower() in IMAGE_SUFFIXES
        self.root = root
        target = self.path.parent if self.single_file else self.path
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FerEdgeError(f"cannot create folder {target}: {e.strerror}")

    def write(self, frame: Frame, faces: list) -> None:
        src = Path(frame.source)
        if self.single_file:
            out = self.path
        else:
            rel = src.relative_to(self.root) if self.root and src.is_relative_to(self.root) else Path(src.name)
            out = self.path / rel
            out.parent.mkdir(parents=True, exist_ok=True)
        ext = out.suffix if out.suffix.lower() in IMAGE_SUFFIXES else ".png"
        ok, buf = cv2.imencode(ext, frame.image)
        if not ok:
            raise FerEdgeError(f"cannot encode {out}")
        tmp = out.with_name(out.name + ".part")
        buf.tofile(str(tmp))
        os.replace(tmp, out)


def display_available() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink(Sink):
    """A window; pressing q or Esc asks the loop to stop."""

    title = "fer-edge (q to quit)"

    def __init__(self):
        self.stop_requested = False
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise FerEdgeError("--show: this OpenCV build has no GUI support (install opencv-python, "
                               "not opencv-python-headless)") from e

    def write(self, frame: Frame, faces: list) -> None:
        cv2.imshow(self.title, frame.image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


