"""`sm-entry serve` against hostile and slow clients, from source and as the binary.

The same raw bytes sent to the front, with a backend that records what it
receives (tests/children/recording_backend.py, h11: a parser of its own) or
real servers (gunicorn with sync workers, uvicorn); each request reaches the
backend at most once, framed as the client sent it, and every client gets
its answers in order.
"""

import concurrent.futures
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.front_harness import closed_by_peer, read_responses
from tests.serve_support import gunicorn, serve
from tests.support import CHILDREN, children_of, signal_blocked, wait_until

__all__ = ["serve"]  # the fixture, used by name

RECORDING = [sys.executable, str(CHILDREN / "recording_backend.py"), "{port}"]


def recording(serve, tmp_path, *options, env=None):
    record = tmp_path / "records.jsonl"
    server = serve(RECORDING, *options, env={"RECORD_FILE": str(record), **(env or {})})
    server.wait_ready()
    server.record = record
    return server


def records(server):
    """What the backend received, its health checks aside."""
    if not server.record.exists():
        return []
    found = [json.loads(line) for line in server.record.read_text().splitlines()]
    return [r for r in found if r.get("target") != "/ping"]


def with_id(server, ident):
    return [r for r in records(server) if dict(r.get("headers", [])).get("X-Id") == ident]


def connect(server):
    client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def statuses(responses):
    return [status for status, _, _ in responses]


def post(body=b"", headers=b"", method=b"POST", path=b"/invocations"):
    return (b"%b %b HTTP/1.1\r\nHost: x\r\n%bContent-Length: %d\r\n\r\n%b"
            % (method, path, headers, len(body), body))


# 1. a stalled body -------------------------------------------------------------------
def test_stalled_bodies_do_not_hold_the_sync_workers_of_the_model_server(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"), "--client-timeout", "3",
                   "--probe-interval", "0.5", "--probe-failures", "2")
    server.wait_ready()
    stalled = [connect(server) for _ in range(2)]
    for client in stalled:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                       + b"0123456789")
    time.sleep(0.5)
    for n in range(6):  # both workers are free: the front holds the stalled bodies
        assert (200, b"%d" % n) == server.request("POST", "/invocations", body=b"%d" % n,
                                                  timeout=5)[::2]
    for client in stalled:  # and drops the stalled clients at the client timeout
        assert [408] == statuses(read_responses(client, 1, timeout=10))
        assert closed_by_peer(client)
        client.close()
    messages = [e["msg"] for e in server.events()]
    assert "model server unhealthy" not in messages and "model server restarting" not in messages
    assert 0 == server.stop()


# 2. busy is not dead --------------------------------------------------------------------
def test_a_server_busy_with_long_requests_is_not_restarted(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"),
                   "--probe-interval", "0.3", "--probe-failures", "2")
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(server.request, "POST", "/invocations", b"long", {"X-Sleep": "5"})
                for _ in range(2)]  # both sync workers busy: /ping cannot be answered
        assert all((200, b"long") == f.result()[::2] for f in slow)
    messages = [e["msg"] for e in server.events()]
    assert "model server unhealthy" not in messages and "model server restarting" not in messages
    busy = [e for e in server.events() if e["msg"].startswith("model server busy")]
    assert busy  # it was seen busy, and said so
    assert 0 == server.stop()


def test_a_server_that_stops_answering_anything_is_restarted(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "--graceful-timeout", "1", "serve_app:app",
                            workers="1"),
                   "--probe-interval", "0.3", "--probe-failures", "2", "--busy-timeout", "2")
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(server.request, "POST", "/invocations", b"x", {"X-Sleep": "30"})
        server.event("model server unhealthy")  # nothing answered for the busy timeout
        assert stuck.result()[0] == 502
    server.wait_ready()
    assert 0 == server.stop()


