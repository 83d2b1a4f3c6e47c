"""The serve front and a recording backend on one uvloop loop in a thread, with real sockets.

For tests that must read the front's own state (requests in flight, bodies
kept, impossible events met) after what a client did: the front runs as in
`sm-entry serve`, minus the process supervision, and the client is the test,
over TCP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import uvloop

from supervisor.serve.front import FrontConnection, FrontState, Limits
from supervisor.serve.upstream import Address, UpstreamPool
from tests.support import CHILDREN

sys.path.insert(0, str(CHILDREN))
import recording_backend


class Log:
    """Our events, kept to be read by the test."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, message: str, **fields: Any) -> None:
        self.events.append((level, message, fields))

    def info(self, message: str, **fields: Any) -> None:
        self._add("info", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._add("warning", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self._add("error", message, **fields)


class Harness:
    """A running front (its port: `port`) before a running recording backend."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits(client_timeout=1.0, keepalive_timeout=2.0)
        self.log = Log()
        self.access: list[tuple[bytes, bytes, int]] = []
        self.recorder = recording_backend.Recorder()
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.front, self.server, self.backend = self.call_soon(self._start)
        self.port = self.server.sockets[0].getsockname()[1]
        self.backend_port = self.backend.sockets[0].getsockname()[1]

    async def _start(self) -> tuple[FrontState, Any, Any]:
        pool = UpstreamPool(self.loop)
        front = FrontState(self.loop, pool, self.limits, b'{"MaxPayloadInMB": 6}',
                           self._access, self.log)
        backend = await recording_backend.start(self.recorder)
        pool.set_address(Address(port=backend.sockets[0].getsockname()[1]))
        front.set_ready(True)
        server = await self.loop.create_server(lambda: FrontConnection(front), "127.0.0.1", 0)
        return front, server, backend

    def _access(self, exchange: Any) -> None:
        self.access.append((exchange.method, exchange.path, exchange.status))

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` on the loop's thread; its result."""
        result: Future[Any] = Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(10)

    def call_soon(self, coroutine: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine(), self.loop).result(10)

    def state(self) -> dict[str, int]:
        front = self.front
        return self.call(lambda: {
            "in_flight": front.in_flight, "backend_in_flight": front.backend_in_flight,
            "buffered": front.buffered, "bugs": front.bugs,
            "connections": len(front.connections),
            "open_partial": self.recorder.open_partial})

    def settled(self, timeout: float = 5.0, connections: bool = True) -> dict[str, int]:
        """Wait until nothing is in flight (and no client connection is left); the state then."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            done = (state["in_flight"] == 0 and state["backend_in_flight"] == 0
                    and state["buffered"] == 0 and state["open_partial"] == 0
                    and (not connections or state["connections"] == 0))
            if done or time.monotonic() > deadline:
                return state
            time.sleep(0.02)

    def open_sockets(self, timeout: float = 3.0) -> list[str]:
        """Client connections of the front still open (its pooled backend ones aside)."""
        listening = {self.port}
        deadline = time.monotonic() + timeout
        while True:
            found = []
            for path in ("/proc/net/tcp", "/proc/net/tcp6"):
                with contextlib.suppress(OSError), open(path) as table:
                    for line in list(table)[1:]:
                        fields = line.split()
                        local = int(fields[1].rsplit(":", 1)[1], 16)
                        remote = int(fields[2].rsplit(":", 1)[1], 16)
                        # (listening, TIME_WAIT and CLOSE_WAIT aside)
                        if (fields[3] not in ("0A", "06", "08")
                                and (local in listening or remote in listening)):
                            found.append(f"{local}->{remote} state {fields[3]}")
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self.call(lambda: self.front.set_ready(ready, reason))

    def requests(self) -> list[dict[str, Any]]:
        return self.call(lambda: list(self.recorder.requests))

    def bugs(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [event for event in self.log.events if event[1].startswith("front bug")]

    def connect(self, timeout: float = 5.0) -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def close(self) -> None:
        """Every transport closed on the loop before it stops.

        A uvloop transport left open closes its descriptor when it is
        collected, later, whatever socket has that number by then: a later
        test's.
        """
        async def stop() -> None:
            self.server.close()
            self.backend.close()
            for connection in list(self.front.connections):
                for exchange in connection.exchanges:
                    if exchange.upstream is not None:
                        exchange.upstream.transport.abort()
                connection.transport.abort()
            for connection in list(self.recorder.connections_open):
                connection.transport.abort()
            self.front.pool.close()
            self.front.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0.1)

        with contextlib.suppress(Exception):
            self.call_soon(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        gc.collect()


class _Reader:
    """Bytes from a socket, read as needed, with a deadline."""

    def __init__(self, client: socket.socket, timeout: float) -> None:
        self.client = client
        self.buffer = b""
        self.deadline = time.monotonic() + timeout
        self.eof = False

    def more(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if self.eof or remaining <= 0:
            return False
        self.client.settimeout(remaining)
        try:
            data = self.client.recv(65536)
        except (TimeoutError, ConnectionResetError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def until(self, mark: bytes) -> bytes | None:
        while mark not in self.buffer:
            if not self.more():
                return None
        found, _, self.buffer = self.buffer.partition(mark)
        return found

    def exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self.more():
                return None
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found


def read_responses(client: socket.socket, count: int, timeout: float = 5.0,
                   head: Sequence[int] = ()) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Read up to `count` responses (status, lower-case headers, body); fewer if it closes.

    A parser of its own, apart from the front's llhttp. `head`: the indexes of
    the responses that answer HEAD requests (no body, whatever they say).
    """
    reader = _Reader(client, timeout)
    responses: list[tuple[int, dict[bytes, bytes], bytes]] = []
    while len(responses) < count:
        raw = reader.until(b"\r\n\r\n")
        if raw is None:
            break
        status_line, *lines = raw.split(b"\r\n")
        status = int(status_line.split(b" ")[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            continue  # interim
        body: bytes | None = b""
        if len(responses) in head or status in (204, 304):
            pass
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                size_line = reader.until(b"\r\n")
                if size_line is None:
                    return responses  # cut
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    reader.until(b"\r\n")
                    break
                piece = reader.exactly(size + 2)
                if piece is None:
                    return responses
                body += piece[:-2]
        elif b"content-length" in headers:
            body = reader.exactly(int(headers[b"content-length"]))
            if body is None:
                return responses  # cut
        else:  # until the connection closes
            while reader.more():
                pass
            body, reader.buffer = reader.buffer, b""
        responses.append((status, headers, body))
    return responses


def closed_by_peer(client: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes the connection within `timeout` (what it sent is skipped)."""
    client.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not client.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False
