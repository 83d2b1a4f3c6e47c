"""A WebSocket model server for the serve tests, on the `websockets` library's own server.

Every path takes an upgrade except /reject (403) and answers GET /ping. What
a connection receives is recorded frame by frame (each message as the list
of its fragments, as they arrived) and echoed back the same way. Text
commands from the client:
  record        answer with the JSON of what was received so far (and the path asked)
  close C R     close with code C and reason R
  stream N      send N binary messages of 64 KiB as fast as the client takes them,
                then the text "sent N"
  count         from now on, count the bytes of binary messages instead of echoing them;
                the text "total" answers the count
SIGTERM is ignored when IGNORE_SIGTERM=1 (a server that does not close its
tunnels: the front must). The port is the first argument ({port}).
"""

import asyncio
import json
import os
import signal
import sys

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


async def handler(websocket):
    received = []
    counting = False
    total = 0
    async for fragments in _messages(websocket):
        text = isinstance(fragments[0], str)
        whole = ("" if text else b"").join(fragments)
        if text and whole == "record":
            await websocket.send(json.dumps({"path": websocket.request.path, "received": received}))
            continue
        if text and whole.startswith("close "):
            _, code, reason = whole.split(" ", 2)
            await websocket.close(int(code), reason)
            return
        if text and whole.startswith("stream "):
            count = int(whole.split()[1])
            block = os.urandom(65536)
            for _ in range(count):
                await websocket.send(block)
            await websocket.send(f"sent {count}")
            continue
        if text and whole == "count":
            counting = True
            continue
        if text and whole == "total":
            await websocket.send(str(total))
            continue
        if counting and not text:
            total += len(whole)
            continue
        received.append(["text" if text else "binary",
                         [f if text else f.hex() for f in fragments]])
        await websocket.send(fragments if len(fragments) > 1 else fragments[0])


async def _messages(websocket):
    """Each message as the list of its frames' payloads, in the order they came."""
    from websockets.exceptions import ConnectionClosed

    while True:
        fragments = []
        try:
            async for fragment in websocket.recv_streaming():
                fragments.append(fragment)
        except ConnectionClosed:
            return
        yield fragments


def process_request(connection, request):
    if request.path == "/ping":
        return Response(200, "OK", Headers([("Content-Length", "7")]), b"healthy")
    if request.path == "/reject":
        return Response(403, "Forbidden", Headers([("Content-Length", "6")]), b"go away")
    return None


async def main():
    port = int(sys.argv[1])
    if os.environ.get("IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    async with serve(handler, "127.0.0.1", port, process_request=process_request,
                     max_size=None, compression=None, ping_interval=None):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
