"""The process core as a plain process (a child subreaper, not PID 1)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from supervisor.core import tree
from tests.support import (
    CHILDREN,
    REPO,
    SYSTEM_PYTHON,
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
    proc = Run([*sm_entry, "--stop-timeout", "20", "sh", "-c", LEFTOVER])
    try:
        bg = int(proc.wait_for_line(r"bg (\d+)").group(1))
        started = time.monotonic()
        assert 5 == proc.wait()
        assert time.monotonic() - started < 10  # the sleep dies of SIGTERM: no waiting for the timeout
        wait_until(lambda: process_state(bg) is None, what="the background sleep to be gone")
        leftover = [e for e in events(proc) if e["msg"] == "main process exited; stopping the rest of its process tree"]
        assert 1 == len(leftover) and 1 <= leftover[0]["processes"]
    finally:
        proc.close()


def events(proc):
    """sm-entry's own JSON events, once it has exited."""
    return [json.loads(line) for line in proc.stderr_text().splitlines()
            if line.startswith("{") and '"src":"sm-entry"' in line]


def test_events_say_exactly_what_happened(sm_entry):
    proc = Run([*sm_entry, "--log-format", "json", *signals_child("0")])
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGUSR1)
        proc.wait_for_line("got SIGUSR1")
        proc.kill(signal.SIGTERM)
        assert 0 == proc.wait()
        seen = events(proc)
        assert ["sm-entry started", "child started", "signal forwarded", "stop requested",
                "signal forwarded", "child exited", "job summary"] == [e["msg"] for e in seen]
        summary = seen[-1]
        assert (0, "stopped by SIGTERM: success") == (summary["exit_code"], summary["reason"])
    finally:
        proc.close()


def test_a_child_without_leftovers_ends_without_a_leftover_stop(sm_entry):
    proc = Run([*sm_entry, "--log-format", "json", "seq", "200000"])
    try:
        assert 0 == proc.wait()
        assert 200000 == len([line for line in proc.lines if '"stream":"stdout"' in line])
        assert ["sm-entry started", "child started", "child exited", "job summary"] == [
            e["msg"] for e in events(proc)]
    finally:
        proc.close()


HOLDER = """
import os, sys, time
child = int(sys.argv[1])
holder = os.open(f"/proc/{child}/fd/1", os.O_WRONLY)  # the child's stdout pipe, from outside
print("holding", flush=True)
time.sleep(0.5)
os.write(holder, b"late line from outside\\n")
time.sleep(30)
"""


def test_a_pipe_held_open_outside_the_tree_is_read_then_let_go(sm_entry):
    proc = Run([*sm_entry, "--drain-timeout", "2", "--log-format", "json", "sh", "-c",
                "echo \"pid $$\"; read line < /dev/stdin || sleep 1; exit 3"],
               stdin=subprocess.PIPE)
    holder = None
    try:
        child = int(json.loads(proc.wait_for_line(r'"msg":"pid \d+"').string)["msg"].split()[1])
        holder = subprocess.Popen([SYSTEM_PYTHON, "-c", HOLDER, str(child)], stdout=subprocess.PIPE)
        assert b"holding" in holder.stdout.readline()
        proc.proc.stdin.close()  # the child exits; the holder keeps its stdout pipe open
        assert 3 == proc.wait()
        assert any("late line from outside" in line for line in proc.lines)
        held = [e for e in events(proc) if e["msg"].startswith("output pipes still held open")]
        assert 1 == len(held)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
            holder.stdout.close()
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


def coordinator(sm_entry, *options):
    return Run([*sm_entry, *options, SYSTEM_PYTHON, str(CHILDREN / "coordinator.py")])


def test_a_stop_signal_reaches_only_the_main_child_which_stops_its_workers(sm_entry):
    proc = coordinator(sm_entry)
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        proc.wait_for_line("main got SIGTERM")
        proc.wait_for_line("worker alive True")  # it did not hear our SIGTERM
        proc.wait_for_line("worker got SIGTERM")  # the rest of the tree, once the main child exited
        assert 0 == proc.wait()
    finally:
        proc.close()


