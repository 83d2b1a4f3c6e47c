"""A model server for the front's tests that records every request it receives, parsed by h11.

h11 is a parser independent of the front's llhttp, and strict: what it
accepts is framed right. Each complete request is recorded (method, target,
headers, body length and hash, the connection it came on); each connection
that ends with a request half received is counted, so a test can tell that
the front never leaves one behind.

How it answers a request is chosen by its `X-Behave` header:
  (none)        200, the body echoed with a Content-Length
  close         close the connection without answering
  reset         abort the connection (RST) without answering
  slow=S        answer after S seconds
  chunked=N     the body echoed in N chunks, chunked
  nolength      the body echoed with no length: the response ends at the close
  early         200 at once, without reading the body; then the connection is closed
  big=N         N bytes, streamed in 64 KiB pieces, with a Content-Length
  hold          never answer (until the test ends)
  status=N      answer N (with the echo)
  headers       answer with the headers given as `X-Answer-Header: Name: value` lines
  drip=N:S      N chunks S seconds apart, each `t=<time.monotonic() when sent>;`
  exit          the whole server exits at once (a crash), no answer
  closeonce     the first request with a given X-Id: closed at its head; then answered
`GET /ping` answers 200; `GET /__state` answers the records as JSON.

Run as a program: `recording_backend.py PORT` (or SM_ENTRY_BACKEND_PORT),
also writing each record as a JSON line to $RECORD_FILE when set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from typing import Any

import h11


class Recorder:
    """What the backend saw; shared by its connections."""

    def __init__(self, record_file: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.partial_closes = 0  # connections that ended in the middle of a request
        self.open_partial = 0  # connections open now in the middle of a request
        self.connections = 0
        self.record_file = record_file
        self.connections_open: set[Any] = set()
        self.closed_once: set[bytes | None] = set()

    def record(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)
        if self.record_file:
            with open(self.record_file, "a") as out:
                out.write(json.dumps(entry) + "\n")

    def state(self) -> dict[str, Any]:
        return {"requests": self.requests, "partial_closes": self.partial_closes,
                "open_partial": self.open_partial, "connections": self.connections}


class BackendConnection(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.conn = h11.Connection(h11.SERVER)
        self.transport: Any = None
        self.number = 0
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.partial = False
        self.busy = False  # a request is being answered (one at a time)
        self.pending = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.recorder.connections += 1
        self.number = self.recorder.connections
        self.recorder.connections_open.add(self)

    def data_received(self, data: bytes) -> None:
        if self.busy:
            self.pending += data
            return
        self.conn.receive_data(data)
        self._events()

    def eof_received(self) -> bool | None:
        if not self.busy:
            self.conn.receive_data(b"")
            self._events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.recorder.connections_open.discard(self)
        if self.partial:
            self.recorder.partial_closes += 1
            self.recorder.open_partial -= 1
            self.partial = False

    def _set_partial(self, partial: bool) -> None:
        if partial != self.partial:
            self.partial = partial
            self.recorder.open_partial += 1 if partial else -1

    def _events(self) -> None:
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.recorder.record({"error": str(exc), "conn": self.number})
                self.transport.close()
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self.request = event
                self.body = bytearray()
                self._set_partial(True)
                headers = dict(event.headers)
                behave = headers.get(b"x-behave", b"").decode()
                if behave == "closeonce" and headers.get(b"x-id") not in self.recorder.closed_once:
                    self.recorder.closed_once.add(headers.get(b"x-id"))
                    self._record(complete=False)
                    self._set_partial(False)
                    self.transport.close()  # at its head, before reading its body
                    return
                if behave == "early":
                    self._record(complete=False)
                    self._answer(200, b"early", close=True)
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._set_partial(False)
                self._record(complete=True)
                self.busy = True
                asyncio.get_running_loop().create_task(self._respond())
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return
            elif event is h11.PAUSED:
                return

    def _record(self, complete: bool) -> None:
        request = self.request
        assert request is not None
        headers = [[k.decode("latin-1"), v.decode("latin-1")]
                   for k, v in request.headers.raw_items()]
        self.recorder.record({
            "conn": self.number, "method": request.method.decode(),
            "target": request.target.decode("latin-1"), "headers": headers,
            "body_len": len(self.body), "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "complete": complete,
        })

    async def _respond(self) -> None:
        request = self.request
        assert request is not None
        headers = dict(request.headers)
        behave = headers.get(b"x-behave", b"").decode()
        body = bytes(self.body)
        name, _, value = behave.partition("=")
        if request.target == b"/__state":
            self._answer(200, json.dumps(self.recorder.state()).encode())
        elif request.target == b"/ping":
            self._answer(200, b"healthy")
        elif name == "close":
            self.transport.close()
        elif name == "reset":
            self.transport.abort()
        elif name == "exit":
            os._exit(3)
        elif name == "hold":
            await asyncio.sleep(3600)
        elif name == "slow":
            await asyncio.sleep(float(value))
            self._answer(200, body)
        elif name == "chunked":
            self._send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
            pieces = max(1, int(value))
            size = max(1, -(-len(body) // pieces))
            for start in range(0, len(body), size):
                self._send(h11.Data(data=body[start:start + size]))
                await asyncio.sleep(0.01)
            self._send(h11.EndOfMessage())
        elif name == "nolength":  # h11 would frame it: written by hand
            self.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
            self.transport.close()
            return
        elif name == "big":
            total = int(value)
            self._send(h11.Response(status_code=200, headers=[("Content-Length", str(total))]))
            block = b"x" * 65536
            sent = 0
            while sent < total:
                piece = block[: min(len(block), total - sent)]
                self._send(h11.Data(data=piece))
                sent += len(piece)
                await asyncio.sleep(0)
            self._send(h11.EndOfMessage())
        elif name == "status":
            self._answer(int(value), body)
        elif name == "headers":  # answer with the headers each X-Answer-Header gives
            extra = [tuple(v.decode().split(": ", 1)) for k, v in request.headers.raw_items()
                     if k.lower() == b"x-answer-header"]
            self._send(h11.Response(status_code=200, headers=[
                *extra, ("Content-Length", str(len(body)))]))
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        elif name == "drip":  # N chunks, S seconds apart, each saying when it was sent
            count, pause = value.split(":")
            self._send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
            for _ in range(int(count)):
                self._send(h11.Data(data=b"t=%.6f;" % time.monotonic()))
                await asyncio.sleep(float(pause))
            self._send(h11.EndOfMessage())
        else:
            self._answer(200, body)
        self._next_request()

    def _answer(self, status: int, body: bytes, close: bool = False) -> None:
        headers = [("Content-Length", str(len(body))), ("Content-Type", "application/octet-stream")]
        if close:
            headers.append(("Connection", "close"))
        self._send(h11.Response(status_code=status, headers=headers))
        self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())
        if close:
            self.transport.close()

    def _send(self, event: Any) -> None:
        if self.transport.is_closing():
            return
        try:
            data = self.conn.send(event)
        except h11.LocalProtocolError:
            self.transport.close()
            return
        if data:
            self.transport.write(data)

    def _next_request(self) -> None:
        self.busy = False
        if self.transport.is_closing():
            return
        if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            self.transport.close()
            return
        try:
            self.conn.start_next_cycle()
        except h11.LocalProtocolError:
            self.transport.close()
            return
        pending, self.pending = self.pending, b""
        if pending:  # (h11 takes empty data for the end of the connection)
            self.conn.receive_data(pending)
        self._events()


async def start(recorder: Recorder, host: str = "127.0.0.1", port: int = 0) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: BackendConnection(recorder), host, port)


def main() -> None:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["SM_ENTRY_BACKEND_PORT"])
    recorder = Recorder(os.environ.get("RECORD_FILE"))

    async def run() -> None:
        server = await start(recorder, port=port)
        await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
