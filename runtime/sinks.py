"""Where results go: JSON Lines, CSV, an annotated video or image folder, a window.

Every sink flushes per frame, so an interrupted run keeps every frame already processed and the
files stay valid.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from pathlib import Path

import cv2

from .errors import FerEdgeError
from .outputs import os_error_cause, write_error
from .sources import IMAGE_SUFFIXES, Frame

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}


def _open_for_write(path: str | Path, newline: str | None = None):
    p = Path(path).expanduser()
    try:
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "w", encoding="utf-8", newline=newline)
    except OSError as e:
        raise write_error(p, e)


class _TextFile:
    """A text file written in whole records: each ``write`` is flushed, and a write that fails (disk full,
    device gone) is cut back to the last whole record and raised as one FerEdgeError naming the file."""

    def __init__(self, path: str | Path, newline: str | None = None):
        self.path = Path(path).expanduser()
        self.f = _open_for_write(self.path, newline)
        self.good = 0  # bytes known written, whole records only
        self.failed = False

    def write(self, text: str) -> None:
        if self.failed:
            return
        try:
            self.f.write(text)
            self.f.flush()
            self.good = self.f.tell() if self.f.seekable() else self.good
        except OSError as e:
            self.failed = True
            self._cut_back()
            raise write_error(self.path, e)

    def _cut_back(self) -> None:
        try:  # drop what the failed flush left half-written; nothing to do on a device such as /dev/full
            os.ftruncate(self.f.fileno(), self.good)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:  # the buffer could not be flushed: keep the whole records, say why
            if not self.failed:
                self.failed = True
                self._cut_back()
                raise write_error(self.path, e)


def face_record(frame: Frame, face) -> dict:
    """The JSON Lines object for one face in one frame."""
    return {
        "source": frame.source, "frame": frame.index, "time_s": round(frame.time_s, 4), "face": face.index,
        "track": face.track, "box": list(face.box), "box_from": getattr(face, "box_from", "detected"),
        "score": round(face.score, 4), "label": face.label,
        "probs": {k: round(v, 5) for k, v in face.probs.items()},
    }


class Sink:
    def write(self, frame: Frame, faces: list) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    def __init__(self, path: str | Path):
        self.f = _TextFile(path)

    def write(self, frame: Frame, faces: list) -> None:
        if faces:
            self.f.write("".join(json.dumps(face_record(frame, f)) + "\n" for f in faces))

    def close(self) -> None:
        self.f.close()


class CsvSink(Sink):
    """The JSON Lines fields flattened: ``box`` to box_x..box_h, ``probs`` to prob_<class>."""

    def __init__(self, path: str | Path, classes: tuple[str, ...]):
        self.f = _TextFile(path, newline="")
        self.classes = classes
        self._buf = io.StringIO()
        self.w = csv.writer(self._buf)
        self._emit([["source", "frame", "time_s", "face", "track", "box_x", "box_y", "box_w", "box_h",
                     "box_from", "score", "label", *(f"prob_{c}" for c in classes)]])

    def _emit(self, rows: list) -> None:
        self._buf.seek(0)
        self._buf.truncate()
        self.w.writerows(rows)
        self.f.write(self._buf.getvalue())

    def write(self, frame: Frame, faces: list) -> None:
        rows = []
        for f in faces:
            r = face_record(frame, f)
            rows.append([r["source"], r["frame"], r["time_s"], r["face"],
                         "" if r["track"] is None else r["track"], *r["box"], r["box_from"], r["score"], r["label"],
                         *(r["probs"][c] for c in self.classes)])
        if rows:
            self._emit(rows)

    def close(self) -> None:
        self.f.close()


class VideoSink(Sink):
    """Annotated video, opened on the first frame (its size is known then).

    It is written under a temporary name beside the target and moved into place once finalised, so the
    target is either absent or a complete, playable file. Before each frame the free space is checked: when
    the disk is nearly full the run stops with one error while room remains to finalise what was written.
    """

    RESERVE = 1 << 20  # bytes kept free for the container's index (moov), plus 64 per frame written

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path).expanduser()
        if self.path.suffix.lower() not in VIDEO_FOURCC:
            raise FerEdgeError(f"--save {self.path}: use a video file name ending in {', '.join(VIDEO_FOURCC)}")
        self.fps = fps
        self.frames = 0
        self.writer: cv2.VideoWriter | None = None
        self.error: str | None = None
        direct = self.path.exists() and not stat.S_ISREG(self.path.stat().st_mode)  # /dev/null and the like
        self.tmp = self.path if direct else self.path.with_name(f".{self.path.stem}.part-{os.getpid()}"
                                                                 f"{self.path.suffix}")
        try:  # prove the place is writable now, not after the first frame
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not direct:
                with open(self.tmp, "wb"):
                    pass
        except OSError as e:
            raise write_error(self.path, e, "cannot write video")

    def _check_space(self) -> None:
        try:
            st = os.statvfs(self.tmp.parent)
        except (OSError, AttributeError):  # no statvfs (Windows): finalisation's check still applies
            return
        if st.f_bavail * st.f_frsize < self.RESERVE + 64 * self.frames:
            self.error = f"cannot write video {self.path}: no space left on the device"
            raise FerEdgeError(f"{self.error}; the {self.frames} frames written before are kept")

    def write(self, frame: Frame, faces: list) -> None:
        if self.error:
            return
        if self.writer is None:
            h, w = frame.image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                self.writer = None
                self._discard()
                raise FerEdgeError(f"cannot write video {self.path}: this OpenCV build has no encoder for "
                                   f"{self.path.suffix} at {w}x{h}")
        self._check_space()
        self.writer.write(frame.image)
        self.frames += 1

    def _discard(self) -> None:
        if self.tmp != self.path:
            try:
                self.tmp.unlink()
            except OSError:
                pass

    def close(self) -> None:
        """Finalise the file and move it into place; raise if what was written cannot be played."""
        if self.writer is None:
            self._discard()
            return
        self.writer.release()
        self.writer = None
        if self.tmp == self.path:
            return
        cap = cv2.VideoCapture(str(self.tmp))
        playable = cap.isOpened() and cap.read()[0]
        cap.release()
        if not playable:
            self._discard()
            cause = "no space left on the device" if self.error else "the file could not be finalised"
            raise FerEdgeError(f"cannot write video {self.path}: {cause}; nothing playable was written")
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self._discard()
            raise write_error(self.path, e, "cannot move the finished video to")


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
            raise write_error(target, e, "cannot create folder")

    def write(self, frame: Frame, faces: list) -> None:
        src = Path(frame.source)
        if self.single_file:
            out = self.path
        else:
            rel = src.relative_to(self.root) if self.root and src.is_relative_to(self.root) else Path(src.name)
            out = self.path / rel
        ext = out.suffix if out.suffix.lower() in IMAGE_SUFFIXES else ".png"
        ok, buf = cv2.imencode(ext, frame.image)
        if not ok:
            raise FerEdgeError(f"cannot encode {out}")
        tmp = out.with_name(out.name + ".part")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            buf.tofile(str(tmp))
            os.replace(tmp, out)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise write_error(out, e)


def close_all(sinks: list) -> None:
    """Close every sink (finalising files) even when one fails; then raise the first failure."""
    first: BaseException | None = None
    for s in sinks:
        try:
            s.close()
        except (FerEdgeError, OSError) as e:
            first = first or (e if isinstance(e, FerEdgeError) else FerEdgeError(os_error_cause(e)))
    if first is not None:
        raise first


def display_available() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class WindowSink(Sink):
    """A resizable window opened at the frame's size; q or Esc asks the loop to stop, o toggles the overlay.

    The overlay (frame rate and per-stage milliseconds, set by the loop in ``overlay``) is drawn on the
    window's own reused copy of the frame, never on the frame the other outputs get.
    """

    title = "fer-edge (q quits, o overlay)"
    main_thread = True  # GUI calls stay on the loop's thread
    max_size = (1920, 1080)  # a larger frame opens scaled down to this (the window stays resizable)

    def __init__(self):
        self.stop_requested = False
        self.overlay: list[str] = []
        self.show_overlay = True
        self._shape: tuple[int, ...] | None = None
        self._view = None
        try:
            # GUI_NORMAL: no Qt toolbar or status bar, so the image gets the whole window at the frame's size
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise FerEdgeError("--show: this OpenCV build has no GUI support (install opencv-python, "
                               "not opencv-python-headless)") from e

    def write(self, frame: Frame, faces: list) -> None:
        from .draw import draw_overlay

        img = frame.image
        if img.shape != self._shape:
            self._shape = img.shape
            h, w = img.shape[:2]
            fit = min(1.0, self.max_size[0] / w, self.max_size[1] / h)
            cv2.resizeWindow(self.title, round(w * fit), round(h * fit))
            self._view = img.copy()
        if self.show_overlay and self.overlay:
            self._view[:] = img
            draw_overlay(self._view, self.overlay)
            img = self._view
        cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.stop_requested = True
        elif key == ord("o"):
            self.show_overlay = not self.show_overlay

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