def test_with_group_scope_the_whole_process_group_hears_it(sm_entry):
    proc = coordinator(sm_entry, "--signal-scope", "group")
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        proc.wait_for_line("worker got SIGTERM")
        proc.wait_for_line("worker alive False")
        assert 0 == proc.wait()
    finally:
        proc.close()


def test_group_scope_from_the_environment_too(sm_entry):
    proc = Run([*sm_entry, SYSTEM_PYTHON, str(CHILDREN / "coordinator.py")],
               env={**os.environ, "SM_ENTRY_SIGNAL_SCOPE": "group"})
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGUSR1)  # forwarded, not a stop: the group hears it (default action: dies)
        proc.kill(signal.SIGTERM)
        assert 128 + signal.SIGUSR1 == proc.wait()
    finally:
        proc.close()


DAEMON = """
setsid sh -c 'trap "" TERM; echo "daemon $$"; while :; do sleep 0.1; done' &
sleep 0.3
exit 0
"""


def test_a_setsid_daemon_ignoring_sigterm_does_not_outlive_us(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "1", "sh", "-c", DAEMON])
    try:
        daemon = int(proc.wait_for_line(r"daemon (\d+)").group(1))
        assert 0 == proc.wait()
        assert process_state(daemon) is None  # killed after the grace, before we exited
        assert "killing the process tree" in proc.stderr_text()
    finally:
        proc.close()


ORPHAN = """
(sleep 2 & echo "orphan $!")
echo "parent $PPID"
sleep 10
"""


def test_orphans_are_reparented_to_us_and_reaped_by_us(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "2", "sh", "-c", ORPHAN])
    try:
        orphan = int(proc.wait_for_line(r"orphan (\d+)").group(1))
        ours = int(proc.wait_for_line(r"parent (\d+)").group(1))  # our Python: the child's parent
        wait_until(lambda: (process_state(orphan) or ("", 0))[1] == ours,
                   what="the orphan to be reparented to sm-entry (a subreaper)")
        wait_until(lambda: process_state(orphan) is None, what="the orphan to be reaped by sm-entry")
        proc.kill(signal.SIGTERM)
        assert 128 + signal.SIGTERM == proc.wait()
    finally:
        proc.close()


@pytest.mark.parametrize("name", ["SIGPWR", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGIO", "SIGSTKFLT",
                                  "SIGURG"])
def test_signals_whose_default_would_kill_us_are_forwarded(sm_entry, name):
    proc = Run([*sm_entry, *signals_child("0")])
    try:
        proc.wait_for_line("ready")
        proc.kill(getattr(signal, name))
        proc.wait_for_line(f"got {name}")
        proc.kill(signal.SIGTERM)
        assert 0 == proc.wait()
    finally:
        proc.close()


def test_sigsys_is_dropped_and_kills_nobody(sm_entry):
    proc = Run([*sm_entry, *signals_child("0")])
    try:
        proc.wait_for_line("ready")
        proc.kill(signal.SIGSYS)
        proc.kill(signal.SIGUSR1)  # forwarded in order after it: SIGSYS is handled by now
        proc.wait_for_line("got SIGUSR1")
        proc.kill(signal.SIGTERM)
        assert 0 == proc.wait()
    finally:
        proc.close()


def ignoring_int_and_quit():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def test_signals_our_parent_ignores_stay_ignored_and_do_not_stop_us(sm_entry):
    # A shell's background job, or nohup: SIGINT and SIGQUIT are ignored, as under tini.
    proc = Run([*sm_entry, "--log-format", "raw", "sh", "-c",
                "grep SigIgn /proc/self/status; echo ready; sleep 10; exit 9"],
               preexec_fn=ignoring_int_and_quit)
    try:
        ignored = int(proc.wait_for_line(r"SigIgn:\s+(\w+)").group(1), 16)
        assert ignored >> (signal.SIGINT - 1) & 1 and ignored >> (signal.SIGQUIT - 1) & 1
        proc.wait_for_line("ready")
        proc.kill(signal.SIGINT)
        proc.kill(signal.SIGQUIT)
        proc.kill(signal.SIGUSR1)  # a signal that is ours: forwarded, and the sh dies of it
        assert 128 + signal.SIGUSR1 == proc.wait()
        assert "stop requested" not in proc.stderr_text()
    finally:
        proc.close()


