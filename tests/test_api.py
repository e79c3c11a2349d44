"""The Python API: ``from fer_edge import EmotionRecognizer``, the README's example, bad input, crops, streams."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fer_edge.classes import EMOTIONS

from conftest import MEDIA, REPO, run_cli

GROUP = MEDIA / "group_selfie_6faces.jpg"
WOMAN = MEDIA / "video_talking_woman_15s.mp4"


@pytest.fixture(scope="module")
def recognizer():
    from fer_edge import EmotionRecognizer

    return EmotionRecognizer()


def readme_python_example() -> str:
    """The first python code block of the README's "Python" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_labels_the_six_faces(tmp_path):
    code = readme_python_example()
    assert "group.jpg" in code
    code = code.replace("group.jpg", str(GROUP))
    empty = {"FER_EDGE_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}  # nothing fetched
    p = run_cli(python_code=code, env=empty, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 6, p.stdout
    assert all(any(f" {e} " in ln for e in EMOTIONS) for ln in lines), p.stdout


def test_import_is_cheap_and_exports_the_api():
    code = ("import sys, fer_edge; heavy = [m for m in ('cv2', 'onnxruntime', 'openvino', 'numpy') "
            "if m in sys.modules]; "
            "assert not heavy, heavy; from fer_edge import EmotionRecognizer, Face, FerEdgeError; "
            "assert 'EmotionRecognizer' in fer_edge.__all__; print('ok')")
    p = run_cli(python_code=code, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_detect_array_and_path_agree(recognizer):
    import cv2

    from fer_edge import Face

    by_path = recognizer.detect(GROUP)
    by_array = recognizer.detect(cv2.imread(str(GROUP)))
    assert len(by_path) == 6 and all(isinstance(f, Face) for f in by_path)
    assert [f.box for f in by_path] == [f.box for f in by_array]
    scores = [f.score for f in by_path]
    assert scores == sorted(scores, reverse=True)
    for f in by_path:
        assert f.label in EMOTIONS and f.label == max(f.probs, key=f.probs.get)
        assert abs(sum(f.probs.values()) - 1) < 1e-4 and f.track is None
        d = json.loads(json.dumps(f.to_dict()))
        assert d["box"] == list(f.box) and d["label"] == f.label and set(d["probs"]) == set(EMOTIONS)


@pytest.mark.parametrize("bad, fragment", [
    (None, "None"),
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((40, 40, 3), np.float32), "dtype float32"),
    (np.zeros((40, 40), np.uint8), "(H, W, 3)"),
    (np.zeros((40, 40, 4), np.uint8), "(H, W, 3)"),
    ("does/not/exist.jpg", "does not exist"),
    ([1, 2, 3], "of type list"),
])
def test_bad_input_raises_one_sentence(recognizer, bad, fragment):
    from fer_edge import FerEdgeError

    with pytest.raises(FerEdgeError) as e:
        recognizer.detect(bad)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FerEdgeError):
        recognizer.classify([bad])


def test_unreadable_file_and_unknown_model(tmp_path):
    from fer_edge import EmotionRecognizer, FerEdgeError

    f = tmp_path / "x.jpg"
    f.write_text("not an image")
    with pytest.raises(FerEdgeError, match="not an image or corrupt"):
        EmotionRecognizer().detect(f)
    with pytest.raises(FerEdgeError, match="neither a classifier file"):
        EmotionRecognizer("no-such-model")
    with pytest.raises(FerEdgeError, match="smooth"):
        EmotionRecognizer(smooth=0)


def test_classify_crops_matches_the_in_frame_crops(recognizer):
    import cv2

    from fer_edge.runtime.preprocess import FaceBatcher, crop_regions

    image = cv2.imread(str(GROUP))
    boxes = np.array([f.box for f in recognizer.detect(image)], np.float32)
    rects = crop_regions(boxes, recognizer.classifier.meta.crop_margin, image.shape[1], image.shape[0])
    expected = recognizer.classifier.predict(FaceBatcher(recognizer.classifier.meta)(image, rects)).copy()
    crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in rects]  # views, not contiguous: the API copes
    got = recognizer.classify(crops)
    assert len(got) == len(crops) == 6
    for g, p, c in zip(got, expected, crops):
        assert np.allclose([g.probs[k] for k in recognizer.classes], p, atol=1e-5)
        assert g.label == recognizer.classes[int(p.argmax())]
        assert g.box == (0, 0, c.shape[1], c.shape[0]) and g.score == 1.0
    assert len(recognizer.classify(crops[0])) == 1  # one crop alone
    assert recognizer.classify(np.stack([cv2.resize(c, (64, 64)) for c in crops]))[5].index == 5  # (N, H, W, 3)
    assert recognizer.classify([]) == []


def test_stream_video_tracks_and_image_folder(recognizer, tmp_path):
    results = list(recognizer.stream(WOMAN, max_frames=15))
    assert [r.index for r in results] == list(range(15))
    assert all(len(r.faces) == 1 and r.faces[0].track == 0 for r in results)
    assert json.loads(json.dumps(results[-1].to_dict()))["frame"] == 14
    if recognizer.classifier.backend == "openvino":  # a stream gets static small batches (prepare_stream)
        assert sorted(recognizer.classifier._static) == [1, 2, 3, 4]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("group_selfie_6faces.jpg", "two_people_obama_biden.jpg"):
        (folder / name).write_bytes((MEDIA / name).read_bytes())
    (folder / "broken.jpg").write_text("junk")
    counts = {r.source.rsplit("/", 1)[-1]: len(r.faces) for r in recognizer.stream(folder)}
    assert counts == {"group_selfie_6faces.jpg": 6, "two_people_obama_biden.jpg": 2}
