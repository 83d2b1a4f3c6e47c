"""The front on port 8080: one client connection at a time, as a state machine (states.CONNECTION).

A `FrontConnection` (an asyncio protocol, httptools parsing) reads requests
and keeps their exchanges in order: the first is answered, the others
(pipelined) wait their turn with their bodies, and reading pauses while any
wait. `/ping` is answered from the backend's last health check, within
microseconds, whatever the backend is doing; other requests go to the
backend over pooled keep-alive connections (exchange.py).

What a client can do to us is bounded: a head over 32 KiB is refused (its
size is counted as the bytes arrive, before httptools would gather it), a
client that sends nothing for the client timeout in the middle of a head or
a body, or reads nothing of an answer, is closed, an idle keep-alive
connection is closed after 75 s, and bodies kept in memory have a budget
shared by all connections. Back-pressure both ways: a slow client pauses the
backend's connection, a slow backend pauses the client's.

The per-request path is kept lean (every CPU cycle spent here is taken from
the model server on a small instance): no logger call, one access-log record
batched with others, no timer armed per request (one sweep a second checks
every connection's deadlines).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import httptools

from supervisor.serve import http
from supervisor.serve.exchange import Exchange
from supervisor.serve.request import Refusal
from supervisor.serve.states import (
    BUFFERING,
    CLOSED,
    CONNECTION,
    HEAD,
    LINGERING,
    OPEN,
    QUEUED,
    RECEIVED,
    STREAMING,
    TUNNEL,
    advance,
    impossible,
)
from supervisor.serve.upstream import UpstreamConnection, UpstreamPool

MIB = 1024 * 1024
# Refused while its body was still coming (413, 408): the rest is read and dropped for up to
# this long before the connection is closed, so that the client, still sending, gets to
# read the answer instead of a reset (nginx's lingering close).
LINGER_TIMEOUT = 5.0
WRITE_HIGH_WATER = 256 * 1024
SWEEP_INTERVAL = 1.0  # connections' deadlines are checked this often, by one sweep over all
# Why the client's reading is paused: each reason set and cleared on its own.
PAUSES = {"queue": 1, "backend": 2, "pending": 4, "stopped": 8}
QUEUE = PAUSES["queue"]


@dataclass(frozen=True)
class Limits:
    """What one client may cost: the front's options (README, Serving)."""

    max_body: int | None = None  # bytes; None: no limit
    request_timeout: float | None = None  # the backend's answer; None: none
    client_timeout: float = 60.0  # silence in the middle of a head or body, or of a read
    keepalive_timeout: float = 75.0
    max_head: int = 32 * 1024  # request line and headers (nginx's large_client_header_buffers)
    buffer_request: int = 8 * MIB  # a body up to this is read whole before it is forwarded
    buffer_total: int = 64 * MIB  # ... while all the bodies kept stay within this
    tunnel_idle_timeout: float | None = None  # a WebSocket tunnel with no byte either way


class StopParsing(Exception):
    """Raised from a parser callback: no more of this connection's input is parsed."""


