"""The small event loop: timers, readers and signals, in order."""

import os
import signal

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
