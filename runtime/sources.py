"""Frame sources: camera, video file or URL, one image, a folder of images.

Video and camera decode into one reused frame buffer (``VideoCapture.read(image=...)``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FerEdgeError
from .imagesize import image_size

# Images are decoded only up to this many pixels (the header is read first): 120 MP covers 108 MP phone
# cameras and decodes to 360 MB; the run loop's peak is about 2.5x the decoded size. Raised with --max-megapixels.
DEFAULT_MAX_PIXELS = 120_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".jp2"}


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8; for video/camera a buffer that the next frame overwrites
    index: int
    time_s: float
    source: str


class VideoSource:
    """A video file, URL or camera, read into one reused buffer."""

    def __init__(self, target: str | int, is_camera: bool = False):
        self.is_camera = is_camera
        self.name = f"camera:{target}" if is_camera else str(target)
        if not is_camera and "://" not in str(target):
            p = Path(str(target)).expanduser()
            if p.is_dir():
                raise FerEdgeError(f"--video {p} is a folder, not a video file (use --images for a folder of images)")
            if not p.is_file():
                raise FerEdgeError(f"video file {p} does not exist")
            target = str(p)
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            what = f"camera {target} does not open (is it connected and free?)" if is_camera else \
                f"cannot open video {target}: unreadable or not a video"
            raise FerEdgeError(what)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1.0 <= fps <= 240.0 else 30.0
        self.error: str | None = None  # set when the stream ended abnormally
        self._buf: np.ndarray | None = None
        # optional: returns the buffer to decode the next frame into (a pool, for a decode thread)
        self.next_buffer: Callable[[], np.ndarray | None] | None = None

    def __iter__(self) -> Iterator[Frame]:
        t0 = time.perf_counter()
        index = 0
        while True:
            ok, img = self.cap.read(self._buf if self.next_buffer is None else self.next_buffer())
            if not ok or img is None:
                if index == 0:
                    what = f"camera {self.name[7:]} delivered no frame" if self.is_camera else \
                        f"video {self.name} has no readable frames"
                    raise FerEdgeError(what)
                if self.is_camera:
                    self.error = f"camera {self.name[7:]} stopped delivering frames after {index} frames"
                break
            if img.ndim == 2 or img.shape[2] != 3:  # some backends give gray or BGRA frames
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_BGRA2BGR)
            self._buf = img
            t = time.perf_counter() - t0 if self.is_camera else index / self.fps
            yield Frame(img, index, t, self.name)
            index += 1

    def close(self) -> None:
        self.cap.release()


def list_images(folder: str | Path) -> list[Path]:
    """Image files below ``folder``, recursively, sorted."""
    d = Path(folder).expanduser()
    if d.is_file():
        raise FerEdgeError(f"--images {d} is a file, not a folder (use --image for one image)")
    if not d.is_dir():
        raise FerEdgeError(f"image folder {d} does not exist or is not a folder")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FerEdgeError(f"image folder {d} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _too_big(path: Path, w: int, h: int, max_pixels: int) -> FerEdgeError:
    need = -(-w * h // 1_000_000)
    return FerEdgeError(f"image {path} is {w}x{h} ({w * h / 1e6:.0f} MP), over the {max_pixels / 1e6:g} MP limit; "
                        f"pass --max-megapixels {need} to process it (decoding alone needs {3 * w * h / 2**30:.1f} GB)")


def read_image(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file as BGR uint8, or raise a FerEdgeError that says why not.

    Images over ``max_pixels`` are refused from their header, before any decoding (None: no limit)."""
    if path.is_dir():
        raise FerEdgeError(f"--image {path} is a folder, not an image file (use --images for a folder)")
    if not path.is_file():
        raise FerEdgeError(f"image file {path} does not exist")
    if max_pixels:
        size = image_size(path)
        if size is not None and size[0] * size[1] > max_pixels:
            raise _too_big(path, *size, max_pixels)
    try:
        data = np.fromfile(str(path), np.uint8)  # imdecode also handles non-ASCII paths on Windows
    except OSError as e:
        raise FerEdgeError(f"cannot read image {path}: {e.strerror}")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise FerEdgeError(f"cannot read image {path}: not an image or corrupt")
    if max_pixels and img.shape[0] * img.shape[1] > max_pixels:  # a format whose header was not read
        raise _too_big(path, img.shape[1], img.shape[0], max_pixels)
    return img


