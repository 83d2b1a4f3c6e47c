"""Shared by the serve tests: `sm-entry serve` started for real, an HTTP client for it."""

import contextlib
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CHILDREN, Run, descendants_of, wait_until

BIN = Path(sys.executable).parent
GUNICORN = [str(BIN / "gunicorn"), "--chdir", str(CHILDREN), "--log-level", "warning"]
UVICORN = [str(BIN / "uvicorn"), "--app-dir", str(CHILDREN), "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """sm-entry serve on a free port, and an HTTP client for it."""

    def __init__(self, sm_entry, backend, *options, env=None):
        self.port = free_port()
        environ = {"PATH": os.environ["PATH"], "SM_ENTRY_LOG_FORMAT": "json", **(env or {})}
        self.run = Run([*sm_entry, "serve", "--port", str(self.port), *options, "--", *backend],
                       env=environ)
        self.stderr = b""

    def request(self, method, path, body=None, headers=None, timeout=30):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def ping(self):
        try:
            return self.request("GET", "/ping", timeout=5)[0]
        except OSError:
            return None

    def wait_ready(self, timeout=30):
        wait_until(lambda: self.ping() == 200, timeout=timeout, what="/ping to answer 200")

    def events(self):
        """sm-entry's JSON events so far (its stderr, read without waiting for its end)."""
        stream = self.run.proc.stderr
        os.set_blocking(stream.fileno(), False)
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while selector.select(0):
                data = stream.read()
                if not data:
                    break
                self.stderr += data
        return [json.loads(line) for line in self.stderr.decode().splitlines() if line.startswith("{")]

    def event(self, message):
        found = wait_until(lambda: [e for e in self.events() if e["msg"] == message], what=message)
        return found[0]

    def front_pid(self):
        """The process that holds the front's listening socket (the binary's Python, for one)."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == self.port and fields[3] == "0A":
                inodes.add(fields[9])
        for pid in [self.run.pid, *descendants_of(self.run.pid)]:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
        raise AssertionError(f"no process holds port {self.port}")

    def stop(self, timeout=60):
        self.run.kill(signal.SIGTERM)
        return self.run.proc.wait(timeout)


@pytest.fixture
def serve(sm_entry):
    servers = []

    def start(backend, *options, env=None):
        server = Server(sm_entry, backend, *options, env=env)
        servers.append(server)
        return server

    yield start
    bugs = []
    for server in servers:  # a graceful stop first: killed, sm-entry could not stop its backend
        if server.run.proc.poll() is None:
            server.run.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.run.proc.wait(30)
        with contextlib.suppress(ValueError, OSError):  # an impossible event met: a bug
            bugs += [e for e in server.events() if e["msg"].startswith("front bug")]
        server.run.close()
    assert [] == bugs


def gunicorn(*args, workers="2"):
    return [*GUNICORN, "-w", workers, *args]


def raw_exchange(port, data, until=b"", timeout=10):
    """Send raw bytes, read until `until` is seen or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        answer = b""
        while until not in answer or not until:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
            if until and until in answer:
                break
        return answer


