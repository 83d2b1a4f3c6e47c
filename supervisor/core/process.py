"""The PID-1 core: start children, forward signals, reap everything, stop with grace.

One `Supervisor` owns the signal handlers and the only `waitpid(-1)` of the
process; each child it starts runs in its own process group so that a
forwarded signal, a stop and the final cleanup reach everything the child
started. Children are started with `subprocess.Popen` (not asyncio's
subprocess API, whose child watcher reports 255 when someone else reaped the
child and whose wait also waits for pipe EOF). Our process is a child
subreaper, so orphans of the child's tree come back to us and are reaped even
when we are not PID 1.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from supervisor import errors
from supervisor.core import outcome
from supervisor.core.signals import release_signals
from supervisor.core.terminal import Terminal

if TYPE_CHECKING:
    from supervisor.logs.relay import ChildOutput

# Signals we pass on to the child's process group. Not forwarded: SIGCHLD
# (ours), SIGTTIN/SIGTTOU (caught and dropped, so a background write or
# read never stops us), SIGPIPE/SIGXFSZ (raised by our own writes), the
# synchronous faults (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) and the profiling
# timers.
FORWARDED_SIGNALS: tuple[int, ...] = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGTERM,
    signal.SIGCONT,
    signal.SIGTSTP,
    signal.SIGWINCH,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
)
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
DROPPED_SIGNALS = (signal.SIGTTIN, signal.SIGTTOU)
QUIET_SIGNALS = frozenset({signal.SIGWINCH, signal.SIGCONT})

# How often to look whether the rest of a process group is gone.
GROUP_POLL_INTERVAL = 0.05
DEFAULT_DRAIN_TIMEOUT = 5.0
# After SIGKILL, how long to wait for the group to disappear (a process in
# uninterruptible sleep cannot die) before we stop waiting for it.
KILL_REAP_TIMEOUT = 5.0
# The bootloaders of the frozen binary each pass a terminal's Ctrl-C on to
# us, so one keypress can arrive as up to three SIGINTs within microseconds.
# Only a stop signal that comes later than this is a second request.
SIGNAL_ECHO_WINDOW = 0.5

PR_SET_CHILD_SUBREAPER = 36


class Loop(Protocol):
    """The part of an asyncio-style loop the core needs (eventloop.EventLoop or asyncio)."""

    def time(self) -> float: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...
    def call_soon(self, callback: Callable[..., object], *args: Any) -> Any: ...
    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None: ...
    def run_forever(self) -> None: ...
    def stop(self) -> None: ...


class ChildState(enum.Enum):
    RUNNING = "running"  # started, no stop asked
    STOPPING = "stopping"  # stop signal forwarded, kill deadline armed
    LEFTOVERS = "leftovers"  # main process gone, the rest of its group is being stopped
    DRAINING = "draining"  # group gone; reading what is left in the output pipes
    DONE = "done"  # main process reaped, its group empty, its output read


# States in which some process of the child's group may still be alive.
RUNNING_STATES = frozenset({ChildState.RUNNING, ChildState.STOPPING, ChildState.LEFTOVERS})


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str | None = None
    name: str = "child"
    output: ChildOutput | None = None  # pipes relaying stdout/stderr; None: share ours


@dataclass(frozen=True)
class ChildResult:
    """How a child ended."""

    name: str
    pid: int | None
    exit_code: int
    signal: int | None  # the signal that killed it, if it died of one
    duration: float
    stop_signal: int | None = None  # the outside signal that asked us to stop, if any
    killed_by_us: str | None = None  # why we SIGKILLed it: "stop timeout" or "second stop signal"
    started: bool = True


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def set_child_subreaper() -> bool:
    """Make orphans of our descendants our children, so we can reap them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send a signal to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(eq=False)
class Child:
    """One started child and its process group."""

    spec: ChildSpec
    popen: subprocess.Popen[bytes]
    started_at: float
    on_done: Callable[[ChildResult], None]
    state: ChildState = ChildState.RUNNING
    wait_status: int | None = None
    ended_at: float | None = None
    killed_by_us: str | None = None
    kill_deadline: float | None = None
    timers: list[Any] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid  # started with process_group=0: its own group


