"""WebSocket tunnels through `sm-entry serve` (SageMaker's bidirectional streaming), and the rest of
the 2025-26 serving contract: no body cap unless one is set, POST /ping, the contract's headers.

Clients are the `websockets` library, as the platform's sidecar; servers are
the `websockets` library's own (tests/children/ws_backend.py, which records
each frame it receives) and uvicorn with Starlette routes
(tests/children/ws_app.py).
"""

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.front_harness import read_responses
from tests.serve_support import UVICORN, serve
from tests.support import CHILDREN, wait_until

__all__ = ["serve"]  # the fixture, used by name

WS_BACKEND = [sys.executable, str(CHILDREN / "ws_backend.py"), "{port}"]
WS_APP = [*UVICORN, "--port", "{port}", "--ws", "websockets", "ws_app:app"]
RECORDING = [sys.executable, str(CHILDREN / "recording_backend.py"), "{port}"]
STREAM = "/invocations-bidirectional-stream"


def url(server, path=STREAM):
    return f"ws://127.0.0.1:{server.port}{path}"


def tunnel_records(server, count, timeout=10):
    """The access log's `tunnel` records (on stdout), once `count` are there."""
    found = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        try:
            line = server.run.wait_for_line(r'"msg":"tunnel"', timeout=max(0.1, deadline - time.monotonic()))
        except AssertionError:
            break
        found.append(json.loads(line.string))
    return found


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(pid)