class FrontState:
    """What all connections share: the backend's readiness, limits, the pool, the drain."""

    def __init__(self, loop: Any, pool: UpstreamPool, limits: Limits, execution_parameters: bytes,
                 access_log: Any, log: Any) -> None:
        self.loop = loop
        self.pool = pool
        self.limits = limits
        self.max_body = limits.max_body
        self.request_timeout = limits.request_timeout
        self.buffer_request = limits.buffer_request
        self.buffer_total = limits.buffer_total
        self.execution_parameters = execution_parameters
        self.access_log = access_log
        self.log = log
        self.ready = False
        self.not_ready_reason = "the model server is starting"
        self.draining = False
        self.connections: set[FrontConnection] = set()
        self.tunnels: set[Any] = set()  # tunnel.Tunnel: open WebSocket tunnels
        self.in_flight = 0  # exchanges begun and not yet answered
        self.backend_in_flight = 0  # of those, the ones sent to the backend
        self.buffered = 0  # bytes of request bodies kept, all connections together
        self.bugs = 0  # impossible events met (each logged; the tests want none)
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._tunnel_reads: dict[Any, tuple[int, float]] = {}
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        ok = self.PING_BODY
        self._ping = {(head, close): http.simple_response(200, ok, close=close, head_only=head)
                      for head in (False, True) for close in (False, True)}

    PING_BODY = b'{"status":"healthy"}'

    def ping_response(self, head_only: bool, close: bool) -> bytes:
        return self._ping[head_only, close]

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self.ready = ready and not self.draining
        if reason:
            self.not_ready_reason = reason

    def activity(self) -> tuple[int, int]:
        """(requests at the backend now, reads from it so far): busy is not dead."""
        return self.backend_in_flight, self.pool.progress

    def reserve(self, size: int) -> bool:
        """Room for `size` more bytes of kept bodies within the shared budget."""
        if self.buffered + size > self.buffer_total:
            return False
        self.buffered += size
        return True

    def release(self, size: int) -> None:
        self.buffered -= size

    def exchange_ended(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.wake_idle_waiters()

    def wake_idle_waiters(self) -> None:
        if self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def bug(self, exc: BaseException, where: str) -> None:
        """An impossible event or an exception of ours: logged; the caller closes that client."""
        self.bugs += 1
        exc = impossible(exc)
        self.log.error("front bug: a client connection was closed", where=where,
                       error=f"{type(exc).__name__}: {exc}")

    def _sweep(self) -> None:
        """Close connections past their deadline; let idle backend connections go."""
        now = self.loop.time()
        for connection in list(self.connections):
            connection.check(now)
        if self.limits.tunnel_idle_timeout:
            self._sweep_tunnels(now)
        self.pool.sweep(now)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep_tunnels(self, now: float) -> None:
        """Close tunnels that moved no byte either way for --tunnel-idle-timeout."""
        limit = self.limits.tunnel_idle_timeout or 0.0
        for tunnel in list(self.tunnels):
            seen = self._tunnel_reads.get(tunnel)
            if seen is None or seen[0] != tunnel.reads:
                self._tunnel_reads[tunnel] = (tunnel.reads, now)
            elif now - seen[1] >= limit:
                tunnel.close(f"idle for {limit:g} s")
        for tunnel in [t for t in self._tunnel_reads if t not in self.tunnels]:
            del self._tunnel_reads[tunnel]

    def close_tunnels(self, reason: str) -> None:
        for tunnel in list(self.tunnels):
            tunnel.close(reason)

    def close(self) -> None:
        self._sweeper.cancel()

    def start_drain(self) -> None:
        """No new requests on idle connections; busy ones close after their answers."""
        self.draining = True
        self.ready = False
        self.not_ready_reason = "sm-entry is stopping"
        for connection in list(self.connections):
            if connection.idle:
                connection.close()

    async def wait_idle(self) -> None:
        if self.in_flight == 0:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._idle_waiters.append(waiter)
        await waiter


class FrontConnection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order."""

    def __init__(self, front: FrontState) -> None:
        self.front = front
        self.loop = front.loop
        self.state = OPEN
        self.transport: Any = None
        self.peer = b""
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None  # the exchange whose request is arriving
        self.exchanges: deque[Exchange] = deque()  # the one answered first, then those queued
        self.max_head = front.limits.max_head
        self.head_room = self.max_head  # bytes the head being read may still take
        self.head_started = 0.0
        self.reads = 0  # reads so far: the sweep tells a silent client from this
        self.seen_reads = 0
        self.quiet_since = 0.0
        self.unsent = 0  # bytes waiting in the transport at the last sweep
        self.unsent_since = 0.0
        self.idle_since = 0.0
        self.served = 0
        self.paused = 0  # PAUSES bits
        self.write_paused = False
        self.reading_requests = True  # False after a refusal or a half-close: no request more
        self.eof = False
        self.priming = False  # see _upgrade
        self.reprime: Exchange | None = None
        self.tunnel: Any = None  # after a 101: the tunnel.Tunnel this connection is one end of
        self.early = b""  # bytes after a WebSocket upgrade request, sent on after the 101
        self.linger_deadline = 0.0
        # Writes made while one read is handled go out as one (a head and its body: one
        # send, not two); so do the backend connections' writes (flushed at the end too).
        self.corked: list[bytes] | None = None
        self.flush_after: list[UpstreamConnection] = []

    def _to(self, event: str) -> str:
        state = self.state = advance("client connection", CONNECTION, self.state, event)
        return state

    @property
    def idle(self) -> bool:
        return not self.exchanges and self.state == OPEN

    @property
    def reusable(self) -> bool:
        """More requests may follow on it after the current answer."""
        return self.state == OPEN and not self.eof

    # asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0].encode() if isinstance(peer, tuple) else b""
        self.front.connections.add(self)
        self.idle_since = self.quiet_since = self.loop.time()
        if self.front.draining:
            self.close()

    def data_received(self, data: bytes) -> None:
        try:
            state = self.state
            if state != OPEN:
                if state == TUNNEL:
                    self.tunnel.from_client(data)
                    return
                if state == LINGERING:
                    return  # closing: what the client still sends is dropped
                advance("client connection", CONNECTION, state, "data")
            self.reads += 1
            if not self.reading_requests:
                return  # after a refusal, before the lingering close: dropped
            self.corked = []
            try:
                parsing = self.parsing
                if parsing is None or parsing.req == HEAD:
                    if len(data) > self.head_room:
                        self._feed(data)
                    else:
                        self.head_room -= len(data)
                        self.parser.feed_data(data)
                else:
                    self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._parser_stopped(exc, data)
            finally:
                if self.corked or self.flush_after:
                    self.uncork()
                else:
                    self.corked = None
        except Exception as exc:  # a bug of ours: this client is closed, the front goes on
            self._bug(exc, "data from the client")

    def eof_received(self) -> bool:
        """The client half-closed: answer what it asked, then close."""
        self.eof = True
        if self.state == TUNNEL:
            return bool(self.tunnel.client_eof())
        if self.state != OPEN:
            return False
        parsing = self.parsing
        if parsing is not None and parsing.req in (HEAD, BUFFERING, STREAMING):
            parsing.client_lost()  # an unfinished request: never answered
            return False
        self.stop_reading_requests()
        return bool(self.exchanges)  # False: nothing to answer, the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._to("lost")
            self.front.connections.discard(self)
            self.flush_after.clear()
            for exchange in list(self.exchanges):
                exchange.client_lost()
            if self.tunnel is not None:
                self.tunnel.client_lost()
        except Exception as error:
            self._bug(error, "the client's connection lost")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.client_paused(True)
        elif self.exchanges:
            self.exchanges[0].client_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.client_paused(False)
        elif self.exchanges:
            current = self.exchanges[0]
            if current.resp == QUEUED:  # its turn waited for the client to read
                current.turn()
            else:
                current.client_paused(False)

    # httptools callbacks ---------------------------------------------------
    def on_message_begin(self) -> None:
        if self.priming:
            return
        exchanges = self.exchanges
        exchange = self.parsing = Exchange(self, bool(exchanges))
        exchanges.append(exchange)
        self.head_started = exchange.started_at  # (time.monotonic: the loop's clock too)
        if len(exchanges) > 1:
            self.pause_for("queue", True)

    def on_url(self, url: bytes) -> None:
        self.parsing.url += url  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        self.parsing.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        if self.priming:  # the made-up head that puts a new parser in an ignored upgrade's body
            self.priming = False
            return
        self.head_room = self.max_head
        parser = self.parser
        exchange = self.parsing
        assert exchange is not None
        exchange.on_head(parser.get_method(), parser.get_http_version(),
                         parser.should_keep_alive())
        if not self.reading_requests:
            raise StopParsing
        head = exchange.head
        if head is not None and head.upgrade and head.has_body and parser.should_upgrade():
            self.reprime = exchange  # llhttp will take its body for the new protocol's bytes

    def on_body(self, body: bytes) -> None:
        self.parsing.on_body(body)  # type: ignore[union-attr]
        if not self.reading_requests:
            raise StopParsing

    def on_message_complete(self) -> None:
        if self.reprime is not None:
            return  # not complete: its body is read after the upgrade llhttp stops at
        exchange, self.parsing = self.parsing, None
        exchange.on_complete()  # type: ignore[union-attr]
        if not self.reading_requests:
            raise StopParsing

    # reading -----------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        """Parse `data`; a head is never let grow past the limit, however the bytes arrive."""
        while data:
            in_head = self.parsing is None or self.parsing.req == HEAD
            room = self.head_room
            if in_head and len(data) > room:
                piece, data = data[:room], data[room:]
                self.head_room = 0
                if not self._parse(piece):
                    return
                if self.head_room == 0:  # no head ended within the room it had
                    self._refuse_head(Refusal(431, "request line and headers too large"))
                    return
                continue
            if in_head:
                self.head_room = room - len(data)
            self._parse(data)
            return

    def _parse(self, data: bytes) -> bool:
        """Feed the parser; False when it stopped for good."""
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_stopped(exc, data)
            return False
        return self.reading_requests

    def _parser_stopped(self, exc: Exception, data: bytes) -> None:
        """The parser stopped inside `data`: an upgrade, our own stop, or bytes it cannot take."""
        if isinstance(exc, httptools.HttpParserCallbackError):
            if isinstance(exc.__context__, StopParsing):
                return
            raise exc.__context__ or exc from None  # a bug of ours in a callback
        if isinstance(exc, httptools.HttpParserUpgrade):
            self._upgrade(data[exc.args[0]:])
            return
        self._bad_input(f"bad request: {exc}")

    def _upgrade(self, rest: bytes) -> None:
        """An upgrade we do not take (h2c, ...): ignored (RFC 9110 7.8); the bytes are HTTP/1.1.

        llhttp stops at an upgrade as if the connection switched protocols, and
        takes the request's body, if any, for the new protocol's bytes. A new
        parser reads on; for a body, it is first given a made-up head with the
        request's framing, so that it reads the body as the request's.
        """
        last = self.exchanges[-1] if self.exchanges else None
        if last is not None and last.head is not None and last.head.websocket:
            # A WebSocket upgrade: what follows is for the tunnel, if the backend agrees.
            self.early = rest
            self.stop_reading_requests()
            return
        parser = self.parser = httptools.HttpRequestParser(self)
        exchange, self.reprime = self.reprime, None
        if exchange is not None and exchange.head is not None:
            head = exchange.head
            framing = (b"Transfer-Encoding: chunked" if head.chunked
                       else b"Content-Length: %d" % (head.content_length or 0))
            self.priming = True
            parser.feed_data(b"POST / HTTP/1.1\r\nHost: h\r\n%b\r\n\r\n" % framing)
        if rest:
            self._feed(rest)

    def _bad_input(self, reason: str) -> None:
        """The parser met bytes it cannot take: 400 at the request's turn, then closed."""
        parsing = self.parsing
        self.parsing = None
        if parsing is None:  # between two requests
            parsing = Exchange(self, queued=bool(self.exchanges))
            self.exchanges.append(parsing)
        if parsing.req == HEAD:
            parsing.refuse(Refusal(400, reason))
        else:
            parsing.fail_request(400, reason)
        self.stop_reading_requests()

    def _refuse_head(self, refusal: Refusal) -> None:
        parsing = self.parsing
        self.parsing = None
        if parsing is None:
            parsing = Exchange(self, queued=bool(self.exchanges))
            self.exchanges.append(parsing)
        parsing.refuse(refusal)

    def stop_reading_requests(self) -> None:
        """No request after this one will be read: its answer is the last."""
        if self.reading_requests:
            self.reading_requests = False
            self.pause_for("stopped", True)

    def pause_for(self, reason: str, paused: bool) -> None:
        """Pause (or resume) reading the client for `reason`; it reads while no reason holds."""
        before = self.paused
        bit = PAUSES[reason]
        after = self.paused = before | bit if paused else before & ~bit
        if bool(before) != bool(after) and (self.state == OPEN or self.state == TUNNEL):
            if after:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()
                # The client's silence counts from now: it was us who did not read.
                self.head_started = self.quiet_since = self.loop.time()

    # writing -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.state == OPEN:
            self.transport.write(data)

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def cork_upstream(self, upstream: UpstreamConnection) -> None:
        """Within one of our reads, `upstream`'s writes go out as one, at its end."""
        if self.corked is not None and upstream.corked is None:
            upstream.cork()
            self.flush_after.append(upstream)

    def uncork(self) -> None:
        """Send what was held: the backend connections' writes, then ours."""
        if self.flush_after:
            upstreams, self.flush_after = self.flush_after, []
            for upstream in upstreams:
                upstream.uncork()
        corked, self.corked = self.corked, None
        if corked and self.state == OPEN:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    # the exchanges -------------------------------------------------------------
    def exchange_finished(self, exchange: Exchange, close: bool) -> None:
        """`exchange` is answered (or cut): close, or answer the next, or wait for one."""
        exchanges = self.exchanges
        if not exchanges or exchanges[0] is not exchange:
            if exchange in exchanges:  # a queued one cut as its connection ends
                exchanges.remove(exchange)
                return
            raise RuntimeError("an exchange finished that this connection does not hold")
        exchanges.popleft()
        if self.parsing is exchange:
            self.parsing = None
        self.served += 1
        if self.state != OPEN:
            return
        if close or (not exchanges and (self.eof or self.front.draining)):  # (not reusable)
            self._end(exchange)
            return
        if self.paused & QUEUE and len(exchanges) <= 1:
            self.pause_for("queue", False)
        if exchanges:
            if not self.write_paused:
                self._next()
        else:
            self.idle_since = self.loop.time()

    def _next(self) -> None:
        """The next exchange's turn (after the one before is answered and the client reads)."""
        exchanges = self.exchanges
        if exchanges and exchanges[0].resp == "queued":
            exchanges[0].turn()

    def _end(self, last: Exchange) -> None:
        """After our last answer: close, lingering when the client may still be sending."""
        uncut = list(self.exchanges)
        if (uncut or last.req != RECEIVED or not self.reading_requests) and not self.eof:
            self.linger()
        else:
            self.close()
        for exchange in uncut:  # pipelined after a request that closes: never answered
            exchange.cut()

    def start_tunnel(self, tunnel: Any) -> None:
        """The backend's 101 went out: from now on the client's bytes go to the tunnel."""
        self._to("upgrade")
        self.tunnel = tunnel
        early, self.early = self.early, b""
        if early:
            tunnel.from_client(early)
        self.paused = 0
        self.transport.resume_reading()

    def linger(self) -> None:
        """Close once the client stops sending (or after LINGER_TIMEOUT), dropping what it sends."""
        self.uncork()
        self._to("linger")
        self.paused = 0
        self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.linger_deadline = self.loop.time() + LINGER_TIMEOUT

    def close(self) -> None:
        if self.state != CLOSED:
            self.uncork()
            self._to("close")
            self.transport.close()

    # deadlines -----------------------------------------------------------------
    def check(self, now: float) -> None:
        """The sweep's look at this connection: close it when its client is past a deadline."""
        try:
            self._check(now)
        except Exception as exc:
            self._bug(exc, "the timeout sweep")

    def _check(self, now: float) -> None:
        if self.state == TUNNEL:
            return  # neither the client nor the keep-alive timeout: --tunnel-idle-timeout
        limit = self.front.limits.client_timeout
        unsent = self.transport.get_write_buffer_size()
        if unsent != self.unsent:
            self.unsent, self.unsent_since = unsent, now
        elif unsent and now - self.unsent_since >= limit:
            if self.state == OPEN:
                self._stalled(f"read nothing of the answer for {limit:g} s")
            else:  # closing, but what is left to send is never read: let it go
                self.transport.abort()
            return
        state = self.state
        if state == LINGERING:
            if now >= self.linger_deadline:
                self.close()
            return
        if state != OPEN:
            return
        if self.reads != self.seen_reads:
            self.seen_reads, self.quiet_since = self.reads, now
        parsing = self.parsing
        if parsing is not None and parsing.req in (HEAD, BUFFERING, STREAMING):
            if self.paused:
                return  # we do not read: the client is not the one late
            if parsing.req == HEAD:
                if now - self.head_started >= limit:
                    self._stalled(f"did not send a whole request head within {limit:g} s")
            elif now - self.quiet_since >= limit:
                self._stalled(f"sent nothing of the request body for {limit:g} s")
            return
        if not self.exchanges:
            idle_limit = self.front.limits.keepalive_timeout if self.served else limit
            if now - self.idle_since >= idle_limit:
                self.close()

    def _stalled(self, what: str) -> None:
        """The client is past the client timeout: the current exchange gets a 408 if it can."""
        exchanges = list(self.exchanges)
        self.stop_reading_requests()
        if exchanges:
            exchanges[0].client_stalled(what)
        for exchange in exchanges[1:]:
            exchange.cut()
        if self.state == OPEN:
            self.close()

    def _bug(self, exc: BaseException, where: str) -> None:
        """An impossible event (or an error of ours): logged, and this client closed at once."""
        self.front.bug(exc, where)
        exchanges, self.exchanges = list(self.exchanges), deque()
        self.parsing = None
        for exchange in exchanges:
            exchange.abandon()
        self.state = CLOSED
        self.front.connections.discard(self)
        if self.transport is not None:
            self.transport.abort()


def execution_parameters(environ: dict[str, str] | Any) -> bytes:
    """What `GET /execution-parameters` answers when the backend does not (batch transform)."""
    import orjson

    def number(name: str, default: int) -> int:
        try:
            return int(environ.get(name) or default)
        except ValueError:
            return default

    return bytes(orjson.dumps({
        "MaxConcurrentTransforms": number("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
                                          os.cpu_count() or 1),
        "BatchStrategy": environ.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD",
        "MaxPayloadInMB": number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
    }))
