"""A child's stdout and stderr: pipes read by us, framed, rendered, written out.

Large reads from pipes enlarged to 1 MiB, so a burst never stalls the child
on a full pipe while we are busy; one write per read. Nothing is lost: each
pipe is read to end of file, the final partial line included, and the
process core gives grandchildren that still hold a pipe a bounded drain time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from supervisor.logs.framing import Item, LineFramer
from supervisor.logs.sinks import FdWriter, JsonRecordRenderer, TextRecordRenderer

# Reads smaller than the pipe: each read's text is copied a few times while
# it is framed and rendered, and 256 KiB keeps that under ~5 MiB.
READ_SIZE = 256 << 10
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10 on Linux

Observer = Callable[[str, Sequence[Item]], None]  # (stream name, items)


class StreamRelay:
    """One pipe: read -> frame -> render -> write, plus observers of the framed items."""

    def __init__(
        self,
        loop: Any,
        stream: str,
        read_fd: int,
        framer: LineFramer,
        render: Callable[[Sequence[Item], float], bytes] | None,
        writer: FdWriter,
        observers: Sequence[Observer],
        on_closed: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.stream = stream
        self.fd = read_fd
        self.framer = framer
        self.render = render  # None: raw, bytes are written as read
        self.writer = writer
        self.observers = observers
        self.on_closed = on_closed
        self.closed = False
        self._timer: Any = None
        self._timer_at: float | None = None
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self.render is None:
            self.writer.write(data)
            if not self.observers:
                return  # raw, and nobody needs the lines: a plain copy
        self._emit(self.framer.feed(data, self.loop.time()))
        self._schedule()

    def _emit(self, items: Sequence[Item]) -> None:
        if not items:
            return
        if self.render is not None:
            try:
                data = self.render(items, time.time())
            except Exception:  # a bug of ours must not lose the child's output
                data = "".join(item.text + "\n" for item in items).encode("utf-8", "replace")
            if data:
                self.writer.write(data)
        for observer in self.observers:
            with contextlib.suppress(Exception):  # nor stop the relay
                observer(self.stream, items)

    def _schedule(self) -> None:
        """A timer for the framer's next deadline (groups gone idle, progress due)."""
        due = self.framer.next_deadline()
        if due is None or (self._timer_at is not None and self._timer_at <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = self.loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._emit(self.framer.release_due(self.loop.time()))
        self._schedule()

    def writers_gone(self) -> bool:
        """No process holds the pipe's write end: what is left will reach end of file."""
        import select

        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        return any(events & select.POLLHUP for _, events in poller.poll(0))

    def close(self) -> None:
        """End of file (or we stop waiting): emit what is held, stop reading."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self._emit(self.framer.close())
        self.on_closed()


class ChildOutput:
    """The pipes for one child's stdout and stderr, and their relays."""

    def __init__(
        self,
        loop: Any,
        log_format: str,
        fields: dict[str, Any],
        stdout: FdWriter,
        stderr: FdWriter,
        observers: Sequence[Observer] = (),
        framer_options: dict[str, Any] | None = None,
        relay_stdout: bool = True,
        relay_stderr: bool = True,
    ) -> None:
        self.loop = loop
        self.log_format = log_format
        self.fields = fields
        self.writers = {"stdout": stdout, "stderr": stderr}
        self.observers = observers
        self.framer_options = framer_options or {}
        self.relays: dict[str, StreamRelay] = {}
        self._pipes: dict[str, tuple[int, int]] = {}
        for stream, wanted in (("stdout", relay_stdout), ("stderr", relay_stderr)):
            if wanted:
                read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
                # Over /proc/sys/fs/pipe-max-size this fails: the default 64 KiB still works.
                with contextlib.suppress(OSError):
                    fcntl.fcntl(read_fd, F_SETPIPE_SZ, PIPE_SIZE)
                self._pipes[stream] = (read_fd, write_fd)
        self.on_closed: Callable[[], None] = lambda: None

    def child_fd(self, stream: str) -> int | None:
        """The fd the child gets for `stream`, or None to share ours."""
        pipe = self._pipes.get(stream)
        return pipe[1] if pipe else None

    def started(self, child_pid: int | None) -> None:
        """The child has its ends: close ours and start relaying."""
        for stream, (read_fd, write_fd) in self._pipes.items():
            os.close(write_fd)
            fields = {**self.fields, "pid": child_pid}
            render: Callable[[Sequence[Item], float], bytes] | None
            if self.log_format == "json":
                render = JsonRecordRenderer(stream, fields).render
            elif self.log_format == "text":
                render = TextRecordRenderer().render
            else:
                render = None
            self.relays[stream] = StreamRelay(
                self.loop, stream, read_fd, LineFramer(**self.framer_options), render,
                self.writers[stream], self.observers, self._relay_closed,
            )
        self._pipes = {}
        if not self.relays:
            self.on_closed()

    def summary(self) -> dict[str, Any]:
        """What the observers have to add to the "child exited" event (e.g. metrics)."""
        merged: dict[str, Any] = {}
        for observer in self.observers:
            summary = getattr(observer, "summary", None)
            if summary is not None:
                merged.update(summary())
        return merged

    @property
    def closed(self) -> bool:
        return all(relay.closed for relay in self.relays.values())

    def close_held_open(self) -> bool:
        """Stop reading pipes that other processes still hold open; True when there were some.

        A pipe nobody writes to any more is read to its end: we are only slower
        than its data (a slow consumer of our output), and nothing may be lost.
        """
        held = [r for r in self.relays.values() if not r.closed and not r.writers_gone()]
        for relay in held:
            relay.close()
        return bool(held)

    def abandon(self) -> None:
        """The child never started: close both ends of every pipe."""
        for read_fd, write_fd in self._pipes.values():
            os.close(read_fd)
            os.close(write_fd)
        self._pipes = {}

    def _relay_closed(self) -> None:
        if self.closed:
            self.on_closed()
