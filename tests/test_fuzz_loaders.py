"""Fuzzing the loaders a user's files reach: images, videos, model metadata. Every input either loads or raises
FerEdgeError (one sentence); anything else (another exception, a crash, a hang) fails the test.

CI runs about 3,000 cases in all; FER_EDGE_FUZZ_SCALE=N multiplies every count (the longer run in the README
uses 20).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fer_edge.runtime.errors import FerEdgeError

from conftest import MEDIA

SCALE = max(1, int(os.environ.get("FER_EDGE_FUZZ_SCALE", "1")))


def fuzz(n: int):
    """Hypothesis settings for ``n`` cases (times FER_EDGE_FUZZ_SCALE), no deadline (the machine is shared)."""
    return settings(max_examples=n * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _seed_files() -> dict[str, bytes]:
    """Small valid files of each kind, to be mutated: most fuzz cases should get past the first check."""
    img = cv2.resize(cv2.imread(str(MEDIA / "single_obama.jpg")), (64, 80))
    out = {}
    for ext in (".jpg", ".png", ".bmp", ".webp", ".tif"):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        out[ext] = buf.tobytes()
    return out


SEEDS = _seed_files() if MEDIA.is_dir() else {".jpg": b"\xff\xd8\xff"}


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12)
cuts = st.one_of(st.none(), st.integers(0, 4000))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _load_image(path: Path) -> None:
    from fer_edge.runtime.sources import read_image

    try:
        img = read_image(path, max_pixels=4_000_000)
    except FerEdgeError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.shape[0] * img.shape[1] <= 4e6


@fuzz(800)
@given(ext=st.sampled_from(sorted(SEEDS)), edits=edits, cut=cuts)
def test_fuzz_image_loader_mutated(fuzz_dir, ext, edits, cut):
    p = fuzz_dir / f"m{ext}"
    p.write_bytes(mutate(SEEDS[ext], edits, cut))
    _load_image(p)


@fuzz(600)
@given(data=st.binary(max_size=2000), ext=st.sampled_from([".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm"]))
def test_fuzz_image_loader_random(fuzz_dir, data, ext):
    p = fuzz_dir / f"r{ext}"
    p.write_bytes(data)
    _load_image(p)


@fuzz(400)
@given(w=st.integers(0, 2**32 - 1), h=st.integers(0, 2**32 - 1), kind=st.sampled_from(["png", "jpg", "bmp"]))
def test_fuzz_image_headers_with_any_size(fuzz_dir, w, h, kind):
    """Headers claiming any size, up to 4 billion pixels a side: refused from the header or read, never decoded
    past the limit."""
    import struct
    import zlib

    if kind == "png":
        chunk = b"IHDR" + struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + \
            SEEDS[".png"][33:]
    elif kind == "jpg":
        b = bytearray(SEEDS[".jpg"])
        i = next(i for i in range(2, len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2))
        b[i + 5 : i + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
        data = bytes(b)
    else:
        b = bytearray(SEEDS[".bmp"])
        b[18:26] = struct.pack("<ii", w % 2**31, h % 2**31)
        data = bytes(b)
    p = fuzz_dir / f"h.{kind}"
    p.write_bytes(data)
    _load_image(p)


def _seed_videos(folder: Path) -> dict[str, bytes]:
    out = {}
    cap = cv2.VideoCapture(str(MEDIA / "video_talking_woman_15s.mp4"))
    frames = [cv2.resize(cap.read()[1], (64, 48)) for _ in range(6)]
    cap.release()
    for ext, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        p = folder / f"seed{ext}"
        w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
        for f in frames:
            w.write(f)
        w.release()
        out[ext] = p.read_bytes()
    return out


@fuzz(300)
@given(ext=st.sampled_from([".mp4", ".avi"]), edits=edits, cut=cuts)
def test_fuzz_video_loader(fuzz_dir, ext, edits, cut):
    from fer_edge.runtime.sources import VideoSource

    seeds = getattr(test_fuzz_video_loader, "seeds", None)
    if seeds is None:
        seeds = test_fuzz_video_loader.seeds = _seed_videos(fuzz_dir)
    p = fuzz_dir / f"v{ext}"
    p.write_bytes(mutate(seeds[ext], edits, cut))
    try:
        src = VideoSource(str(p))
        try:
            for n, frame in enumerate(src):
                assert frame.image.ndim == 3 and frame.image.shape[2] == 3
                if n > 20:
                    break
        finally:
            src.close()
    except FerEdgeError as e:
        assert str(e) and "\n" not in str(e)


GOOD_META = {"classes": ["a", "b", "c"], "input_size": [48, 48], "channels": 1, "mean": [0.5], "std": [0.25],
             "crop_margin": 0.1, "output": "logits", "color": "gray"}
# no subnormal floats: a test that trains (torch.set_flush_denormal) or a native library may leave flush-to-zero on
# in the test process, and hypothesis then refuses to generate them
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_subnormal=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _check_meta(text: str) -> None:
    from fer_edge.runtime.metadata import ModelMeta

    try:
        m = ModelMeta.from_json(text, "fuzz")
    except FerEdgeError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert len(m.classes) >= 2 and m.channels in (1, 3) and len(m.mean) == m.channels
    assert ModelMeta.from_json(m.to_json(), "again") == m  # what loads, round-trips


@fuzz(400)
@given(text=st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_fuzz_metadata_any_json(text):
    _check_meta(text)


@fuzz(500)
@given(changes=st.dictionaries(st.sampled_from(sorted(GOOD_META) + ["extra"]), json_values, max_size=4),
       drop=st.lists(st.sampled_from(sorted(GOOD_META)), max_size=2))
@example(changes={"input_size": [float("inf"), 48]}, drop=[])  # found by the longer run: int(Infinity)
@example(changes={"std": [float("nan")]}, drop=[])
def test_fuzz_metadata_fields(changes, drop):
    """A valid model card with fields replaced by any JSON value or removed."""
    d = {k: v for k, v in {**GOOD_META, **changes}.items() if k not in drop}
    _check_meta(json.dumps(d))


@fuzz(60)
@given(changes=st.dictionaries(st.sampled_from(sorted(GOOD_META)), json_values, max_size=2))
def test_fuzz_classifier_file_metadata(fuzz_dir, changes):
    """The same through the real loader: an ONNX file carrying the fuzzed model card."""
    import onnx

    from fer_edge.runtime.classifier import load_classifier

    from model_factory import make_onnx

    base = getattr(test_fuzz_classifier_file_metadata, "base", None)
    if base is None:
        base = test_fuzz_classifier_file_metadata.base = onnx.load(str(make_onnx(fuzz_dir / "base.onnx", None)))
    model = onnx.ModelProto()
    model.CopyFrom(base)
    meta = {**GOOD_META, "classes": list("abcdefg"), **changes}
    entry = model.metadata_props.add()
    entry.key, entry.value = "fer_edge", json.dumps(meta)
    p = fuzz_dir / "m.onnx"
    onnx.save(model, str(p))
    try:
        c = load_classifier(p)
    except FerEdgeError as e:
        assert str(e) and "\n" not in str(e)
        return
    x = np.zeros((2, c.meta.channels, *c.meta.input_size), np.float32)
    assert np.allclose(c.predict(x).sum(axis=1), 1, atol=1e-4)
