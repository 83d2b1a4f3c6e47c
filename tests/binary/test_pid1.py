"""dist/sm-entry as PID 1 of a PID namespace, the way a container runs it."""

import os
import signal
import subprocess
import time

import pytest

from tests.support import (
    DYNAMIC_BINARY,
    STATIC_BINARY,
    Pid1,
    require_binary,
    require_tool,
    signal_names,
    signals_child,
    wait_until,
    zombies_in_namespace_of,
)


@pytest.fixture
def static():
    return require_binary(STATIC_BINARY)


def finish(proc, timeout=30):
    try:
        return proc.wait(timeout)
    finally:
        proc.close()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 3)])
def test_stop_signals_reach_the_child_as_pid1(static, signum, code):
    proc = Pid1([static, *signals_child(str(code))])
    proc.wait_for_line("ready")
    proc.kill(signum)
    proc.wait_for_line(f"got {signal.Signals(signum).name}")
    assert code == finish(proc)


def test_static_build_forwards_signals_in_order_as_pid1(static):
    proc = Pid1([static, *signals_child("0")])
    proc.wait_for_line("ready")
    for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGWINCH", "SIGALRM", "SIGCONT"):
        proc.kill(getattr(signal, name))
        proc.wait_for_line(f"got {name}")
    proc.kill(signal.SIGTERM)
    proc.wait_for_line("got SIGTERM")
    assert 0 == finish(proc)


def test_dynamic_build_forwards_every_signal_as_pid1():
    dynamic = require_binary(DYNAMIC_BINARY)
    proc = Pid1([dynamic, *signals_child("0")])
    proc.wait_for_line("ready")
    names = ["SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCONT", "SIGWINCH", "SIGTERM"]
    for name in names:
        proc.kill(getattr(signal, name))
        proc.wait_for_line(f"got {name}")
    assert 0 == finish(proc)
    assert [] == signal_names(proc)  # nothing arrived twice


def test_child_ignoring_sigterm_is_killed_after_stop_timeout_as_pid1(static):
    proc = Pid1([static, "--stop-timeout", "1", *signals_child("0", "ignore-term")])
    proc.wait_for_line("ready")
    started = time.monotonic()
    proc.kill(signal.SIGTERM)
    assert 137 == finish(proc)
    assert 0.9 <= time.monotonic() - started < 20


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGUSR2])
def test_child_killed_by_signal_gives_128_plus_n_as_pid1(static, signum):
    proc = Pid1([static, "sh", "-c", f"kill -{int(signum)} $$"])
    assert 128 + signum == finish(proc)


@pytest.mark.parametrize("code", [0, 1, 42, 127, 128, 255])
def test_exit_code_comes_back_unchanged_as_pid1(static, code):
    assert code == finish(Pid1([static, "sh", "-c", f"exit {code}"]))


ORPHANS = """
for i in $(seq 1000); do (sleep 0.3 &) ; done
echo spawned
sleep 2
echo settled
exec sleep 60
"""


def test_a_thousand_orphans_leave_no_zombie_as_pid1(static):
    proc = Pid1([static, "--stop-timeout", "2", "sh", "-c", ORPHANS])
    proc.wait_for_line("spawned")
    proc.wait_for_line("settled")
    assert [] == zombies_in_namespace_of(proc.pid1)
    proc.kill(signal.SIGTERM)
    assert 128 + signal.SIGTERM == finish(proc)


def test_orphans_injected_from_outside_leave_no_zombie_as_pid1(static):
    nsenter = require_tool("nsenter")
    proc = Pid1([static, "sh", "-c", "echo ready; exec sleep 60"])
    proc.wait_for_line("ready")
    for _ in range(20):
        subprocess.run([nsenter, "-t", str(proc.pid1), "-p", "--", "sh", "-c", "(sleep 0.2 &)"],
                       check=True, timeout=30)
    time.sleep(0.5)  # the injected sleeps end and become orphans of PID 1
    wait_until(lambda: not zombies_in_namespace_of(proc.pid1), timeout=5,
               what="no zombie in the namespace")
    proc.kill(signal.SIGTERM)
    assert 128 + signal.SIGTERM == finish(proc)


def test_a_stop_signal_during_start_up_stops_the_job_before_it_runs(static, tmp_path):
    marker = tmp_path / "ran"
    proc = Pid1([static, "sh", "-c", f"touch {marker}; sleep 5"])
    # A signal sent before our binary is executing cannot be held by it (PID 1 drops
    # it): wait for the exec, then signal while the binary is still unpacking.
    binary = os.path.realpath(static)
    wait_until(lambda: _exe(proc.pid1) == binary, timeout=10, what="the binary to run")
    proc.kill(signal.SIGTERM)
    assert 128 + signal.SIGTERM == finish(proc)
    assert not marker.exists()


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGHUP])
def test_other_signals_during_start_up_do_not_kill_the_job(static, tmp_path, signum):
    marker = tmp_path / "ran"
    proc = Pid1([static, "sh", "-c", f"touch {marker}; exit 7"])
    binary = os.path.realpath(static)
    wait_until(lambda: _exe(proc.pid1) == binary, timeout=10, what="the binary to run")
    proc.kill(signum)  # while the bootloaders and Python are still starting
    assert 7 == finish(proc)
    assert marker.exists()
