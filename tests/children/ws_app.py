"""A Starlette app for uvicorn: WebSocket routes as a model server writes them, and /ping.

/invocations-bidirectional-stream and /v1/listen echo each message, prefixed
with the query string the server saw when the first message is "query".
LOAD_SECONDS: /ping answers 503 until then (and upgrades are the front's 503).
"""

import os
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

LOADED_AT = time.monotonic() + float(os.environ.get("LOAD_SECONDS", "0"))


async def ping(request):
    if time.monotonic() < LOADED_AT:
        return PlainTextResponse("loading", status_code=503)
    return PlainTextResponse("healthy")


async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "query":
                await websocket.send_text(websocket.url.query)
            elif message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(routes=[
    Route("/ping", ping),
    WebSocketRoute("/invocations-bidirectional-stream", echo),
    WebSocketRoute("/v1/listen", echo),
])
