"""An image's width and height from its file header, without decoding it (JPEG, PNG, BMP, WebP, TIFF, PNM).

OpenCV has no header-only read, and a 20000x20000 JPEG decodes to 1.2 GB; reading the size first lets the
runtime refuse such a file in one line instead of running out of memory.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

_HEAD = 1 << 16  # enough for every header below (JPEG: markers before SOF are skipped by seeking)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the format is not one of these or the header is bad."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head[:3] == b"\xff\xd8\xff":
                return _jpeg(f)
            f.seek(0)
            head = f.read(_HEAD)
    except OSError:
        return None
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26]) if struct.unpack("<I", head[14:18])[0] >= 40 else \
                struct.unpack("<HH", head[18:22])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp(head)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(head)
        if re.match(rb"P[1-6]\s", head[:3]):
            m = re.match(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", head)
            return (int(m.group(1)), int(m.group(2))) if m else None
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _jpeg(f) -> tuple[int, int] | None:
    """Walk the marker segments to the first SOFn (which comes before any scan data)."""
    f.seek(2)
    for _ in range(1 << 16):
        b = f.read(1)
        if not b:
            return None
        if b != b"\xff":
            continue  # tolerate stray bytes between segments
        while b == b"\xff":  # fill bytes
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # no length field
            continue
        if marker == 0xD9:
            return None
        seg = f.read(2)
        if len(seg) < 2:
            return None
        (length,) = struct.unpack(">H", seg)
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):  # SOFn
            d = f.read(5)
            if len(d) < 5:
                return None
            h, w = struct.unpack(">HH", d[1:5])
            return w, h
        if length < 2:
            return None
        f.seek(length - 2, 1)
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return w, h
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _tiff(head: bytes) -> tuple[int, int] | None:
    e = "<" if head[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", head[4:8])
    (n,) = struct.unpack(e + "H", head[ifd : ifd + 2])
    dims: dict[int, int] = {}
    for i in range(n):
        tag, typ, _count = struct.unpack(e + "HHI", head[ifd + 2 + 12 * i : ifd + 10 + 12 * i])
        if tag in (256, 257):
            off = ifd + 10 + 12 * i
            dims[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), head[off : off + (2 if typ == 3 else 4)])[0]
    return (dims[256], dims[257]) if 256 in dims and 257 in dims else None
