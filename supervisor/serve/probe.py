"""The backend's own health check: `GET /ping` on a fresh connection, with a deadline.

The answer counts as healthy only when it is 200 and, with `--ready-body`,
its body contains the given text (MMS answers 200 "Unhealthy" while its
workers load). Servers whose /ping is 200 before their model is loaded
(TorchServe, whose status counts a loading worker as running) are asked
on another path: `--ready-path` (TorchServe's `/models/NAME`, Triton's
`/v2/health/ready`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

from supervisor.serve.upstream import Address

MAX_BODY = 64 * 1024
REQUEST = (b"GET %b HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sm-entry\r\n"
           b"Connection: close\r\n\r\n")


class _Response:
    """httptools callbacks: the status and the start of the body."""

    def __init__(self) -> None:
        self.body = b""
        self.complete = False

    def on_body(self, body: bytes) -> None:
        if len(self.body) < MAX_BODY:
            self.body += body[: MAX_BODY - len(self.body)]

    def on_message_complete(self) -> None:
        self.complete = True


async def _ask(address: Address, path: str) -> tuple[int, bytes]:
    if address.socket_path:
        reader, writer = await asyncio.open_unix_connection(address.socket_path)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", address.port)
    try:
        writer.write(REQUEST % path.encode())
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.complete:
            data = await reader.read(65536)
            if not data:
                break
            parser.feed_data(data)
        return parser.get_status_code(), response.body
    finally:
        writer.close()


@dataclass(frozen=True)
class Probe:
    """What one health check saw."""

    healthy: bool
    detail: str
    timed_out: bool = False  # no answer in time: a busy server looks the same as a dead one


async def probe(address: Address, timeout: float, ready_body: str | None,
                path: str = "/ping") -> Probe:
    """One `GET path` (the backend's /ping, or its --ready-path) to the backend."""
    try:
        status, body = await asyncio.wait_for(_ask(address, path), timeout)
    except TimeoutError:
        return Probe(False, f"no answer to {path} within {timeout:g} s", timed_out=True)
    except OSError as exc:
        return Probe(False, f"cannot connect to {address}: {exc.strerror or exc}")
    except httptools.HttpParserError as exc:
        return Probe(False, f"bad answer to {path}: {exc}")
    if status != 200:
        return Probe(False, f"{path} answered {status}")
    if ready_body is not None and ready_body.encode() not in body:
        shown = body[:80].decode("utf-8", "replace")
        return Probe(False, f"{path} answered 200 without {ready_body!r} in its body ({shown!r})")
    return Probe(True, f"{path} answered 200")
