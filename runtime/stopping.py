"""Stopping a run cleanly on SIGINT (Ctrl-C), SIGTERM (``timeout``, systemd, ``docker stop``) and SIGHUP.

The first signal lets the frame in flight finish in every sink and then ends the source, so the caller
closes (finalises) every output as after a normal end; a second signal interrupts at once
(``KeyboardInterrupt``, which the run loop also handles). The exit status is 128 + the signal number.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class GracefulStop:
    """Context manager: while active, stop signals end ``wrap(source)`` at the next frame boundary.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def exit_code(self, interrupted: bool = False) -> int | None:
        """128 + the signal that stopped the run (130 for a bare KeyboardInterrupt); None if none did."""
        if self.signum is not None:
            return 128 + int(self.signum)
        return 128 + int(signal.SIGINT) if interrupted else None

    def wrap(self, source):
        """``source`` with iteration ending after the frame during which a stop signal arrived."""
        return _Stoppable(source, self)


class _Stoppable:
    def __init__(self, source, stop: GracefulStop):
        self._source, self._stop = source, stop

    def __getattr__(self, name):
        return getattr(self._source, name)

    def __setattr__(self, name, value):  # hooks such as next_buffer (the threaded loop's frame pool) reach the source
        if name in ("_source", "_stop"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._source, name, value)

    def __iter__(self) -> Iterator:
        for frame in self._source:
            if self._stop.signum is not None:
                return
            yield frame
            if self._stop.signum is not None:
                return
