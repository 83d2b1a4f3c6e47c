"""The access log: one JSON record per proxied request, written in batches, never unbounded.

The record is assembled from a prefix rendered once and the few fields of
the request; method and path go through orjson, since they come from the
client. Our stdout may stall (a log driver that stops reading): the child's
output then waits in its pipe, but requests keep coming, so while the
writer's queue is full the records are counted and dropped, and one record
says how many once it can be written again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.serve.exchange import Exchange

FLUSH_INTERVAL = 0.2  # seconds: records are written in batches
MAX_BATCH = 2000  # records held before a batch is written anyway
MAX_ROUTES = 256  # (method, path) pairs whose rendering is kept (paths come from clients)


class AccessLog:
    """Records of proxied requests, handed to our stdout's writer."""

    def __init__(self, loop: Any, writer: Any, fields: dict[str, Any]) -> None:
        import orjson

        from supervisor.logs.sinks import format_timestamp

        self._dumps = orjson.dumps
        self._timestamp = format_timestamp
        self.loop = loop
        self.writer = writer
        self.fields = fields
        head = orjson.dumps({"level": "info", "src": "sm-entry", **fields, "msg": "request"})
        self._head = b'",' + head[1:-1] + b',"method":'
        # The ",method,path" part of the records of a method and path (most requests are
        # the same few), and the timestamp of the current millisecond: rendered once each.
        self._routes: dict[tuple[bytes, bytes], bytes] = {}
        self._ts_ms = -1
        self._ts = b""
        self.records: list[bytes] = []
        self.dropped = 0  # records not written: our stdout was not being read
        self.timer: Any = None

    def _route(self, method: bytes, path: bytes) -> bytes:
        dumps = self._dumps
        rendered = (self._head + dumps(method.decode("latin-1")) + b',"path":'
                    + dumps(path.decode("latin-1")))
        if len(self._routes) < MAX_ROUTES:
            self._routes[method, path] = rendered
        return rendered

    def __call__(self, exchange: Exchange) -> None:
        now = time.time()
        millisecond = int(now * 1000)
        if millisecond != self._ts_ms:
            self._ts_ms, self._ts = millisecond, self._timestamp(now).encode()
        head = exchange.head
        key = (head.method, head.path) if head is not None else (b"", exchange.path)
        route = self._routes.get(key) or self._route(*key)
        hundredths = int((time.monotonic() - exchange.started_at) * 100_000)  # of a millisecond
        record = b'{"ts":"%b%b,"status":%d,"bytes_in":%d,"bytes_out":%d,"duration_ms":%d.%02d' % (
            self._ts, route, exchange.status, exchange.received, exchange.bytes_out,
            hundredths // 100, hundredths % 100)
        if head is not None and head.inference_id is not None:
            record += b',"inference_id":' + self._dumps(head.inference_id.decode("latin-1"))
        records = self.records
        records.append(record + b"}")
        if len(records) >= MAX_BATCH:
            self.flush()
        elif self.timer is None:
            self.timer = self.loop.call_later(FLUSH_INTERVAL, self.flush)

    def tunnel(self, tunnel: Any) -> None:
        """One record per WebSocket tunnel, when it ends."""
        self.records.append(self._dumps({
            "ts": self._timestamp(time.time()), "level": "info", "src": "sm-entry", **self.fields,
            "msg": "tunnel", "method": "GET", "path": tunnel.path.decode("latin-1"),
            "status": 101, "bytes_in": tunnel.bytes_in, "bytes_out": tunnel.bytes_out,
            "duration_ms": round((time.monotonic() - tunnel.started_at) * 1000, 2),
            "closed_by": tunnel.closed_by}))
        if self.timer is None:
            self.timer = self.loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.records:
            return
        records, self.records = self.records, []
        if self.writer.full:  # stdout is not being read: never grow without bound
            self.dropped += len(records)
            return
        if self.dropped:
            records.append(self._dumps({
                "ts": self._timestamp(time.time()), "level": "warning", "src": "sm-entry",
                **self.fields, "msg": "access log records dropped: stdout was not being read",
                "dropped": self.dropped}))
            self.dropped = 0
        self.writer.write_record(b"\n".join(records) + b"\n")
