"""Section 6: the serve front against nginx, in the same run, with wrk.

Why: in serve mode every request crosses sm-entry's front, and on a small
instance every CPU cycle the front spends is taken from the model server. The
official SageMaker containers put nginx there; sm-entry must do at least as
well. Three ways, in one run, each with the same wrk load (POST /invocations
with a 200-byte body):
  direct   wrk -> the backend
  sm-entry wrk -> `sm-entry serve` (the static binary) -> the backend it starts
  nginx    wrk -> nginx configured like the SageMaker containers (one worker
           process, as their nginx.conf has it; upstream keepalive,
           proxy_http_version 1.1, Connection "") -> the backend
Backends: gunicorn (2 gthread workers, a trivial WSGI app: the usual stack),
over TCP and over a unix socket; and nginx returning a fixed body, far faster
than any proxy, for the raw capacity of the front.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
APP = """
def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""
WRK_SCRIPT = (
    'wrk.method = "POST"\nwrk.body = string.rep("x", 200)\n'
    'wrk.headers["Content-Type"] = "application/octet-stream"\n'
)
NGINX_FRONT = """
user root;
worker_processes 1;
daemon off;
pid {dir}/front.pid;
error_log {dir}/front-error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log /dev/stdout combined;
  upstream backend {{ server {upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port} deferred;
    client_max_body_size 6m;
    keepalive_timeout 75s;
    location / {{
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_read_timeout 60s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://backend;
    }}
  }}
}}
"""
NGINX_FIXED = """
user root;
worker_processes 1;
daemon off;
pid {dir}/fixed-{port}.pid;
error_log {dir}/fixed-error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 100000;
    location / {{ return 200 "ok"; }}
  }}
}}
"""
# sm-entry's backend command for the fixed-body nginx: the port is known only at its start.
NGINX_FIXED_LAUNCHER = (
    'sed "s/@PORT@/$SM_ENTRY_BACKEND_PORT/g" {template} > {dir}/fixed-own.conf '
    "&& exec {nginx} -c {dir}/fixed-own.conf"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serve-duration",
        type=float,
        default=10.0,
        help="seconds of wrk load per case (section 6)",
    )
    parser.add_argument(
        "--serve-rounds",
        type=int,
        default=2,
        help="rounds over all cases (section 6); medians are reported",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered 200 on port {port} within {timeout:g} s")


@contextlib.contextmanager
def _process(
    argv: Sequence[str], env: dict[str, str] | None = None, stderr: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    errors = open(stderr, "wb") if stderr else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if stderr:
            errors.close()  # type: ignore[union-attr]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Load:
    requests_per_s: float
    p99_ms: float
    errors: int


def wrk(port: int, duration: float, script: Path) -> Load:
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{duration:g}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/invocations",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    text = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = sum(
        int(n)
        for n in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?):?\s+(\d+)", text)
    )
    return Load(rate, p99_ms, errors)


@dataclass
class Case:
    backend: str  # gunicorn-tcp | gunicorn-unix | fixed
    front: str  # direct | sm-entry | nginx
    loads: list[Load] = field(default_factory=list)

    @property
    def rate(self) -> float:
        rates = sorted(load.requests_per_s for load in self.loads)
        return rates[len(rates) // 2] if rates else float("nan")

    @property
    def p99(self) -> float:
        values = sorted(load.p99_ms for load in self.loads)
        return values[len(values) // 2] if values else float("nan")


class Bench:
    def __init__(self, binary: Path, args: argparse.Namespace) -> None:
        self.binary = binary
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="sm-entry-bench-serve-"))
        (self.dir / "bench_app.py").write_text(APP)
        self.script = self.dir / "post.lua"
        self.script.write_text(WRK_SCRIPT)
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.loop = "unknown"  # what sm-entry's front said it runs on

    def gunicorn(self, bind: str) -> list[str]:
        return [
            str(VENV_BIN / "gunicorn"),
            "--chdir",
            str(self.dir),
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
            "-b",
            bind,
            "bench_app:app",
        ]

    def fixed_conf(self, port: int | str) -> Path:
        path = self.dir / f"fixed-{port}.conf"
        path.write_text(NGINX_FIXED.format(dir=self.dir, port=port))
        return path

    def front_conf(self, port: int, upstream: str) -> Path:
        path = self.dir / f"front-{port}.conf"
        path.write_text(NGINX_FRONT.format(dir=self.dir, port=port, upstream=upstream))
        return path

    def measure(self, case: Case) -> Load:
        with contextlib.ExitStack() as stack:
            port = self._start(case, stack)
            _wait_http(port)
            if case.front == "sm-entry":
                self._check_loop()
            wrk(port, 1.0, self.script)  # warm-up: connections, caches, the pool
            return wrk(port, self.args.serve_duration, self.script)

    def _check_loop(self) -> None:
        """The figures are those of the front as it ships: on uvloop, or not worth printing."""
        for line in (self.dir / "sm-entry.err").read_text().splitlines():
            if '"msg":"listening"' in line:
                self.loop = json.loads(line)["loop"]
        if self.loop != "uvloop":
            raise SystemExit(f"bench: sm-entry's front runs on {self.loop!r}, not uvloop")

    def _start(self, case: Case, stack: contextlib.ExitStack) -> int:
        front_port = _free_port()
        socket_path = str(self.dir / "backend.sock")
        env = {**os.environ, "SM_ENTRY_LOG_FORMAT": "json"}
        if case.front == "sm-entry":
            if case.backend == "fixed":
                template = self.fixed_conf("@PORT@")
                backend = [
                    "sh",
                    "-c",
                    NGINX_FIXED_LAUNCHER.format(template=template, dir=self.dir, nginx=self.nginx),
                ]
            else:
                backend = self.gunicorn(
                    "unix:{socket}" if case.backend == "gunicorn-unix" else "127.0.0.1:{port}"
                )
            stack.enter_context(
                _process(
                    [str(self.binary), "serve", "--port", str(front_port), "--", *backend], env,
                    stderr=self.dir / "sm-entry.err",
                )
            )
            return front_port
        backend_port = _free_port()
        if case.backend == "fixed":
            stack.enter_context(_process([self.nginx, "-c", str(self.fixed_conf(backend_port))]))
            upstream = f"127.0.0.1:{backend_port}"
        elif case.backend == "gunicorn-unix":
            with contextlib.suppress(FileNotFoundError):
                os.remove(socket_path)
            stack.enter_context(_process(self.gunicorn(f"unix:{socket_path}")))
            upstream = f"unix:{socket_path}"
        else:
            stack.enter_context(_process(self.gunicorn(f"127.0.0.1:{backend_port}")))
            upstream = f"127.0.0.1:{backend_port}"
        if case.front == "direct":
            return backend_port
        stack.enter_context(
            _process([self.nginx, "-c", str(self.front_conf(front_port, upstream))])
        )
        return front_port

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


