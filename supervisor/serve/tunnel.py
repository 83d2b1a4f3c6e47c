"""A WebSocket tunnel: after the model server's 101, bytes both ways between client and server.

The bytes pass untouched (frames, fragments, masks, pings, close codes):
each read of one side is written to the other, with back-pressure both ways
(a side that does not read pauses the other's reading). A half-close is
passed on. Frames are never decoded; only where each server frame starts is
followed (its header read where one starts in a read, the payload skipped),
so that the front, closing a tunnel at the stop timeout, can place a Close
frame (1001, "going away") between two frames; when the stream is not at a
frame boundary, the TCP connection is closed instead.

A tunnel is not an HTTP request in flight: the drain does not wait for it,
and neither the keep-alive nor the client timeout closes it (the platform's
sidecar pings every 60 s); `--tunnel-idle-timeout` does, when set.
"""

from __future__ import annotations

import time
from typing import Any

from supervisor.serve.states import BACKEND_DONE, CLOSED, TUNNEL_STATES

GOING_AWAY = b"\x88\x0c\x03\xe9going away"  # a Close frame: FIN, opcode 8, 1001, its reason


class Tunnel:
    """One client connection and one backend connection, joined."""

    def __init__(self, front: Any, client: Any, backend: Any, path: bytes) -> None:
        self.front = front
        self.client = client  # front.FrontConnection
        self.backend = backend  # upstream.UpstreamConnection
        self.path = path
        self.state = "relaying"
        self.started_at = time.monotonic()
        self.bytes_in = 0  # from the client
        self.bytes_out = 0  # from the server
        self.reads = 0  # the sweep's sign of activity (--tunnel-idle-timeout)
        self.closed_by = ""
        # Where the server's stream is: bytes of the current frame still to pass, and the
        # start of a frame header a read ended in.
        self.frame_left = 0
        self.partial = b""
        front.tunnels.add(self)

    def _to(self, event: str) -> str:
        state = self.state = TUNNEL_STATES[self.state, event]
        return state

    # bytes ---------------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        if self._to("client data") == CLOSED:
            return
        self.reads += 1
        self.bytes_in += len(data)
        self.backend.transport.write(data)

    def from_backend(self, data: bytes) -> None:
        if self._to("backend data") == CLOSED:
            return
        self.reads += 1
        size = len(data)
        self.bytes_out += size
        if size <= self.frame_left:  # inside one frame's payload: nothing to look at
            self.frame_left -= size
        else:
            self._follow(data)
        self.client.transport.write(data)

    def _follow(self, data: bytes) -> None:
        """Walk the frame headers that start in `data`: where the stream is at its end."""
        buffer = self.partial + data[self.frame_left:] if self.partial else data[self.frame_left:]
        self.partial = b""
        at = 0
        end = len(buffer)
        while True:
            if end - at < 2:
                self.partial, self.frame_left = buffer[at:], 0
                return
            second = buffer[at + 1]
            length = second & 0x7F
            size = 2
            if length == 126:
                size = 4
            elif length == 127:
                size = 10
            if second & 0x80:
                size += 4  # masked (a server should not; passed on all the same)
            if end - at < size:
                self.partial, self.frame_left = buffer[at:], 0
                return
            if length >= 126:
                length = int.from_bytes(buffer[at + 2:at + (4 if length == 126 else 10)], "big")
            at += size + length
            if at >= end:
                self.frame_left = at - end
                return

    @property
    def at_frame_boundary(self) -> bool:
        return self.frame_left == 0 and not self.partial

    # back-pressure: a side that does not read pauses the other ------------------
    def client_paused(self, paused: bool) -> None:
        self.backend.pause_reading(paused)

    def backend_paused(self, paused: bool) -> None:
        self.client.pause_for("backend", paused)

    # ends --------------------------------------------------------------------------
    def client_eof(self) -> bool:
        """The client sent its last byte: the server is told; True while the tunnel lives."""
        if self.state == CLOSED:
            return False
        if self._to("client eof") == CLOSED:
            self._end("server")  # the server ended its side first
            return False
        if self.backend.transport.can_write_eof():
            self.backend.transport.write_eof()
        return True

    def backend_eof(self) -> bool:
        if self.state == CLOSED:
            return False
        if self._to("backend eof") == CLOSED:
            self._end("client")  # the client ended its side first
            return False
        if self.client.transport.can_write_eof():
            self.client.transport.write_eof()
        return True

    def client_lost(self) -> None:
        self._end("client")

    def backend_lost(self) -> None:
        self._end("server")

    def close(self, reason: str) -> None:
        """Closed by the front (the stop timeout, the idle timeout): a Close frame if it fits."""
        if self.state == CLOSED:
            return
        if self.at_frame_boundary and self.state != BACKEND_DONE:
            self.client.transport.write(GOING_AWAY)
        self._end(f"front: {reason}")

    def _end(self, by: str) -> None:
        if self.closed_by:
            return
        self.closed_by = by
        self._to("close")
        self.front.tunnels.discard(self)
        self.backend.close()
        self.client.close()
        self.front.access_log.tunnel(self)