class Supervisor:
    """Owns signals and reaping for every child started through it."""

    def __init__(
        self,
        loop: Loop,
        log: Any,
        stop_timeout: float,
        terminal: Terminal | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.log = log
        self.stop_timeout = stop_timeout
        self.drain_timeout = drain_timeout
        self.terminal = terminal
        self.stop_signal: int | None = None
        self.stop_listeners: list[Callable[[], object]] = []  # told when a stop is asked
        self.on_first_spawn: Callable[[], object] | None = None  # runs once the child runs
        self._stop_requested_at: float | None = None
        self._children: dict[int, Child] = {}
        self.is_subreaper = os.getpid() == 1 or set_child_subreaper()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for signum in FORWARDED_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        for signum in DROPPED_SIGNALS:
            loop.add_signal_handler(signum, lambda: None)
        release_signals()  # what arrived while we started is handled now

    def kill_all(self) -> None:
        """SIGKILL every child's group: we are going away because of a bug of ours."""
        for child in self._children.values():
            if child.state in RUNNING_STATES:
                _signal_group(child.pgid, signal.SIGKILL)

    # starting -------------------------------------------------------------
    def start(self, spec: ChildSpec, on_done: Callable[[ChildResult], None]) -> Child:
        """Start a child in its own process group; raise when it cannot be executed."""
        preexec = self.terminal.child_setup() if self.terminal else None
        output = spec.output
        try:
            popen = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env),
                cwd=spec.cwd,
                stdout=output.child_fd("stdout") if output else None,
                stderr=output.child_fd("stderr") if output else None,
                process_group=0,
                restore_signals=True,
                close_fds=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            if output:
                output.abandon()
            raise _spawn_error(spec, exc) from None
        child = Child(spec=spec, popen=popen, started_at=self.loop.time(), on_done=on_done)
        self._children[popen.pid] = child
        if output:
            output.started(popen.pid)
        if self.terminal:
            self.terminal.give_to(child.pgid)
        if self.on_first_spawn is not None:
            announce, self.on_first_spawn = self.on_first_spawn, None
            announce()
        self.log.info("child started", name=spec.name, child_pid=popen.pid, argv=list(spec.argv))
        if self.stop_signal is not None:
            # A stop was asked before this child existed: it gets the signal too.
            self._begin_stop(child, self.stop_signal)
        return child

    def run(self, spec: ChildSpec) -> ChildResult:
        """Start a child and run the loop until it and its group are gone."""
        # Signals that arrived while we started (held until now) are seen first:
        # a job stopped before its program ran never runs it.
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        if self.stop_signal is not None:
            return ChildResult(
                name=spec.name,
                pid=None,
                exit_code=outcome.SIGNAL_EXIT_BASE + self.stop_signal,
                signal=None,
                duration=0.0,
                stop_signal=self.stop_signal,
                started=False,
            )
        results: list[ChildResult] = []

        def done(result: ChildResult) -> None:
            results.append(result)
            self.loop.stop()

        self.start(spec, done)
        while not results:
            self.loop.run_forever()
        return results[0]

    # signals --------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        now = self.loop.time()
        live = [c for c in self._children.values() if c.state in RUNNING_STATES]
        quiet = signum in QUIET_SIGNALS
        if signum in STOP_SIGNALS:
            if self.stop_signal is None:
                self.stop_signal = signum
                self._stop_requested_at = now
                self.log.info("stop requested", signal=signal_name(signum),
                              stop_timeout_s=self.stop_timeout)
                for child in live:
                    self._begin_stop(child, signum)
                for listener in list(self.stop_listeners):
                    listener()
                return
            assert self._stop_requested_at is not None
            if now - self._stop_requested_at > SIGNAL_ECHO_WINDOW:
                self.log.warning("second stop signal: killing now", signal=signal_name(signum))
                for child in live:
                    self._kill_group(child, "second stop signal")
                return
        if not live and not quiet:
            self.log.info("signal received while no child runs: not forwarded",
                          signal=signal_name(signum))
        for child in live:
            _signal_group(child.pgid, signum)
            (self.log.debug if quiet else self.log.info)(
                "signal forwarded", signal=signal_name(signum), child_pid=child.pid
            )

    def _begin_stop(self, child: Child, signum: int) -> None:
        if child.state is ChildState.RUNNING:
            child.state = ChildState.STOPPING
        _signal_group(child.pgid, signum)
        self.log.info("signal forwarded", signal=signal_name(signum), child_pid=child.pid)
        self._arm_kill(child, self.loop.time() + self.stop_timeout)

    def _arm_kill(self, child: Child, deadline: float) -> None:
        if child.kill_deadline is not None and child.kill_deadline <= deadline:
            return
        child.kill_deadline = deadline
        delay = max(0.0, deadline - self.loop.time())
        child.timers.append(self.loop.call_later(delay, self._kill_group, child, "stop timeout"))

    def _kill_group(self, child: Child, reason: str) -> None:
        if child.state not in RUNNING_STATES:
            return
        if child.wait_status is None:
            child.killed_by_us = reason
        self.log.warning("killing process group", reason=reason, child_pid=child.pid,
                         stop_timeout_s=self.stop_timeout)
        _signal_group(child.pgid, signal.SIGKILL)
        child.timers.append(self.loop.call_later(KILL_REAP_TIMEOUT, self._give_up, child))

    def _give_up(self, child: Child) -> None:
        if child.state is ChildState.LEFTOVERS:
            self.log.error("process group did not die after SIGKILL; not waiting for it",
                           child_pid=child.pid)
            self._group_gone(child)

    # reaping --------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = self._children.get(pid)
            if child is None:
                self.log.debug("reaped orphan", orphan_pid=pid,
                               code=outcome.exit_code_for_wait_status(status))
            elif child.wait_status is None:
                self._on_main_exit(child, status)
        for child in list(self._children.values()):
            if child.state is ChildState.LEFTOVERS:
                self._check_group(child)

    def _on_main_exit(self, child: Child, status: int) -> None:
        child.wait_status = status
        child.ended_at = self.loop.time()
        # Tell Popen it is reaped, so it never waits for a recycled PID.
        child.popen.returncode = os.waitstatus_to_exitcode(status)
        if self.terminal:
            self.terminal.take_back()
        child.state = ChildState.LEFTOVERS
        if _signal_group(child.pgid, 0):
            self.log.info("main process exited; stopping the rest of its process group",
                          child_pid=child.pid, code=outcome.exit_code_for_wait_status(status))
            _signal_group(child.pgid, signal.SIGTERM)
            _signal_group(child.pgid, signal.SIGCONT)
            self._arm_kill(child, self.loop.time() + self.stop_timeout)
            self._poll_group(child)
        else:
            self._group_gone(child)

    def _poll_group(self, child: Child) -> None:
        if self._check_group(child):
            child.timers.append(self.loop.call_later(GROUP_POLL_INTERVAL, self._poll_group, child))

    def _check_group(self, child: Child) -> bool:
        """True while the group still has members."""
        if child.state is not ChildState.LEFTOVERS:
            return False
        if _signal_group(child.pgid, 0):
            return True
        self._group_gone(child)
        return False

    def _group_gone(self, child: Child) -> None:
        """Everything of the group is gone: read what is left in the pipes, then finish."""
        for timer in child.timers:
            timer.cancel()
        child.timers.clear()
        output = child.spec.output
        if output is None or output.closed:
            self._finish(child)
            return
        child.state = ChildState.DRAINING
        output.on_closed = lambda: self._finish(child)
        child.timers.append(self.loop.call_later(self.drain_timeout, self._stop_draining, child))

    def _stop_draining(self, child: Child) -> None:
        output = child.spec.output
        if (child.state is ChildState.DRAINING and output is not None
                and output.close_held_open()):
            self.log.warning("output pipes still held open (by a process outside the group); "
                             "no longer reading them", child_pid=child.pid,
                             drain_timeout_s=self.drain_timeout)

    def _finish(self, child: Child) -> None:
        if child.state is ChildState.DONE:
            return
        child.state = ChildState.DONE
        for timer in child.timers:
            timer.cancel()
        del self._children[child.pid]
        status = child.wait_status
        assert status is not None and child.ended_at is not None
        termsig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        result = ChildResult(
            name=child.spec.name,
            pid=child.pid,
            exit_code=outcome.exit_code_for_wait_status(status),
            signal=termsig,
            duration=child.ended_at - child.started_at,
            stop_signal=self.stop_signal,
            killed_by_us=child.killed_by_us,
        )
        summary = child.spec.output.summary() if child.spec.output else {}
        self.log.info(
            "child exited",
            name=result.name,
            child_pid=result.pid,
            code=result.exit_code,
            signal=signal_name(termsig) if termsig else None,
            duration_s=round(result.duration, 3),
            **summary,
        )
        child.on_done(result)


def _spawn_error(spec: ChildSpec, exc: OSError) -> errors.EntryError:
    """Name what could not be started, with the shell's exit code for it."""
    program = spec.argv[0] if spec.argv else ""
    if spec.cwd is not None and exc.filename == spec.cwd:
        return errors.EntryError(f"cannot start {program}: working directory {spec.cwd}: "
                                 f"{exc.strerror}")
    if isinstance(exc, FileNotFoundError):
        from supervisor.executables import find_on_path

        found = os.sep not in program and find_on_path(program, spec.env, None)
        relative_to = spec.cwd or os.curdir
        if found or (os.sep in program
                                 and os.path.isfile(os.path.join(relative_to, program))):
            # The file is there, so what is missing is its #! interpreter or loader.
            return errors.CommandNotExecutable(
                program, "bad interpreter: the program it names (#! line or loader) does not exist"
            )
        detail = "command not found" if os.sep not in program else "no such file"
        return errors.CommandNotFound(program, detail)
    return errors.CommandNotExecutable(program, exc.strerror or str(exc))