# 3. never twice --------------------------------------------------------------------------
def test_a_post_is_never_sent_twice_and_an_idempotent_request_once_more(serve, tmp_path):
    server = recording(serve, tmp_path)
    with connect(server) as client:
        client.sendall(post(b"first"))
        assert [200] == statuses(read_responses(client, 1))  # a pooled connection now
        client.sendall(post(b"crash", headers=b"X-Behave: close\r\nX-Id: p1\r\n"))
        assert [502] == statuses(read_responses(client, 1))
        body = b"z" * 30000
        client.sendall(b"PUT /invocations HTTP/1.1\r\nHost: x\r\nX-Behave: closeonce\r\n"
                       b"X-Id: put1\r\nContent-Length: 30000\r\n\r\n" + body[:10000])
        time.sleep(0.3)  # the rest arrives while a retry would reconnect
        client.sendall(body[10000:])
        assert [(200, body)] == [(s, b) for s, _, b in read_responses(client, 1)]
    assert 1 == len(with_id(server, "p1"))
    assert [False, True] == [r["complete"] for r in with_id(server, "put1")]
    assert 0 == server.stop()


# 5. one refused head, then a stop ------------------------------------------------------
def test_a_refused_head_leaves_nothing_in_flight_for_the_drain(serve, tmp_path):
    server = recording(serve, tmp_path, "--stop-timeout", "20")
    with connect(server) as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nX-Big: "
                       + b"a" * 40000 + b"\r\n\r\n")
        assert [431] == statuses(read_responses(client, 1))
    started = time.monotonic()
    assert 0 == server.stop()
    assert time.monotonic() - started < 10  # not the whole stop timeout
    assert "drained" in [e["msg"] for e in server.events()]


# 8. and 9. half-close, pipelining -----------------------------------------------------------
def test_half_close_and_pipelining(serve, tmp_path):
    server = recording(serve, tmp_path, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    with connect(server) as client:
        client.sendall(post(b"bye"))
        client.shutdown(socket.SHUT_WR)
        assert [(200, b"bye")] == [(s, b) for s, _, b in read_responses(client, 1)]
    with connect(server) as client:  # answers in order, the 413 after the slow one
        client.sendall(post(b"slow", headers=b"X-Behave: slow=0.5\r\n")
                       + post(b"x" * (1024 * 1024 + 1)))
        assert [200, 413] == statuses(read_responses(client, 2))
    with connect(server) as client:  # a good request, then garbage: 200, then 400
        client.sendall(post(b"good", headers=b"X-Id: g1\r\n") + b"GARBAGE\r\n\r\n")
        assert [200, 400] == statuses(read_responses(client, 2))
    assert 1 == len(with_id(server, "g1"))
    assert 0 == server.stop()


def test_a_pipelining_client_that_never_reads_does_not_grow_our_memory(serve, tmp_path):
    server = recording(serve, tmp_path)
    front = server.front_pid()
    before = _rss(front)
    with connect(server) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"".join(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Behave: big=40000\r\n\r\n"
                                for _ in range(1000)))
        time.sleep(2)
        grown = _rss(front) - before
        assert grown < 30 << 20, grown  # 40 MB of answers are not held
        assert len(records(server)) < 500  # nor asked for: what fits in the buffers, no more
    assert 0 == server.stop()


def _rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


