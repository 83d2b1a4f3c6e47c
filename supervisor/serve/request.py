"""A request head, judged once: refused with a reason, or made into what the backend gets.

Pure: the parsed parts in (httptools gives the method, target, version and
header pairs), a `Head` or a `Refusal` out. The rules are those of RFC 9110
and 9112 that a proxy must apply, and nginx's choices where the RFCs allow
several: exactly one Host on HTTP/1.1; a Transfer-Encoding other than plain
`chunked` refused (501), never forwarded with a body still encoded; an
absolute-form target (`GET http://host/ping`) made origin-form, its host
replacing Host; repeated Connection and X-Forwarded-For headers combined in
order; hop-by-hop headers, and those Connection names, dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

# Headers that describe one connection, not the message (RFC 9110 7.6.1): never forwarded.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"transfer-encoding",
})
# What the front does with a request header, by its lower-case name.
FORWARD, DROP, HOST, CONTENT_LENGTH, TRANSFER_ENCODING, EXPECT, FORWARDED_FOR, CONNECTION, \
    UPGRADE, INFERENCE_ID = range(10)
KINDS = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    b"host": HOST,
    b"connection": CONNECTION,
    b"upgrade": UPGRADE,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"expect": EXPECT,
    b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": DROP,  # ours replaces it
    b"x-amzn-sagemaker-inference-id": INFERENCE_ID,  # forwarded, and logged
}
# Methods a retry cannot make happen twice (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})


@dataclass(slots=True)
class Head:
    """A request head the front accepts."""

    method: bytes
    target: bytes  # origin-form: the path and query, as the backend gets it
    path: bytes  # without the query: what /ping and /execution-parameters are matched on
    version: str
    keep_alive: bool
    lines: list[bytes]  # the header lines forwarded, in order, each ending in CRLF
    content_length: int | None
    chunked: bool
    expect_continue: bool
    forwarded_for: bytes  # the client's X-Forwarded-For, combined; ours appends the peer
    inference_id: bytes | None
    upgrade: bytes  # the Upgrade header's value, as sent, when Connection lists upgrade

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    @property
    def websocket(self) -> bool:
        """An upgrade to WebSocket (RFC 6455: a GET), tunnelled to the backend."""
        return self.method == b"GET" and self.upgrade.split(b",")[0].strip().lower() == b"websocket"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request head the front answers itself, and then closes the connection."""

    status: int
    reason: str


# Header names as clients spell them, and what they are: looked up as they come (the names
# of most requests are the same few), lower-cased only the first time.
_KIND_OF: dict[bytes, int] = {}
_KIND_OF_MAX = 4096


def _kind_of(name: bytes) -> int:
    kind = KINDS.get(name.lower(), FORWARD)
    if len(_KIND_OF) < _KIND_OF_MAX:
        _KIND_OF[name] = kind
    return kind


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


def judge(method: bytes, url: bytes, version: str, keep_alive: bool,
          headers: list[tuple[bytes, bytes]]) -> Head | Refusal:
    """The head to forward, or why the request is refused."""
    if method == b"CONNECT":
        return Refusal(405, "CONNECT is not supported")
    if url[:1] == b"/":
        target = url
        authority = None
    else:
        target_or_none, authority = _origin_form(url)
        if target_or_none is None:
            return Refusal(400, "bad request target")
        target = target_or_none
    kinds = _KIND_OF
    lines: list[bytes] = []
    hosts = 0
    host_line = 0  # index in lines of the Host header
    content_length: int | None = None
    transfer_encoding = b""
    connection = b""
    upgrade = b""
    forwarded_for = b""
    expect_continue = False
    inference_id = None
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _kind_of(name)
        if kind == FORWARD:
            lines.append(b"%b: %b\r\n" % (name, value))
        elif kind == HOST:
            hosts += 1
            host_line = len(lines)
            lines.append(b"%b: %b\r\n" % (name, value))
        elif kind == CONTENT_LENGTH:
            content_length = int(value)  # llhttp checked it: digits, no duplicates
        elif kind == TRANSFER_ENCODING:
            transfer_encoding = value if not transfer_encoding else (
                transfer_encoding + b", " + value)
        elif kind == CONNECTION:
            connection = value if not connection else connection + b", " + value
        elif kind == UPGRADE:
            upgrade = value
        elif kind == FORWARDED_FOR:
            forwarded_for = value if not forwarded_for else forwarded_for + b", " + value
        elif kind == EXPECT:
            expect_continue = value.strip().lower() == b"100-continue"
        elif kind == INFERENCE_ID:
            inference_id = value
            lines.append(b"%b: %b\r\n" % (name, value))
    if hosts > 1:
        return Refusal(400, "more than one Host header")
    if hosts == 0 and version != "1.0" and authority is None:
        return Refusal(400, "no Host header (HTTP/1.1 requires one)")
    if authority is not None:  # RFC 9112 3.2.2: the target's host, not the Host header
        host = b"Host: %b\r\n" % authority
        if hosts:
            lines[host_line] = host
        else:
            lines.insert(0, host)
    elif not hosts:  # an HTTP/1.0 client's: the backend gets HTTP/1.1, which needs one
        lines.insert(0, b"Host: localhost\r\n")
    chunked = False
    if transfer_encoding:
        if version == "1.0":
            return Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
        if _tokens(transfer_encoding) != [b"chunked"]:
            shown = transfer_encoding.decode("latin-1")
            return Refusal(501, f"Transfer-Encoding {shown!r} is not supported (only chunked)")
        chunked = True
    if connection:
        tokens = _tokens(connection)
        listed = set(tokens) - {b"close", b"keep-alive", b"upgrade"}
        if listed:
            lines = [line for line in lines if line.split(b":", 1)[0].lower() not in listed]
        upgrade = upgrade.strip() if b"upgrade" in tokens else b""
    else:
        upgrade = b""
    question = target.find(b"?")
    return Head(method, target, target if question < 0 else target[:question], version,
                keep_alive, lines, content_length, chunked, expect_continue, forwarded_for,
                inference_id, upgrade)


def _origin_form(url: bytes) -> tuple[bytes | None, bytes | None]:
    """(the target in origin form, the authority of an absolute-form target); None: invalid."""
    if url.startswith(b"/"):
        return url, None
    if url == b"*":
        return url, None  # OPTIONS *
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None, None
    slash = len(rest)
    for mark in (b"/", b"?"):
        found = rest.find(mark)
        if 0 <= found < slash:
            slash = found
    authority, path = rest[:slash], rest[slash:]
    if b"@" in authority:
        authority = authority.rpartition(b"@")[2]  # userinfo is never forwarded
    if not authority:
        return None, None
    if not path.startswith(b"/"):
        path = b"/" + path
    return path, authority


def forward_head(head: Head, peer: bytes) -> bytes:
    """The request head as the backend gets it: HTTP/1.1, ours added, the body framed as sent."""
    parts = [b"%b %b HTTP/1.1\r\n" % (head.method, head.target), *head.lines,
             b"X-Forwarded-For: %b%b\r\nX-Forwarded-Proto: http\r\n"
             % (head.forwarded_for + b", " if head.forwarded_for else b"", peer)]
    if head.websocket:  # the upgrade asked of the backend itself, on a connection of its own
        parts.append(b"Connection: Upgrade\r\nUpgrade: %b\r\n" % head.upgrade)
    if head.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif head.content_length is not None:
        parts.append(b"Content-Length: %d\r\n" % head.content_length)
    parts.append(b"\r\n")
    return b"".join(parts)
