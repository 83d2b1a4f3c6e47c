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


def test_batches_are_exactly_batch_lines_long_and_short_lines_split_right(monkeypatch):
    monkeypatch.setattr(relay_module, "BATCH_LINES", 7)
    h = Harness("json")
    rendered = []
    for relay in h.output.relays.values():
        real = relay.render
        relay.render = lambda items, now, real=real: (rendered.append(items), real(items, now))[1]
    os.write(h.child_end, "".join(f"{chr(97 + i % 26)}\n" for i in range(30)).encode())
    os.close(h.child_end)
    h.run_until_closed()
    messages = [json.loads(line)["msg"] for line in h.printed().splitlines()]
    assert [chr(97 + i % 26) for i in range(30)] == messages
    sizes = [sum(item.text.count("\n") + 1 for item in batch) for batch in rendered]
    # 29 lines come framed at once (the last is held until the end): four full batches first
    assert [7, 7, 7, 7] == sizes[:4] and all(1 <= size <= 7 for size in sizes), sizes


def test_observers_get_the_stream_name_and_the_summary_reports_nothing_lost():
    h = Harness("raw")
    seen = []
    for relay in h.output.relays.values():
        relay.observers = [lambda stream, items: seen.append(stream)]
    os.write(h.child_end, b"one\ntwo\n")
    os.close(h.child_end)
    h.run_until_closed()
    assert b"one\ntwo\n" == h.printed()
    assert {"stdout"} == set(seen)
    assert {} == h.output.summary()


def test_everything_in_a_held_pipe_is_read_even_more_than_one_read(monkeypatch):
    monkeypatch.setattr(relay_module, "READ_SIZE", 4096)
    h = Harness("raw")
    data = b"".join(b"%05d\n" % i for i in range(10000))  # 60 KB: many reads of 4 KiB
    os.write(h.child_end, data)
    assert "held open" == h.output.stop_draining()
    os.close(h.child_end)
    assert data == h.printed()


def test_reading_stops_while_our_output_is_full(monkeypatch):
    from supervisor.logs import writer as writer_module

    monkeypatch.setattr(writer_module, "HIGH_WATER", 8 << 10)
    monkeypatch.setattr(writer_module, "LOW_WATER", 2 << 10)
    h = Harness("raw")
    os.set_blocking(h.child_end, False)
    os.set_blocking(h.out_r, False)
    written = 0
    try:
        while True:  # fill the child's pipe and more: our output is never read meanwhile
            written += os.write(h.child_end, b"x" * 4095 + b"\n")
    except BlockingIOError:
        pass
    h.loop.call_later(0.5, h.loop.stop)
    h.loop.run_forever()
    relay = h.output.relays["stdout"]
    assert not relay._reading  # paused: the child waits on its full pipe
    assert h.stdout.pending_bytes < (8 << 10) + relay_module.READ_SIZE
    received = b""
    deadline = 200
    os.close(h.child_end)
    while deadline:
        h.loop.call_later(0.02, h.loop.stop)
        h.loop.run_forever()
        try:
            received += os.read(h.out_r, 1 << 20)
        except BlockingIOError:
            deadline -= 1
            if h.output.closed and h.stdout.pending_bytes == 0:
                break
    assert written == len(received)
    os.close(h.stdout.fd)
    os.close(h.out_r)
    h.loop.close()


def test_a_held_line_is_written_after_the_idle_time_without_more_data():
    h = Harness("json")
    os.write(h.child_end, b"only line\n")
    h.loop.call_later(0.5, h.loop.stop)  # the framer holds it 0.2 s for continuation lines
    h.loop.run_forever()
    assert h.stdout.flush(10)
    os.set_blocking(h.out_r, False)
    assert "only line" == json.loads(os.read(h.out_r, 65536))["msg"]  # before the pipe's end
    os.close(h.child_end)
    h.run_until_closed()
    assert b"" == h.printed()


def test_text_format_writes_the_lines_as_they_are():
    h = Harness("text")
    os.write(h.child_end, b"plain\n  indented\n")
    os.close(h.child_end)
    h.run_until_closed()
    assert b"plain\n  indented\n" == h.printed()


def test_a_stalled_reader_of_our_output_is_given_up_and_the_loss_counted(monkeypatch):
    from supervisor.logs import writer as writer_module

    monkeypatch.setattr(writer_module, "HIGH_WATER", 8 << 10)
    monkeypatch.setattr(writer_module, "LOW_WATER", 2 << 10)
    h = Harness("json")
    os.set_blocking(h.child_end, False)
    with contextlib.suppress(BlockingIOError):
        for _ in range(400):
            os.write(h.child_end, b"y" * 1023 + b"\n")
    os.close(h.child_end)  # the job is gone; our output is not being read
    h.loop.call_later(0.5, h.loop.stop)
    h.loop.run_forever()
    assert not h.output.closed
    h.output.drain_started()  # the job's processes are gone
    assert "stalled" == h.output.stop_draining()  # nothing written for a whole drain timeout
    assert h.output.closed
    lost = h.output.summary()["output_lost_bytes"]
    assert lost > 0
    os.close(h.out_r)
    h.stdout.flush(5)
    os.close(h.stdout.fd)
    h.loop.close()


def test_a_reader_that_keeps_reading_is_not_given_up():
    h = Harness("raw")
    os.write(h.child_end, b"z\n")
    h.output.drain_started()
    h.stdout.written_bytes += 1  # as if our writer wrote some more since the mark
    assert "held open" == h.output.stop_draining()  # the test still holds the pipe
    os.close(h.child_end)
    assert b"z\n" == h.printed()
