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


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names a Connection header lists: hop-by-hop for this message too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def end_to_end(headers: list[tuple[bytes, bytes]], also_drop: frozenset[bytes] = frozenset()
               ) -> list[bytes]:
    """The headers to forward, each as `Name: value\\r\\n`, in their order."""
    listed = connection_tokens(headers) if any(
        name.lower() == b"connection" for name, _ in headers) else frozenset()
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in listed or lower in also_drop:
            continue
        out.append(b"%b: %b\r\n" % (name, value))
    return out


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
