"""The run loop with overlapping stages: decode in one thread, detect + classify (+ the window, drawn here) in
the caller's thread, file outputs (annotated video, drawn there when no window shows, JSON Lines, CSV) in
another. With ``overlap`` (2 or more inference threads, :func:`stage_threads`), detection moves to a thread of its
own too: frame t+1 is located (detected or carried, and assigned to tracks) while frame t is classified, each
stage on its share of the threads.

Frames of a video or camera travel through a fixed pool of frame buffers (the decoder reads into a free one,
the writer hands it back once every file output has it), so the loop allocates no frames. A camera source keeps
only its newest frame: while the detector is busy, older frames are dropped rather than queued. Frames reach
every output in source order; on Ctrl-C (or a sink asking to stop) every frame already processed is written
before the loop returns.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from .pipeline import EmotionPipeline, RunStats

POOL_FRAMES = 8  # decoding 1 + ready 2 + locating 1 + located 1 + processing 1 + waiting to be written 2
_END = object()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class StageThreads:
    """Inference threads per stage of the run loop. None: the library's own default."""

    detector: int | None  # the face detector's: YuNet's ONNX Runtime threads and OpenCV's (cv2.setNumThreads)
    classifier: int | None  # the classifier's inference threads
    overlap: bool  # the detector runs in a thread of its own beside the classifier


