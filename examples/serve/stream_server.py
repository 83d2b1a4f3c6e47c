"""An example streaming model server (Starlette on uvicorn) for SageMaker's bidirectional streaming.

The platform's sidecar opens a WebSocket to /invocations-bidirectional-stream
(through sm-entry's front) and sends the caller's payload parts as frames;
the model answers with parts of its own. This "transcriber" stands in for a
speech-to-text model: each binary part is audio it "hears" (it answers how
much it has heard so far), each text part a word it echoes in capitals, and
the text "done" ends the stream with the transcript and a normal close.

    sm-entry serve -- uvicorn --port {port} --app-dir examples/serve stream_server:app
"""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def ping(request):
    return PlainTextResponse("ready")


async def transcribe(websocket: WebSocket):
    await websocket.accept()
    heard = 0
    words = []
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                heard += len(message["bytes"])
                await websocket.send_text(f"heard {heard} bytes")
            elif message.get("text") == "done":
                await websocket.send_text("transcript: " + " ".join(words))
                await websocket.close(1000, "end of stream")
                return
            else:
                words.append(message["text"].upper())
                await websocket.send_text(words[-1])
    except WebSocketDisconnect:
        return


app = Starlette(routes=[
    Route("/ping", ping, methods=["GET", "POST"]),
    WebSocketRoute("/invocations-bidirectional-stream", transcribe),
])
