"""The relay: everything read, in order, in bounded batches; held pipes read before let go."""

import contextlib
import json
import os

from supervisor.core.eventloop import EventLoop
from supervisor.logs import relay as relay_module
from supervisor.logs.relay import ChildOutput
from supervisor.logs.writer import OutputWriter


class Harness:
    """A ChildOutput whose child's ends the test holds, writing into pipes the test reads."""

    def __init__(self, log_format, relay_stderr=False):
        self.loop = EventLoop()
        self.out_r, out_w = os.pipe()
        self.stdout = OutputWriter(out_w, "stdout", self.loop)
        self.stderr = OutputWriter(2, "stderr", self.loop)
        self.output = ChildOutput(self.loop, log_format, {"mode": "run"}, self.stdout, self.stderr,
                                  relay_stderr=relay_stderr)
        self.child_end = os.dup(self.output.child_fd("stdout"))
        self.output.started(4242)

    def run_until_closed(self):
        self.output.on_closed = self.loop.stop
        self.loop.call_later(30, self.loop.stop)
        self.loop.run_forever()

    def printed(self):
        assert self.stdout.flush(10)
        os.close(self.stdout.fd)
        data = b""
        while chunk := os.read(self.out_r, 1 << 16):
            data += chunk
        os.close(self.out_r)
        self.loop.close()
        return data


def test_what_is_in_a_held_pipe_is_read_before_it_is_let_go():
    h = Harness("raw")
    os.write(h.child_end, b"late line\n")  # written, not read yet: the loop has not run
    assert "held open" == h.output.stop_draining()
    assert h.output.closed
    os.close(h.child_end)
    assert b"late line\n" == h.printed()


def test_a_large_block_is_rendered_in_batches_in_order(monkeypatch):
    monkeypatch.setattr(relay_module, "BATCH_LINES", 7)
    h = Harness("json")
    os.write(h.child_end, "".join(f"line {i}\n" for i in range(100)).encode())
    os.close(h.child_end)
    h.run_until_closed()
    messages = [json.loads(line)["msg"] for line in h.printed().splitlines()]
    assert [f"line {i}" for i in range(100)] == messages


def test_nothing_is_lost_when_our_output_fills_up(monkeypatch):
    from supervisor.logs import writer as writer_module

    monkeypatch.setattr(writer_module, "HIGH_WATER", 8 << 10)
    monkeypatch.setattr(writer_module, "LOW_WATER", 2 << 10)
    h = Harness("json")
    pid = os.fork()
    if pid == 0:  # the "child": far more than the writer may queue
        for i in range(20000):
            os.write(h.child_end, f"{i}\n".encode())
        os._exit(0)
    os.close(h.child_end)
    reader_output = []
    os.set_blocking(h.out_r, False)

    def drain_slowly():  # our reader, slower than the child
        with contextlib.suppress(BlockingIOError):
            reader_output.append(os.read(h.out_r, 4096))
        h.loop.call_later(0.001, drain_slowly)

    h.loop.call_soon(drain_slowly)
    h.run_until_closed()
    os.waitpid(pid, 0)
    assert h.stdout.flush(30)
    os.close(h.stdout.fd)
    os.set_blocking(h.out_r, True)
    while chunk := os.read(h.out_r, 1 << 16):
        reader_output.append(chunk)
    os.close(h.out_r)
    h.loop.close()
    messages = [json.loads(line)["msg"] for line in b"".join(reader_output).splitlines()]
    assert [str(i) for i in range(20000)] == messages
