"""Model files the runtime uses: where they live, where they come from, and their pinned checksums.

Files are found, never guessed: an explicit path wins, then ``$FER_EDGE_HOME/models/<relpath>``,
then the per-user cache ``~/.cache/fer-edge/models/<relpath>`` (``$XDG_CACHE_HOME`` respected).
Nothing is downloaded unless the user runs ``fer-edge models fetch``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import FerEdgeError

FETCH_HINT = "fer-edge models fetch"


@dataclass(frozen=True)
class Asset:
    """One downloadable model file."""

    name: str  # e.g. "yunet"
    relpath: str  # path below a models/ folder
    url: str  # official upstream location
    sha256: str
    size: int  # bytes, for progress only


_OPENCV_RAW = "https://raw.githubusercontent.com/opencv"
ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "yunet",
            "face_detectors/yunet/face_detection_yunet_2023mar.onnx",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            232589,
        ),
        Asset(
            "res10-caffe-prototxt",
            "face_detectors/res10_ssd_caffe/deploy.prototxt",
            f"{_OPENCV_RAW}/opencv/4.x/samples/dnn/face_detector/deploy.prototxt",
            "85abd2feeb48703094444073b29ecbcc1ebb66481548e5808e90f38681123ca7",
            28091,
        ),
        Asset(
            "res10-caffe-model",
            "face_detectors/res10_ssd_caffe/res10_300x300_ssd_iter_140000.caffemodel",
            f"{_OPENCV_RAW}/opencv_3rdparty/dnn_samples_face_detector_20170830/"
            "res10_300x300_ssd_iter_140000.caffemodel",
            "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d",
            10666211,
        ),
        Asset(
            "res10-tf-model",
            "face_detectors/res10_ssd_tf/opencv_face_detector_uint8.pb",
            f"{_OPENCV_RAW}/opencv_3rdparty/dnn_samples_face_detector_20180220_uint8/"
            "opencv_face_detector_uint8.pb",
            "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed",
            2727750,
        ),
        Asset(
            "res10-tf-config",
            "face_detectors/res10_ssd_tf/opencv_face_detector.pbtxt",
            f"{_OPENCV_RAW}/opencv/4.x/samples/dnn/face_detector/opencv_face_detector.pbtxt",
            "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144",
            34912,
        ),
    )
}


def cache_dir() -> Path:
    """The per-user model cache."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
    )
    return Path(base or Path.home() / ".cache") / "fer-edge" / "models"


def search_dirs() -> list[Path]:
    """Model folders in the order they are searched."""
    dirs = []
    home = os.environ.get("FER_EDGE_HOME")
    if home:
        dirs.append(Path(home).expanduser() / "models")
    dirs.append(cache_dir())
    return dirs


def default_fetch_dir() -> Path:
    return search_dirs()[0]


def locate(name: str) -> Path | None:
    """The first existing copy of asset ``name``, or None."""
    rel = ASSETS[name].relpath
    for d in search_dirs():
        p = d / rel
        if p.is_file():
            return p
    return None


def resolve(name: str, explicit: str | os.PathLike | None = None) -> Path:
    """Find asset ``name`` (or the explicit path) or raise a FerEdgeError that says how to get it."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FerEdgeError(f"model file {p} does not exist")
        return p
    found = locate(name)
    if found is not None:
        return found
    rel = ASSETS[name].relpath
    looked = ", ".join(str(d / rel) for d in search_dirs())
    raise FerEdgeError(
        f"model file {Path(rel).name} was not found (looked in {looked}); "
        f"get it with '{FETCH_HINT} {name}' or pass its path"
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, dest_dir: Path | None = None, mirror: str | None = None, force: bool = False,
          log=print) -> Path:
    """Download asset ``name`` into ``dest_dir`` and verify its SHA-256.

    ``mirror`` replaces the upstream URL by ``<mirror>/<relpath>`` (any urllib URL, file:// too).
    A checksum mismatch deletes the download and raises.
    """
    asset = ASSETS[name]
    dest = Path(dest_dir or default_fetch_dir()) / asset.relpath
    if dest.is_file() and not force:
        if sha256_of(dest) == asset.sha256:
            log(f"{name}: already present at {dest}")
            return dest
        log(f"{name}: {dest} has the wrong checksum; downloading it again")
    url = f"{mirror.rstrip('/')}/{asset.relpath}" if mirror else asset.url
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FerEdgeError(f"cannot create {dest.parent}: {e.strerror}")
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        log(f"{name}: downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except (OSError, ValueError) as e:
            raise FerEdgeError(f"{name}: download from {url} failed ({e})")
        got = sha256_of(tmp)
        if got != asset.sha256:
            raise FerEdgeError(
                f"{name}: checksum mismatch for {url} (expected sha256 {asset.sha256}, got {got}); "
                "the download was deleted"
            )
        os.replace(tmp, dest)
        log(f"{name}: saved {dest} (sha256 verified)")
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()
