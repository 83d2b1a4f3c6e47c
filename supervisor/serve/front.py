"""The front on port 8080: /ping answered by us, everything else proxied to the model server.

One `FrontConnection` (an asyncio protocol, httptools parsing) per client
connection and one `Exchange` per request. `/ping` is answered from the
backend's last health check, within microseconds, whatever the backend is
doing. Other requests are streamed to the backend over pooled keep-alive
connections: bodies pass through as they arrive, never buffered whole, with
back-pressure both ways (a slow client pauses the backend's connection, a
slow backend pauses the client's). While the backend is not ready, a request
gets a 503 with a JSON reason at once, never a hung connection.

The per-request path is kept lean (every CPU cycle spent here is taken from
the model server on a small instance): no logger call, one access-log record
batched with others, no copy of a body.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import Any

import httptools

from supervisor.serve import http
from supervisor.serve.upstream import UpstreamConnection, UpstreamPool

MAX_HEADER_BYTES = 32 * 1024  # request line and headers, as nginx's large_client_header_buffers
HEADER_TIMEOUT = 60.0  # a client must send a whole request head within this (nginx's default)
KEEPALIVE_TIMEOUT = 75.0  # an idle client connection is closed after this (nginx's default)
# Refused while its body was still coming (413, 503): the rest is read and dropped for up to
# this long before the connection is closed, so that the client, still sending, gets to
# read the answer instead of a reset (nginx's lingering close).
LINGER_TIMEOUT = 5.0
RETRY_BODY_BYTES = 64 * 1024  # request bodies up to this are kept to retry on a stale connection
WRITE_HIGH_WATER = 256 * 1024
# Timeouts of connections are checked this often by one sweep over them all: no timer is
# armed and cancelled per request.
SWEEP_INTERVAL = 1.0
NEVER = float("inf")
ACCESS_LOG_FLUSH = 0.2  # seconds: access-log records are written in batches
PING = b"/ping"
EXECUTION_PARAMETERS = b"/execution-parameters"
HEAD = b"HEAD"
GET = b"GET"


def _json(text: str) -> bytes:
    import orjson

    return orjson.dumps({"error": text})


class FrontState:
    """What all connections share: the backend's readiness, limits, the pool, the drain."""

    def __init__(self, loop: Any, pool: UpstreamPool, max_body: int, request_timeout: float | None,
                 execution_parameters: bytes, access_log: Any) -> None:
        self.loop = loop
        self.pool = pool
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.execution_parameters = execution_parameters
        self.access_log = access_log
        self.ready = False
        self.not_ready_reason = "the model server is starting"
        self.draining = False
        self.connections: set[FrontConnection] = set()
        self.busy = 0  # connections with a request in progress
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        self.ping_ok = http.simple_response(200, b'{"status":"healthy"}')
        self.ping_ok_head = http.simple_response(200, b'{"status":"healthy"}', head_only=True)

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self.ready = ready
        if reason:
            self.not_ready_reason = reason

    def exchange_started(self) -> None:
        self.busy += 1

    def exchange_ended(self) -> None:
        self.busy -= 1
        if self.busy == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _sweep(self) -> None:
        """Close connections past their deadline; let idle backend connections go."""
        now = self.loop.time()
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.close()
        self.pool.sweep(now)
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def close(self) -> None:
        self._sweeper.cancel()

    def start_drain(self) -> None:
        """No new requests on idle connections; busy ones close after their response."""
        self.draining = True
        self.ready = False
        self.not_ready_reason = "sm-entry is stopping"
        for connection in list(self.connections):
            if connection.current is None and connection.parsing is None:
                connection.transport.close()

    async def wait_idle(self) -> None:
        if self.busy == 0:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._idle_waiters.append(waiter)
        await waiter


