"""The WebSocket tunnel: bytes on untouched, where the server's frames end, half-closes, its record."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.serve.tunnel import GOING_AWAY, Tunnel


class Transport:
    def __init__(self):
        self.written = []
        self.eof = False
        self.closed = False

    def write(self, data):
        self.written.append(data)

    def can_write_eof(self):
        return True

    def write_eof(self):
        self.eof = True


class End:
    """A connection of the front or to the backend, as the tunnel sees it."""

    def __init__(self):
        self.transport = Transport()
        self.closed = 0
        self.paused = []

    def close(self):
        self.closed += 1

    def pause_reading(self, paused):
        self.paused.append(paused)

    def pause_for(self, reason, paused):
        self.paused.append((reason, paused))


class Front:
    def __init__(self):
        self.tunnels = set()
        self.records = []
        self.access_log = self

    def tunnel(self, tunnel):
        self.records.append((tunnel.path, tunnel.bytes_in, tunnel.bytes_out, tunnel.closed_by))


def tunnel():
    front = Front()
    return front, Tunnel(front, End(), End(), b"/invocations-bidirectional-stream")


def frame(payload, opcode=0x2, fin=True, mask=None):
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    masked = 0x80 if mask is not None else 0
    if size < 126:
        head = struct.pack("!BB", first, masked | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, masked | 126, size)
    else:
        head = struct.pack("!BBQ", first, masked | 127, size)
    return head + (mask or b"") + payload


def test_bytes_pass_both_ways_untouched_and_are_counted():
    front, joined = tunnel()
    joined.from_client(b"\x81\x85abcd" + b"x" * 5)
    joined.from_backend(frame(b"hello", 1))
    assert [b"\x81\x85abcd" + b"x" * 5] == joined.backend.transport.written
    assert [frame(b"hello", 1)] == joined.client.transport.written
    assert (11, 7) == (joined.bytes_in, joined.bytes_out)
    assert joined in front.tunnels


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 70000), st.booleans()), min_size=1, max_size=6),
       st.lists(st.integers(1, 200000), max_size=12))
def test_where_the_servers_frames_end_is_followed_however_the_bytes_are_cut(sizes, cuts):
    _, joined = tunnel()
    frames = [frame(b"p" * size, mask=b"mask" if masked else None) for size, masked in sizes]
    stream = b"".join(frames)
    ends = set()
    at = 0
    for piece in frames:
        at += len(piece)
        ends.add(at)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {len(stream)})
    start = 0
    for point in points:
        if point == start:
            continue
        joined.from_backend(stream[start:point])
        assert (point in ends) == joined.at_frame_boundary, (start, point)
        start = point
    assert stream == b"".join(joined.client.transport.written)


def test_a_close_of_the_front_is_a_close_frame_between_frames_else_the_tcp_close():
    front, joined = tunnel()
    joined.from_backend(frame(b"whole"))
    joined.close("stop timeout 25 s")
    assert GOING_AWAY == joined.client.transport.written[-1]
    assert (1, 1) == (joined.client.closed, joined.backend.closed)
    assert [(b"/invocations-bidirectional-stream", 0, 7, "front: stop timeout 25 s")] == \
        front.records
    assert joined not in front.tunnels
    front, cut = tunnel()
    cut.from_backend(frame(b"x" * 300)[:100])  # in the middle of a frame
    cut.close("stop timeout 25 s")
    assert GOING_AWAY not in cut.client.transport.written
    assert GOING_AWAY == bytes.fromhex("880c03e9") + b"going away"  # Close, 12 bytes: 1001


def test_half_closes_pass_on_and_the_first_side_to_end_is_who_closed():
    front, joined = tunnel()
    assert joined.backend_eof()  # the server is done sending: the client is told
    assert joined.client.transport.eof and not joined.backend.transport.eof
    joined.from_client(b"late")  # the client may still send
    assert [b"late"] == joined.backend.transport.written
    assert not joined.client_eof()  # both done: closed
    assert "server" == front.records[0][3]
    front, other = tunnel()
    assert other.client_eof()
    assert other.backend.transport.eof
    assert not other.backend_eof()
    assert "client" == front.records[0][3]


def test_a_lost_side_closes_the_other_once():
    front, joined = tunnel()
    joined.client_lost()
    joined.backend_lost()
    joined.close("stopping")
    assert (1, 1) == (joined.client.closed, joined.backend.closed)
    assert 1 == len(front.records) and "client" == front.records[0][3]
    joined.from_backend(b"after")  # read before the close: dropped
    joined.from_client(b"after")
    assert [] == joined.client.transport.written == joined.backend.transport.written
    assert not joined.client_eof() and not joined.backend_eof()


def test_back_pressure_goes_to_the_other_side():
    _, joined = tunnel()
    joined.client_paused(True)
    joined.backend_paused(True)
    joined.client_paused(False)
    assert [True, False] == joined.backend.paused
    assert [("backend", True)] == joined.client.paused


def test_a_close_after_the_server_is_done_sends_no_close_frame():
    _, joined = tunnel()
    joined.backend_eof()
    joined.close("stopping")
    assert GOING_AWAY not in joined.client.transport.written
