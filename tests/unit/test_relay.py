"""The relay: everything read, in order, in bounded batches; held pipes read before let go."""

import contextlib
import json
import os
import threading

import pytest

from supervisor.core.eventloop import EventLoop
from supervisor.logs import relay as relay_module
from supervisor.logs.relay import ChildOutput
from supervisor.logs.writer import OutputWriter


class Harness:
    """A ChildOutput whose child's ends the test holds, writing into pipes the test reads."""

    def __init__(self, log_format, relay_stderr=False, framer_options=None):
        self.loop = EventLoop()
        self.out_r, out_w = os.pipe()
        self.stdout = OutputWriter(out_w, "stdout", self.loop)
        self.stderr = OutputWriter(2, "stderr", self.loop)
        self.output = ChildOutput(self.loop, log_format, {"mode": "run"}, self.stdout, self.stderr,
                                  relay_stderr=relay_stderr, framer_options=framer_options)
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
    # The relay is done; our writer may still hold a pipe's worth: keep reading meanwhile.
    os.set_blocking(h.out_r, True)

    def read_the_rest():
        while chunk := os.read(h.out_r, 1 << 16):
            reader_output.append(chunk)

    reader = threading.Thread(target=read_the_rest)
    reader.start()
    assert h.stdout.flush(30)
    os.close(h.stdout.fd)
    reader.join(30)
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
        # room again: it reads on, and pauses again each time our output is full
        assert h.stdout.pending_bytes < (8 << 10) + relay_module.READ_SIZE
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


def stalled(monkeypatch):
    """A job that wrote more than our output may queue, then ended; nobody reads our output."""
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
    return h


def test_a_stalled_reader_of_our_output_is_given_up_and_the_loss_counted(monkeypatch):
    h = stalled(monkeypatch)
    assert not h.output.closed
    h.output.drain_started()  # the job's processes are gone
    relay = h.output.relays["stdout"]
    pending = sum(len(item.text) + 1 for item in relay._pending)  # each line and its newline
    assert pending > 0
    assert "stalled" == h.output.stop_draining()  # nothing written for a whole drain timeout
    assert h.output.closed
    assert pending == h.output.summary()["output_lost_bytes"]
    with pytest.raises(OSError):  # the child's pipe is closed, not left open
        os.fstat(relay.fd)
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


def _batches(monkeypatch, items):
    """How the pending items are cut into batches of BATCH_LINES = 7 lines."""
    from collections import deque

    monkeypatch.setattr(relay_module, "BATCH_LINES", 7)
    h = Harness("json")
    relay = h.output.relays["stdout"]
    relay._pending = deque(items)
    batches = []
    while relay._pending:
        batches.append(relay._take_batch())
    os.close(h.child_end)
    h.run_until_closed()
    h.printed()
    return batches


def test_a_batch_counts_the_lines_of_each_block_and_splits_the_one_that_overflows(monkeypatch):
    from supervisor.logs.framing import Lines

    batches = _batches(monkeypatch, [Lines("a\nb\nc\nd"), Lines("e\nf\ng\nh\ni"), Lines("j")])
    assert [[Lines("a\nb\nc\nd"), Lines("e\nf\ng")], [Lines("h\ni"), Lines("j")]] == batches


def test_a_batch_counts_each_record_as_one_line(monkeypatch):
    from supervisor.logs.framing import Record

    records = [Record(f"r{i}", "traceback") for i in range(9)]
    assert [records[:7], records[7:]] == _batches(monkeypatch, records)


def test_empty_lines_are_lines_when_a_block_is_split(monkeypatch):
    from supervisor.logs.framing import Lines

    assert (Lines("a\n"), Lines("b")) == relay_module._take_lines(Lines("a\n\nb"), 2)
    assert (Lines("a\n\n"), Lines("")) == relay_module._take_lines(Lines("a\n\n\n"), 3)


def test_a_renderer_that_fails_still_writes_the_lines_as_text():
    h = Harness("json")

    def broken(items, now):
        raise ValueError("a bug of ours")

    h.output.relays["stdout"].render = broken
    # a group and a line in one read: one batch of two items (the last line is held apart)
    os.write(h.child_end, b"first\n  indented\nsecond\nthird\n")
    os.close(h.child_end)
    h.run_until_closed()
    assert b"first\n  indented\nsecond\nthird\n" == h.printed()


def test_a_later_deadline_is_timed_after_an_earlier_one_fired():
    # A held line (due after 0.2 s) and a progress state (due later): the first timer
    # releases the line and must arm the next one for the progress state.
    h = Harness("json", framer_options={"progress_interval": 0.6})
    os.write(h.child_end, b"a line\n")  # held 0.2 s for continuation lines
    h.loop.call_later(0.05, os.write, h.child_end, b"progress 10%\r")  # shown at once
    h.loop.call_later(0.1, os.write, h.child_end, b"progress 20%\r")  # due at 0.65 s
    h.loop.call_later(1.5, h.loop.stop)
    h.loop.run_forever()
    assert h.stdout.flush(10)
    os.set_blocking(h.out_r, False)
    before_the_end = [json.loads(line)["msg"] for line in os.read(h.out_r, 65536).splitlines()]
    assert ["a line", "progress 10%", "progress 20%"] == before_the_end
    os.close(h.child_end)
    h.run_until_closed()
    h.printed()


def test_text_format_shows_what_a_terminal_would_of_redrawn_lines():
    h = Harness("text")
    os.write(h.child_end, b"10%\r20%\r100%\nnext\n")
    os.close(h.child_end)
    h.run_until_closed()
    assert b"100%\nnext\n" == h.printed()


def test_a_reader_that_stops_reading_later_is_given_up_at_the_next_check(monkeypatch):
    h = stalled(monkeypatch)
    h.output.drain_started()
    h.stdout.written_bytes += 1  # our output moved during the first drain timeout
    assert h.output.stop_draining() is None
    assert not h.output.closed
    assert "stalled" == h.output.stop_draining()  # and not during the second
    assert h.output.closed
    os.close(h.out_r)
    assert h.stdout.flush(5), (h.stdout.pending_bytes, h.stdout.error)
    os.close(h.stdout.fd)
    h.loop.close()


def test_each_read_tells_the_watchdog_when_the_job_last_printed():
    from supervisor.core.watchdog import OutputActivity

    loop = EventLoop()
    out_r, out_w = os.pipe()
    stdout = OutputWriter(out_w, "stdout", loop)
    activity = OutputActivity(-1.0)
    output = ChildOutput(loop, "json", {}, stdout, OutputWriter(2, "stderr", loop),
                         relay_stderr=False, activity=activity)
    child_end = os.dup(output.child_fd("stdout"))
    output.started(1)
    before = loop.time()
    os.write(child_end, b"a line\n")
    os.close(child_end)
    output.on_closed = loop.stop
    loop.call_later(30, loop.stop)
    loop.run_forever()
    assert before <= activity.last <= loop.time()
    assert stdout.flush(10)
    os.close(out_w)
    os.close(out_r)
    loop.close()