def stage_threads(threads: int | None, overlap: bool = True) -> StageThreads:
    """Split ``threads`` inference threads (None: every core) between the face detector and the classifier.

    With 2 or more and ``overlap``, the two stages run side by side, the detector taking the larger half (on
    2 cores, 1 each: one thread per stage beats two threads inside each stage taking turns, because the small
    inputs of a frame loop scale poorly across threads; benchmarks/results/run-loop-default/). Otherwise every
    stage gets all of them, one after another.
    """
    total = threads if threads else available_cores()
    if not overlap or total < 2:
        return StageThreads(threads, threads, False)
    return StageThreads(total - total // 2, total // 2, True)


class _Stopped(Exception):
    """Raised inside the decode thread when the loop no longer wants frames."""


class FramePool:
    """A fixed number of reusable frame buffers (allocated by the decoder on first use)."""

    def __init__(self, size: int, stop: threading.Event):
        self._free: queue.Queue = queue.Queue()
        for _ in range(size):
            self._free.put(None)
        self._stop = stop
        self.wait_seconds = 0.0

    def take(self) -> np.ndarray | None:
        t = time.perf_counter()
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                buf = self._free.get(timeout=0.05)
                self.wait_seconds += time.perf_counter() - t
                return buf
            except queue.Empty:
                continue

    def give(self, buf: np.ndarray) -> None:
        self._free.put(buf)


class FrameReader:
    """Iterates ``source`` in a thread of its own.

    Sources with a ``next_buffer`` hook (:class:`~.sources.VideoSource`) decode into the pool's buffers;
    sources that give a fresh array per frame (``fresh_buffers``) are read ahead as they are; any other source
    is read in the caller's thread (its buffer may be reused by the next frame).
    """

    def __init__(self, source, depth: int = 2):
        self.source = source
        self.latest_only = bool(getattr(source, "is_camera", False))
        self.dropped = 0  # camera frames replaced by a newer one before they were processed
        self.decode_seconds = 0.0
        self._stop = threading.Event()
        self.pool: FramePool | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if hasattr(source, "next_buffer"):
            self.pool = FramePool(POOL_FRAMES, self._stop)
            source.next_buffer = self.pool.take
        elif not getattr(source, "fresh_buffers", False):
            self._iter = iter(source)
            return
        self._ready: queue.Queue = queue.Queue(maxsize=0 if self.pool else depth)
        self._latest = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fer-edge-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        it = iter(self.source)
        try:
            while True:
                t = time.perf_counter()
                wait0 = self.pool.wait_seconds if self.pool else 0.0
                frame = next(it, _END)
                self.decode_seconds += time.perf_counter() - t - ((self.pool.wait_seconds - wait0) if self.pool
                                                                  else 0.0)
                if frame is _END:
                    break
                if self.latest_only:
                    with self._cond:
                        if self._latest is not None:
                            self.dropped += 1
                            self.release(self._latest.image)
                        self._latest = frame
                        self._cond.notify()
                else:
                    while not self._stop.is_set():
                        try:
                            self._ready.put(frame, timeout=0.05)
                            break
                        except queue.Full:
                            continue
                if self._stop.is_set():
                    break
        except _Stopped:
            pass
        except BaseException as e:  # raised again in the caller's thread
            self._error = e
        finally:
            if self.latest_only:
                with self._cond:
                    self._done = True
                    self._cond.notify()
            else:
                while True:
                    try:
                        self._ready.put(_END, timeout=0.05)
                        break
                    except queue.Full:
                        if self._stop.is_set():
                            break

    _done = False

    @property
    def reads_ahead(self) -> bool:
        """Frames are decoded in a thread of their own into buffers no later frame overwrites."""
        return self._thread is not None

    def get(self):
        """The next frame (the newest one for a camera), or None at the end of the source."""
        if self._thread is None:
            t = time.perf_counter()
            frame = next(self._iter, None)
            self.decode_seconds += time.perf_counter() - t
            return frame
        if self.latest_only:
            with self._cond:
                while self._latest is None and not self._done:
                    self._cond.wait(0.1)
                frame, self._latest = self._latest, None
        else:
            frame = self._ready.get()
            frame = None if frame is _END else frame
        if frame is None and self._error is not None:
            raise self._error
        return frame

    def release(self, image: np.ndarray) -> None:
        """Give a frame's buffer back once nothing uses it any more."""
        if self.pool is not None:
            self.pool.give(image)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.pool is not None:
            self.source.next_buffer = None


class Locator:
    """Runs ``pipeline.locate`` on the frames of ``reader`` in a thread of its own, one frame ahead of the
    caller (who classifies them with ``pipeline.finish``), in source order."""

    def __init__(self, reader: FrameReader, pipeline: EmotionPipeline, depth: int = 1):
        self.reader = reader
        self.pipeline = pipeline
        self.wait_seconds = 0.0  # this thread's wait for decoded frames
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fer-edge-detect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item = _END
        try:
            while not self._stop.is_set():
                t = time.perf_counter()
                frame = self.reader.get()
                self.wait_seconds += time.perf_counter() - t
                if frame is None:
                    break
                item = (frame, self.pipeline.locate(frame.image))
                if not self._put(item):
                    self.reader.release(frame.image)
                    return
            item = _END
        except BaseException as e:  # raised again in the caller's thread
            self._error = e
            item = _END
        self._put(item)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        """The next (frame, located) pair, or None at the end of the source."""
        item = self._q.get()
        if item is _END:
            if self._error is not None:
                raise self._error
            return None
        return item

    def stop(self) -> None:
        """Locate no more frames (the thread ends once its current frame is done or the reader ends)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        self._thread.join(timeout=5)


class SinkWriter:
    """Writes (frame, faces) to ``sinks`` in a thread of its own, in order; releases each frame afterwards.
    With ``draw`` it draws the faces on the frame first (when no window needs them drawn in the caller's thread)."""

    def __init__(self, sinks: list, release, depth: int = 2, draw: bool = False):
        self.sinks = sinks
        self.release = release
        self.draw = draw
        self.seconds = 0.0
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fer-edge-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            frame, faces = item
            if self._error is None:
                t = time.perf_counter()
                try:
                    if self.draw:
                        from .draw import draw_faces

                        draw_faces(frame.image, faces)
                    for s in self.sinks:
                        s.write(frame, faces)
                except BaseException as e:  # raised again in the caller's thread; later frames are dropped
                    self._error = e
                self.seconds += time.perf_counter() - t
            self.release(frame.image)

    def put(self, frame, faces) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((frame, faces))

    def close(self) -> None:
        """Wait until every frame handed over is written; raise a sink's error, if any."""
        self._q.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Overlay:
    """Frame rate and per-stage milliseconds over the last ~second, for the window."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings
        self._mark = (time.perf_counter(), 0, dict(timings))
        self.lines: list[str] = []

    def update(self, frames: int) -> list[str]:
        t0, f0, s0 = self._mark
        now = time.perf_counter()
        if now - t0 >= 0.5 and frames > f0:
            n = frames - f0
            ms = {k: 1e3 * (self.timings[k] - s0.get(k, 0.0)) / n for k in ("detect", "classify", "track")}
            self.lines = [f"{n / (now - t0):.1f} fps", f"detect {ms['detect']:.1f} ms",
                          f"classify {ms['classify']:.1f} ms", f"track {ms['track']:.1f} ms"]
            self._mark = (now, frames, dict(self.timings))
        return self.lines


def run_loop_threaded(source, pipeline: EmotionPipeline, sinks: list, draw: bool = False,
                      max_frames: int | None = None, on_frame=None, overlap: bool = False) -> RunStats:
    """Like :func:`~.pipeline.run_loop`, with decoding and file outputs overlapping detection and classification,
    and with ``overlap`` detection overlapping classification (where frames come from the decode thread).

    Sinks with ``main_thread = True`` (the window) are written in the caller's thread; the rest in the writer
    thread, which also draws the faces when there is no window (with one, they are drawn here, once, for
    both). ``stats.timings``: ``decode`` and ``output`` are those threads' busy time (overlapped), ``wait``
    the time this thread waited for its next frame (decoded, or located with ``overlap``), ``handoff`` drawing
    (with a window), the window and queueing; with ``overlap``, ``detect`` is the detect thread's busy time and
    ``detect_wait`` its wait for decoded frames.
    """
    from .draw import draw_faces

    stats = RunStats()
    timings = pipeline.timings
    pipeline.classifier.prepare_stream()
    timings.setdefault("wait", 0.0)
    timings.setdefault("handoff", 0.0)
    main = [s for s in sinks if getattr(s, "main_thread", False)]
    files = [s for s in sinks if not getattr(s, "main_thread", False)]
    t_start = time.perf_counter()
    reader = FrameReader(source)
    # a source read in this thread may reuse its buffer for the next frame: then no reading ahead
    locator = Locator(reader, pipeline) if overlap and reader.reads_ahead else None
    draw_here = draw and bool(main)  # the window shows drawn frames; without one the writer thread draws
    writer = SinkWriter(files, reader.release, draw=draw and not main)
    overlay = _Overlay(timings) if any(hasattr(s, "overlay") for s in main) else None
    try:
        while True:
            t = time.perf_counter()
            if locator is not None:
                item = locator.get()
                frame, located = item if item is not None else (None, None)
            else:
                frame = reader.get()
            timings["wait"] += time.perf_counter() - t
            if frame is None:
                break
            faces = pipeline.finish(frame.image, located) if locator is not None else pipeline.process(frame.image)
            t_out = time.perf_counter()
            if draw_here:
                draw_faces(frame.image, faces)
            if overlay is not None:
                lines = overlay.update(stats.frames)
                for s in main:
                    s.overlay = lines
            for s in main:
                s.write(frame, faces)
            writer.put(frame, faces)
            stats.frames += 1
            stats.faces += len(faces)
            if on_frame is not None:
                on_frame(stats)
            timings["handoff"] += time.perf_counter() - t_out
            if (max_frames and stats.frames >= max_frames) or any(getattr(s, "stop_requested", False) for s in sinks):
                break
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        if locator is not None:
            locator.stop()  # before the reader closes, so the detect thread takes no new frame from it
        reader.close()
        if locator is not None:
            locator.close()
            timings["detect_wait"] = locator.wait_seconds
        try:
            writer.close()
        except KeyboardInterrupt:  # a second Ctrl-C while the last frames are written
            stats.interrupted = True
            writer.close()
    stats.seconds = time.perf_counter() - t_start
    timings["decode"] = reader.decode_seconds
    timings["output"] = writer.seconds
    stats.timings = dict(timings)
    stats.dropped = reader.dropped
    return stats
