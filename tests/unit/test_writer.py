"""Our output: queued for a thread, bounded, never written inside a line of the child's."""

import os
import threading
import time

from supervisor.core.eventloop import EventLoop
from supervisor.logs import writer as writer_module
from supervisor.logs.writer import OutputWriter


def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_bytes_arrive_in_order_and_flush_waits_for_them():
    r, w = os.pipe()
    out = OutputWriter(w, "stdout")
    for i in range(1000):
        out.write(f"line {i}\n".encode())
    assert out.flush(10)
    os.close(w)
    assert "".join(f"line {i}\n" for i in range(1000)).encode() == read_all(r)
    os.close(r)


def test_records_wait_for_the_end_of_the_childs_line():
    r, w = os.pipe()
    out = OutputWriter(w, "stdout")
    out.write(b"loss: 0.5\npart")
    out.write_record(b'{"emf": 1}\n')
    out.write(b"ial line\nnext")
    out.write_record(b'{"emf": 2}\n')
    assert out.flush(10)  # at the end a held record goes on a line of its own
    os.close(w)
    assert b'loss: 0.5\npartial line\n{"emf": 1}\nnext\n{"emf": 2}\n' == read_all(r)
    os.close(r)


def test_a_held_record_goes_out_after_the_hold_time_on_its_own_line(monkeypatch):
    monkeypatch.setattr(writer_module, "HOLD_RECORDS_S", 0.05)
    loop = EventLoop()
    r, w = os.pipe()
    out = OutputWriter(w, "stderr", loop)
    out.write(b"50%|#####")
    out.write_record(b"event\n")
    loop.call_later(0.3, loop.stop)
    loop.run_forever()
    out.write(b" done\n")
    assert out.flush(10)
    os.close(w)
    loop.close()
    assert b"50%|#####\nevent\n done\n" == read_all(r)
    os.close(r)


def test_a_stalled_reader_makes_it_full_and_room_is_announced_on_the_loop(monkeypatch):
    monkeypatch.setattr(writer_module, "HIGH_WATER", 256 << 10)
    monkeypatch.setattr(writer_module, "LOW_WATER", 64 << 10)
    loop = EventLoop()
    r, w = os.pipe()
    out = OutputWriter(w, "stdout", loop)
    chunk = b"x" * 4096
    while not out.full:
        out.write(chunk)  # never blocks, whatever the pipe holds
    roomy = []
    out.when_room(lambda: (roomy.append(True), loop.stop()))
    assert [] == roomy
    reader = threading.Thread(target=read_all, args=(r,))
    reader.start()
    loop.call_later(30, loop.stop)
    loop.run_forever()
    assert [True] == roomy and not out.full
    assert out.flush(10)
    os.close(w)
    reader.join()
    os.close(r)
    loop.close()


def test_flush_gives_up_on_a_reader_that_never_reads():
    r, w = os.pipe()
    out = OutputWriter(w, "stdout")
    out.write(b"x" * (1 << 20))  # more than a pipe holds
    assert not out.flush(0.2)
    assert out.pending_bytes > 0
    os.close(r)  # the writer thread gets EPIPE and stops
    out.flush(10)
    assert out.error == "stdout: Broken pipe"
    os.close(w)


def test_a_failed_write_drops_and_counts_the_rest():
    with open("/dev/full", "wb") as full:
        out = OutputWriter(full.fileno(), "stdout")
        out.write(b"one\n")
        out.flush(10)
        out.write(b"two\n")
        assert out.flush(10)
    assert "stdout: No space left on device" == out.error
    assert 8 == out.dropped_bytes


def test_room_is_announced_at_once_when_the_queue_is_already_low():
    loop = EventLoop()
    r, w = os.pipe()
    out = OutputWriter(w, "stdout", loop)
    called = []
    out.when_room(lambda: (called.append(True), loop.stop()))
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert [True] == called
    os.close(r)
    os.close(w)
    loop.close()


def test_after_a_forced_line_end_the_next_record_goes_straight_out(monkeypatch):
    monkeypatch.setattr(writer_module, "HOLD_RECORDS_S", 0.05)
    loop = EventLoop()
    r, w = os.pipe()
    out = OutputWriter(w, "stderr", loop)
    out.write(b"50%")
    out.write_record(b"first\n")
    loop.call_later(0.2, loop.stop)
    loop.run_forever()
    out.write_record(b"second\n")  # at a line start now: no extra line end
    assert out.flush(10)
    os.close(w)
    loop.close()
    assert b"50%\nfirst\nsecond\n" == read_all(r)
    os.close(r)


def test_a_stdout_someone_made_non_blocking_still_gets_everything():
    r, w = os.pipe()
    os.set_blocking(w, False)  # as a shared stdout can be
    out = OutputWriter(w, "stdout")
    data = os.urandom(1 << 20)  # far more than the pipe holds
    out.write(data)
    deadline = time.monotonic() + 30
    while out.written_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the pipe is full: the writer waits for room (EAGAIN, then select)
    assert 0 < out.written_bytes < len(data)
    received = []
    reader = threading.Thread(target=lambda: received.append(read_all(r)))
    reader.start()
    assert out.flush(30)
    os.close(w)
    reader.join()
    os.close(r)
    assert data == received[0]
    assert out.error is None