class ImageSource:
    """One image or a sorted folder of images; in folder mode bad files are reported and skipped."""

    is_camera = False
    fps = None
    fresh_buffers = True  # every frame is a new array: safe to read ahead

    def __init__(self, paths: list[Path], skip_bad: bool, on_skip: Callable[[str], None] | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.max_pixels = max_pixels
        self.paths = paths
        self.skip_bad = skip_bad
        self.on_skip = on_skip or (lambda msg: print(f"fer-edge: skipped: {msg}", file=sys.stderr))
        self.skipped: list[str] = []
        self.name = str(paths[0].parent) if skip_bad else str(paths[0])
        self.error: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.paths):
            try:
                img = read_image(p, self.max_pixels)
            except FerEdgeError as e:
                if not self.skip_bad:
                    raise
                self.skipped.append(str(e))
                self.on_skip(str(e))
                continue
            yield Frame(img, i, 0.0, str(p))
        if self.skipped:
            self.error = f"{len(self.skipped)} of {len(self.paths)} files could not be read"

    def close(self) -> None:
        pass


PICAMERA2_HINT = ("the Raspberry Pi camera needs picamera2: 'sudo apt install -y python3-picamera2', and a venv made "
                  "with 'python3 -m venv --system-site-packages' so that it sees the system's picamera2")


class PiCameraSource:
    """A Raspberry Pi camera module (libcamera) through ``picamera2``, read into one reused BGR buffer.

    libcamera cameras are not V4L2 capture devices that ``cv2.VideoCapture(N)`` can open on current Raspberry Pi
    OS, hence this source (``--camera picam``). Each frame is copied once out of the camera's mapped buffer into
    the buffer the loop sees (the next frame overwrites it), and the camera's request is released at once.
    """

    is_camera = True

    def __init__(self, size: tuple[int, int] = (640, 480), camera_num: int = 0):
        try:
            import picamera2
        except ImportError as e:
            raise FerEdgeError(f"{PICAMERA2_HINT} ({e})")
        mapped = getattr(picamera2, "MappedArray", None)
        if mapped is None:
            from picamera2.request import MappedArray as mapped
        self._mapped = mapped
        self.name = f"picam:{camera_num}"
        self.fps = 30.0
        self.error: str | None = None
        self._size = size
        try:
            self.cam = picamera2.Picamera2(camera_num)
            # "RGB888" is libcamera's name for 24-bit pixels stored B, G, R: OpenCV's BGR order
            config = self.cam.create_video_configuration(main={"size": size, "format": "RGB888"})
            self.cam.configure(config)
            self.cam.start()
        except Exception as e:  # picamera2 raises RuntimeError/IndexError/... when no camera is attached
            raise FerEdgeError(f"Raspberry Pi camera {camera_num} does not open (is it connected, enabled and free?"
                               f" {_one_line(e)})")
        self._buf: np.ndarray | None = None

    def _read(self) -> np.ndarray:
        request = self.cam.capture_request()
        try:
            with self._mapped(request, "main") as m:
                arr = m.array
                w, h = self._size
                if arr.ndim == 3 and arr.shape[2] >= 3:
                    arr = arr[:h, :w, :3]
                elif arr.ndim == 2:  # a packed buffer: rows of stride bytes
                    arr = arr[:h, : w * 3].reshape(h, w, 3)
                if self._buf is None or self._buf.shape != arr.shape:
                    self._buf = np.empty(arr.shape, np.uint8)
                np.copyto(self._buf, arr)
        finally:
            request.release()
        return self._buf

    def __iter__(self) -> Iterator[Frame]:
        t0 = time.perf_counter()
        index = 0
        while True:
            try:
                img = self._read()
            except Exception as e:
                if index == 0:
                    raise FerEdgeError(f"Raspberry Pi camera delivered no frame ({_one_line(e)})")
                self.error = f"Raspberry Pi camera stopped delivering frames after {index} frames ({_one_line(e)})"
                break
            yield Frame(img, index, time.perf_counter() - t0, self.name)
            index += 1

    def close(self) -> None:
        try:
            self.cam.stop()
            self.cam.close()
        except Exception:
            pass


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
