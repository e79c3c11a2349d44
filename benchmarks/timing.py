"""Interleaved timing: every model runs in every round, so machine noise hits all of them alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def interleaved_latency(predicts: Sequence[Callable], xs: Sequence[np.ndarray], rounds: int, calls: int,
                        warmup: int = 10) -> list[np.ndarray]:
    """Per-call seconds of each ``predict`` on its own input ``xs[i]`` (models differ in input size and
    channels), measured in ``rounds`` interleaved blocks of ``calls``."""
    if len(xs) != len(predicts):
        raise ValueError(f"{len(predicts)} predicts but {len(xs)} inputs")
    for p, xi in zip(predicts, xs):
        for _ in range(warmup):
            p(xi)
    times: list[list[float]] = [[] for _ in predicts]
    for _ in range(rounds):
        for i, (p, xi) in enumerate(zip(predicts, xs)):
            for _ in range(calls):
                t = time.perf_counter()
                p(xi)
                times[i].append(time.perf_counter() - t)
    return [np.asarray(t) for t in times]


def throughput(predict: Callable, inputs: np.ndarray, batch: int, seconds: float) -> float:
    """Faces per second at ``batch`` over about ``seconds`` of work."""
    x = np.ascontiguousarray(inputs[:batch])
    predict(x)
    n, t0 = 0, time.perf_counter()
    while True:
        predict(x)
        n += len(x)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt
