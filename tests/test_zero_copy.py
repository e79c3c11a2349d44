"""The frame loop reuses its buffers: no growth and only a small bounded allocation per frame.

Measured on this project's machines (x86-64, OpenCV 4.14, ORT 1.32, OpenVINO 2026.4): about 11 KiB
per frame with one face and up to 35 KiB with eight (Python objects for the results, small numpy
arrays for boxes); a copy of one 596x336 frame alone would be 600 KiB. Retained memory grows by
about 72 bytes a frame for the first ~2,000 frames (an allocator cache below numpy that levels off
at ~140 KiB; measured flat from there to 4,000 frames), so the growth bound is 64 KiB over 180 frames
of a second pass over the same frames (the first pass fills the caches that grow on first use):
a leaked 48x48 float crop per frame alone would retain 1.6 MiB.
"""

from __future__ import annotations

import tracemalloc

import pytest

from fer_edge.runtime.classifier import load_classifier
from fer_edge.runtime.detectors import create_detector
from fer_edge.runtime.pipeline import EmotionPipeline
from fer_edge.runtime.sources import VideoSource
from fer_edge.runtime.tracker import FaceTracker

from conftest import MEDIA

PER_FRAME_BOUND = 64 * 1024  # bytes allocated at peak while processing one frame
GROWTH_BOUND = 64 * 1024  # bytes retained over 180 frames
WARMUP, MEASURED = 30, 200


@pytest.mark.parametrize(
    "video, detector, model",
    [
        ("video_talking_woman_15s.mp4", "yunet", "tiny_onnx"),
        ("video_hamilton_whitehouse_9s.mp4", "yunet", "tiny_ir"),
        ("video_hamilton_whitehouse_9s.mp4", "res10", "tiny_onnx"),
    ],
)
def test_frame_loop_allocates_nothing_that_grows(request, video, detector, model):
    pipeline = EmotionPipeline(create_detector(detector), load_classifier(request.getfixturevalue(model)),
                               tracker=FaceTracker())
    # One untraced pass over the same frames first: the Python-side caches that fill on first use (ONNX Runtime's
    # and OpenVINO's bindings, a request per new batch size, new track counts) grew 18-83 KiB over the measured
    # frames of a first pass, depending on what ran before in the process; a per-frame leak grows in every pass.
    warm = VideoSource(str(MEDIA / video))
    try:
        for _, f in zip(range(WARMUP + MEASURED), warm):
            pipeline.process(f.image)
    finally:
        warm.close()
    source = VideoSource(str(MEDIA / video))
    frames = iter(source)
    buffers = set()
    faces = 0
    for _ in range(WARMUP):
        f = next(frames)
        buffers.add(id(f.image))
        pipeline.process(f.image)
    tracemalloc.start()
    try:
        per_frame = []
        for i in range(MEASURED):
            f = next(frames)
            buffers.add(id(f.image))
            if i == 20:  # the tracker's tracks and ORT's binding caches settle in the first frames
                start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            faces += len(pipeline.process(f.image))
            per_frame.append(tracemalloc.get_traced_memory()[1] - before)
        growth = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
        source.close()
    assert faces >= MEASURED // 2  # real faces were classified, not empty frames
    assert len(buffers) == 1, "VideoCapture.read did not reuse the frame buffer"
    assert max(per_frame) < PER_FRAME_BOUND, f"a frame allocated {max(per_frame)} bytes"
    assert growth < GROWTH_BOUND, f"memory grew by {growth} bytes over {MEASURED - 20} frames"


def test_batch_and_crop_buffers_are_reused(tiny_onnx):
    import cv2

    pipeline = EmotionPipeline(create_detector("yunet"), load_classifier(tiny_onnx))
    img = cv2.imread(str(MEDIA / "group_selfie_6faces.jpg"))
    pipeline.process(img)
    batch_buf, probs_buf = pipeline.batcher.batch, pipeline.classifier._probs
    small = pipeline.detector._small
    pipeline.process(img)
    assert pipeline.batcher.batch is batch_buf and pipeline.classifier._probs is probs_buf
    assert pipeline.detector._small is small and small is not None  # the downscaled detector input
