"""The process core as a plain process (a child subreaper, not PID 1)."""

import signal
import time

import pytest

from tests.support import (
    Run,
    process_state,
    signals_child,
    wait_until,
    zombie_children,
)

CODES = [0, 1, 2, 3, 42, 125, 126, 127, 128, 200, 255]


def run(sm_entry, *args, **kwargs):
    proc = Run([*sm_entry, *args], **kwargs)
    try:
        code = proc.wait()
    finally:
        proc.close()
    return code, proc


@pytest.mark.parametrize("code", CODES)
def test_exit_code_comes_back_unchanged(sm_entry, code):
    assert code == run(sm_entry, "sh", "-c", f"exit {code}")[0]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL, signal.SIGUSR1, signal.SIGSEGV,
                                    signal.SIGTERM])
def test_child_killed_by_signal_gives_128_plus_n(sm_entry, signum):
    assert 128 + signum == run(sm_entry, "sh", "-c", f"kill -{int(signum)} $$")[0]


def test_signals_reach_the_child_in_order(sm_entry):
    proc = Run([*sm_entry, *signals_child("0")])
    try:
        proc.wait_for_line("ready")
        for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGWINCH"):
            proc.kill(getattr(signal, name))
            proc.wait_for_line(f"got {name}")
        proc.kill(signal.SIGTERM)
        proc.wait_for_line("got SIGTERM")
        assert 0 == proc.wait()
    finally:
        proc.close()


def test_sigint_reaches_the_child_and_its_code_comes_back(sm_entry):
    proc = Run([*sm_entry, *signals_child("3")])
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGINT)
        proc.wait_for_line("got SIGINT")
        assert 3 == proc.wait()
    finally:
        proc.close()


def test_child_ignoring_sigterm_is_killed_after_stop_timeout(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "1", *signals_child("0", "ignore-term")])
    try:
        proc.wait_for_line("ready")
        started = time.monotonic()
        proc.kill(signal.SIGTERM)
        assert 137 == proc.wait()
        assert time.monotonic() - started >= 0.9
        assert "killing the process tree" in proc.stderr_text()
    finally:
        proc.close()


def test_second_stop_signal_kills_without_waiting(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "60", *signals_child("0", "ignore-term")])
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        time.sleep(1.0)  # past the window in which bootloader echoes of one signal are merged
        started = time.monotonic()
        proc.kill(signal.SIGINT)
        assert 137 == proc.wait(timeout=20)
        assert time.monotonic() - started < 20
    finally:
        proc.close()


ORPHANS = """
for i in $(seq 1000); do (sleep 0.3 &) ; done
echo "spawned, parent $PPID"
sleep 2
echo settled
exec sleep 60
"""


def test_a_thousand_orphans_leave_no_zombie(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "2", "sh", "-c", ORPHANS])
    try:
        # the parent of our child is the process that must reap (our Python)
        python = int(proc.wait_for_line(r"spawned, parent (\d+)").group(1))
        proc.wait_for_line("settled")
        assert [] == zombie_children(python)
        proc.kill(signal.SIGTERM)
        assert 128 + signal.SIGTERM == proc.wait()
    finally:
        proc.close()


LEFTOVER = """
sleep 1000 &
echo "bg $!"
exit 5
"""


def test_leftovers_of_the_group_are_stopped_and_the_code_kept(sm_entry):
    proc = Run([*sm_entry, "sh", "-c", LEFTOVER])
    try:
        bg = int(proc.wait_for_line(r"bg (\d+)").group(1))
        assert 5 == proc.wait()
        wait_until(lambda: process_state(bg) is None, what="the background sleep to be gone")
    finally:
        proc.close()


STUBBORN_LEFTOVER = """
sh -c 'trap "" TERM; echo "bg $$"; while :; do sleep 0.1; done' &
sleep 0.5
exit 7
"""


def test_leftover_ignoring_sigterm_is_killed_after_stop_timeout(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "1", "sh", "-c", STUBBORN_LEFTOVER])
    try:
        bg = int(proc.wait_for_line(r"bg (\d+)").group(1))
        assert 7 == proc.wait()
        wait_until(lambda: process_state(bg) is None, what="the stubborn leftover to be gone")
    finally:
        proc.close()
