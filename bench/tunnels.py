"""Section 7: WebSocket tunnels through the serve front, against nginx, in the same run.

Why: SageMaker's bidirectional streaming (speech-to-text, voice agents) goes
through the front as a WebSocket tunnel; what the tunnel adds to each round
trip is latency the caller hears. Three ways, each with the same client and
the same model server (the `websockets` library's server,
tests/children/ws_backend.py):
  direct    client -> the server
  sm-entry  client -> `sm-entry serve` (the static binary) -> the server it starts
  nginx     client -> nginx set up for WebSocket proxying (one worker,
            proxy_http_version 1.1, Upgrade and Connection passed) -> the server
Figures: round trips of 1 KB text messages, one at a time (p50, p99), and the
throughput of 100 MB sent one way in 1 MiB binary messages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serve

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "tests" / "children" / "ws_backend.py"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
NGINX_WS = """
user root;
worker_processes 1;
daemon off;
pid {dir}/ws-front.pid;
error_log {dir}/ws-front-error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }}
  }}
}}
"""
FRONTS = ("direct", "sm-entry", "nginx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ws-round-trips", type=int, default=3000,
                        help="1 KB round trips per case (section 7)")
    parser.add_argument("--ws-megabytes", type=int, default=100,
                        help="megabytes sent one way per case (section 7)")
    parser.add_argument("--ws-rounds", type=int, default=3,
                        help="rounds over all cases (section 7); medians are reported")


@dataclass
class Case:
    front: str
    p50_ms: list[float]
    p99_ms: list[float]
    mb_per_s: list[float]

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")


def _round_trips(port: int, count: int) -> tuple[float, float]:
    from websockets.sync.client import connect

    message = "x" * 1000
    times = []
    with connect(f"ws://127.0.0.1:{port}/invocations-bidirectional-stream",
                 compression=None) as ws:
        for _ in range(200):  # warm-up
            ws.send(message)
            ws.recv()
        for _ in range(count):
            started = time.perf_counter()
            ws.send(message)
            ws.recv()
            times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


def _throughput(port: int, megabytes: int) -> float:
    from websockets.sync.client import connect

    block = os.urandom(1 << 20)
    with connect(f"ws://127.0.0.1:{port}/invocations-bidirectional-stream",
                 compression=None, max_size=None) as ws:
        ws.send("count")
        started = time.perf_counter()
        for _ in range(megabytes):
            ws.send(block)
        ws.send("total")
        total = int(ws.recv())
        elapsed = time.perf_counter() - started
    assert total == megabytes << 20, total
    return megabytes * (1 << 20) / elapsed / 1e6


def _measure(binary: Path, front: str, directory: Path, args: argparse.Namespace
             ) -> tuple[float, float, float]:
    with contextlib.ExitStack() as stack:
        python = str(VENV_PYTHON if VENV_PYTHON.exists() else sys.executable)
        if front == "sm-entry":
            port = serve._free_port()
            stack.enter_context(serve._process(
                [str(binary), "serve", "--port", str(port), "--", python, str(BACKEND), "{port}"],
                {**os.environ, "SM_ENTRY_LOG_FORMAT": "json"}))
        else:
            backend = serve._free_port()
            stack.enter_context(serve._process([python, str(BACKEND), str(backend)]))
            port = backend
            if front == "nginx":
                port = serve._free_port()
                conf = directory / f"ws-{port}.conf"
                conf.write_text(NGINX_WS.format(dir=directory, port=port, upstream=backend))
                nginx = shutil.which("nginx") or "/usr/sbin/nginx"
                stack.enter_context(serve._process([nginx, "-c", str(conf)]))
        serve._wait_http(port)
        p50, p99 = _round_trips(port, args.ws_round_trips)
        rate = _throughput(port, args.ws_megabytes)
        return p50, p99, rate


@dataclass
class Results:
    cases: list[Case]

    def get(self, front: str) -> Case:
        return next(c for c in self.cases if c.front == front)

    def as_json(self) -> dict[str, Any]:
        return {c.front: {"p50_ms": round(c.median(c.p50_ms), 3),
                          "p99_ms": round(c.median(c.p99_ms), 3),
                          "mb_per_s": round(c.median(c.mb_per_s), 1)} for c in self.cases}

    def report_lines(self) -> list[str]:
        lines = ["7. WebSocket tunnel: 1 KB echo round trips, one at a time, and 100 MB one way "
                 "in 1 MiB messages, medians of the rounds",
                 "  front      p50 ms   p99 ms  p50 x nginx  p99 x nginx   MB/s  MB/s x nginx",
                 "  --------  -------  -------  -----------  -----------  -----  ------------"]
        nginx = self.get("nginx")
        n50, n99, nrate = (nginx.median(nginx.p50_ms), nginx.median(nginx.p99_ms),
                           nginx.median(nginx.mb_per_s))
        for case in self.cases:
            p50, p99, rate = case.median(case.p50_ms), case.median(case.p99_ms), \
                case.median(case.mb_per_s)
            lines.append(f"  {case.front:<8}  {p50:7.3f}  {p99:7.3f}  {p50 / n50:11.2f}  "
                         f"{p99 / n99:11.2f}  {rate:5.0f}  {rate / nrate:12.2f}")
        ours = self.get("sm-entry")
        p50, p99, rate = ours.median(ours.p50_ms), ours.median(ours.p99_ms), \
            ours.median(ours.mb_per_s)
        lines.append(f"  target: p50 and p99 <= 1.2x nginx: {p50 / n50:.2f}x, {p99 / n99:.2f}x "
                     f"-> {'MET' if p50 <= 1.2 * n50 and p99 <= 1.2 * n99 else 'NOT MET'}; "
                     f"throughput >= 0.8x nginx: {rate / nrate:.2f}x -> "
                     f"{'MET' if rate >= 0.8 * nrate else 'NOT MET'}")
        return lines


def run(binary: Path, args: argparse.Namespace) -> Results:
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        raise SystemExit("bench: section 7 needs nginx (make bench installs it)")
    directory = Path(tempfile.mkdtemp(prefix="sm-entry-bench-ws-"))
    cases = [Case(front, [], [], []) for front in FRONTS]
    try:
        for round_number in range(args.ws_rounds):
            for case in cases:
                print(f"bench: websocket round {round_number + 1}: via {case.front}",
                      file=sys.stderr, flush=True)
                p50, p99, rate = _measure(binary, case.front, directory, args)
                case.p50_ms.append(p50)
                case.p99_ms.append(p99)
                case.mb_per_s.append(rate)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return Results(cases)
