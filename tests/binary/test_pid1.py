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
    Run,
    children_of,
    require_binary,
    require_tool,
    signal_blocked,
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


def bootloader_holds_signals(proc, signum):
    """Our bootloader blocks every signal as its first act: from then on none is lost.

    While it unpacks they show as blocked; once it has started its child it
    takes them with sigtimedwait(), during which the kernel shows them unblocked.
    Before it runs at all, PID 1 is still unshare's child, which also shows
    SIGINT/SIGTERM blocked (unshare blocks them around its fork) and drops
    them at exec: the process must already be our binary.
    """
    def ready():
        try:
            ours = not os.readlink(f"/proc/{proc.pid1}/exe").endswith("/unshare")
        except OSError:
            return False
        return ours and (signal_blocked(proc.pid1, signum) or children_of(proc.pid1))

    wait_until(ready, timeout=10, what="the bootloader to hold signals")


def test_a_stop_signal_during_start_up_stops_the_job_before_it_runs(static, tmp_path):
    marker = tmp_path / "ran"
    proc = Pid1([static, "sh", "-c", f"touch {marker}; sleep 5"])
    bootloader_holds_signals(proc, signal.SIGTERM)
    proc.kill(signal.SIGTERM)  # while the bootloaders and Python are still starting
    assert 128 + signal.SIGTERM == finish(proc)
    assert not marker.exists()


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGHUP])
def test_other_signals_during_start_up_do_not_kill_the_job(static, tmp_path, signum):
    marker = tmp_path / "ran"
    proc = Pid1([static, "sh", "-c", f"touch {marker}; exit 7"])
    bootloader_holds_signals(proc, signum)
    proc.kill(signum)  # while the bootloaders and Python are still starting
    assert 7 == finish(proc)
    assert marker.exists()


def test_one_sigint_to_our_process_group_reaches_the_child_once(static):
    # A shell's Ctrl-C without a terminal, systemd's KillMode: the signal goes to the whole
    # group, so each of the binary's three processes gets it and passes it on.
    proc = Run([static, "--stop-timeout", "1", *signals_child("0", "stay")], start_new_session=True)
    proc.wait_for_line("ready")
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait_for_line("got SIGINT")
    time.sleep(0.7)  # past the echo window: a later SIGUSR1 is news, and shows up after any echo
    proc.kill(signal.SIGUSR1)
    proc.wait_for_line("got SIGUSR1")
    assert [] == [line for line in proc.lines if "got SIGINT" in line]
    assert 137 == finish(proc)  # "stay" outlives the stop signal; killed at the stop timeout
