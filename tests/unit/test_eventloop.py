"""The small event loop: timers, readers and signals, in order."""

import os
import signal

import pytest

from supervisor.core.eventloop import EventLoop


def test_timers_run_in_time_order_and_cancel():
    loop = EventLoop()
    seen = []
    loop.call_later(0.03, seen.append, "late")
    loop.call_later(0.01, seen.append, "early")
    loop.call_later(0.02, seen.append, "cancelled").cancel()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    loop.close()
    assert ["early", "late"] == seen


def test_reader_is_called_when_readable():
    loop = EventLoop()
    r, w = os.pipe()
    got = []

    def on_read():
        got.append(os.read(r, 100))
        loop.stop()

    loop.add_reader(r, on_read)
    os.write(w, b"hello")
    loop.run_forever()
    assert loop.remove_reader(r)
    loop.close()
    os.close(r)
    os.close(w)
    assert [b"hello"] == got


def test_signals_are_dispatched_in_arrival_order():
    loop = EventLoop()
    seen = []
    order = [signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR1]
    for signum in order:
        loop.add_signal_handler(signum, seen.append, signum)
    for signum in order:
        os.kill(os.getpid(), signum)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    loop.close()
    assert order == seen
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_a_task_awaits_futures_and_returns_its_result():
    loop = EventLoop()
    seen = []

    async def job():
        first = loop.create_future()
        loop.call_later(0.01, first.set_result, "a")
        seen.append(await first)
        second = loop.create_future()
        loop.call_soon(second.set_result, "b")
        seen.append(await second)
        return "done"

    task = loop.create_task(job())
    task.add_done_callback(lambda _: loop.stop())
    loop.run_forever()
    loop.close()
    assert ["a", "b"] == seen and "done" == task.result()


def test_a_task_carries_its_exception():
    loop = EventLoop()

    async def job():
        failing = loop.create_future()
        loop.call_soon(failing.set_exception, ValueError("boom"))
        await failing

    task = loop.create_task(job())
    task.add_done_callback(lambda _: loop.stop())
    loop.run_forever()
    loop.close()
    with pytest.raises(ValueError, match="boom"):
        task.result()


def test_a_callback_from_another_thread_wakes_the_loop():
    import threading

    loop = EventLoop()
    got = []
    threading.Timer(0.05, loop.call_soon_threadsafe, args=(lambda: (got.append(1), loop.stop()),)).start()
    loop.call_later(30, loop.stop)
    loop.run_forever()
    loop.close()
    assert [1] == got


def test_a_thread_that_outlives_the_loop_writes_into_no_fd():
    loop = EventLoop()
    loop.close()
    reused_r, reused_w = os.pipe()  # may take the numbers the loop's wakeup pipe had
    loop.call_soon_threadsafe(lambda: None)
    os.set_blocking(reused_r, False)
    with pytest.raises(BlockingIOError):
        os.read(reused_r, 1)
    os.close(reused_r)
    os.close(reused_w)
