"""Connections to the model server: a keep-alive pool, and the protocol that reads its responses.

One request at a time per connection (no pipelining to the backend). A
connection goes back to the pool only after a complete response to a
complete request that both sides want to keep alive; the pool closes
connections idle for longer than `IDLE_TIMEOUT`, which is kept below the
backends' own keep-alive (gunicorn closes idle connections after 2 s), and
a request whose reused connection died before any response byte arrived is
retried once on a fresh one (see front.Exchange).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httptools

if TYPE_CHECKING:
    from supervisor.serve.front import Exchange

IDLE_TIMEOUT = 1.5  # seconds; below gunicorn's default keep-alive of 2 s


@dataclass(frozen=True)
class Address:
    """Where the backend listens: a unix socket path, or 127.0.0.1 and a port."""

    socket_path: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"127.0.0.1:{self.port}"


class UpstreamConnection(asyncio.Protocol):
    """One connection to the backend; its current exchange gets the parsed response."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.generation = pool.generation
        self.transport: Any = None
        self.exchange: Exchange | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reused = False  # served a request before the current one
        self.closed = False
        self.idle_since = 0.0
        self.corked: list[bytes] | None = None  # see FrontConnection.corked
        self._headers: list[tuple[bytes, bytes]] = []

    # asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        client = exchange.conn if exchange is not None else None
        if client is not None:
            client.cork()  # the response's head and body: one write to the client
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            exchange, self.exchange = self.exchange, None
            self.close()
            if exchange is not None:
                exchange.upstream_failed(f"bad response from the model server: {exc}")
        finally:
            if client is not None:
                client.uncork()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_client_reading()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_client_reading()

    # httptools callbacks ---------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers, self._headers = self._headers, []
        if self.exchange is not None:
            self.exchange.response_head(self.parser.get_status_code(), headers,
                                        self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.response_complete()

    # ours -------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        corked, self.corked = self.corked, None
        if corked and not self.closed:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def new_parser(self) -> None:
        """A fresh parser: after a HEAD response (llhttp would wait for its body) or a 1xx."""
        self.parser = httptools.HttpResponseParser(self)
        self._headers = []

    def close(self) -> None:
        if not self.closed:
            self.corked = None
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections to the current backend address."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.address: Address | None = None
        self.generation = 0
        self._idle: list[UpstreamConnection] = []

    def set_address(self, address: Address | None) -> None:
        """A new backend (or none): connections to the old one are closed, never reused."""
        self.address = address
        self.generation += 1
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def acquire(self, exchange: Exchange, ready: Callable[[UpstreamConnection], None],
                failed: Callable[[str], None]) -> None:
        """A connection for `exchange`: an idle one at once, else a new one when connected."""
        now = self.loop.time()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since > IDLE_TIMEOUT:
                connection.close()  # the backend may be closing it right now
            elif not connection.closed:
                connection.exchange = exchange
                connection.reused = True
                ready(connection)
                return
        address = self.address
        if address is None:
            failed("the model server is not running")
            return
        self.loop.create_task(self._connect(address, exchange, ready, failed))

    async def _connect(self, address: Address, exchange: Exchange,
                       ready: Callable[[UpstreamConnection], None],
                       failed: Callable[[str], None]) -> None:
        try:
            if address.socket_path:
                _, connection = await self.loop.create_unix_connection(
                    lambda: UpstreamConnection(self), address.socket_path)
            else:
                _, connection = await self.loop.create_connection(
                    lambda: UpstreamConnection(self), "127.0.0.1", address.port)
        except OSError as exc:
            failed(f"cannot connect to the model server at {address}: {exc.strerror or exc}")
            return
        if exchange.finished:  # the client went away meanwhile
            self.release(connection)
            return
        connection.exchange = exchange
        ready(connection)

    def release(self, connection: UpstreamConnection) -> None:
        """Back to the pool, unless it belongs to an older backend or is closing."""
        connection.exchange = None
        if connection.closed or connection.generation != self.generation:
            connection.close()
            return
        connection.idle_since = self.loop.time()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def sweep(self, now: float) -> None:
        """Close connections idle longer than IDLE_TIMEOUT (the front's sweep calls this)."""
        expired = [c for c in self._idle if now - c.idle_since > IDLE_TIMEOUT]
        for connection in expired:
            self.forget(connection)
            connection.close()

    def close(self) -> None:
        self.set_address(None)
