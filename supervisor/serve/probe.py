"""The backend's own health check: `GET /ping` on a fresh connection, with a deadline.

The answer counts as healthy only when it is 200 and, with `--ready-body`,
its body contains the given text: MMS and TorchServe answer 200 with
"Unhealthy" while their workers load.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

from supervisor.serve.upstream import Address

MAX_BODY = 64 * 1024
REQUEST = (b"GET /ping HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sm-entry\r\n"
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


async def _ask(address: Address) -> tuple[int, bytes]:
    if address.socket_path:
        reader, writer = await asyncio.open_unix_connection(address.socket_path)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", address.port)
    try:
        writer.write(REQUEST)
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


async def probe(address: Address, timeout: float, ready_body: str | None) -> Probe:
    """One `GET /ping` to the backend."""
    try:
        status, body = await asyncio.wait_for(_ask(address), timeout)
    except TimeoutError:
        return Probe(False, f"no answer to /ping within {timeout:g} s", timed_out=True)
    except OSError as exc:
        return Probe(False, f"cannot connect to {address}: {exc.strerror or exc}")
    except httptools.HttpParserError as exc:
        return Probe(False, f"bad answer to /ping: {exc}")
    if status != 200:
        return Probe(False, f"/ping answered {status}")
    if ready_body is not None and ready_body.encode() not in body:
        shown = body[:80].decode("utf-8", "replace")
        return Probe(False, f"/ping answered 200 without {ready_body!r} in its body ({shown!r})")
    return Probe(True, "/ping answered 200")
