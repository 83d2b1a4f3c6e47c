"""Our stdout and stderr: writes handed to a thread, so a stalled reader never blocks the loop.

When the log driver stops reading our stdout (a full pipe), a write blocks.
Done on the loop, that would hold up signal forwarding, the stop deadline,
reaping and HTTP. So the loop only queues bytes; one thread per stream does
the blocking writes. The queue is bounded: past `HIGH_WATER` bytes the
relays stop reading the child's pipes (the child then waits on its own full
pipe: back-pressure, nothing lost) until the queue is below `LOW_WATER`.

Writing is also where our own failures live (a closed pipe, a full disk
behind a redirected stdout). They must never take the child down: a writer
that fails stops writing, counts what it dropped, and says so once.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

HIGH_WATER = 2 << 20
LOW_WATER = 512 << 10
# A record of ours waits at most this long for the child's unfinished line to
# end (raw format), then goes on a line of its own.
HOLD_RECORDS_S = 1.0


class OutputWriter:
    """Queued whole-buffer writes to one fd, done by a thread; never blocks, never raises."""

    def __init__(self, fd: int, name: str, loop: Any = None) -> None:
        self.fd = fd
        self.name = name
        self.loop = loop  # for callbacks from the thread and record hold timers
        self.error: str | None = None
        self.dropped_bytes = 0
        self.written_bytes = 0
        self._queue: deque[bytes] = deque()
        self._queued = 0  # bytes queued or being written
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._room_callbacks: list[Callable[[], object]] = []
        # The child's bytes (raw format) may end mid-line; our own records wait for its end.
        self._at_line_start = True
        self._held_records: list[bytes] = []
        self._hold_timer: Any = None

    @property
    def full(self) -> bool:
        """Over the high-water mark: readers should stop feeding us."""
        return self._queued >= HIGH_WATER

    @property
    def pending_bytes(self) -> int:
        """Queued and not written yet."""
        return self._queued

    def write(self, data: bytes) -> None:
        """Queue bytes (the child's output, as framed or raw)."""
        if not data:
            return
        if self._held_records:
            newline = data.find(b"\n")
            if newline >= 0:
                self._enqueue(data[: newline + 1])
                self._release_held()
                data = data[newline + 1 :]
                if not data:
                    return
        self._enqueue(data)
        self._at_line_start = data.endswith(b"\n")

    def write_record(self, data: bytes) -> None:
        """Queue whole lines of ours (events, metrics): never inside a line of the child's."""
        if self._at_line_start:
            self._enqueue(data)
            return
        self._held_records.append(data)
        if self._hold_timer is None and self.loop is not None:
            self._hold_timer = self.loop.call_later(HOLD_RECORDS_S, self._end_line)

    def when_room(self, callback: Callable[[], object]) -> None:
        """Call `callback` on the loop once the queue is below the low-water mark."""
        with self._cond:
            if self._queued > LOW_WATER and self.error is None:
                self._room_callbacks.append(callback)
                return
        self.loop.call_soon(callback)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for everything queued to be written; True when it was."""
        self._end_line()
        with self._cond:
            return self._cond.wait_for(lambda: self._queued == 0, timeout)

    # internals ------------------------------------------------------------
    def _end_line(self) -> None:
        """Our held records go out now, on a line of their own."""
        if self._held_records:
            self._enqueue(b"\n")
            self._release_held()
            self._at_line_start = True

    def _release_held(self) -> None:
        held, self._held_records = self._held_records, []
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        for record in held:
            self._enqueue(record)

    def _enqueue(self, data: bytes) -> None:
        if self.error is not None:
            self.dropped_bytes += len(data)
            return
        with self._cond:
            self._queue.append(data)
            self._queued += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"sm-entry {self.name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                data = self._queue.popleft()
            self._write_all(data)
            with self._cond:
                self._queued -= len(data)
                if self.error is not None:
                    self.dropped_bytes += self._queued
                    self._queue.clear()
                    self._queued = 0
                callbacks: list[Callable[[], object]] = []
                if self._room_callbacks and self._queued <= LOW_WATER:
                    callbacks, self._room_callbacks = self._room_callbacks, []
                self._cond.notify_all()
            for callback in callbacks:
                try:
                    self.loop.call_soon_threadsafe(callback)
                except RuntimeError:  # asyncio's loop is closed: nobody waits for room any more
                    break  # (the other callbacks would meet the same closed loop)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.error is None:
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
            self.written_bytes += written
            view = view[written:]