class FrontConnection(asyncio.Protocol):
    """One client connection: parses requests, runs them one at a time, in order."""

    def __init__(self, state: FrontState) -> None:
        self.state = state
        self.loop = state.loop
        self.transport: Any = None
        self.peer = b""
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None  # the request being parsed
        self.current: Exchange | None = None  # the request being answered
        self.queued: deque[Exchange] = deque()  # pipelined requests waiting their turn
        self.deadline = NEVER  # when the sweep closes it (waiting for a head, idle, lingering)
        self.closed = False
        # Writes made while one read is handled go out as one (a head and its body: one
        # send, not two); so do the backend connections' writes (flushed at the end too).
        self.corked: list[bytes] | None = None
        self.flush_after: list[UpstreamConnection] = []
        self.lingering = False  # answered and closing: what still arrives is dropped
        self.reading_paused = 0  # reasons to keep reading paused (pipelining, back-pressure)

    # asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0].encode() if isinstance(peer, tuple) else b""
        self.state.connections.add(self)
        self.deadline = self.loop.time() + HEADER_TIMEOUT

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(501, "upgrade requests (WebSocket, h2c) are not supported by sm-entry's "
                              "front")
        except httptools.HttpParserError as exc:
            if not self.closed:
                self._refuse(400, f"bad request: {exc}")
        finally:
            self.uncork()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        for exchange in (self.current, self.parsing, *self.queued):
            if exchange is not None and not exchange.finished:
                exchange.client_lost()
        self.queued.clear()

    def pause_writing(self) -> None:
        if self.current is not None:
            self.current.pause_upstream_reading()

    def resume_writing(self) -> None:
        if self.current is not None:
            self.current.resume_upstream_reading()

    # httptools callbacks ---------------------------------------------------
    def on_message_begin(self) -> None:
        self.parsing = Exchange(self)
        if self.current is None:
            self.deadline = self.loop.time() + HEADER_TIMEOUT

    def on_url(self, url: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        exchange.url += url
        exchange.head_bytes += len(url)
        if exchange.head_bytes > MAX_HEADER_BYTES:
            self._refuse(431, "request line and headers too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.parsing
        assert exchange is not None
        exchange.headers.append((name, value))
        exchange.head_bytes += len(name) + len(value) + 4
        if exchange.head_bytes > MAX_HEADER_BYTES:
            self._refuse(431, "request line and headers too large")

    def on_headers_complete(self) -> None:
        exchange = self.parsing
        assert exchange is not None
        parser = self.parser
        exchange.head_complete(parser.get_method(), parser.get_http_version(),
                               parser.should_keep_alive())
        if self.current is None:
            self.deadline = NEVER  # busy: the request timeout, if any, applies
            self.current = exchange
            exchange.start()
        else:  # pipelined: its turn comes when the one before is answered
            self.queued.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        exchange, self.parsing = self.parsing, None
        if exchange is not None:
            exchange.request_complete()

    # ours -------------------------------------------------------------------
    def pause_reading(self) -> None:
        self.reading_paused += 1
        if self.reading_paused == 1 and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.reading_paused -= 1
        if self.reading_paused == 0 and not self.closed:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        """Send what was held: the backend connections' writes, then ours."""
        if self.flush_after:
            upstreams, self.flush_after = self.flush_after, []
            for upstream in upstreams:
                upstream.uncork()
        corked, self.corked = self.corked, None
        if corked and not self.closed:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def exchange_done(self, exchange: Exchange, close: bool) -> None:
        """`exchange` is answered: close, or answer the next, or wait for one."""
        self.current = None
        if close and not exchange.request_done and not self.closed:
            self.linger()
            return
        if close or self.state.draining or self.closed:
            self.close()
            return
        if self.queued:
            self.current = self.queued.popleft()
            self.resume_reading()
            self.current.start()
            return
        self.deadline = self.loop.time() + (HEADER_TIMEOUT if self.parsing else KEEPALIVE_TIMEOUT)

    def close(self) -> None:
        if not self.closed:
            self.uncork()
            self.closed = True
            self.transport.close()

    def linger(self) -> None:
        """Close once the client stops sending (or after LINGER_TIMEOUT), dropping what it sends."""
        self.uncork()
        self.lingering = True
        while self.reading_paused > 0:
            self.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.deadline = self.loop.time() + LINGER_TIMEOUT

    def _refuse(self, code: int, reason: str) -> None:
        """A request we will not take: answer it and close the connection."""
        if self.current is None or self.current.response_started is False:
            self.write(http.simple_response(code, _json(reason), close=True))
        for exchange in (self.current, self.parsing):
            if exchange is not None and not exchange.finished:
                exchange.client_lost()
        self.close()



class Exchange:
    """One request and its response."""

    __slots__ = (
        "body_pending", "bytes_in", "bytes_out", "chunked", "close_after", "conn",
        "content_length", "expect_continue", "finished", "forward", "forwarded_for",
        "head_bytes", "headers",
        "inference_id", "keep_alive", "method", "path", "paused_client", "paused_upstream",
        "request_done", "response_chunked",
        "response_close_delimited", "response_started", "retried", "sent", "sent_bytes",
        "started", "started_at", "state", "status", "swallow", "timer", "upstream",
        "upstream_keep_alive", "url", "version",
    )

    def __init__(self, conn: FrontConnection) -> None:
        self.conn = conn
        self.state = conn.state
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.method = b""
        self.path = b""
        self.version = "1.1"
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.inference_id: bytes | None = None
        self.forward: list[bytes] = []  # the header lines that go to the backend
        self.forwarded_for = b""
        self.started = False
        self.started_at = 0.0
        self.upstream: UpstreamConnection | None = None
        self.body_pending: list[bytes] = []  # body received before the upstream is ready
        self.sent: list[bytes] | None = []  # what went upstream, kept to retry (None: too big)
        self.sent_bytes = 0
        self.request_done = False
        self.paused_client = False  # we paused the client's reading (the backend reads slowly)
        self.paused_upstream = False  # we paused the backend's reading (the client reads slowly)
        self.bytes_in = 0
        self.bytes_out = 0
        self.status = 0
        self.response_started = False
        self.response_chunked = False
        self.response_close_delimited = False
        self.upstream_keep_alive = False
        self.close_after = False
        self.swallow = False  # the backend's 404 to /execution-parameters: ours is sent instead
        self.retried = False
        self.finished = False
        self.timer: Any = None

    # the request ------------------------------------------------------------
    def head_complete(self, method: bytes, version: str, keep_alive: bool) -> None:
        self.method = method
        self.version = version
        self.keep_alive = keep_alive
        question = self.url.find(b"?")
        self.path = self.url if question < 0 else self.url[:question]
        kinds = http.REQUEST_HEADERS
        forward = self.forward
        connection = b""
        for name, value in self.headers:
            kind = kinds.get(name.lower(), http.FORWARD)
            if kind == http.FORWARD:
                forward.append(b"%b: %b\r\n" % (name, value))
            elif kind == http.CONTENT_LENGTH:
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif kind == http.TRANSFER_ENCODING:
                self.chunked = b"chunked" in value.lower()
            elif kind == http.EXPECT:
                self.expect_continue = value.lower() == b"100-continue"
            elif kind == http.FORWARDED_FOR:
                self.forwarded_for = value + b", "
            elif kind == http.NOTE:
                self.inference_id = value
                forward.append(b"%b: %b\r\n" % (name, value))
            elif kind == http.CONNECTION:
                connection = value
        if connection:
            self.forward = http.without_listed(forward, connection)
        if not self.chunked and not self.content_length:
            self.request_done = True  # no body to wait for: answered, it may keep its connection

    def start(self) -> None:
        """Its turn to be answered: locally, or through the backend."""
        self.started = True
        self.started_at = time.monotonic()
        self.state.exchange_started()
        state = self.state
        if self.path == PING and (self.method == GET or self.method == HEAD):
            if state.ready:
                self._local(state.ping_ok_head if self.method == HEAD else state.ping_ok, 200)
            else:
                self._reply(503, _json(state.not_ready_reason))
            return
        if self.content_length is not None and self.content_length > state.max_body:
            self._reply(413, _json(f"request body of {self.content_length} bytes is over the "
                                   f"limit of {state.max_body} (SAGEMAKER_MAX_PAYLOAD_IN_MB)"),
                        close=True)
            return
        if not state.ready:
            self._reply(503, _json(state.not_ready_reason))
            return
        if self.expect_continue and not self.request_done:
            self.conn.write(http.CONTINUE)
        if state.request_timeout:
            self.timer = state.loop.call_later(state.request_timeout, self._timed_out)
        state.pool.acquire(self, self._upstream_ready, self.upstream_failed)

    def request_body(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.finished:
            return
        if self.bytes_in > self.state.max_body:
            self._reply(413, _json(f"request body over the limit of {self.state.max_body} bytes "
                                   "(SAGEMAKER_MAX_PAYLOAD_IN_MB)"), close=True)
            return
        if self.upstream is not None:
            self._to_upstream(http.chunk(data) if self.chunked else data)
        else:  # the backend connection is not there yet (or it is not this request's turn)
            self.body_pending.append(data)

    def request_complete(self) -> None:
        self.request_done = True
        if self.upstream is not None and self.chunked and not self.finished:
            self._to_upstream(http.LAST_CHUNK)

    def _upstream_ready(self, upstream: UpstreamConnection) -> None:
        if self.finished:
            self.state.pool.release(upstream)
            return
        self.upstream = upstream
        outside_a_read = self.conn.corked is None  # connected later, on its own
        if outside_a_read:
            upstream.cork()
        parts = [b"%b %b HTTP/1.1\r\n" % (self.method, self.url), *self.forward,
                 b"X-Forwarded-For: %b%b\r\nX-Forwarded-Proto: http\r\n"
                 % (self.forwarded_for, self.conn.peer)]
        if self.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif self.content_length is not None:
            parts.append(b"Content-Length: %d\r\n" % self.content_length)
        parts.append(b"\r\n")
        self._to_upstream(b"".join(parts))
        pending, self.body_pending = self.body_pending, []
        for data in pending:
            self._to_upstream(http.chunk(data) if self.chunked else data)
        if self.request_done and self.chunked:
            self._to_upstream(http.LAST_CHUNK)
        if outside_a_read:
            upstream.uncork()

    def _to_upstream(self, data: bytes) -> None:
        upstream = self.upstream
        assert upstream is not None
        if upstream.corked is None and self.conn.corked is not None:
            upstream.cork()  # within the client's read: one write at its end
            self.conn.flush_after.append(upstream)
        upstream.write(data)
        sent = self.sent
        if sent is not None:
            self.sent_bytes += len(data)
            if self.sent_bytes > RETRY_BODY_BYTES:
                self.sent = None
            else:
                sent.append(data)

    # the response -----------------------------------------------------------
    def response_head(self, status: int, headers: list[tuple[bytes, bytes]],
                      keep_alive: bool) -> None:
        if self.finished:
            return
        self.status = status
        if status < 200:  # 100 Continue (we answered it already), 103 Early Hints: not forwarded
            return
        self.upstream_keep_alive = keep_alive
        if status == 404 and self.path == EXECUTION_PARAMETERS and self.method == GET:
            self.swallow = True
            return
        length = None
        chunked = False
        connection = b""
        parts = [http.status_line(status)]
        kinds = http.RESPONSE_HEADERS
        for name, value in headers:
            kind = kinds.get(name.lower(), http.FORWARD)
            if kind == http.FORWARD:
                parts.append(b"%b: %b\r\n" % (name, value))
            elif kind == http.CONTENT_LENGTH:
                length = value
                parts.append(b"%b: %b\r\n" % (name, value))
            elif kind == http.TRANSFER_ENCODING:
                chunked = True
            elif kind == http.CONNECTION:
                connection = value
        if connection:
            parts = http.without_listed(parts, connection)
        bodiless = self.method == HEAD or status in (204, 304)
        if not bodiless and length is None:
            self.response_close_delimited = not chunked
            if self.version == "1.1":
                self.response_chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.close_after = True
        if not self.keep_alive or self.close_after or self.state.draining:
            self.close_after = True
            parts.append(b"Connection: close\r\n")
        elif self.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.response_started = True
        self.conn.write(b"".join(parts))
        if self.method == HEAD and self.upstream is not None:
            # llhttp cannot be told the request was HEAD: it would wait for the body.
            self.upstream.new_parser()
            self.response_complete()

    def response_body(self, data: bytes) -> None:
        if self.finished or self.swallow or self.status < 200:
            return
        self.bytes_out += len(data)
        self.conn.write(http.chunk(data) if self.response_chunked else data)

    def response_complete(self) -> None:
        if self.finished:
            return
        if self.status < 200:  # an interim response ended; the real one follows
            self.status = 0
            return
        if self.swallow:
            body = self.state.execution_parameters
            self.conn.write(http.simple_response(200, body))
            self.status, self.bytes_out = 200, len(body)
        elif self.response_chunked:
            self.conn.write(http.LAST_CHUNK)
        self.resume_upstream_reading()  # a pooled connection must read its next response
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if self.upstream_keep_alive and self.request_done and not self.response_close_delimited:
                self.state.pool.release(upstream)
            else:
                upstream.close()
        self._finish(self.close_after or not self.keep_alive)

    def upstream_lost(self, upstream: UpstreamConnection) -> None:
        """The backend closed the connection while this exchange used it."""
        if self.finished:
            return
        self.upstream = None
        if self.response_started:
            if self.response_close_delimited:  # its body ends where the connection does
                if self.response_chunked:
                    self.conn.write(http.LAST_CHUNK)
                self._finish(self.close_after)
            else:  # truncated: the client must see it was, so its connection is closed
                self._finish(True)
            return
        if upstream.reused and not self.retried and self.sent is not None:
            # A pooled connection the backend had closed: send it again, once, on a new one.
            self.retried = True
            sent, self.sent, self.sent_bytes = self.sent, [], 0
            self.state.pool.acquire(self, lambda fresh: self._resend(fresh, sent),
                                    self.upstream_failed)
            return
        self.upstream_failed("the model server closed the connection before answering")

    def _resend(self, upstream: UpstreamConnection, sent: list[bytes]) -> None:
        if self.finished:
            self.state.pool.release(upstream)
            return
        self.upstream = upstream
        upstream.cork()
        for data in sent:
            self._to_upstream(data)
        upstream.uncork()

    def upstream_failed(self, reason: str) -> None:
        if self.finished:
            return
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()
        if self.response_started:
            self._finish(True)
        else:
            self._reply(502, _json(reason), close=not self.request_done)

    def client_lost(self) -> None:
        """The client went away: nothing more to send, the backend connection is not reused."""
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.exchange = None
            upstream.close()
        if not self.finished:
            self.finished = True
            if self.timer is not None:
                self.timer.cancel()
            if self.started:
                self.state.exchange_ended()

    def pause_client_reading(self) -> None:
        if not self.paused_client:
            self.paused_client = True
            self.conn.pause_reading()

    def resume_client_reading(self) -> None:
        if self.paused_client:
            self.paused_client = False
            self.conn.resume_reading()

    def pause_upstream_reading(self) -> None:
        if self.upstream is not None and not self.paused_upstream:
            self.paused_upstream = True
            self.upstream.transport.pause_reading()

    def resume_upstream_reading(self) -> None:
        if self.upstream is not None and self.paused_upstream:
            self.paused_upstream = False
            self.upstream.transport.resume_reading()

    # ending -----------------------------------------------------------------
    def _timed_out(self) -> None:
        self.timer = None
        if self.finished:
            return
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.exchange = None
            upstream.close()
        if self.response_started:
            self._finish(True)
        else:
            self._reply(504, _json(f"the model server did not answer within "
                                   f"{self.state.request_timeout:g} s"), close=True)

    def _reply(self, status: int, body: bytes, close: bool = False) -> None:
        """A response of ours. A request whose body is still coming closes the connection."""
        close = close or not self.request_done or not self.keep_alive or self.state.draining
        self.status = status
        self.conn.write(http.simple_response(status, body, close=close,
                                             head_only=self.method == HEAD))
        self.bytes_out = len(body)
        self._finish(close)

    def _local(self, response: bytes, status: int) -> None:
        self.status = status
        self.conn.write(response)
        self._finish(not self.keep_alive or not self.request_done)

    def _finish(self, close: bool) -> None:
        self.resume_client_reading()
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.path != PING:
            self.state.access_log(self)
        self.state.exchange_ended()
        self.conn.exchange_done(self, close)


class AccessLog:
    """One JSON record per proxied request, written in batches (never a write per request).

    The record is assembled from a prefix rendered once and the few fields of
    the request; method and path go through orjson, since they come from the
    client.
    """

    def __init__(self, loop: Any, writer: Any, fields: dict[str, Any]) -> None:
        import orjson

        from supervisor.logs.sinks import format_timestamp

        self._dumps = orjson.dumps
        self._timestamp = format_timestamp
        self.loop = loop
        self.writer = writer
        head = orjson.dumps({"level": "info", "src": "sm-entry", **fields, "msg": "request"})
        self._head = b'{"ts":"%s",' + head[1:-1].replace(b"%", b"%%") + b',"method":%s,"path":%s'
        self.records: list[bytes] = []
        self.timer: Any = None

    def __call__(self, exchange: Exchange) -> None:
        dumps = self._dumps
        record = self._head % (self._timestamp(time.time()).encode(),
                               dumps(exchange.method.decode("latin-1")),
                               dumps(exchange.path.decode("latin-1")))
        record += b',"status":%d,"bytes_in":%d,"bytes_out":%d,"duration_ms":%.2f' % (
            exchange.status, exchange.bytes_in, exchange.bytes_out,
            (time.monotonic() - exchange.started_at) * 1000)
        if exchange.inference_id is not None:
            record += b',"inference_id":' + dumps(exchange.inference_id.decode("latin-1"))
        self.records.append(record + b"}")
        if self.timer is None:
            self.timer = self.loop.call_later(ACCESS_LOG_FLUSH, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.records:
            records, self.records = self.records, []
            self.writer.write_record(b"\n".join(records) + b"\n")


def execution_parameters(environ: dict[str, str] | Any) -> bytes:
    """What `GET /execution-parameters` answers when the backend does not (batch transform)."""
    import orjson

    def number(name: str, default: int) -> int:
        try:
            return int(environ.get(name) or default)
        except ValueError:
            return default

    return orjson.dumps({
        "MaxConcurrentTransforms": number("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
                                          os.cpu_count() or 1),
        "BatchStrategy": environ.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD",
        "MaxPayloadInMB": number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
    })
