"""Connections to the model server: a keep-alive pool, and the protocol that reads its responses.

One request at a time per connection (no pipelining to the backend). A
connection goes back to the pool only after a complete response to a
complete request that both sides want to keep alive; the pool closes
connections idle for longer than `IDLE_TIMEOUT`, kept below the backends'
own keep-alive (gunicorn closes idle connections after 2 s), and forgets one
the backend closed while it was idle.

What a connection learns goes to its `Listener` (the exchange it serves):
this module knows nothing of the front, so there is no import circle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httptools

from supervisor.serve.states import (
    ACTIVE,
    CLOSED,
    CONNECTING,
    UPSTREAM,
    advance,
)

IDLE_TIMEOUT = 1.5  # seconds; below gunicorn's default keep-alive of 2 s
MAX_HEAD = 64 * 1024  # a response head longer than this is a bad response


@dataclass(frozen=True)
class Address:
    """Where the backend listens: a unix socket path, or 127.0.0.1 and a port."""

    socket_path: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"127.0.0.1:{self.port}"


class Client(Protocol):
    """The client connection a response goes to: its writes of one of our reads go out as one."""

    def cork(self) -> None: ...
    def uncork(self) -> None: ...


class Listener(Protocol):
    """The exchange a backend connection serves: told of its connection and its response."""

    @property
    def client(self) -> Client: ...

    def upstream_ready(self, upstream: UpstreamConnection) -> None: ...
    def upstream_failed(self, reason: str) -> None: ...
    def upstream_lost(self, upstream: UpstreamConnection) -> None: ...
    def response_head(self, status: int, raw: bytes, keep_alive: bool) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_complete(self) -> None: ...
    def backend_paused(self, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to the backend; its listener gets the parsed response."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.generation = pool.generation
        self.state = CONNECTING
        self.transport: Any = None
        self.listener: Listener | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reused = False  # served a request before the current one
        self.idle_since = 0.0
        self.corked: list[bytes] | None = None  # writes of one client read: sent as one
        self.reading_paused = False
        # The bytes of the response head being read (from its first byte): the head is sent
        # on from these, with no callback per header.
        self.raw = b""
        self.in_head = True
        self.tunnel: Any = None  # after a 101: the WebSocket tunnel (tunnel.py) it carries

    def _to(self, event: str) -> None:
        self.state = advance("backend connection", UPSTREAM, self.state, event)

    # asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pool.progress += 1
        if self.tunnel is not None:
            self.tunnel.from_backend(data)
            return
        listener = self.listener
        if listener is None:  # idle: a backend does not speak unasked
            self.close()
            return
        if self.in_head:
            raw = self.raw = self.raw + data if self.raw else data
            if len(raw) > MAX_HEAD and b"\r\n\r\n" not in raw[:MAX_HEAD]:
                self.listener = None
                self.close()
                listener.upstream_failed("bad response from the model server: its head is "
                                         f"over {MAX_HEAD} bytes")
                return
        client = listener.client
        client.cork()  # the response's head and body: one write to the client
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            raise  # a bug of ours in a callback: the front's handler reports it
        except httptools.HttpParserUpgrade as exc:  # after a 101: the rest is the tunnel's
            client.uncork()
            rest = data[exc.args[0]:]
            if self.tunnel is not None and rest:
                self.tunnel.from_backend(rest)
            elif self.tunnel is None:  # a 101 to what was no upgrade: not HTTP any more
                self.listener = None
                self.close()
                listener.upstream_failed("the model server switched protocols unasked")
        except httptools.HttpParserError as exc:
            self.listener = None
            self.close()
            listener.upstream_failed(f"bad response from the model server: {exc}")
        finally:
            client.uncork()

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            return bool(self.tunnel.backend_eof())
        return False  # the transport closes; connection_lost says what it means

    def connection_lost(self, exc: Exception | None) -> None:
        self._to("lost")
        self.pool.forget(self)
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.upstream_lost(self)
        if self.tunnel is not None:
            self.tunnel.backend_lost()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.backend_paused(True)
        elif self.listener is not None:
            self.listener.backend_paused(True)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.backend_paused(False)
        elif self.listener is not None:
            self.listener.backend_paused(False)

    # httptools callbacks ---------------------------------------------------
    def on_headers_complete(self) -> None:
        raw = self.raw
        end = raw.index(b"\r\n\r\n") + 4  # llhttp has just read it: it is there
        status = self.parser.get_status_code()
        if status < 200:  # interim: the final response may follow in the same bytes
            self.raw = raw[end:]
        else:
            self.raw = b""
            self.in_head = False
        if self.listener is not None:
            self.listener.response_head(status, raw[:end], self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.listener is not None:
            self.listener.response_body(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        if self.listener is not None:
            self.listener.response_complete()

    # ours -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.state != CLOSED:
            self.transport.write(data)

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        corked, self.corked = self.corked, None
        if corked and self.state != CLOSED:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def pause_reading(self, paused: bool) -> None:
        """Stop (or go on) reading the response: the client reads slowly."""
        if paused != self.reading_paused and self.state != CLOSED:
            self.reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def start_tunnel(self, tunnel: Any) -> None:
        """A 101 came: from now on this connection carries the tunnel's bytes, unparsed."""
        self.state = UPSTREAM[self.state, "tunnel"]
        self.listener = None
        self.tunnel = tunnel

    def new_parser(self) -> None:
        """A fresh parser: after a HEAD response (llhttp would wait for its body)."""
        self.parser = httptools.HttpResponseParser(self)
        self.raw = b""
        self.in_head = True

    def close(self) -> None:
        """Close it; its listener, if any, is not told (it asked, or it is gone)."""
        self.listener = None
        self.corked = None
        if self.state != CLOSED:
            self._to("close")
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections to the current backend address."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.address: Address | None = None
        self.generation = 0
        self.progress = 0  # reads from the backend so far: the health check's sign of life
        self._idle: list[UpstreamConnection] = []

    def set_address(self, address: Address | None) -> None:
        """A new backend (or none): connections to the old one are closed, never reused."""
        self.address = address
        self.generation += 1
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def acquire(self, listener: Listener, fresh: bool = False) -> None:
        """A connection for `listener`: an idle one at once, else (or `fresh`) a new one."""
        now = self.loop.time()
        idle = self._idle
        while idle and not fresh:
            connection = idle.pop()
            if now - connection.idle_since > IDLE_TIMEOUT:
                connection.close()  # the backend may be closing it right now
                continue
            connection.state = UPSTREAM[connection.state, "acquire"]
            connection.listener = listener
            connection.reused = True
            listener.upstream_ready(connection)
            return
        address = self.address
        if address is None:
            listener.upstream_failed("the model server is not running")
            return
        self.loop.create_task(self._connect(address, listener))

    async def _connect(self, address: Address, listener: Listener) -> None:
        try:
            if address.socket_path:
                _, connection = await self.loop.create_unix_connection(
                    lambda: UpstreamConnection(self), address.socket_path)
            else:
                _, connection = await self.loop.create_connection(
                    lambda: UpstreamConnection(self), "127.0.0.1", address.port)
        except OSError as exc:
            listener.upstream_failed(f"cannot connect to the model server at {address}: "
                                     f"{exc.strerror or exc}")
            return
        if connection.state == CLOSED:  # the backend closed it at once
            listener.upstream_failed("the model server closed the connection at once")
            return
        connection._to("connected")
        connection.listener = listener
        listener.upstream_ready(connection)

    def release(self, connection: UpstreamConnection) -> None:
        """Back to the pool, unless it belongs to an older backend or is closing."""
        connection.listener = None
        if connection.state != ACTIVE or connection.generation != self.generation:
            connection.close()
            return
        connection.state = UPSTREAM[connection.state, "release"]
        if connection.reading_paused:  # it must see the backend close it while idle
            connection.pause_reading(False)
        connection.idle_since = self.loop.time()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def sweep(self, now: float) -> None:
        """Close connections idle longer than IDLE_TIMEOUT (the front's sweep calls this)."""
        for connection in [c for c in self._idle if now - c.idle_since > IDLE_TIMEOUT]:
            connection.close()

    def close(self) -> None:
        self.set_address(None)
