"""The process core runs the same on our EventLoop and on asyncio's (the serve front's loop)."""

import os
import signal
import sys
import time

import pytest

from tests.support import CHILDREN, Run, process_state, signals_child, wait_until

HARNESS = CHILDREN / "core_harness.py"


@pytest.fixture(params=["ours", "asyncio"])
def core(request):
    def start(*argv, stop_timeout="5"):
        return Run([sys.executable, str(HARNESS), request.param, stop_timeout, *argv])

    start.loop = request.param
    return start


def test_a_child_runs_then_another_each_with_its_own_result(core):
    proc = core("sh", "-c", "exit 5")
    try:
        result = proc.wait_for_line(r"^result ").string
        assert "result code=5 signal=None started=True stop_signal=None killed_by_us=None" == result
        line = proc.wait_for_line(r"^exit (\d+) asyncio=(\w+) started=(.*)$")
        assert "3" == line.group(1)  # the second child's code
        assert (core.loop == "asyncio") == (line.group(2) == "True")
        assert "{'child': 2}" == line.group(3)  # children started, by name (restarts of serve)
        proc.wait()
        assert "first child done 5" in proc.stderr_text()
    finally:
        proc.close()


def test_signals_reach_the_child_and_a_stop_ends_the_job(core):
    proc = core(*signals_child("0"))
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGUSR1)
        proc.wait_for_line("got SIGUSR1")
        proc.kill(signal.SIGTERM)
        proc.wait_for_line("got SIGTERM")
        assert "0" == proc.wait_for_line(r"^exit (\d+)").group(1)
    finally:
        proc.close()


def test_the_stop_timeout_kills_the_tree(core):
    proc = core(*signals_child("0", "ignore-term"), stop_timeout="0.5")
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        result = proc.wait_for_line(r"^result ").string
        assert "result code=137 signal=9 started=True stop_signal=15 killed_by_us=stop timeout" == result
        assert "137" == proc.wait_for_line(r"^exit (\d+)").group(1)
    finally:
        proc.close()


DAEMON = "setsid sh -c 'echo \"daemon $$\"; exec sleep 1000' & sleep 0.2; exit 4"


def test_what_the_child_leaves_running_is_stopped(core):
    proc = core("sh", "-c", DAEMON)
    try:
        daemon = int(proc.wait_for_line(r"daemon (\d+)").group(1))
        proc.wait_for_line(r"^exit ")
        wait_until(lambda: process_state(daemon) is None, what="the daemon to be stopped")
    finally:
        proc.close()



@pytest.mark.parametrize(("merge", "expected"), [("1", 1), ("0", 2)])
def test_the_same_signal_twice_at_once_is_one_signal_when_echoes_are_merged(merge, expected):
    proc = Run([sys.executable, str(HARNESS), "ours", "5", *signals_child("0")],
               env={**os.environ, "HARNESS_MERGE_ECHOES": merge})
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGUSR1)
        time.sleep(0.05)  # apart, so that the kernel does not merge them while pending
        proc.kill(signal.SIGUSR1)
        time.sleep(0.6)  # past the echo window: what follows is a new signal
        proc.kill(signal.SIGUSR2)
        proc.wait_for_line("got SIGUSR2")
        assert expected == sum("got SIGUSR1" in line for line in proc.lines)
        proc.kill(signal.SIGTERM)
        proc.wait_for_line(r"^exit ")
    finally:
        proc.close()


def test_a_stop_signal_repeated_at_once_is_not_a_second_stop_but_later_it_is(core):
    proc = core(*signals_child("0", "ignore-term"), stop_timeout="30")
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        time.sleep(0.05)
        proc.kill(signal.SIGTERM)  # an echo: the stop timeout still applies
        time.sleep(0.3)
        assert proc.proc.poll() is None
        time.sleep(0.6)
        proc.kill(signal.SIGTERM)  # a second request: killed now
        result = proc.wait_for_line(r"^result ", timeout=10).string
        assert "killed_by_us=second stop signal" in result
    finally:
        proc.close()


def test_a_stop_before_anything_runs_ends_waits_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    proc = Run([sys.executable, str(HARNESS), "ours", "5", "touch", str(marker)],
               env={**os.environ, "HARNESS_STOP_FIRST": "1"})
    try:
        assert "slept False" == proc.wait_for_line(r"^slept ").string  # at once, not 5 s later
        result = proc.wait_for_line(r"^result ").string
        assert "result code=143 signal=None started=False stop_signal=15 killed_by_us=None" == result
        assert not marker.exists()
    finally:
        proc.close()