WRITES_FOREVER = """
import os, signal, sys
mark = sys.argv[1]
def on_term(*_):
    open(mark, "w").close()
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if "ignore" in sys.argv else on_term)
print(f"ready {os.getpid()}", file=sys.stderr, flush=True)
line = b"x" * 100 + b"\\n"
while True:
    os.write(1, line)
"""


@pytest.mark.parametrize("ignore", [False, True])
def test_a_stop_is_forwarded_and_enforced_while_nobody_reads_our_output(sm_entry, tmp_path, ignore):
    mark = tmp_path / "got-term"
    stalled_r, stalled_w = os.pipe()  # our stdout: a pipe nobody reads (a stalled log driver)
    argv = [*sm_entry, "--stop-timeout", "1", "--drain-timeout", "1", SYSTEM_PYTHON, "-c",
            WRITES_FOREVER, str(mark), *(["ignore"] if ignore else [])]
    proc = subprocess.Popen(argv, stdout=stalled_w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(stalled_w)
    try:
        assert b"ready" in proc.stderr.readline() or b"ready" in proc.stderr.readline()
        time.sleep(0.5)  # long enough for every pipe between the child and the reader to fill
        os.kill(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        if not ignore:
            wait_until(mark.exists, timeout=5, what="the child to get SIGTERM")
            assert time.monotonic() - started < 5
        assert (137 if ignore else 0) == proc.wait(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(stalled_r)
        proc.stderr.close()


def test_an_argument_that_is_not_utf8_never_crashes_us(sm_entry):
    proc = Run([*sm_entry, "printf", "%s\\n", os.fsdecode(b"caf\xe9")])
    try:
        assert 0 == proc.wait()
        assert "caf\\\\xe9" in proc.stderr_text()  # the "child started" event shows it escaped
    finally:
        proc.close()


def test_the_child_started_event_hides_secrets(sm_entry):
    proc = Run([*sm_entry, "true", "--hf-token=hf_TOPS3CRET", "--api-key", "k_TOPS3CRET",
                "--index-url", "https://user:pw_TOPS3CRET@example.com/simple"])
    try:
        assert 0 == proc.wait()
        events = proc.stderr_text()
        assert "child started" in events
        assert "TOPS3CRET" not in events
    finally:
        proc.close()


def test_the_childs_output_is_relayed_as_records_and_it_gets_default_signals(sm_entry):
    probe = "grep -E '^SigIgn' /proc/self/status"
    proc = Run([*sm_entry, "--log-format", "json", "sh", "-c", probe])
    try:
        assert 0 == proc.wait()
        record = json.loads(proc.lines[0])
        assert "stdout" == record["stream"]
        ignored = int(record["msg"].split()[1], 16)
        assert not ignored >> (signal.SIGPIPE - 1) & 1  # Python ignores SIGPIPE; the child must not
    finally:
        proc.close()


def test_at_the_stop_timeout_the_whole_tree_is_killed_at_once(sm_entry):
    # The main child and a worker both ignore SIGTERM: one SIGKILL round takes both.
    proc = Run([*sm_entry, "--stop-timeout", "1", "--log-format", "json", "sh", "-c",
                'trap "" TERM; sleep 1000 & echo "worker $!"; echo ready; wait'])
    try:
        worker = int(proc.wait_for_line(r'"msg":"worker \d+"').string.split('"msg":"worker ')[1]
                     .split('"')[0])
        proc.wait_for_line("ready")
        proc.kill(signal.SIGTERM)
        assert 137 == proc.wait()
        kills = [e for e in events(proc) if e["msg"] == "killing the process tree"]
        assert [("stop timeout", 2)] == [(e["reason"], e["processes"]) for e in kills]
        assert not tree.exists(worker)
    finally:
        proc.close()


def test_an_internal_error_is_one_line_and_exit_70():
    # A bug of ours (here: app.run raising) must not look like the child's or docker's failure.
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from supervisor import app, cli\n"
              "def broken(*args): raise RuntimeError('a bug of ours')\n"
              "app.run = broken\n"
              "cli.main(['/bin/true'])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert 70 == result.returncode
    assert "internal error: RuntimeError: a bug of ours" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_signal_while_only_leftovers_run_is_logged_not_forwarded(sm_entry):
    proc = Run([*sm_entry, "--stop-timeout", "3", "--log-format", "json", "sh", "-c",
                '(trap "" TERM USR1; echo leftover; sleep 30) & sleep 0.2; echo "ready $$"'])
    try:
        main = int(json.loads(proc.wait_for_line(r'"msg":"ready \d+"').string)["msg"].split()[1])
        proc.wait_for_line("leftover")
        wait_until(lambda: not tree.exists(main))  # exited and reaped: only the leftover runs
        proc.kill(signal.SIGUSR1)
        assert 0 == proc.wait()
        received = [e for e in events(proc)
                    if e["msg"] == "signal received while no child runs: not forwarded"]
        assert ["SIGUSR1"] == [e["signal"] for e in received]
    finally:
        proc.close()


def test_the_job_summary_counts_the_cpu_of_the_whole_tree(sm_entry):
    burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    proc = Run([*sm_entry, "--log-format", "json", "sh", "-c",
                f"{SYSTEM_PYTHON} -c '{burn}' & wait; exit 3"])
    try:
        assert 3 == proc.wait()
        summary = events(proc)[-1]
        assert ("job summary", 3, "exit code 3") == (summary["msg"], summary["exit_code"],
                                                     summary["reason"])
        assert summary["cpu_user_s"] + summary["cpu_system_s"] >= 0.4  # the grandchild's 0.5 s
        assert summary["wall_s"] >= 0.4 and summary["peak_memory_bytes"] > 1 << 20
    finally:
        proc.close()


def test_the_job_summary_is_a_short_block_in_text_format(sm_entry):
    proc = Run([*sm_entry, "--log-format", "text", "sh", "-c", "exit 0"])
    try:
        assert 0 == proc.wait()
        block = proc.stderr_text().split("job summary: ", 1)[1].splitlines()
        assert "success (exit code 0)" == block[0]
        assert block[1].startswith("  wall ") and block[2].startswith("  peak memory ")
    finally:
        proc.close()


NOISY_AND_DEAF = ["sh", "-c", "trap '' TERM; yes 'a line of output nobody reads'"]


@pytest.mark.parametrize("mode", ["command", "train", "serve"])
def test_a_stop_ends_on_time_whatever_stdout_does(sm_entry, tmp_path, mode):
    """Our stdout is never read (a stalled log driver) and the job ignores SIGTERM: from the
    stop signal to our exit, at most the stop timeout and 2 s (the platform's SIGKILL is near)."""
    argv = {"command": [*sm_entry, "--stop-timeout", "2", *NOISY_AND_DEAF],
            "train": [*sm_entry, "--root", str(tmp_path / "ml"), "--stop-timeout", "2", "train",
                      "--", *NOISY_AND_DEAF],
            "serve": [*sm_entry, "--stop-timeout", "2", "serve", "--port", "0", "--",
                      *NOISY_AND_DEAF]}[mode]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={"PATH": os.environ["PATH"], "SM_ENTRY_LOG_FORMAT": "json"})
    try:
        time.sleep(2)  # long enough for every buffer between it and us to fill
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        elapsed = time.monotonic() - started
        assert elapsed < 2 + 2 + 0.5, elapsed  # (0.5 s: a loaded machine's scheduling)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
