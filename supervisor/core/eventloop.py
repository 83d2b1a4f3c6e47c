"""A small single-threaded event loop with the part of asyncio's API we use.

Importing asyncio costs about 90 ms on our build machines, more than the whole
start-up budget of `sm-entry cmd`. The process core only needs readers, timers
and signals, so it is written against this subset of the asyncio loop API
(`add_reader`, `call_later`, `add_signal_handler`, ...). A mode that needs
asyncio anyway (the serve front) can hand the core a real asyncio loop.

Signals are turned into events: Python's C-level handler writes each signal
number to a wakeup pipe in arrival order, and the loop dispatches them from
there, so no work ever happens inside a signal handler. The same pipe wakes
the loop for callbacks queued from another thread (our output writers).

A child's end is a future, and a mode is a coroutine awaiting such futures
(`create_future`, `create_task`), so the same core code runs on this loop
and on asyncio's.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import os
import selectors
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

Callback = Callable[..., object]


class Handle:
    """A scheduled callback that can be cancelled."""

    __slots__ = ("_args", "_callback", "cancelled")

    def __init__(self, callback: Callback, args: tuple[Any, ...]) -> None:
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        if not self.cancelled:
            self._callback(*self._args)


class TimerHandle(Handle):
    """A callback due at a point of the loop's monotonic clock."""

    __slots__ = ("when",)

    def __init__(self, when: float, callback: Callback, args: tuple[Any, ...]) -> None:
        super().__init__(callback, args)
        self.when = when


class Future:
    """A result that arrives later, awaitable from a coroutine run by `Task`."""

    __slots__ = ("_callbacks", "_exception", "_loop", "_result", "_state")

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop
        self._state = "pending"
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future], object]] = []

    def done(self) -> bool:
        return self._state != "pending"

    def result(self) -> Any:
        if self._state == "pending":
            raise RuntimeError("result is not set yet")
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def set_result(self, value: Any) -> None:
        self._settle("done", value, None)

    def set_exception(self, exception: BaseException) -> None:
        self._settle("done", None, exception)

    def add_done_callback(self, callback: Callable[[Future], object]) -> None:
        if self.done():
            self._loop.call_soon(callback, self)
        else:
            self._callbacks.append(callback)

    def _settle(self, state: str, value: Any, exception: BaseException | None) -> None:
        if self.done():
            raise RuntimeError("result is already set")
        self._state, self._result, self._exception = state, value, exception
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._loop.call_soon(callback, self)

    def __await__(self) -> Generator[Future, None, Any]:
        if not self.done():
            yield self
        return self.result()


class Task(Future):
    """Runs a coroutine on the loop: each awaited future resumes it when done."""

    __slots__ = ("_coroutine",)

    def __init__(self, loop: EventLoop, coroutine: Coroutine[Any, Any, Any]) -> None:
        super().__init__(loop)
        self._coroutine = coroutine
        loop.call_soon(self._step)

    def _step(self, _awaited: Future | None = None) -> None:
        try:
            waiting_on = self._coroutine.send(None)
        except StopIteration as stop:
            self.set_result(stop.value)
        except BaseException as exc:
            self.set_exception(exc)
        else:
            waiting_on.add_done_callback(self._step)


def _ignore_signal(signum: int, frame: object) -> None:
    """Python-level handler: the real work is done from the wakeup pipe."""


class EventLoop:
    """Readers, timers and signals on one epoll, run from one thread."""

    # Its signal wakeup pipe lives as long as the loop: a signal that comes while it is not
    # running waits there (uvloop's is made anew at each run, and what it held is lost).
    keeps_signals_between_runs = True

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._ready: deque[Handle] = deque()
        self._closed = False
        self._closing = threading.Lock()  # call_soon_threadsafe from a thread vs close()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._sequence = itertools.count()
        self._signal_handlers: dict[int, Handle] = {}
        self._stopping = False
        self._wakeup_read, self._wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_wakeup_fd: int | None = None
        self.add_reader(self._wakeup_read, self._dispatch_signals)

    # asyncio-compatible surface -------------------------------------------
    def time(self) -> float:
        return time.monotonic()

    def call_soon(self, callback: Callback, *args: Any) -> Handle:
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> Handle:
        handle = Handle(callback, args)
        with self._closing:
            if self._closed:  # a thread outlived the loop: its fds may be another's by now
                return handle
            self._ready.append(handle)  # deque.append is atomic
            # No signal has number 0; a full pipe wakes the loop anyway.
            with contextlib.suppress(BlockingIOError):
                os.write(self._wakeup_write, b"\0")
        return handle

    def create_future(self) -> Future:
        return Future(self)

    def create_task(self, coroutine: Coroutine[Any, Any, Any]) -> Task:
        return Task(self, coroutine)

    def call_later(self, delay: float, callback: Callback, *args: Any) -> TimerHandle:
        return self.call_at(self.time() + delay, callback, *args)

    def call_at(self, when: float, callback: Callback, *args: Any) -> TimerHandle:
        handle = TimerHandle(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._sequence), handle))
        return handle

    def add_reader(self, fd: int, callback: Callback, *args: Any) -> None:
        handle = Handle(callback, args)
        try:
            self._selector.modify(fd, selectors.EVENT_READ, handle)
        except KeyError:
            self._selector.register(fd, selectors.EVENT_READ, handle)

    def remove_reader(self, fd: int) -> bool:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            return False
        return True

    def add_signal_handler(self, signum: int, callback: Callback, *args: Any) -> None:
        if self._previous_wakeup_fd is None:
            self._previous_wakeup_fd = signal.set_wakeup_fd(
                self._wakeup_write, warn_on_full_buffer=False
            )
        self._signal_handlers[signum] = Handle(callback, args)
        signal.signal(signum, _ignore_signal)

    def remove_signal_handler(self, signum: int) -> bool:
        if self._signal_handlers.pop(signum, None) is None:
            return False
        signal.signal(signum, signal.SIG_DFL)
        return True

    def run_forever(self) -> None:
        self._stopping = False
        while not self._stopping:
            self._run_once()

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        with self._closing:
            self._closed = True
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        self._selector.close()
        with self._closing:
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)

    # internals ------------------------------------------------------------
    def _run_once(self) -> None:
        timeout: float | None
        if self._ready or self._stopping:
            timeout = 0
        elif self._timers:
            timeout = max(0.0, self._timers[0][0] - self.time())
        else:
            timeout = None
        for key, _events in self._selector.select(timeout):
            self._ready.append(key.data)
        now = self.time()
        while self._timers and self._timers[0][0] <= now:
            self._ready.append(heapq.heappop(self._timers)[2])
        for _ in range(len(self._ready)):
            self._ready.popleft()._run()

    def _dispatch_signals(self) -> None:
        while True:
            try:
                data = os.read(self._wakeup_read, 4096)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    return
                raise
            if not data:
                return
            for signum in data:
                handle = self._signal_handlers.get(signum)
                if handle is not None:
                    handle._run()
