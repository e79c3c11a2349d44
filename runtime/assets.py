"""Model files the runtime uses: where they live, where they come from, and their pinned checksums.

Files are found, never guessed: an explicit path wins, then ``$FER_EDGE_HOME/models/<relpath>``,
then the per-user cache ``~/.cache/fer-edge/models/<relpath>`` (``$XDG_CACHE_HOME`` respected),
then, for YuNet, the copy shipped inside the package (``fer_edge/assets/``).
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
OFFLINE_ROUTES = ("offline, use --mirror DIR_OR_URL (a folder or server holding the files at their paths below "
                  "models/), put the file under $FER_EDGE_HOME/models/, or pass it to 'fer-edge run' with "
                  "--detector-model PATH")
FILE_MODE = 0o644  # fetched files are readable by every user of a shared models folder


@dataclass(frozen=True)
class Asset:
    """One downloadable model file."""

    name: str  # e.g. "yunet"
    relpath: str  # path below a models/ folder
    url: str  # official upstream location
    sha256: str
    size: int  # bytes, for progress only
    packaged: bool = False  # a verified copy ships in fer_edge/assets/ (found last, never fetched by default)


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
            packaged=True,
        ),
        Asset(  # the YuNet that OpenCV 4.5.4-4.7 (Debian 12 / Raspberry Pi OS: 4.6) can load
            "yunet-2022mar",
            "face_detectors/yunet/face_detection_yunet_2022mar.onnx",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2022mar.onnx",
            "50ef07f702a31741ca46a4c0d947773b64143b9362780237bf0d427d6c79bab7",
            345478,
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


def packaged_path(name: str) -> Path | None:
    """The copy of asset ``name`` shipped inside the package, or None."""
    if not ASSETS[name].packaged:
        return None
    from importlib import resources

    p = Path(str(resources.files("fer_edge") / "assets")) / Path(ASSETS[name].relpath).name
    return p if p.is_file() else None


def default_fetch_names() -> list[str]:
    """What ``fer-edge models fetch`` gets without names: every asset not shipped in the package."""
    return [n for n, a in ASSETS.items() if not a.packaged]


def locate(name: str) -> Path | None:
    """The first existing copy of asset ``name`` (the model folders, then the package), or None."""
    rel = ASSETS[name].relpath
    for d in search_dirs():
        p = d / rel
        if p.is_file():
            return p
    return packaged_path(name)


def check_readable(path: Path) -> Path:
    """``path`` if this user can read it; else a FerEdgeError saying that it exists but cannot be read."""
    if not os.access(path, os.R_OK):
        mode = path.stat().st_mode & 0o777
        raise FerEdgeError(f"model file {path} exists but this user cannot read it (mode {mode:04o}); "
                           f"make it readable (chmod a+r) or fetch a copy of your own")
    return path


def resolve(name: str, explicit: str | os.PathLike | None = None) -> Path:
    """Find asset ``name`` (or the explicit path) or raise a FerEdgeError that says how to get it."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FerEdgeError(f"model file {p} does not exist")
        return check_readable(p)
    found = locate(name)
    if found is not None:
        return check_readable(found)
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


def mirror_url(mirror: str, relpath: str) -> str:
    """``<mirror>/<relpath>`` as a URL; a mirror without a scheme is a local folder."""
    if "://" not in mirror:
        return (Path(mirror).expanduser().resolve() / relpath).as_uri()
    return f"{mirror.rstrip('/')}/{relpath}"


def fetch(name: str, dest_dir: Path | None = None, mirror: str | None = None, force: bool = False,
          log=print) -> Path:
    """Download asset ``name`` into ``dest_dir`` and verify its SHA-256.

    ``mirror`` replaces the upstream URL by ``<mirror>/<relpath>``: any urllib URL (file:// too) or a plain
    folder. A checksum mismatch deletes the download and raises. The file is saved readable by all (0644).
    """
    asset = ASSETS[name]
    dest = Path(dest_dir or default_fetch_dir()) / asset.relpath
    if dest.is_file() and not force:
        if sha256_of(dest) == asset.sha256:
            log(f"{name}: already present at {dest}")
            return dest
        log(f"{name}: {dest} has the wrong checksum; downloading it again")
    url = mirror_url(mirror, asset.relpath) if mirror else asset.url
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
            raise FerEdgeError(f"{name}: download from {url} failed ({e}); {OFFLINE_ROUTES}")
        got = sha256_of(tmp)
        if got != asset.sha256:
            raise FerEdgeError(
                f"{name}: checksum mismatch for {url} (expected sha256 {asset.sha256}, got {got}); "
                "the download was deleted"
            )
        os.chmod(tmp, FILE_MODE)  # mkstemp made it 0600: other users would see a file they cannot load
        os.replace(tmp, dest)
        log(f"{name}: saved {dest} (sha256 verified)")
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()
