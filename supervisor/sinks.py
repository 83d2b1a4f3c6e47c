"""Where our output goes: whole writes to a file descriptor, and record renderers.

Writing is where our own failures live (a closed pipe, a full disk behind a
redirected stdout). They must never take the child down with them, so a
writer that fails stops writing, counts what it dropped, and says so once.
"""

from __future__ import annotations

import os
import select
import time


class FdWriter:
    """Blocking whole-buffer writes to one fd that never raise."""

    __slots__ = ("dropped_bytes", "error", "fd", "name")

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.error: str | None = None
        self.dropped_bytes = 0

    def write(self, data: bytes) -> None:
        if self.error is not None:
            self.dropped_bytes += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except BlockingIOError:
                # Someone shared our stdout with O_NONBLOCK set: wait for room.
                select.select([], [self.fd], [])
                continue
            except OSError as exc:
                self.error = f"{self.name}: {os.strerror(exc.errno or 0)}"
                self.dropped_bytes += len(view)
                return
            view = view[written:]


_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(now: float) -> str:
    """UTC time as 2026-11-24T12:00:00.123Z; the seconds part is cached."""
    global _ts_cache
    second = int(now)
    if _ts_cache[0] != second:
        _ts_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_ts_cache[1]}.{int((now - second) * 1000):03d}Z"
