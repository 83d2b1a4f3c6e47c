"""One request and its response: the two sides of an exchange, each moved only through its table.

The request side (states.REQUEST) follows the client: its head, then its
body, which is kept in memory when it fits (8 MiB for one request, 64 MiB
for all together: a sync worker is never held by a slow upload) and else
streamed to the backend as it arrives; then received, refused, or cut. The
response side (states.RESPONSE) follows the answer: queued behind the
connection's earlier requests, its turn, forwarded to the backend, its head
and body passing to the client, sent, or cut.

An exchange is forwarded once, when it is its turn and its body is all in
(or is being streamed). It is sent again only when that cannot make the
backend process it twice: an idempotent method, or no byte of it written;
and only with its whole body at hand.

Every state change is a lookup in its table (`REQUEST[state, event]`): a
pair not in the table raises KeyError, which the front reports as an
impossible event (states.impossible). On the per-request path the lookups
are written inline, not through a helper: each call costs the model server
CPU on a small instance.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from supervisor.serve import http
from supervisor.serve.request import Head, Refusal, forward_head, judge
from supervisor.serve.states import (
    BUFFERING,
    CUT,
    FORWARDED,
    HEAD,
    QUEUED,
    RECEIVED,
    REQUEST,
    RESPONSE,
    SENDING,
    STREAMING,
    WAITING,
)

if TYPE_CHECKING:
    from supervisor.serve.front import FrontConnection
    from supervisor.serve.upstream import UpstreamConnection

PING = b"/ping"
PING_METHODS = frozenset({b"GET", b"HEAD", b"POST"})
EXECUTION_PARAMETERS = b"/execution-parameters"
# A streamed body waiting for its backend connection: past this, the client's reading pauses.
PENDING_LIMIT = 256 * 1024


def error_body(text: str) -> bytes:
    import orjson

    return bytes(orjson.dumps({"error": text}))


class Exchange:
    """One request and its response."""

    __slots__ = (
        "body", "bytes_out", "client", "conn", "continued", "finished", "forwarded", "framing",
        "front", "head", "headers", "pending", "received", "refusal", "req", "reserved", "resp",
        "retried", "started_at", "status", "streamed", "swallow", "timer", "upstream",
        "upstream_keep_alive", "url", "written",
    )

    def __init__(self, conn: FrontConnection, queued: bool) -> None:
        self.conn = self.client = conn  # (client: what the backend connection corks)
        front = self.front = conn.front
        self.req = HEAD
        self.resp = QUEUED if queued else WAITING
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: Head | None = None
        self.refusal: Refusal | None = None
        self.body: list[bytes] = []  # the body held: all of a kept one, or what waits to be sent
        self.pending = 0  # bytes of a streamed body waiting for the backend connection
        self.received = 0  # body bytes received
        self.reserved = 0  # bytes of the shared buffer budget held
        self.continued = False  # 100 Continue sent
        self.upstream: UpstreamConnection | None = None
        self.forwarded = False  # counted among the backend's requests in flight
        self.written = False  # some of the request was written to a backend connection
        self.streamed = False  # its body went out in pieces: a retry could not send it again
        self.retried = False
        self.status = 0
        self.bytes_out = 0
        self.framing: http.ResponseHead | None = None
        self.upstream_keep_alive = False
        self.swallow = False
        self.timer: Any = None
        self.finished = False
        self.started_at = time.monotonic()
        front.in_flight += 1

    def _req(self, event: str) -> str:
        state = self.req = REQUEST[self.req, event]
        return state

    def _resp(self, event: str) -> str:
        state = self.resp = RESPONSE[self.resp, event]
        return state

    @property
    def path(self) -> bytes:
        return self.head.path if self.head is not None else self.url.partition(b"?")[0]

    @property
    def method(self) -> bytes:
        return self.head.method if self.head is not None else b""

    # the request, from the client's parser -----------------------------------
    def on_head(self, method: bytes, version: str, keep_alive: bool) -> None:
        judged = judge(method, self.url, version, keep_alive, self.headers)
        self.headers = []
        if isinstance(judged, Refusal):
            self.refuse(judged)
            return
        self.head = head = judged
        front = self.front
        length = head.content_length
        if length is not None and not head.chunked:
            if front.max_body is not None and length > front.max_body:
                self.refuse(Refusal(413, f"request body of {length} bytes is over the limit of "
                                         f"{front.max_body} bytes"))
                return
            if length <= front.buffer_request and front.buffered + length <= front.buffer_total:
                front.buffered += length
                self.reserved = length
                event = "buffer"
            else:
                event = "stream"
        else:  # chunked (kept until a limit is met), or no body at all (complete at once)
            event = "buffer" if front.buffer_request or not head.chunked else "stream"
        self.req = REQUEST[self.req, event]
        if self.resp == WAITING and (event == "stream" or head.expect_continue):
            self._proceed()

    def on_body(self, data: bytes) -> None:
        state = self.req = REQUEST[self.req, "body"]
        if state == CUT:
            return  # answered already: the rest of the body is dropped
        received = self.received = self.received + len(data)
        front = self.front
        if front.max_body is not None and received > front.max_body:
            self.fail_request(413, f"request body over the limit of {front.max_body} bytes")
            return
        if state == BUFFERING:
            extra = received - self.reserved
            if extra <= 0 or (received <= front.buffer_request and front.reserve(extra)):
                if extra > 0:
                    self.reserved = received
                self.body.append(data)
                return
            self.req = REQUEST[state, "overflow"]  # too large to keep: streamed from here on
            if self.resp == WAITING:
                self._proceed()
        upstream = self.upstream
        if upstream is not None:
            head = self.head
            assert head is not None
            self.conn.cork_upstream(upstream)
            upstream.write(http.chunk(data) if head.chunked else data)
        else:
            self.body.append(data)
            self.pending += len(data)
            if self.pending > PENDING_LIMIT:
                self.conn.pause_for("pending", True)

    def on_complete(self) -> None:
        previous = self.req
        state = self.req = REQUEST[previous, "complete"]
        if state == CUT:
            return
        if previous == STREAMING:
            upstream = self.upstream
            head = self.head
            if upstream is not None and head is not None and head.chunked:
                self.conn.cork_upstream(upstream)
                upstream.write(http.LAST_CHUNK)
        if self.resp == WAITING:
            self._proceed()

    def refuse(self, refusal: Refusal) -> None:
        """A request we will not take, judged at its head: answered at its turn, then closed."""
        self._req("refuse")
        self.refusal = refusal
        self.conn.stop_reading_requests()
        if self.resp == WAITING:
            self._proceed()

    def fail_request(self, status: int, reason: str) -> None:
        """The request broke off after its head (bad framing, over the limit): answered, closed."""
        self._req("cut")
        self.conn.stop_reading_requests()
        resp = self.resp
        if resp in (QUEUED, WAITING):
            self.refusal = Refusal(status, reason)
            if resp == WAITING:
                self._proceed()
        elif resp == FORWARDED:
            self._drop_upstream()  # it holds half a request: never reused
            self._reply(status, reason)
        else:  # SENDING: the client sees a cut response
            self.cut()

    # its turn ------------------------------------------------------------------
    def turn(self) -> None:
        """The exchanges before it are answered: its answer may go out now."""
        self._resp("turn")
        self._proceed()

    def _proceed(self) -> None:
        """Its turn (WAITING): answer it, or send it on, as soon as it can be."""
        if self.refusal is not None:
            refusal = self.refusal
            self._reply(refusal.status, refusal.reason)
            return
        head = self.head
        req = self.req
        if head is None or req == HEAD:
            return  # its head is still arriving
        if head.expect_continue and not self.continued and req in (BUFFERING, STREAMING):
            self.continued = True
            self.conn.write(http.CONTINUE)
        if req == BUFFERING:
            return  # the whole body first
        front = self.front
        if head.path == PING and head.method in PING_METHODS:
            if front.ready:
                keep = self._keep_client()
                head_only = head.method == b"HEAD"
                self._local(front.ping_response(head_only, close=not keep),
                            0 if head_only else len(front.PING_BODY))
            else:
                self._reply(503, front.not_ready_reason)
            return
        if not front.ready:
            self._reply(503, front.not_ready_reason)
            return
        self.resp = RESPONSE[self.resp, "forward"]
        self.forwarded = True
        front.backend_in_flight += 1
        if front.request_timeout:
            self.timer = front.loop.call_later(front.request_timeout, self.timed_out)
        # An upgrade gets a connection of its own: a tunnel is never returned to the pool.
        front.pool.acquire(self, fresh=head.websocket)

    # the backend connection (upstream.Listener) --------------------------------
    def upstream_ready(self, upstream: UpstreamConnection) -> None:
        if self.resp != FORWARDED:  # cut meanwhile: nothing was written on it
            self.front.pool.release(upstream)
            return
        self.upstream = upstream
        head = self.head
        assert head is not None
        data = forward_head(head, self.conn.peer)
        body = self.body
        if self.req == RECEIVED:  # all of it: kept for a retry until the answer starts
            if body:
                whole = body[0] if len(body) == 1 else b"".join(body)
                data += http.chunk(whole) + http.LAST_CHUNK if head.chunked else whole
            elif head.chunked:
                data += http.LAST_CHUNK
        else:  # streamed: what came so far, the rest as it comes
            self.body, self.pending = [], 0
            self.streamed = True
            for piece in body:
                data += http.chunk(piece) if head.chunked else piece
            self.conn.pause_for("pending", False)
        self.written = True
        upstream.write(data)
        if self.conn.write_paused:
            upstream.pause_reading(True)

    def upstream_failed(self, reason: str) -> None:
        resp = self.resp
        self._drop_upstream()
        if resp == FORWARDED:
            self._reply(502, reason)
        elif resp == SENDING:
            self.cut()

    def upstream_lost(self, upstream: UpstreamConnection) -> None:
        self.upstream = None
        resp = self.resp
        framing = self.framing
        if resp == SENDING:
            assert framing is not None
            if framing.close_delimited:  # its body ends where the connection does
                if framing.rechunk:
                    self.conn.write(http.LAST_CHUNK)
                self._sent(framing.close)
            else:  # truncated: the client must see it was, so its connection is closed
                self.cut()
            return
        if resp != FORWARDED:
            return
        head = self.head
        assert head is not None
        if (not self.retried and self.req == RECEIVED and not self.streamed
                and (head.idempotent or not self.written)):
            # It cannot have been processed, or processing it twice does no harm: once more,
            # with its whole body, on a new connection.
            self._resp("retry")
            self.retried = True
            self.written = False
            self.front.pool.acquire(self, fresh=True)
            return
        self._reply(502, "the model server closed the connection before answering")

    def response_head(self, status: int, raw: bytes, keep_alive: bool) -> None:
        head = self.head
        assert head is not None
        if status < 200:
            if status == 101 and head.websocket and self.upstream is not None:
                self._switch(raw, self.upstream)
                return
            # 100 Continue (ours went already), 103 Early Hints: not forwarded
            self.resp = RESPONSE[self.resp, "interim"]
            return
        self.status = status
        self.upstream_keep_alive = keep_alive
        self.body = []  # no retry from here: the kept body is let go
        if self.reserved:
            self.front.buffered -= self.reserved
            self.reserved = 0
        if status == 404 and head.path == EXECUTION_PARAMETERS and head.method == b"GET":
            self._resp("swallow")
            self.swallow = True
            return
        keep = (head.keep_alive and self.req == RECEIVED and not self.front.draining
                and self.conn.reusable and not head.websocket)
        framing = self.framing = http.response_head(raw, status, head.method == b"HEAD",
                                                     head.version, keep)
        self.resp = RESPONSE[self.resp, "head"]
        self.conn.write(framing.data)
        if head.method == b"HEAD":
            upstream = self.upstream
            if upstream is not None:  # llhttp cannot be told the request was HEAD
                upstream.new_parser()
            self.response_complete()

    def _switch(self, raw: bytes, upstream: UpstreamConnection) -> None:
        """The backend's 101: passed on as it came; both connections become one tunnel."""
        from supervisor.serve.tunnel import Tunnel

        head = self.head
        assert head is not None
        self.resp = RESPONSE[self.resp, "switch"]
        self.status = 101
        self.upstream = None
        conn = self.conn
        conn.write(raw)
        conn.uncork()  # the 101 goes before any byte of the tunnel
        tunnel = Tunnel(self.front, conn, upstream, head.path)
        upstream.start_tunnel(tunnel)
        conn.start_tunnel(tunnel)
        self._finish(False)  # an answered exchange: the drain does not wait for a tunnel

    def response_body(self, data: bytes) -> None:
        if self.swallow:
            self._resp("swallow")
            return
        self.resp = RESPONSE[self.resp, "body"]
        self.bytes_out += len(data)
        framing = self.framing
        assert framing is not None
        self.conn.write(http.chunk(data) if framing.rechunk else data)

    def response_complete(self) -> None:
        if self.resp == FORWARDED and not self.swallow:
            self._resp("interim")  # the end of a 1xx: the real answer follows
            return
        upstream, self.upstream = self.upstream, None
        framing = self.framing
        if upstream is not None:
            if (self.upstream_keep_alive and self.req == RECEIVED
                    and not (framing is not None and framing.close_delimited)):
                self.front.pool.release(upstream)
            else:
                upstream.close()
        if self.swallow:
            self._local(http.simple_response(200, self.front.execution_parameters,
                                             close=not self._keep_client()),
                        len(self.front.execution_parameters))
            return
        assert framing is not None
        if framing.rechunk:
            self.conn.write(http.LAST_CHUNK)
        self._sent(framing.close)

    def backend_paused(self, paused: bool) -> None:
        """The backend takes the body slower than the client sends it."""
        self.conn.pause_for("backend", paused)

    # the client ----------------------------------------------------------------
    def client_paused(self, paused: bool) -> None:
        """The client reads slower than the backend answers."""
        if self.upstream is not None:
            self.upstream.pause_reading(paused)

    def client_stalled(self, what: str) -> None:
        """The client sent (or read) nothing for the client timeout: answered 408 if we can."""
        if self.resp in (WAITING, FORWARDED) and self.req != RECEIVED:
            self._drop_upstream()
            self._reply(408, f"the client {what}")
        else:
            self.cut()

    def client_lost(self) -> None:
        """The client went away: nothing more to send; the backend connection is not reused."""
        self.cut()

    def timed_out(self) -> None:
        self.timer = None
        resp = self.resp
        self._drop_upstream()
        if resp == FORWARDED:
            self._reply(504, f"the model server did not answer within "
                             f"{self.front.request_timeout:g} s")
        elif resp == SENDING:
            self.cut()

    # ending ------------------------------------------------------------------
    def cut(self) -> None:
        """Cut short: the client connection closes; a backend connection it held is closed."""
        self._req("cut")
        was = self.resp
        self._resp("cut")
        self._drop_upstream()
        if not self.finished and was != self.resp:
            self._finish(True)

    def abandon(self) -> None:
        """After a bug of ours: let go of everything without asking the state machines."""
        self.req = self.resp = CUT
        self._drop_upstream()
        if not self.finished:
            self.finished = True
            if self.timer is not None:
                self.timer.cancel()
            self._release_body()
            if self.forwarded:
                self.front.backend_in_flight -= 1
            self.front.exchange_ended()

    def _drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()

    def _keep_client(self) -> bool:
        """Whether the client connection stays open after this answer."""
        head = self.head
        return (head is not None and head.keep_alive and self.req == RECEIVED
                and self.refusal is None and not self.front.draining and self.conn.reusable
                and not head.websocket)  # the client sent no more requests: it awaited a 101

    def _reply(self, status: int, reason: str) -> None:
        """An answer of ours (refusal, 502, 503, 504, ...), JSON with the reason."""
        head = self.head
        close = not self._keep_client()
        body = error_body(reason)
        self.status = status
        self.bytes_out = len(body)
        self.conn.write(http.simple_response(status, body, close=close,
                                             head_only=head is not None
                                             and head.method == b"HEAD"))
        self._sent(close)

    def _local(self, response: bytes, body_size: int) -> None:
        """A whole 200 of ours (ping, execution parameters)."""
        self.status = 200
        self.bytes_out = body_size
        self.conn.write(response)
        self._sent(not self._keep_client())

    def _sent(self, close: bool) -> None:
        self.resp = RESPONSE[self.resp, "sent"]
        if self.req != RECEIVED:
            self._req("cut")  # answered before its body was all in: the rest is dropped
            close = True
        self._finish(close)

    def _release_body(self) -> None:
        self.body = []
        if self.reserved:
            self.front.buffered -= self.reserved
            self.reserved = 0

    def _finish(self, close: bool) -> None:
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.reserved:
            self._release_body()
        front = self.front
        if self.forwarded:
            front.backend_in_flight -= 1
        front.in_flight -= 1
        if not front.in_flight:
            front.wake_idle_waiters()
        if (self.head is None or self.head.path != PING) and self.status != 101:
            front.access_log(self)  # (a tunnel's record is written when it ends)
        self.conn.exchange_finished(self, close)
