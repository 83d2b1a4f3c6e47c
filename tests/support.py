"""Shared helpers: start sm-entry for real, read its output, look at /proc."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHILDREN = REPO / "tests" / "children"
# SM_ENTRY_TEST_STATIC runs the binary tests on another build (e.g. one made with stock staticx).
STATIC_BINARY = Path(os.environ.get("SM_ENTRY_TEST_STATIC", REPO / "dist" / "sm-entry"))
DYNAMIC_BINARY = REPO / "dist" / "sm-entry-dynamic"
SYSTEM_PYTHON = "/usr/bin/python3"
# `python -m supervisor` from this checkout, whatever an editable install points at.
SOURCE_COMMAND = [
    sys.executable, "-c",
    f"import sys; sys.path.insert(0, {str(REPO)!r}); import runpy; "
    "runpy.run_module('supervisor', run_name='__main__', alter_sys=True)",
]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"  # with torch: `make test` installs it
TIMEOUT = 30.0  # a generous bound for anything that should take milliseconds


class ExactEnv(dict[str, str]):
    """An environment handed to a process exactly (conftest adds the run's TMPDIR to others)."""


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (PID namespaces, chroot, nsenter)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (make test-deps installs it)")
    return path


def require_binary(path: Path) -> str:
    if not path.exists():
        if "SM_ENTRY_TEST_STATIC" in os.environ and path == STATIC_BINARY:
            pytest.fail(f"SM_ENTRY_TEST_STATIC={path}: no such file")
        pytest.skip(f"{path} is not built (run make build)")
    return str(path)


def signals_child(*args: str) -> list[str]:
    return [SYSTEM_PYTHON, str(CHILDREN / "signals.py"), *args]


# Every Run not closed by its test is closed after it (tests/conftest.py): pass or fail,
# a test ends what it started.
OPEN_RUNS: list[Run] = []


class Run:
    """A started process whose stdout lines we can wait for."""

    def __init__(self, argv: Sequence[str], **kwargs: object) -> None:
        OPEN_RUNS.append(self)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.PIPE)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._buffer = b""
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_some(self, timeout: float) -> bool:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return True
        data = self.proc.stdout.read()
        if not data:
            return False
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in complete)
        return True

    def wait_for_line(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait until a stdout line matches `pattern` (a regex searched in the line)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                match = regex.search(line)
                if match:
                    self.lines.remove(line)
                    return match
            seen = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.lines!r}")
            if not self._read_some(min(remaining, 0.2)) and self.proc.poll() is not None:
                raise AssertionError(
                    f"exited {self.proc.returncode} before a line matched {pattern!r}: "
                    f"{self.lines!r} stderr={self.stderr_text()!r}"
                )

    def stderr_text(self) -> str:
        if self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode("utf-8", "replace")

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self._read_some(0.1):
            if time.monotonic() > deadline:
                break
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def kill(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def close(self) -> None:
        """Kill it and, since a SIGKILLed sm-entry cannot stop its job, the job too."""
        if self.proc.poll() is None:
            tree = descendants_of(self.pid)
            self.proc.kill()
            self.proc.wait()
            for pid in tree:  # re-parented to the test run (a subreaper), reaped at its end
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self in OPEN_RUNS:
            OPEN_RUNS.remove(self)


def descendants_of(pid: int) -> list[int]:
    """Every process under `pid`, by our own walk of /proc (not the code under test)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def signal_when_ready(proc: Run, signum: int, ready: str = "ready") -> int:
    """Wait for the `ready` line, send `signum`, and return the exit code."""
    try:
        proc.wait_for_line(ready)
        proc.kill(signum)
        return proc.wait()
    finally:
        proc.close()


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


class Pid1(Run):
    """sm-entry started as PID 1 of a new PID namespace.

    It unpacks into a private TMPDIR (unless the test gives one), removed at
    close: a namespace killed by a failing test leaves nothing in /tmp.
    """

    def __init__(self, argv: Sequence[str], **kwargs: object) -> None:
        require_root()
        unshare = require_tool("unshare")
        env = dict(kwargs.pop("env", None) or os.environ)  # type: ignore[call-overload]
        self.private_tmp: str | None = None
        if "TMPDIR" not in env:
            self.private_tmp = env["TMPDIR"] = tempfile.mkdtemp(prefix="sm-entry-test-")
        super().__init__([unshare, "--pid", "--fork", "--kill-child", "--mount-proc", *argv],
                         env=env, **kwargs)
        found = wait_until(lambda: children_of(self.proc.pid), what="PID 1 of the namespace")
        assert isinstance(found, list)
        self.pid1 = found[0]

    def kill(self, signum: int) -> None:
        os.kill(self.pid1, signum)

    def close(self) -> None:
        """Kill the namespace (PID 1 takes every process in it along) and wait for it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(TIMEOUT)
        super().close()
        if self.private_tmp is not None:
            shutil.rmtree(self.private_tmp, ignore_errors=True)


def signal_blocked(pid: int, signum: int) -> bool:
    """Is `signum` blocked by `pid`? (Our bootloader blocks every signal as its first act.)"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(status.split("SigBlk:")[1].split()[0], 16)
    return bool(mask >> (signum - 1) & 1)


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def zombies_in_namespace_of(pid: int) -> list[int]:
    """Zombie processes in the PID namespace that `pid` is in."""
    target = os.readlink(f"/proc/{pid}/ns/pid")
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != target:
                continue
        except OSError:
            continue
        state = process_state(int(entry))
        if state and state[0] == "Z":
            zombies.append(int(entry))
    return zombies


def zombie_children(pid: int) -> list[int]:
    return [c for c in children_of(pid) if (process_state(c) or ("", 0))[0] == "Z"]


def signal_names(run: Run) -> list[str]:
    return [m.group(1) for line in run.lines if (m := re.search(r"got (SIG\w+)", line))]


__all__ = ["signal"]


@functools.cache
def torch_problem() -> str | None:
    """Why .venv/bin/python cannot run the job, or None."""
    if not VENV_PYTHON.exists():
        return f"{VENV_PYTHON} does not exist (make builds the venv)"
    result = subprocess.run([str(VENV_PYTHON), "-c", "import torch"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return (f"torch is not importable by {VENV_PYTHON} ({last}); "
                "CI installs it: .venv/bin/pip install torch==2.13.0")
    return None
