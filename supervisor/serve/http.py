"""HTTP/1.1 pieces of the front: status lines, chunks, our own responses, the response head sent on.

httptools (llhttp) parses both directions; what it hands us is re-framed
here, since it gives no offsets of a message in a buffer and de-chunks
bodies: a head is written from its parsed parts, a body either with its
Content-Length or chunk by chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from supervisor.serve.request import HOP_BY_HOP

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(code: int) -> bytes:
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1")


STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


def status_line(code: int) -> bytes:
    return STATUS_LINES.get(code) or _status_line(code)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


# Response headers the front must look at (framing) or drop (hop by hop), by lower-case name.
FORWARD, DROP, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION = range(5)
RESPONSE_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    b"connection": CONNECTION,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
}
# One search finds what decides whether a raw head can go out as it is (llhttp checked its
# syntax: CRLF line ends, no space before a colon, no folded lines).
_FRAMING_LINES = re.compile(
    rb"\r\n(content-length|connection|transfer-encoding|keep-alive|proxy-connection|te|trailer"
    rb"|upgrade):[ \t]*([^\r]*)", re.IGNORECASE)


def without_listed(lines: list[bytes], connection: bytes) -> list[bytes]:
    """Drop the header lines a Connection header names (rare: `Connection: X-Private`)."""
    tokens = {t.strip().lower() for t in connection.split(b",")} - {b"keep-alive", b"close", b""}
    if not tokens:
        return lines
    return [line for line in lines if line.split(b":", 1)[0].lower() not in tokens]


@dataclass(slots=True)
class ResponseHead:
    """The backend's response head as the client gets it, and how its body is framed."""

    data: bytes
    rechunk: bool  # the body goes out chunk by chunk (no length known, an HTTP/1.1 client)
    close_delimited: bool  # the backend's body ends where its connection does
    close: bool  # the client connection closes after this response


def response_head(raw: bytes, status: int, head_request: bool, client_version: str,
                  keep_alive: bool) -> ResponseHead:
    """The backend's raw head made the client's: hop by hop out, framing and Connection ours.

    `raw`: the head as received, status line to the empty line. Its status line
    and other lines go out byte for byte; `keep_alive`: the client connection
    may stay open after this response.
    """
    if keep_alive and client_version == "1.1" and raw.startswith(b"HTTP/1.1 "):
        # The usual answer goes on as it came: a length, and at most `Connection:
        # keep-alive`, which is then what we say of our own connection to the client too.
        found = _FRAMING_LINES.findall(raw)
        lengths = 0
        for name, value in found:
            name = name.lower()
            if name == b"content-length":
                lengths += 1
            elif name != b"connection" or value.lower() != b"keep-alive":
                break
        else:
            if lengths == 1:
                return ResponseHead(raw, False, False, False)
    return _rebuilt(raw, status, head_request, client_version, keep_alive)


def _rebuilt(raw: bytes, status: int, head_request: bool, client_version: str,
             keep_alive: bool) -> ResponseHead:
    first_end = raw.index(b"\r\n")
    first = raw[:first_end + 2]  # the status line, its reason phrase as the backend wrote it
    parts = [first if first.startswith(b"HTTP/1.1 ") else status_line(status)]
    length = False
    chunked = False
    connection = b""
    kinds = RESPONSE_HEADERS
    for line in raw[first_end + 2:-4].split(b"\r\n"):
        name, _, value = line.partition(b":")
        kind = kinds.get(name.lower(), FORWARD)
        if kind == FORWARD:
            parts.append(line + CRLF)
        elif kind == CONTENT_LENGTH:
            length = True
            parts.append(line + CRLF)
        elif kind == TRANSFER_ENCODING:
            chunked = True
        elif kind == CONNECTION:
            value = value.strip()
            connection = value if not connection else connection + b", " + value
    if connection:
        parts = without_listed(parts, connection)
    rechunk = close_delimited = False
    close = not keep_alive
    if not (head_request or status in (204, 304)) and not length:
        close_delimited = not chunked
        if client_version == "1.1":
            rechunk = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            close = True  # an HTTP/1.0 client knows the end only by the close
    if close:
        parts.append(b"Connection: close\r\n")
    elif client_version == "1.0":
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(CRLF)
    return ResponseHead(b"".join(parts), rechunk, close_delimited, close)


def simple_response(code: int, body: bytes, content_type: bytes = b"application/json",
                    close: bool = False, head_only: bool = False) -> bytes:
    """A whole response of ours (ping, 503, 413, ...)."""
    parts = [status_line(code), b"Content-Type: ", content_type, CRLF,
             b"Content-Length: %d\r\n" % len(body)]
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(CRLF)
    if not head_only:
        parts.append(body)
    return b"".join(parts)