# 10. h2c: curl --http2 ------------------------------------------------------------------
def test_curl_http2_over_plain_http_gets_an_http_1_1_answer(serve, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("needs curl (make test-deps installs it)")
    server = recording(serve, tmp_path)
    for extra in ([], ["--data-binary", "payload"]):
        done = subprocess.run([curl, "-s", "--http2", "-o", "-", "-w", " %{http_code}",
                               *extra, f"http://127.0.0.1:{server.port}/invocations"],
                              capture_output=True, timeout=30, check=False)
        body = b"payload" if extra else b""
        assert body + b" 200" == done.stdout
    assert 0 == server.stop()


# 12. uvloop in the binary -------------------------------------------------------------
def test_the_front_runs_on_uvloop(serve, tmp_path):
    server = recording(serve, tmp_path)
    assert "uvloop" == server.event("listening")["loop"]
    assert 0 == server.stop()


# 14. a stop signal at any moment ------------------------------------------------------------
@pytest.mark.parametrize("mode", ["proxy", "handoff"])
def test_a_stop_signal_at_any_moment_of_the_start_is_never_lost(serve, mode):
    backend = (gunicorn("--bind", "fd://{fd}", "serve_app:app") if mode == "handoff"
               else gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"))
    for delay in (0.0, 0.02, 0.05, 0.08, 0.12, 0.2, 0.4):
        server = serve(backend, "--listen-mode", mode)
        # From the first instruction that is ours (the bootloader's; from source, our first
        # line: the interpreter's own start is not ours to protect).
        wait_until(lambda pid=server.run.pid: signal_blocked(pid, signal.SIGTERM)
                   or children_of(pid), what="sm-entry to hold its signals")
        time.sleep(delay)
        started = time.monotonic()
        server.run.kill(signal.SIGTERM)
        assert 0 == server.run.proc.wait(20), delay
        assert time.monotonic() - started < 15, delay


# the differential corpus --------------------------------------------------------------
CORPUS = [
    # (name, bytes, the client's statuses, the bodies the backend receives, by X-Id)
    ("content-length", post(b"hello", headers=b"X-Id: a\r\n"), [200], {"a": 5}),
    ("chunked", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: b\r\nTransfer-Encoding: chunked"
                b"\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n", [200], {"b": 5}),
    ("pipelined", post(b"1", headers=b"X-Id: c1\r\n") + post(b"22", headers=b"X-Id: c2\r\n")
     + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", [200, 200, 200], {"c1": 1, "c2": 2}),
    ("valid then garbage", post(b"v", headers=b"X-Id: d\r\n") + b"\x00\x01GARBAGE\r\n\r\n",
     [200, 400], {"d": 1}),
    ("smuggling: both lengths", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: e\r\n"
     b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [400], {}),
    ("smuggling: two lengths", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: f\r\n"
     b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", [400], {}),
    ("smuggling: space before colon", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: g\r\n"
     b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", [400], {}),
    ("smuggling: chunked not last", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: h\r\n"
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", [400], {}),
    ("smuggling: bad chunk size", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: i\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n", [400], {}),
    ("smuggling: signed length", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: j\r\n"
     b"Content-Length: +3\r\n\r\nabc", [400], {}),
    ("smuggling: bare LF", b"POST /invocations HTTP/1.1\nHost: x\nX-Id: k\nContent-Length: 1\n\na",
     [400], {}),
    ("gzip then chunked", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: l\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", [501], {}),
    ("h2c", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: m\r\nConnection: Upgrade, "
     b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
     b"Content-Length: 3\r\n\r\nabcGET /ping HTTP/1.1\r\nHost: x\r\n\r\n", [200, 200], {"m": 3}),
    ("absolute-form ping", b"GET http://elsewhere/ping HTTP/1.1\r\nHost: x\r\nX-Id: n\r\n\r\n",
     [200], {}),
    ("no host", b"GET /invocations HTTP/1.1\r\nX-Id: o\r\n\r\n", [400], {}),
    ("two hosts", b"GET /invocations HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Id: p\r\n\r\n", [400], {}),
    ("expect continue", b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Id: q\r\nExpect: 100-continue"
     b"\r\nContent-Length: 2\r\n\r\nok", [200], {"q": 2}),
    ("http/1.0", b"POST /invocations HTTP/1.0\r\nX-Id: r\r\nContent-Length: 2\r\n\r\nok", [200],
     {"r": 2}),
    ("head too large", b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n",
     [431], {}),
    ("connect", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", [405], {}),
]
SPLIT = {"content-length", "chunked"}  # sent split at every byte of the head


def test_a_corpus_of_raw_requests_reaches_the_backend_as_sent_and_at_most_once(serve, tmp_path):
    server = recording(serve, tmp_path)
    expected_bodies: dict[str, list[int]] = {}
    for name, data, expected, bodies in CORPUS:
        splits = [None]
        if name in SPLIT:
            splits += list(range(1, data.index(b"\r\n\r\n") + 4))
        for split in splits:
            with connect(server) as client:
                if split is None:
                    client.sendall(data)
                else:
                    client.sendall(data[:split])
                    time.sleep(0.002)
                    client.sendall(data[split:])
                got = statuses(read_responses(client, len(expected), timeout=10))
            assert expected == got, (name, split)
            for ident, length in bodies.items():
                expected_bodies.setdefault(ident, []).append(length)
    wait_until(lambda: len(records(server)) >= sum(map(len, expected_bodies.values())),
               what="the backend's records")
    seen: dict[str, list[int]] = {}
    for record in records(server):
        assert "error" not in record, record  # h11 took every forwarded request as valid
        ident = dict(record["headers"]).get("X-Id")
        seen.setdefault(ident, []).append(record["body_len"])
    assert expected_bodies == seen
    assert 0 == server.stop()