CASES = (
    [("gunicorn-tcp", f) for f in ("direct", "sm-entry", "nginx")]
    + [("gunicorn-unix", f) for f in ("sm-entry", "nginx")]
    + [("fixed", f) for f in ("direct", "sm-entry", "nginx")]
)


@dataclass
class Results:
    cases: list[Case]
    loop: str = "unknown"

    def get(self, backend: str, front: str) -> Case:
        return next(c for c in self.cases if c.backend == backend and c.front == front)

    def as_json(self) -> dict[str, Any]:
        return {
            f"{c.backend}/{c.front}": {
                "requests_per_s": round(c.rate, 1),
                "p99_ms": round(c.p99, 2),
                "errors": sum(load.errors for load in c.loads),
            }
            for c in self.cases
        }

    def report_lines(self) -> list[str]:
        lines = [
            "6. Serve front: wrk -t2 -c32, POST /invocations with a 200-byte body, "
            "medians of the rounds",
            "  backend        front      req/s   p99 ms  req/s x nginx  p99 x nginx  errors",
            "  -------------  --------  -------  -------  -------------  -----------  ------",
        ]
        for case in self.cases:
            nginx = self.get(case.backend, "nginx")
            ratio = case.rate / nginx.rate if nginx.rate else float("nan")
            p99_ratio = case.p99 / nginx.p99 if nginx.p99 else float("nan")
            lines.append(
                f"  {case.backend:<13}  {case.front:<8}  {case.rate:7.0f}  {case.p99:7.2f}  "
                f"{ratio:13.2f}  {p99_ratio:11.2f}  {sum(x.errors for x in case.loads):6d}"
            )
        for backend in ("gunicorn-tcp", "gunicorn-unix"):
            ours, nginx = self.get(backend, "sm-entry"), self.get(backend, "nginx")
            rate_met = ours.rate >= nginx.rate
            p99_met = ours.p99 <= 1.1 * nginx.p99
            lines.append(
                f"  target ({backend}): req/s >= 1.0x nginx: {ours.rate / nginx.rate:.2f}x -> "
                f"{'MET' if rate_met else 'NOT MET'}; p99 <= 1.1x nginx: "
                f"{ours.p99 / nginx.p99:.2f}x -> {'MET' if p99_met else 'NOT MET'}"
            )
        ours, nginx = self.get("fixed", "sm-entry"), self.get("fixed", "nginx")
        lines.append(
            f"  target (raw capacity, fixed-body backend): >= 0.6x nginx: "
            f"{ours.rate / nginx.rate:.2f}x -> "
            f"{'MET' if ours.rate >= 0.6 * nginx.rate else 'NOT MET'}"
        )
        lines.append(f"  sm-entry's front ran on {self.loop}")
        return lines


def run(binary: Path, args: argparse.Namespace) -> Results:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"bench: section 6 needs {tool} (make bench installs it)")
    bench = Bench(binary, args)
    cases = [Case(backend, front) for backend, front in CASES]
    try:
        for round_number in range(args.serve_rounds):
            for case in cases:  # every case in every round: a slow moment hits all alike
                print(
                    f"bench: serve round {round_number + 1}: {case.backend} via {case.front}",
                    file=sys.stderr,
                    flush=True,
                )
                case.loads.append(bench.measure(case))
    finally:
        bench.close()
    return Results(cases, bench.loop)
