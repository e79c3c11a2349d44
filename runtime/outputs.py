"""Output paths checked before anything is written: never an input, never two outputs on one file, a known
suffix, a writable place, and no existing file replaced unless asked (``--overwrite``).

Also the one place where an ``OSError`` becomes a sentence that names its real cause.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import FerEdgeError
from .sources import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mkv", ".mov")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)

_CAUSES = {
    errno.EACCES: "permission denied", errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up", errno.EISDIR: "it is a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder", errno.ENOENT: "the folder does not exist",
    errno.EFBIG: "the file is too large for the file system", errno.EIO: "an input/output error (device gone?)",
    errno.ENAMETOOLONG: "the name is too long", errno.ENXIO: "the device is gone",
}


def os_error_cause(e: OSError) -> str:
    """What an OSError means, in words (its errno), e.g. 'no space left on the device'."""
    return _CAUSES.get(e.errno, e.strerror or type(e).__name__)


def write_error(path: str | Path, e: OSError, what: str = "cannot write") -> FerEdgeError:
    """The FerEdgeError for a failed write of ``path``: '<what> <path>: <cause>'."""
    return FerEdgeError(f"{what} {path}: {os_error_cause(e)}")


def _is_special(p: Path) -> bool:
    """An existing device or pipe (/dev/null, /dev/stdout, a FIFO): written as a stream, never replaced."""
    try:
        return not stat.S_ISREG(p.stat().st_mode) and not p.is_dir()
    except OSError:
        return False


def _key(p: Path) -> Path:
    return Path(os.path.realpath(p))


def check_writable_dir(folder: Path, flag: str) -> None:
    """Create ``folder`` if needed and prove a file can be made in it, or say why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FerEdgeError(f"{flag}: cannot create folder {folder}: a file of that name exists")
    except OSError as e:
        raise write_error(folder, e, f"{flag}: cannot create folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fer-edge-probe-"):
            pass
    except OSError as e:
        raise write_error(folder, e, f"{flag}: cannot write in folder")


def _check_file_target(flag: str, p: Path, suffixes: Iterable[str], kind: str, overwrite: bool,
                       dirs: list[tuple[Path, str]]) -> None:
    if p.is_dir():
        raise FerEdgeError(f"{flag} {p}: it is a folder; give a file name ending in {', '.join(suffixes)}")
    if _is_special(p):
        return
    if p.suffix.lower() not in suffixes:
        raise FerEdgeError(f"{flag} {p}: use a {kind} file name ending in {', '.join(suffixes)}")
    if p.exists() and not overwrite:
        raise FerEdgeError(f"{flag} {p} already exists; pass --overwrite to replace it")
    dirs.append((p.parent, flag))


def image_save_targets(save: Path, inputs: list[Path], single: bool, root: Path | None) -> list[Path]:
    """The files ``ImageFolderSink`` will write for ``inputs`` (kept in step with it)."""
    if single and save.suffix.lower() in IMAGE_SUFFIXES:
        return [save]
    out = []
    for src in inputs:
        rel = src.relative_to(root) if root is not None and _under(src, root) else Path(src.name)
        out.append(save / rel)
    return out


def _under(p: Path, folder: Path) -> bool:
    try:
        p.relative_to(folder)
        return True
    except ValueError:
        return False


def check_run_outputs(*, save: str | None, json: str | None, csv: str | None, streaming: bool,
                      image: str | None = None, images: str | None = None, image_paths: list[Path] | None = None,
                      video: str | None = None, other_inputs: Iterable[str | Path | None] = (),
                      overwrite: bool = False) -> None:
    """Refuse, before any file is opened, every output that would go wrong (one FerEdgeError, exit 2):

    * an output that is an input file (``--image``, ``--video``, a model) or lies inside the ``--images`` folder;
    * two outputs on the same file;
    * a file name without a suffix of its kind (``--save`` video/image, ``--json``, ``--csv``), or a folder;
    * an existing file, unless ``overwrite``; a place that cannot be written (naming why).
    """
    outputs = {f: Path(v).expanduser() for f, v in (("--save", save), ("--json", json), ("--csv", csv)) if v}
    if not outputs:
        return
    in_files = [Path(p).expanduser() for p in (image, video, *other_inputs)
                if p and "://" not in str(p) and Path(p).expanduser().exists()]
    in_files += image_paths or []
    in_dir = Path(images).expanduser() if images else None
    in_keys = {_key(p) for p in in_files}
    seen: dict[Path, str] = {}
    for flag, p in outputs.items():
        k = _key(p)
        if k in in_keys:
            raise FerEdgeError(f"{flag} {p} is an input of this run; refusing to write over it")
        if in_dir is not None and (k == _key(in_dir) or _under(k, _key(in_dir))):
            raise FerEdgeError(f"{flag} {p} lies inside the input folder {in_dir}; refusing to write there")
        if k in seen and not _is_special(p):
            raise FerEdgeError(f"{seen[k]} and {flag} name the same file {p}; give each its own file")
        seen[k] = flag
    dirs: list[tuple[Path, str]] = []  # made and probed once every other check has passed
    if json:
        _check_file_target("--json", outputs["--json"], JSON_SUFFIXES, "JSON Lines", overwrite, dirs)
    if csv:
        _check_file_target("--csv", outputs["--csv"], CSV_SUFFIXES, "CSV", overwrite, dirs)
    if save and streaming:
        _check_file_target("--save", outputs["--save"], VIDEO_SUFFIXES, "video", overwrite, dirs)
    elif save:
        _check_image_save(outputs["--save"], image, images, image_paths, in_keys, overwrite, dirs)
    for folder, flag in dirs:
        check_writable_dir(folder, flag)


def _check_image_save(p: Path, image: str | None, images: str | None, image_paths: list[Path] | None,
                      in_keys: set[Path], overwrite: bool, dirs: list[tuple[Path, str]]) -> None:
    single = bool(image)
    if single and not p.is_dir() and p.suffix.lower() not in IMAGE_SUFFIXES:
        raise FerEdgeError(f"--save {p}: use an image file name ending in {', '.join(sorted(IMAGE_SUFFIXES))}, "
                           "or an existing folder")
    if not single and p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
        raise FerEdgeError(f"--save {p}: with --images, --save names a folder (for the annotated copies), "
                           "not a file")
    if not single and p.exists() and not p.is_dir():
        raise FerEdgeError(f"--save {p} is a file; with --images, --save names a folder")
    root = Path(images).expanduser() if images else None
    targets = image_save_targets(p, image_paths or [], single, root)
    for t in targets:
        if _key(t) in in_keys:
            raise FerEdgeError(f"--save {p} would write {t}, an input of this run; refusing to write over it")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite and single and existing[0] == p:
        raise FerEdgeError(f"--save {p} already exists; pass --overwrite to replace it")
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FerEdgeError(f"--save would replace {existing[0]}{more}; pass --overwrite to replace existing files")
    dirs.append((p.parent if single and p.suffix.lower() in IMAGE_SUFFIXES else p, "--save"))
