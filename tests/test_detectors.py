"""Face detectors on the real photos and videos of ../shared/media (counts from manifest.json)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from fer_edge.runtime import assets
from fer_edge.runtime.detectors import (
    Res10Detector,
    YuNetDetector,
    create_detector,
    opencv_reads_caffe,
    opencv_reads_tensorflow,
)
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.tracker import iou_matrix

from conftest import MANIFEST, MEDIA, SHARED

RES10_TF = SHARED / "models/face_detectors/res10_ssd_tf/opencv_face_detector_uint8.pb"
RES10_CAFFE = SHARED / "models/face_detectors/res10_ssd_caffe/res10_300x300_ssd_iter_140000.caffemodel"
RES10_RUNS = opencv_reads_caffe() or opencv_reads_tensorflow()  # OpenCV 5.1 reads neither form
DETECTOR_SPECS = (["yunet"] + (["res10-tf"] if opencv_reads_tensorflow() else [])
                  + (["res10-caffe"] if opencv_reads_caffe() else []))


def make(spec: str, **kw):
    if spec == "yunet":
        return create_detector("yunet", **kw)
    return create_detector("res10", str(RES10_TF if spec == "res10-tf" else RES10_CAFFE), **kw)


def expected_range(name: str, spec: str) -> tuple[int, int]:
    """The manifest's range; where it gives an exact count, res10's uint8-quantized TF form may be off by one."""
    e = MANIFEST["images"][name]
    slack = 1 if spec == "res10-tf" else 0
    return e.get("min", e["faces"] - slack), e.get("max", e["faces"] + slack)


@pytest.fixture(scope="module", params=DETECTOR_SPECS)
def detector(request):
    return request.param, make(request.param)


@pytest.mark.parametrize("name", sorted(MANIFEST.get("images", {})))
def test_face_counts_on_shared_photos(detector, name):
    spec, det = detector
    img = cv2.imread(str(MEDIA / name))
    boxes = det.detect(img)
    lo, hi = expected_range(name, spec)
    assert lo <= len(boxes) <= hi, f"{spec} found {len(boxes)} faces in {name}, expected {lo}..{hi}"
    h, w = img.shape[:2]
    assert boxes.dtype == np.float32 and boxes.shape[1] == 5
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 1] + boxes[:, 3] <= h + 1e-3).all()
    assert (np.minimum(boxes[:, 2], boxes[:, 3]) >= det.min_face).all()
    assert (boxes[:, 4] >= det.score_threshold).all() and (np.diff(boxes[:, 4]) <= 0).all()


def _voc_boxes() -> dict[str, np.ndarray]:
    root = ET.parse(MEDIA / "voc_faces_train.xml").getroot()
    out = {}
    for im in root.iter("image"):
        b = [[float(x.get(k)) for k in ("left", "top", "width", "height")] for x in im.iter("box")]
        out[im.get("file")] = np.array(b, np.float32)
    return out


def test_detections_match_annotated_voc_boxes(detector):
    """Every annotated face is found (IoU >= 0.3 with some detection)."""
    spec, det = detector
    for name, gt in _voc_boxes().items():
        found = det.detect(cv2.imread(str(MEDIA / name)))
        iou = iou_matrix(gt, found[:, :4])
        missed = int((iou.max(axis=1) < 0.3).sum()) if iou.size else len(gt)
        assert missed == 0, f"{spec} missed {missed} of {len(gt)} annotated faces in {name}"


def test_faces_per_frame_in_shared_videos():
    det = make("yunet")
    for name, spec in MANIFEST["videos"].items():
        lo, hi = spec["faces_per_frame"]
        cap = cv2.VideoCapture(str(MEDIA / name))
        frames = counts = 0
        ok, frame = cap.read()
        while ok:
            if frames % 5 == 0:
                n = len(det.detect(frame))
                assert lo <= n <= hi, f"{name} frame {frames}: {n} faces, expected {lo}..{hi}"
                counts += n
            frames += 1
            ok, frame = cap.read(frame)
        assert frames == spec["frames"]
        assert counts > 0


@pytest.mark.parametrize("engine", ["onnxruntime", "opencv"])
def test_yunet_input_size_set_once_per_frame_size(engine):
    det = make("yunet", engine=engine)
    calls = []
    if engine == "opencv":
        real = det._net

        class Spy:
            def setInputSize(self, size):  # noqa: N802 (OpenCV's name)
                calls.append(size)
                real.setInputSize(size)

            def detect(self, img):
                return real.detect(img)

        det._net = Spy()
    else:
        real_set = det._ort.set_input_size

        def spy(w, h):
            calls.append((w, h))
            real_set(w, h)

        det._ort.set_input_size = spy
    a = cv2.imread(str(MEDIA / "single_obama.jpg"))
    b = cv2.imread(str(MEDIA / "voc_2008_001009.jpg"))
    for img in (a, a, a, b, b, a):
        assert len(det.detect(img)) >= 1
    assert len(calls) == 3  # a, b, a again: once per change of frame size


def test_yunet_in_onnx_runtime_finds_the_boxes_opencv_finds():
    """The same model and decoding in both engines: the same faces, boxes within a thousandth of a pixel, on photos,
    video frames and the small regions the run loop re-detects in (odd sizes are padded to multiples of 32)."""
    ort_det, cv_det = make("yunet", engine="onnxruntime"), make("yunet", engine="opencv")
    images = [cv2.imread(str(MEDIA / n)) for n in ("group_selfie_6faces.jpg", "collage_24faces_bald_guys.jpg",
                                                    "single_obama.jpg", "voc_2008_001009.jpg")]
    cap = cv2.VideoCapture(str(MEDIA / "video_hamilton_whitehouse_9s.mp4"))
    images += [cap.read()[1] for _ in range(10)]
    cap.release()
    region = create_detector("yunet", max_side=None, min_face=0, score_threshold=0.5)
    region_cv = create_detector("yunet", engine="opencv", max_side=None, min_face=0, score_threshold=0.5)
    faces = 0
    for img in images:
        a, b = ort_det.detect(img), cv_det.detect(img)
        assert a.shape == b.shape
        assert np.abs(a - b).max(initial=0) < 1e-3  # measured: at most 1.2e-4 px
        faces += len(a)
        for x, y, w, h, _ in b[:3]:
            crop = cv2.resize(img[max(0, int(y - h / 2)) : int(y + 1.5 * h), max(0, int(x - w / 2)) : int(x + 1.5 * w)],
                              (97, 83))
            ra, rb = region.detect(crop), region_cv.detect(crop)
            assert ra.shape == rb.shape and np.abs(ra - rb).max(initial=0) < 1e-3
    assert faces >= 40


def test_yunet_engine_and_file_errors_are_one_sentence(tmp_path):
    with pytest.raises(FerEdgeError, match="unknown YuNet engine"):
        make("yunet", engine="tensorflow")
    bad = tmp_path / "not_yunet.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(FerEdgeError, match="not a valid YuNet ONNX file"):
        create_detector("yunet", str(bad))


def test_detector_thresholds_and_min_face():
    img = cv2.imread(str(MEDIA / "collage_24faces_bald_guys.jpg"))
    all_faces = make("yunet", score_threshold=0.5).detect(img)
    strict = make("yunet", score_threshold=0.95).detect(img)
    big_only = make("yunet", min_face=10_000).detect(img)
    assert len(strict) < len(all_faces) and len(big_only) == 0


def test_res10_caffe_depends_on_opencv_version():
    if opencv_reads_caffe():
        det = make("res10-caffe")
        assert det.form == "caffe"
        assert len(det.detect(cv2.imread(str(MEDIA / "two_people_obama_biden.jpg")))) == 2
    else:
        with pytest.raises(FerEdgeError) as e:
            make("res10-caffe")
        msg = str(e.value)
        assert "OpenCV 4.x" in msg and cv2.__version__ in msg
        # OpenCV 5.0 still reads the TensorFlow form and says so; 5.1 reads neither and points to YuNet
        assert ("opencv_face_detector_uint8.pb" if RES10_RUNS else "--detector yunet") in msg


def test_res10_default_files_follow_opencv_version():
    if not RES10_RUNS:
        for spec in ("res10-tf", "res10-caffe", None):
            with pytest.raises(FerEdgeError, match="cannot run the res10 face detector.*--detector yunet"):
                make(spec) if spec else create_detector("res10")
        return
    det = create_detector("res10")
    assert det.form == ("caffe" if opencv_reads_caffe() else "tensorflow")


def test_missing_and_corrupt_detector_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert create_detector("yunet").model_path == assets.packaged_path("yunet")  # shipped: never missing
    if RES10_RUNS:  # (where OpenCV cannot run res10 at all, that is said first: test above)
        with pytest.raises(FerEdgeError) as e:
            create_detector("res10")
        msg = str(e.value)
        assert "res10" in msg and str(tmp_path / "home") in msg
        assert str(tmp_path / "cache") in msg and "fer-edge models fetch res10-" in msg
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(FerEdgeError, match="cannot load the YuNet"):
        YuNetDetector(bad)
    bad_pb = tmp_path / "bad.pb"
    bad_pb.write_bytes(b"\x00garbage")
    (tmp_path / "opencv_face_detector.pbtxt").write_text("nonsense {")
    expect = "cannot load the res10" if opencv_reads_tensorflow() else "cannot run the res10"
    with pytest.raises(FerEdgeError, match=expect):
        Res10Detector(bad_pb, tmp_path / "opencv_face_detector.pbtxt")
    with pytest.raises(FerEdgeError, match="unknown face detector"):
        create_detector("haar")


def test_assets_layout_matches_shared():
    for name in ("yunet", "res10-caffe-prototxt", "res10-caffe-model", "res10-tf-model", "res10-tf-config"):
        assert assets.locate(name) is not None, name
