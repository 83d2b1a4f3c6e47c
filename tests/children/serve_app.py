"""A small model server for the serve tests: WSGI (gunicorn) and ASGI (uvicorn) in one file.

LOAD_SECONDS: how long "loading the model" takes before /ping answers 200.
PING_BODY: the body of a 200 /ping (MMS says "Unhealthy" with a 200).
/invocations echoes the request body; headers X-Sleep (seconds before
answering), X-Echo-Header (echoed back as X-Echoed), X-Stream-Bytes (answer
that many bytes, streamed, instead of the echo); /pid answers the worker's pid.
"""

import hashlib
import os
import time

LOADED_AT = time.monotonic() + float(os.environ.get("LOAD_SECONDS", "0"))
PING_BODY = os.environ.get("PING_BODY", "healthy").encode()


def _ready():
    return time.monotonic() >= LOADED_AT


def _stream(total):
    block = b"x" * 65536
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        sent += len(piece)
        yield piece


def app(environ, start_response):
    """WSGI."""
    path = environ["PATH_INFO"]
    if path == "/ping":
        if _ready():
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [PING_BODY]
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"loading"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/invocations":
        time.sleep(float(environ.get("HTTP_X_SLEEP", "0")))
        body = environ["wsgi.input"].read()
        headers = [("Content-Type", "application/octet-stream"),
                   ("X-Body-Sha256", hashlib.sha256(body).hexdigest())]
        if "HTTP_X_ECHO_HEADER" in environ:
            headers.append(("X-Echoed", environ["HTTP_X_ECHO_HEADER"]))
        if "HTTP_X_FORWARDED_FOR" in environ:
            headers.append(("X-Seen-Forwarded-For", environ["HTTP_X_FORWARDED_FOR"]))
        if "HTTP_X_STREAM_BYTES" in environ:
            start_response("200 OK", headers)
            return _stream(int(environ["HTTP_X_STREAM_BYTES"]))
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


async def asgi(scope, receive, send):
    """ASGI (uvicorn): /ping and /invocations (echo)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/ping":
        status, payload = (200, PING_BODY) if _ready() else (503, b"loading")
    elif scope["path"] == "/invocations":
        status, payload = 200, body
    else:
        status, payload = 404, b"not found"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.body", "body": payload})
