"""`sm-entry serve` in front of real model servers on 127.0.0.1 (gunicorn, uvicorn, plain Python)."""

import concurrent.futures
import hashlib
import http.client
import json
import os
import signal
import socket
import sys
import time
from operator import itemgetter
from pathlib import Path

import pytest

from tests.serve_support import UVICORN, gunicorn, raw_exchange, serve
from tests.support import wait_until

__all__ = ["serve"]  # the fixture, used by name


def test_ping_is_503_while_the_model_loads_and_invocations_do_not_hang(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"), env={"LOAD_SECONDS": "10"})
    wait_until(lambda: server.ping() == 503, what="the front to answer while the model loads")
    started = time.monotonic()
    status, _, body = server.request("POST", "/invocations", body=b"x")
    assert 503 == status and time.monotonic() - started < 2
    assert "starting" in json.loads(body)["error"]
    server.wait_ready()
    assert (200, b"x") == server.request("POST", "/invocations", body=b"x")[::2]
    assert 0 == server.stop()
    ready = [e for e in server.events() if e["msg"] == "model server ready"]
    assert 1 == len(ready) and ready[0]["after_s"] >= 9


def test_a_backend_that_says_unhealthy_with_200_is_not_ready(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"), "--ready-body", "Healthy",
                   env={"PING_BODY": "Unhealthy"})
    wait_until(lambda: server.ping() == 503, what="the front")
    time.sleep(1.0)  # several probes of a backend that answers 200 "Unhealthy"
    assert 503 == server.ping()
    assert 0 == server.stop()


def test_requests_pass_through_with_headers_status_and_bodies_both_ways(serve):
    server = serve(gunicorn("-b", "unix:{socket}", "serve_app:app"),
                   env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"})
    server.wait_ready()
    body = os.urandom(50 * 1024 * 1024)
    status, headers, answer = server.request("POST", "/invocations?x=1", body=body,
                                             headers={"X-Echo-Header": "café", "X-Forwarded-For": "10.0.0.1"})
    assert 200 == status
    assert hashlib.sha256(body).hexdigest() == headers["X-Body-Sha256"]
    assert hashlib.sha256(body).digest() == hashlib.sha256(answer).digest()
    assert "10.0.0.1, 127.0.0.1" == headers["X-Seen-Forwarded-For"]
    status, headers, answer = server.request("POST", "/invocations", headers={"X-Stream-Bytes": str(50 << 20)})
    assert (200, 50 << 20) == (status, len(answer))  # a streamed response with no length
    assert "chunked" == headers.get("Transfer-Encoding")
    assert (404, b"not found") == server.request("GET", "/custom/path")[::2]
    assert 0 == server.stop()


def test_chunked_request_bodies_are_streamed(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"))
    server.wait_ready()
    pieces = [os.urandom(1000 + i) for i in range(50)]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/invocations", body=iter(pieces), encode_chunked=True)
    response = connection.getresponse()
    assert 200 == response.status
    assert b"".join(pieces) == response.read()
    connection.close()
    assert 0 == server.stop()


def test_an_oversized_body_is_413_and_execution_parameters_are_answered(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"),
                   env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
                        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD"})
    server.wait_ready()
    assert 413 == server.request("POST", "/invocations", body=b"x" * (2 << 20))[0]
    assert 200 == server.request("POST", "/invocations", body=b"x" * (1 << 20))[0]
    status, _, body = server.request("GET", "/execution-parameters")
    assert 200 == status
    assert {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1} == json.loads(body)
    line = server.run.wait_for_line(r'"path":"/execution-parameters"', timeout=10)
    assert (200, len(body)) == itemgetter("status", "bytes_out")(json.loads(line.string))
    assert 0 == server.stop()


def test_head_and_expect_continue(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"))
    server.wait_ready()
    status, _, body = server.request("HEAD", "/invocations")
    assert 200 == status and b"" == body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        answer = b""
        while not answer.endswith(b"hello"):
            answer += s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert 0 == server.stop()


def test_a_backend_killed_under_load_is_restarted(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"))
    server.wait_ready()
    master = server.event("model server starting")["child_pid"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        load = [pool.submit(_hammer, server, 2.0) for _ in range(8)]
        time.sleep(0.3)
        os.kill(master, signal.SIGKILL)
        results = [f.result() for f in load]
    assert all(200 in statuses for statuses in results)  # it answered before and after
    assert all(s in (200, 502, 503) for statuses in results for s in statuses)  # never a hang
    server.wait_ready()
    assert 200 == server.request("POST", "/invocations", body=b"again")[0]
    restarting = server.event("model server restarting")
    assert (0.5, 1) == (restarting["in_s"], restarting["restarts"])
    assert 2 == len([e for e in server.events() if e["msg"] == "model server starting"])
    assert 0 == server.stop()


def _hammer(server, seconds):
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            statuses.append(server.request("POST", "/invocations", body=b"load", timeout=10)[0])
        except OSError:
            statuses.append(None)
    return statuses


def test_a_backend_that_always_crashes_ends_sm_entry_after_the_restart_budget(serve):
    server = serve([sys.executable, "-c", "import sys; print('crash'); sys.exit(3)"],
                   "--max-restarts", "2")
    assert 1 == server.run.proc.wait(60)
    seen = server.events()
    messages = [e["msg"] for e in seen]
    assert 2 == messages.count("model server restarting")
    assert "model server gave up: it keeps failing" in messages
    assert ("job summary", 2, 1) == (seen[-1]["msg"], seen[-1]["restarts"], seen[-1]["exit_code"])


def test_sigterm_drains_in_flight_requests_then_stops_the_backend(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "-k", "gthread", "--threads", "24", "serve_app:app",
                            workers="1"), "--stop-timeout", "20")
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        slow = [pool.submit(server.request, "POST", "/invocations", b"slow", {"X-Sleep": "3"}) for _ in range(20)]
        wait_until(lambda: _in_flight(server) >= 20, what="20 requests in flight")
        stopped_at = time.monotonic()
        server.run.kill(signal.SIGTERM)
        wait_until(lambda: _refused(server.port), timeout=5, what="new connections to be refused")
        assert all((200, b"slow") == f.result()[::2] for f in slow)
    assert 0 == server.run.proc.wait(30)
    assert time.monotonic() - stopped_at < 15
    assert "drained" in [e["msg"] for e in server.events()]


def _in_flight(server):
    """Requests the backend is answering right now, counted from the outside: its connections."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == server.port and fields[3] == "01":  # ESTABLISHED to our front
            count += 1
    return count


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_uvicorn_on_a_unix_socket(serve):
    server = serve([*UVICORN, "--uds", "{socket}", "serve_app:asgi"])
    server.wait_ready()
    assert (200, b"hello") == server.request("POST", "/invocations", body=b"hello")[::2]
    assert 0 == server.stop()


def test_a_plain_python_server_on_the_port_sm_entry_picked(serve):
    code = ("import http.server, os\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
            "        self.wfile.write(b'ok')\n"
            "    log_message = lambda *a: None\n"
            "port = int(os.environ['SM_ENTRY_BACKEND_PORT'])\n"
            "assert port == int(os.environ['SAGEMAKER_BIND_TO_PORT'])\n"
            "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n")
    server = serve([sys.executable, "-c", code])
    server.wait_ready()
    assert (200, b"ok") == server.request("GET", "/anything")[::2]
    assert 0 == server.stop()



@pytest.mark.parametrize("backend", [
    gunicorn("--bind", "fd://{fd}", "serve_app:app"),
    [*UVICORN, "--fd", "{fd}", "serve_app:asgi"],
], ids=["gunicorn", "uvicorn"])
def test_handoff_gives_the_model_server_our_listening_socket(serve, backend):
    server = serve(backend, "--listen-mode", "handoff")
    server.wait_ready()
    status, headers, body = server.request("POST", "/invocations", body=b"direct")
    assert (200, b"direct") == (status, body)
    assert "X-Seen-Forwarded-For" not in headers  # nobody in between
    assert 0 == server.stop()


def test_handoff_keeps_the_port_across_a_restart(serve):
    server = serve(gunicorn("--bind", "fd://{fd}", "serve_app:app"), "--listen-mode", "handoff")
    server.wait_ready()
    os.kill(server.event("model server starting")["child_pid"], signal.SIGKILL)
    server.event("model server restarting")
    server.wait_ready()
    assert 200 == server.request("POST", "/invocations", body=b"again")[0]
    assert 0 == server.stop()


def test_one_keep_alive_connection_serves_pings_and_large_invocations_in_turn(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "serve_app:app"),
                   env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"})
    server.wait_ready()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    big = os.urandom(30 << 20)
    sockets = set()
    for method, path, body in [("GET", "/ping", None), ("GET", "/ping", None),
                               ("POST", "/invocations", big), ("GET", "/ping", None),
                               ("POST", "/invocations", big), ("POST", "/invocations", b"small")]:
        connection.request(method, path, body=body)
        sockets.add(connection.sock)
        response = connection.getresponse()
        answer = response.read()
        assert 200 == response.status
        if body:
            assert body == answer
    assert 1 == len(sockets)  # never closed under the client: the one connection served all
    connection.close()
    assert 0 == server.stop()


def test_request_timeout_header_limit_h2c_and_pipelining(serve):
    server = serve(gunicorn("-b", "127.0.0.1:{port}", "-k", "gthread", "--threads", "4", "serve_app:app"),
                   "--request-timeout", "1")
    server.wait_ready()
    started = time.monotonic()
    status, _, body = server.request("POST", "/invocations", body=b"x", headers={"X-Sleep": "3"})
    assert 504 == status and "did not answer within 1 s" in json.loads(body)["error"]
    assert time.monotonic() - started < 2.5
    big = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    assert raw_exchange(server.port, big).startswith(b"HTTP/1.1 431 ")
    upgrade = (b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n")
    assert raw_exchange(server.port, upgrade).startswith(b"HTTP/1.1 200 ")  # h2c is ignored
    two = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
           b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo")
    answer = raw_exchange(server.port, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.index(b"one") < answer.index(b"two")
    http10 = raw_exchange(server.port, b"POST /invocations HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    assert http10.startswith(b"HTTP/1.1 200 OK") and http10.endswith(b"hi")
    assert 0 == server.stop()
