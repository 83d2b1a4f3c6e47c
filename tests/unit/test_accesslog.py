"""The access log: one JSON record per request, and a bound when our stdout is not read."""

import json
import os
import time

from supervisor.core.eventloop import EventLoop
from supervisor.logs.writer import OutputWriter
from supervisor.serve.accesslog import AccessLog
from supervisor.serve.request import judge


class Done:
    """The fields of a finished exchange that the log reads."""

    def __init__(self, path=b"/invocations", inference_id=None):
        headers = [(b"Host", b"x")]
        if inference_id:
            headers.append((b"X-Amzn-SageMaker-Inference-Id", inference_id))
        self.head = judge(b"POST", path, "1.1", True, headers)
        self.method, self.path = b"POST", path
        self.status, self.received, self.bytes_out = 200, 5, 7
        self.started_at = time.monotonic()


def test_records_are_json_with_the_request_fields():
    loop = EventLoop()
    read, write = os.pipe()
    writer = OutputWriter(write, "stdout", loop)
    log = AccessLog(loop, writer, {"mode": "serve", "host": "algo-1"})
    log(Done(path=b'/inv"\xc3\xa9', inference_id=b"id-7"))
    log.flush()
    assert writer.flush(5)
    record = json.loads(os.read(read, 65536))
    assert {"level": "info", "src": "sm-entry", "mode": "serve", "host": "algo-1", "msg": "request",
            "method": "POST", "path": '/inv"Ã©', "status": 200, "bytes_in": 5, "bytes_out": 7,
            "inference_id": "id-7"} == {k: v for k, v in record.items() if k not in ("ts", "duration_ms")}
    os.close(read)
    os.close(write)
    loop.close()


def test_records_are_dropped_and_counted_while_stdout_is_not_read():
    loop = EventLoop()
    read, write = os.pipe()
    os.set_blocking(read, False)
    writer = OutputWriter(write, "stdout", loop)
    log = AccessLog(loop, writer, {"mode": "serve", "host": "h"})
    for _ in range(60):  # far more than the pipe and the writer's queue hold
        for _ in range(1000):
            log(Done())
        log.flush()
    assert writer.pending_bytes < 4 << 20  # bounded, whatever the request rate
    assert log.dropped > 0
    dropped = log.dropped
    data = b""
    deadline = time.monotonic() + 10
    while writer.pending_bytes and time.monotonic() < deadline:  # stdout is read again
        try:
            data += os.read(read, 1 << 20)
        except BlockingIOError:
            time.sleep(0.01)
    log(Done())
    log.flush()
    assert writer.flush(5)
    while True:
        try:
            chunk = os.read(read, 1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    said = [json.loads(line) for line in data.splitlines() if b"dropped" in line]
    assert [dropped] == [record["dropped"] for record in said]
    os.close(read)
    os.close(write)
    loop.close()
