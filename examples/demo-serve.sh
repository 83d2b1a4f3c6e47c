#!/usr/bin/env bash
# `make demo-serve`: train the example model (as `make demo` does), then serve it
# through the built binary: sm-entry owns the port, /ping says 503 while the
# model loads and 200 once it is ready, an invocation is proxied to gunicorn,
# and SIGTERM drains and stops it all; then a WebSocket exchange (SageMaker's
# bidirectional streaming) with a streaming model server on uvicorn.
set -euo pipefail
binary=$(realpath "${1:-dist/sm-entry}")
gunicorn=$(realpath "${2:-.venv/bin/gunicorn}")
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$root"' EXIT
cp -r "$here/opt_ml/." "$root/"
SAGEMAKER_SUBMIT_DIRECTORY="$here/train" "$binary" --root "$root" --log-format text train >/dev/null 2>&1
echo "== trained: $(tr -d '\n ' < "$root/model/model.json")"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== sm-entry serve --port $port -- gunicorn -b 127.0.0.1:{port} model_server:app"
SM_MODEL_DIR="$root/model" "$binary" --log-format text serve --port "$port" -- \
    "$gunicorn" -b "127.0.0.1:{port}" --chdir "$here/serve" model_server:app &
server=$!
for _ in $(seq 40); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping" || true)
    echo "GET /ping -> $code"
    [ "$code" = 200 ] && break
    sleep 0.5
done
echo "== POST /invocations (x = 4, 10)"
printf '4\n10\n' | curl -s --data-binary @- -H 'Content-Type: text/csv' "http://127.0.0.1:$port/invocations"
echo "== SIGTERM"
kill -TERM "$server"
wait "$server" && echo "== sm-entry exited 0"

# Bidirectional streaming: a WebSocket through the front to a streaming model server.
bin=$(dirname "$gunicorn")
echo "== sm-entry serve --port $port -- uvicorn --port {port} stream_server:app"
"$binary" --log-format text serve --port "$port" -- \
    "$bin/uvicorn" --port "{port}" --log-level warning --app-dir "$here/serve" stream_server:app &
server=$!
for _ in $(seq 40); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping" || true)" = 200 ] && break
    sleep 0.25
done
echo "== ws://127.0.0.1:$port/invocations-bidirectional-stream"
"$bin/python" - "$port" <<'PY'
import sys
from websockets.sync.client import connect

with connect(f"ws://127.0.0.1:{sys.argv[1]}/invocations-bidirectional-stream") as ws:
    for part in ("hello", b"\x00" * 3200, "world", b"\x00" * 3200, "done"):
        ws.send(part)
        shown = part if isinstance(part, str) else f"<{len(part)} bytes of audio>"
        print(f"  sent {shown!r:24} got {ws.recv()!r}")
    try:
        ws.recv()
    except Exception:
        print(f"  closed by the model: {ws.close_code} {ws.close_reason!r}")
PY
kill -TERM "$server"
wait "$server" && echo "== sm-entry exited 0"
