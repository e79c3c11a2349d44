"""--camera picam: a stand-in picamera2 module's frames through the reused-buffer loop; one clear line without it."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from conftest import MEDIA, assert_clean_error, run_cli

# A stand-in for picamera2's API as fer-edge uses it (Picamera2, create_video_configuration, configure, start,
# capture_request -> request.release, MappedArray(request, "main").array, stop, close). Its frames are the group
# photo scaled to the configured size, stored with a padded row stride as libcamera buffers can be, each frame
# written into one camera-owned buffer like a DMA buffer. Every call is logged to $PICAM_LOG.
STAND_IN = '''
import json, os
import cv2
import numpy as np

_LOG = os.environ.get("PICAM_LOG")


def _log(**kw):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(json.dumps(kw) + "\\n")


class _Request:
    def __init__(self, cam):
        self.cam, self.released = cam, False

    def release(self):
        self.released = True
        self.cam.outstanding -= 1
        _log(event="release")


class MappedArray:
    def __init__(self, request, stream):
        assert stream == "main" and not request.released
        self.request = request

    def __enter__(self):
        return self

    @property
    def array(self):
        return self.request.cam.dma

    def __exit__(self, *exc):
        return False


class Picamera2:
    def __init__(self, camera_num=0):
        if os.environ.get("PICAM_FAIL"):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.outstanding = 0
        self.frames = int(os.environ.get("PICAM_FRAMES", "1000000"))
        _log(event="init", camera=camera_num)

    def create_video_configuration(self, main):
        return {"main": dict(main)}

    def configure(self, config):
        self.size = tuple(config["main"]["size"])
        assert config["main"]["format"] == "RGB888"
        w, h = self.size
        img = cv2.resize(cv2.imread(os.environ["PICAM_IMAGE"]), (w, h), interpolation=cv2.INTER_AREA)
        self.dma = np.zeros((h, w + 16, 3), np.uint8)  # padded stride
        self.image = img
        _log(event="configure", size=list(self.size))

    def start(self):
        _log(event="start")

    def capture_request(self):
        if self.frames == 0:
            raise RuntimeError("camera timed out")
        self.frames -= 1
        self.outstanding += 1
        w, h = self.size
        self.dma[:, :w] = self.image
        return _Request(self)

    def stop(self):
        _log(event="stop", outstanding=self.outstanding)

    def close(self):
        _log(event="close")
'''


@pytest.fixture()
def stand_in(tmp_path) -> dict:
    pkg = tmp_path / "standin" / "picamera2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    log = tmp_path / "picam.log"
    return {"PYTHONPATH": os.pathsep.join([str(pkg.parent), os.environ.get("PYTHONPATH", "")]),
            "PICAM_LOG": str(log), "PICAM_IMAGE": str(MEDIA / "group_selfie_6faces.jpg")}


def _events(env: dict) -> list[dict]:
    return [json.loads(ln) for ln in Path(env["PICAM_LOG"]).read_text().splitlines()]


def test_picam_frames_run_through_the_loop(stand_in, tmp_path):
    out = tmp_path / "faces.jsonl"
    p = run_cli("run", "--camera", "picam", "--max-frames", "4", "--json", str(out), env=stand_in)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    frames = {r["frame"] for r in rows}
    assert frames == {0, 1, 2, 3}
    assert all(r["source"] == "picam:0" for r in rows)
    per_frame = [sum(r["frame"] == f for r in rows) for f in sorted(frames)]
    assert min(per_frame) >= 5, per_frame  # the 6-face photo at 640x480: the faces are found in every frame
    assert all(r["track"] is not None for r in rows)  # a camera stream: tracked and smoothed
    ev = _events(stand_in)
    assert ev[0] == {"event": "init", "camera": 0} and {"event": "configure", "size": [640, 480]} in ev
    assert sum(e["event"] == "release" for e in ev) >= 4  # every captured request given back
    assert ev[-2]["event"] == "stop" and ev[-2]["outstanding"] == 0 and ev[-1]["event"] == "close"


def test_picam_source_reuses_one_buffer(stand_in, monkeypatch):
    """Every frame lands in the same BGR buffer, cropped out of the padded camera buffer."""
    import sys

    import cv2
    import numpy as np

    for k, v in stand_in.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PICAM_FRAMES", "3")
    monkeypatch.syspath_prepend(stand_in["PYTHONPATH"].split(os.pathsep)[0])
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    from fer_edge.runtime.sources import PiCameraSource

    src = PiCameraSource(size=(320, 240))
    frames = [(f.image, f.image.copy(), f.index) for f in src]
    src.close()
    assert [i for _, _, i in frames] == [0, 1, 2]
    assert len({id(img) for img, _, _ in frames}) == 1 and frames[0][0].shape == (240, 320, 3)
    expect = cv2.resize(cv2.imread(stand_in["PICAM_IMAGE"]), (320, 240), interpolation=cv2.INTER_AREA)
    assert np.array_equal(frames[0][1], expect)
    assert src.error and "after 3 frames" in src.error  # the stand-in's camera times out after 3 frames


def test_picam_without_picamera2_says_how_to_get_it(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "picamera2.py").write_text("raise ImportError('No module named picamera2')\n")
    p = run_cli("run", "--camera", "picam", env={"PYTHONPATH": str(block)})
    assert_clean_error(p, "sudo apt install -y python3-picamera2", "--system-site-packages")


def test_picam_that_does_not_open_is_one_line(stand_in):
    p = run_cli("run", "--camera", "picam", env={**stand_in, "PICAM_FAIL": "1"})
    assert_clean_error(p, "Raspberry Pi camera 0 does not open")


def test_camera_argument_is_an_index_or_picam():
    p = run_cli("run", "--camera", "usb")
    assert p.returncode == 2 and "neither a camera index nor 'picam'" in p.stderr and "Traceback" not in p.stderr
