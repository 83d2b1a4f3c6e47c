"""A launcher that daemonizes its server, as `torchserve --start` does: it forks and exits 0.

The server answers 200 on every path, except that while LOAD_SECONDS have not
passed since it started, /models/model says "LOADING" and /invocations waits
for the load to end (a model that is not loaded yet), while /ping says 200
at once (as TorchServe's does). The launcher prints the server's PID.
"""

import http.server
import os
import sys
import time

LOAD = float(os.environ.get("LOAD_SECONDS", "0"))


def serve(port: int) -> None:
    loaded_at = time.monotonic() + LOAD

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/models/model":
                body = b'[{"workers": [{"status": "%s"}]}]' % (
                    b"READY" if time.monotonic() >= loaded_at else b"LOADING")
            elif self.path == "/invocations":
                time.sleep(max(0.0, loaded_at - time.monotonic()))
                body = b"predicted"
            else:
                body = b"Healthy"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    port = int(os.environ["SM_ENTRY_BACKEND_PORT"])
    child = os.fork()
    if child:
        print(f"server started, PID {child}", flush=True)
        sys.exit(0)
    os.setsid()
    serve(port)