def test_frames_pass_untouched_both_ways(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()
    with connect(url(server, STREAM + "?model=a&x=1"), max_size=None, compression=None) as ws:
        ws.send("héllo")
        assert "héllo" == ws.recv()
        ws.send(b"\x00\xff" * 1000)
        assert b"\x00\xff" * 1000 == ws.recv()
        ws.send(["part one, ", "part two, ", "part three"])  # one message, fragmented
        assert "part one, part two, part three" == ws.recv()
        ws.send([b"\x01", b"\x02"])
        assert b"\x01\x02" == ws.recv()
        assert ws.ping(b"are you there").wait(5)
        ws.send("record")
        seen = json.loads(ws.recv())
        ws.send("close 4001 a reason of the server's")
        with pytest.raises(ConnectionClosed):
            ws.recv()
        assert (4001, "a reason of the server's") == (ws.close_code, ws.close_reason)
    assert STREAM + "?model=a&x=1" == seen["path"]  # the path and query, as sent
    assert [["text", ["héllo"]], ["binary", ["00ff" * 1000]],
            ["text", ["part one, ", "part two, ", "part three", ""]],  # frame by frame
            ["binary", ["01", "02", ""]]] == seen["received"]
    record, = tunnel_records(server, 1)
    assert (STREAM, 101, "server") == (record["path"], record["status"], record["closed_by"])
    assert record["bytes_in"] > 2000 and record["bytes_out"] > 2000
    assert 0 == server.stop()


def test_uvicorn_and_starlette_routes_with_any_path_and_query(serve):
    server = serve(WS_APP)
    server.wait_ready()
    for path in (STREAM + "?q=1", "/v1/listen?model=nova"):
        with connect(url(server, path)) as ws:
            ws.send("query")
            assert path.partition("?")[2] == ws.recv()
            ws.send(b"bytes")
            assert b"bytes" == ws.recv()
    assert 0 == server.stop()


def test_an_upgrade_the_server_refuses_is_answered_as_it_answers(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()
    with pytest.raises(InvalidStatus) as refused:
        connect(url(server, "/reject"))
    assert 403 == refused.value.response.status_code
    assert 0 == server.stop()


def test_an_upgrade_while_the_model_loads_is_503(serve):
    server = serve(WS_APP, env={"LOAD_SECONDS": "30"})
    wait_until(lambda: server.ping() == 503, what="the front")
    with pytest.raises(InvalidStatus) as refused:
        connect(url(server))
    assert 503 == refused.value.response.status_code
    assert 0 == server.stop()


def test_twenty_tunnels_at_once(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()

    def talk(n):
        with connect(url(server)) as ws:
            for i in range(50):
                ws.send(f"{n}-{i}")
                assert f"{n}-{i}" == ws.recv()
        return n

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        assert list(range(20)) == sorted(pool.map(talk, range(20)))
    assert 0 == server.stop()


def test_a_hundred_megabytes_through_one_tunnel_with_our_memory_flat(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()
    front = server.front_pid()
    before = rss(front)
    block = os.urandom(1 << 20)
    peak = 0
    with connect(url(server), max_size=None, compression=None) as ws:
        ws.send("count")
        for i in range(100):
            ws.send(block)
            if i % 10 == 0:
                peak = max(peak, rss(front))
        ws.send("total")
        assert str(100 << 20) == ws.recv()
    assert peak - before < 32 << 20, peak - before
    assert 0 == server.stop()


def test_a_client_that_stops_reading_pauses_the_server(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()
    front = server.front_pid()
    before = rss(front)
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert b" 101 " in raw.recv(4096).split(b"\r\n")[0]
    payload = b"stream 2000"  # 125 MiB the server wants to send; we read none of it
    raw.sendall(b"\x81" + bytes([0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload)
    time.sleep(3)
    assert rss(front) - before < 32 << 20  # the server waits: nothing piles up in the front
    raw.close()
    assert 0 == server.stop()


def test_drain_with_open_tunnels_ends_within_the_stop_timeout(serve):
    server = serve(WS_APP, "--stop-timeout", "10")
    server.wait_ready()
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(url(server))) for _ in range(3)]
        for ws in sockets:
            ws.send("hi")
            assert "hi" == ws.recv()
        started = time.monotonic()
        server.run.kill(signal.SIGTERM)
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=15)
            assert 1012 == ws.close_code  # uvicorn's "service restart", passed through
    assert 0 == server.run.proc.wait(15)
    assert time.monotonic() - started < 10


def test_tunnels_still_open_at_the_stop_timeout_are_closed_by_the_front(serve):
    server = serve(WS_BACKEND, "--stop-timeout", "2", env={"IGNORE_SIGTERM": "1"})
    server.wait_ready()
    with connect(url(server)) as ws:
        ws.send("hi")
        assert "hi" == ws.recv()
        started = time.monotonic()
        server.run.kill(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)
        assert (1001, "going away") == (ws.close_code, ws.close_reason)
        assert time.monotonic() - started < 8
    server.run.proc.wait(30)
    record, = tunnel_records(server, 1)
    assert record["closed_by"].startswith("front: stop timeout")


def test_a_restarted_model_server_closes_its_tunnels_and_new_ones_reach_the_new_one(serve):
    server = serve(WS_BACKEND)
    server.wait_ready()
    first = server.event("model server starting")["child_pid"]
    with connect(url(server)) as ws:
        ws.send("hi")
        assert "hi" == ws.recv()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)
    server.event("model server restarting")
    server.wait_ready()
    with connect(url(server)) as ws:
        ws.send("again")
        assert "again" == ws.recv()
    assert 0 == server.stop()


def test_idle_tunnels_outlive_the_client_timeout_and_die_at_the_tunnel_idle_timeout(serve):
    server = serve(WS_BACKEND, "--client-timeout", "1")
    server.wait_ready()
    with connect(url(server)) as ws:
        time.sleep(2.5)  # silent, more than two client timeouts long
        ws.send("still here")
        assert "still here" == ws.recv()
    assert 0 == server.stop()
    server = serve(WS_BACKEND, "--tunnel-idle-timeout", "1")
    server.wait_ready()
    with connect(url(server)) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert 1001 == ws.close_code
    assert 0 == server.stop()


# the rest of the contract ------------------------------------------------------
def test_no_body_cap_unless_one_is_set(serve):
    body = os.urandom(20 << 20)
    server = serve(RECORDING)
    server.wait_ready()
    status, _, answer = server.request("POST", "/invocations", body=body, timeout=60)
    assert (200, True) == (status, answer == body)
    assert 0 == server.stop()
    server = serve(RECORDING, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "6"})
    server.wait_ready()
    assert 413 == server.request("POST", "/invocations", body=body[:7 << 20], timeout=60)[0]
    status, _, answer = server.request("GET", "/execution-parameters",
                                       headers={"X-Behave": "status=404"})  # ours, then
    assert 6 == json.loads(answer)["MaxPayloadInMB"]
    assert 0 == server.stop()
    server = serve(RECORDING, "--max-payload-mb", "1")
    server.wait_ready()
    assert 413 == server.request("POST", "/invocations", body=body[:(1 << 20) + 1])[0]
    assert 0 == server.stop()


def test_ping_answers_get_head_and_post_alike(serve):
    server = serve(RECORDING)
    server.wait_ready()
    for method, body in (("GET", None), ("HEAD", None), ("POST", b"{}")):
        status, _, answer = server.request(method, "/ping", body=body)
        assert 200 == status
        assert (b"" if method == "HEAD" else b'{"status":"healthy"}') == answer
    assert 0 == server.stop()


IN_HEADERS = [(b"X-Amzn-SageMaker-Custom-Attributes", b"a=1"),
              (b"X-Amzn-SageMaker-Custom-Attributes", b"b=2, c=3"),
              (b"X-Amzn-SageMaker-Inference-Id", b"inf-7"),
              (b"X-Amzn-SageMaker-Target-Model", b"model-4.tar.gz"),
              (b"X-Amzn-SageMaker-Session-Id", b"sess-1")]
OUT_HEADERS = [(b"X-Amzn-SageMaker-Custom-Attributes", b"out=1"),
               (b"X-Amzn-SageMaker-Custom-Attributes", b"out=2"),
               (b"X-Amzn-SageMaker-New-Session-Id", b"sess-2; Expires=2026-12-08T00:00:00Z"),
               (b"X-Amzn-SageMaker-Closed-Session-Id", b"sess-1")]


def test_the_contracts_headers_pass_unchanged_both_ways_repeated_ones_in_order(serve, tmp_path):
    record = tmp_path / "records.jsonl"
    server = serve(RECORDING, env={"RECORD_FILE": str(record)})
    server.wait_ready()
    answer = b"".join(b"X-Answer-Header: %b: %b\r\n" % pair for pair in OUT_HEADERS)
    request = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Behave: headers\r\n"
               + b"".join(b"%b: %b\r\n" % pair for pair in IN_HEADERS)
               + answer + b"Content-Length: 2\r\n\r\nhi")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(request)
        (status, _, body), = read_responses(client, 1)
        client.sendall(request)
        client.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:  # the raw head, to see the lines in their order
            data += client.recv(65536)
    assert (200, b"hi") == (status, body)
    head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert [b"%b: %b" % pair for pair in OUT_HEADERS] == \
        [line for line in head if line.lower().startswith(b"x-amzn-")]
    assert 0 == server.stop()
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    sent = next(r for r in seen if r.get("target") == "/invocations")["headers"]
    assert [[k.decode(), v.decode()] for k, v in IN_HEADERS] == \
        [h for h in sent if h[0].lower().startswith("x-amzn-")]


def test_a_streamed_answer_leaves_the_front_chunk_by_chunk(serve):
    server = serve(RECORDING)
    server.wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Behave: drip=5:0.3\r\n"
                       b"Content-Length: 0\r\n\r\n")
        lags = []
        data = b""
        while b"0\r\n\r\n" not in data:
            piece = client.recv(65536)
            now = time.monotonic()
            assert piece
            data += piece
            for sent in _stamps(piece):
                lags.append(now - sent)
    assert 5 == len(lags)
    assert max(lags) < 0.2, lags  # each chunk left as it came (0.3 s apart), not at the end
    assert 0 == server.stop()


def _stamps(piece):
    """The send times the recording backend wrote in its drip chunks (`t=...;`)."""
    return [float(part.split(b";")[0]) for part in piece.split(b"t=")[1:]]
