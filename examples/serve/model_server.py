"""An example model server (WSGI, run by gunicorn) for `make demo-serve`.

It loads the model that examples/train/train.py wrote (y = w*x + b) from
$SM_MODEL_DIR, else /opt/ml/model, taking LOAD_SECONDS (default 3) as a real
model would: /ping answers 503 until it is loaded, then 200. POST
/invocations with one x per line (text/csv) answers one prediction per line.
"""

import json
import os
import threading
import time

MODEL_DIR = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
model = {}


def load():
    time.sleep(float(os.environ.get("LOAD_SECONDS", "3")))
    with open(os.path.join(MODEL_DIR, "model.json")) as handle:
        model.update(json.load(handle))


threading.Thread(target=load, daemon=True).start()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ping":
        status = "200 OK" if model else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ready" if model else b"loading"]
    if path == "/invocations" and environ["REQUEST_METHOD"] == "POST":
        lines = environ["wsgi.input"].read().decode().split()
        answer = "".join(f"{model['w'] * float(x) + model['b']:.4f}\n" for x in lines)
        start_response("200 OK", [("Content-Type", "text/csv")])
        return [answer.encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
