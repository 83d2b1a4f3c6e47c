"""HTTP/1.1 pieces shared by the front and the upstream side: heads, hop-by-hop headers, chunks.

httptools (llhttp) parses both directions; what it hands us is re-framed
here, since it gives no offsets of a message in a buffer and de-chunks
bodies: a head is written from its parsed parts, a body either with its
Content-Length or chunk by chunk.
"""

from __future__ import annotations

from http import HTTPStatus

# Headers that describe one connection, not the message (RFC 9110 7.6.1): never forwarded.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"transfer-encoding",
})
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


# What the front does with a header, by its lower-case name (one dict lookup per header).
FORWARD, DROP, CONTENT_LENGTH, TRANSFER_ENCODING, EXPECT, FORWARDED_FOR, CONNECTION, NOTE = range(8)
REQUEST_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    b"connection": CONNECTION,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"expect": EXPECT,
    b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": DROP,
    b"x-amzn-sagemaker-inference-id": NOTE,  # forwarded, and logged
}
RESPONSE_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    b"connection": CONNECTION,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
}


def without_listed(lines: list[bytes], connection: bytes) -> list[bytes]:
    """Drop the header lines a Connection header names (rare: `Connection: X-Private`)."""
    tokens = {t.strip().lower() for t in connection.split(b",")} - {b"keep-alive", b"close", b""}
    if not tokens:
        return lines
    return [line for line in lines if line.split(b":", 1)[0].lower() not in tokens]


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
