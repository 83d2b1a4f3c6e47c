"""A child's stdout and stderr: pipes read by us, framed, rendered, written out.

Large reads from pipes enlarged to 1 MiB, so a burst never stalls the child
on a full pipe while we are busy. Nothing is lost: each pipe is read to end
of file, the final partial line included, and the process core gives
grandchildren that still hold a pipe a bounded drain time.

Memory stays bounded whatever the child prints: framed items wait in a
queue and are rendered a few thousand lines at a time (4 MB of empty lines
render to ~100 MB of JSON), and only while our writer has room; when it has
none (our reader is slow or stalled), we stop reading the child's pipe until
it has.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from supervisor.logs.framing import Item, LineFramer, Lines
from supervisor.logs.sinks import JsonRecordRenderer, TextRecordRenderer
from supervisor.logs.writer import OutputWriter

if TYPE_CHECKING:
    from supervisor.logs.ranktags import RankTags

# Reads smaller than the pipe: each read's text is copied a few times while
# it is framed and rendered, and 256 KiB keeps that under ~5 MiB.
READ_SIZE = 256 << 10
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10 on Linux
# Lines rendered per batch: bounds what one render holds (~110 bytes of JSON per empty line).
BATCH_LINES = 4096

Observer = Callable[[str, Sequence[Item]], None]  # (stream name, items)


def _take_lines(block: Lines, count: int) -> tuple[Lines, Lines | None]:
    """The first `count` lines of a block, and the rest (None when nothing is left)."""
    text = block.text
    cut = -1
    for _ in range(count):
        cut = text.find("\n", cut + 1)
        if cut < 0:
            return block, None
    return Lines(text[:cut]), Lines(text[cut + 1 :])


class StreamRelay:
    """One pipe: read -> frame -> render -> write, plus observers of the framed items."""

    def __init__(
        self,
        loop: Any,
        stream: str,
        read_fd: int,
        framer: LineFramer,
        render: Callable[[Sequence[Item], float], bytes] | None,
        writer: OutputWriter,
        observers: Sequence[Observer],
        on_closed: Callable[[], None],
        activity: Any = None,
    ) -> None:
        self.loop = loop
        self.activity = activity  # told the time of each read (the hang watchdog)
        self.stream = stream
        self.fd = read_fd
        self.framer = framer
        self.render = render  # None: raw, bytes are written as read
        self.writer = writer
        self.observers = observers
        self.on_closed = on_closed
        self.closed = False  # everything read and handed to the writer
        self.lost_bytes = 0  # what we gave up on (our output stalled past the drain timeout)
        self._eof = False
        self._reading = True
        self._pending: deque[Item] = deque()  # framed, not yet rendered
        self._timer: Any = None
        self._timer_at: float | None = None
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._on_readable)

    # reading --------------------------------------------------------------
    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """One read; False when nothing more is there for now."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return False  # nothing to read now
        except OSError:
            data = b""
        if not data:
            self._end_of_file()
            return False
        if self.activity is not None:
            self.activity.last = self.loop.time()
        if self.render is None:
            self.writer.write(data)
            if self.observers:  # raw, but somebody needs the lines
                self._observe(self.framer.feed(data, self.loop.time()))
                self._schedule()
            self._pause_if_full()
            return True
        self._add(self.framer.feed(data, self.loop.time()))
        self._schedule()
        return True

    def _end_of_file(self) -> None:
        if self._eof:
            return
        self._eof = True
        self._stop_reading()
        os.close(self.fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        items = self.framer.close()
        if self.render is None:
            self._observe(items)
        else:
            self._add(items)
        self._pump()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)

    # rendering and back-pressure ------------------------------------------
    def _observe(self, items: Sequence[Item]) -> None:
        for observer in self.observers:
            with contextlib.suppress(Exception):  # a bug of ours must not stop the relay
                observer(self.stream, items)

    def _add(self, items: Sequence[Item]) -> None:
        if items:
            self._observe(items)
            self._pending.extend(items)
        self._pump()

    def _pump(self) -> None:
        """Render what is pending while the writer has room; then read on, or wait for room."""
        while self._pending and not self.writer.full:
            self._write(self._take_batch())
        if self._pending or self.writer.full:
            self._pause_if_full()
        elif self._eof:
            self._finish()
        elif not self._reading:
            self._reading = True
            self.loop.add_reader(self.fd, self._on_readable)

    def _pause_if_full(self) -> None:
        if not self.writer.full and not self._pending:
            return
        self._stop_reading()
        self.writer.when_room(self._pump)

    def _take_batch(self) -> list[Item]:
        batch: list[Item] = []
        lines = 0
        while self._pending and lines < BATCH_LINES:
            item = self._pending.popleft()
            if type(item) is Lines:
                count = item.text.count("\n") + 1
                if lines + count > BATCH_LINES:
                    item, rest = _take_lines(item, BATCH_LINES - lines)
                    if rest is not None:
                        self._pending.appendleft(rest)
                    count = BATCH_LINES - lines
                lines += count
            else:
                lines += 1
            batch.append(item)
        return batch

    def _write(self, items: Sequence[Item]) -> None:
        assert self.render is not None
        try:
            data = self.render(items, time.time())
        except Exception:  # a bug of ours must not lose the child's output
            data = "".join(item.text + "\n" for item in items).encode("utf-8", "replace")
        self.writer.write(data)

    # timers for the framer -------------------------------------------------
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
        if self._eof:
            return
        items = self.framer.release_due(self.loop.time())
        if self.render is None:
            self._observe(items)
        else:
            self._add(items)
        self._schedule()

    # the end ---------------------------------------------------------------
    def writers_gone(self) -> bool:
        """No process holds the pipe's write end: what is left will reach end of file."""
        import select

        if self._eof:
            return True  # read to its end already
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        return any(events & select.POLLHUP for _, events in poller.poll(0))

    def stop_reading_held_pipe(self) -> None:
        """Others still hold the pipe open: take what is in it now, then stop reading it."""
        for _ in range(PIPE_SIZE // READ_SIZE + 1):
            if self._eof or not self._read_once():
                break  # all there was, for now
        self._end_of_file()

    def abandon(self) -> None:
        """Our output is stalled: count what is still pending as lost, and finish."""
        self.lost_bytes += sum(len(item.text) + 1 for item in self._pending)
        self._pending.clear()
        if not self._eof:
            self._eof = True  # given up, not read to its end
            self._stop_reading()
            os.close(self.fd)
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None  # closed: never armed again
        self.on_closed()


class ChildOutput:
    """The pipes for one child's stdout and stderr, and their relays."""

    def __init__(
        self,
        loop: Any,
        log_format: str,
        fields: dict[str, Any],
        stdout: OutputWriter,
        stderr: OutputWriter,
        observers: Sequence[Observer] = (),
        framer_options: dict[str, Any] | None = None,
        relay_stdout: bool = True,
        relay_stderr: bool = True,
        activity: Any = None,
        tags: RankTags | None = None,
        tty: Any = None,
    ) -> None:
        self.loop = loop
        self.activity = activity
        self.tags = tags  # the child is a launcher that tags its ranks' lines
        self.log_format = log_format
        self.fields = fields
        self.writers = {"stdout": stdout, "stderr": stderr}
        self.observers = observers
        self.framer_options = framer_options or {}
        self.relays: dict[str, StreamRelay] = {}
        self._pipes: dict[str, tuple[int, int]] = {}
        self._written_mark = -1
        # Our stdout is a terminal (core.ttyproxy): the child writes to ptys of its own (stdout
        # always, stderr when ours is a terminal too), read like pipes.
        self.tty = tty
        self.ptys: set[str] = set()
        for stream, wanted in (("stdout", relay_stdout), ("stderr", relay_stderr)):
            if tty is not None and (stream == "stdout" or os.isatty(2)):
                self._pipes[stream] = tty.open_pty()
                self.ptys.add(stream)
            elif wanted:
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

    @property
    def controlling_tty(self) -> int | None:
        """The slave side of the child's stdout pty, when it has one."""
        return self._pipes["stdout"][1] if "stdout" in self.ptys and "stdout" in self._pipes \
            else None

    def child_stdin(self) -> int | None:
        """The child's stdin: its pty when our stdin is a terminal we read, else ours."""
        if self.tty is not None and self.tty.interactive:
            return self.controlling_tty
        return None

    def started(self, child_pid: int | None) -> None:
        """The child has its ends: close ours and start relaying."""
        if self.tty is not None and "stdout" in self._pipes:
            self.tty.attach(self._pipes["stdout"][0])
        for stream, (read_fd, write_fd) in self._pipes.items():
            os.close(write_fd)
            fields = {**self.fields, "pid": child_pid}
            render: Callable[[Sequence[Item], float], bytes] | None
            if self.log_format == "json":
                render = JsonRecordRenderer(stream, fields,
                                            self.tags.slots if self.tags else None).render
            elif self.log_format == "text" and stream not in self.ptys:
                render = TextRecordRenderer().render
            else:  # raw; and a terminal gets the child's bytes as it wrote them (progress bars)
                render = None
            framer: Any
            if self.tags is not None:
                from supervisor.logs.ranktags import RankTagFramer

                framer = RankTagFramer(self.tags, **self.framer_options)
            else:
                framer = LineFramer(**self.framer_options)
            self.relays[stream] = StreamRelay(
                self.loop, stream, read_fd, framer, render,
                self.writers[stream], self.observers, self._relay_closed, self.activity,
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
        lost = sum(relay.lost_bytes for relay in self.relays.values())
        if lost:
            merged["output_lost_bytes"] = lost
        return merged

    @property
    def closed(self) -> bool:
        return all(relay.closed for relay in self.relays.values())

    def drain_started(self) -> None:
        """The job's processes are gone; from now on our output must keep moving."""
        self._written_mark = sum(w.written_bytes for w in self.writers.values())

    def stop_draining(self) -> str | None:
        """The drain timeout passed: why we stopped waiting for some output, if we did.

        "held open": pipes that other processes (outside the job's tree) still
        hold open; what is in them now is read, then they are closed.
        "stalled": our own output did not move for a whole drain timeout; what
        is still pending is counted as lost. A pipe nobody writes to any more
        is otherwise read to its end while our output moves: a slow reader of
        ours loses nothing.
        """
        open_relays = [r for r in self.relays.values() if not r.closed]
        held = [r for r in open_relays if not r.writers_gone()]
        for relay in held:
            relay.stop_reading_held_pipe()
        written = sum(w.written_bytes for w in self.writers.values())
        stalled = written == self._written_mark
        self._written_mark = written
        if stalled and not self.closed:
            for relay in self.relays.values():
                if not relay.closed:
                    relay.abandon()
            return "stalled"
        return "held open" if held else None

    def abandon(self) -> None:
        """The child never started: close both ends of every pipe."""
        for read_fd, write_fd in self._pipes.values():
            os.close(read_fd)
            os.close(write_fd)
        self._pipes = {}

    def _relay_closed(self) -> None:
        if self.closed:
            if self.tty is not None:
                self.tty.detach()
            self.on_closed()
