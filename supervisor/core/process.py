"""The PID-1 core: start children, forward signals, reap everything, stop with grace.

One `Supervisor` owns the signal handlers and the only `waitpid(-1)` of the
process. Children are started with `subprocess.Popen` (not asyncio's
subprocess API, whose child watcher reports 255 when someone else reaped the
child and whose wait also waits for pipe EOF), each in its own process group.
Our process is a child subreaper, so orphans of the job come back to us and
are reaped even when we are not PID 1.

Who hears what: a coordinator (a training script with DataLoader workers,
torchrun, gunicorn's arbiter, mpirun) stops its own workers in its own order,
so by default forwarded signals, stop signals included, go to the main child
only, as under tini. When the main child has exited, the rest of its tree
(every descendant, daemons that called setsid() included) gets SIGTERM, the
grace, then SIGKILL; at the stop timeout the whole tree gets SIGKILL.
`signal_scope="group"` sends every forwarded signal to the child's process
group instead.

The core never runs the loop itself: a child's end is a future
(`Child.done`), so it works on our `EventLoop` and on asyncio alike, and a
mode is a coroutine that awaits its children.
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
from supervisor.core import outcome, tree
from supervisor.core.signals import (
    DROPPED,
    FORWARDED,
    QUIET,
    STOP,
    inherited_ignored,
    release_signals,
    signal_name,
)
from supervisor.core.terminal import Terminal

if TYPE_CHECKING:
    from supervisor.logs.relay import ChildOutput

# After a stop signal, sm-entry exits within the stop timeout and this; a drain's waits
# (output still to read or to write) are cut to fit.
STOP_MARGIN = 1.5
MIN_DRAIN_WAIT = 0.1
# How often to look whether the rest of a child's tree is gone.
TREE_POLL_INTERVAL = 0.05
DEFAULT_DRAIN_TIMEOUT = 5.0
# After SIGKILL, how long to wait for the tree to disappear (a process in
# uninterruptible sleep cannot die) before we stop waiting for it.
KILL_REAP_TIMEOUT = 5.0
# The bootloaders of the frozen binary each pass on a signal sent to our
# whole process group (a shell's Ctrl-C, `kill -INT -PGID`), so one signal
# can reach us up to three times within microseconds. The same signal again
# within this window is that echo, forwarded once.
SIGNAL_ECHO_WINDOW = 0.5

PR_SET_CHILD_SUBREAPER = 36


class Loop(Protocol):
    """The part of an asyncio-style loop the core needs (eventloop.EventLoop or asyncio's)."""

    def time(self) -> float: ...
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...
    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: int) -> bool: ...
    def call_soon(self, callback: Callable[..., object], *args: Any) -> Any: ...
    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any: ...
    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None: ...
    def create_future(self) -> Any: ...
    def create_task(self, coroutine: Any) -> Any: ...
    def run_forever(self) -> None: ...
    def stop(self) -> None: ...


class ChildState(enum.Enum):
    RUNNING = enum.auto()  # started, no stop asked
    STOPPING = enum.auto()  # stop signal sent, kill deadline armed
    FOLLOWING = enum.auto()  # main process exited 0, leaving its server: that is the child now
    LEFTOVERS = enum.auto()  # main process gone, the rest of its tree is being stopped
    DRAINING = enum.auto()  # tree gone; reading what is left in the output pipes
    DONE = enum.auto()  # main process reaped, its tree gone, its output read


# States in which some process of the child's tree may still be alive.
RUNNING_STATES = frozenset({ChildState.RUNNING, ChildState.STOPPING, ChildState.FOLLOWING,
                            ChildState.LEFTOVERS})


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str | None = None
    name: str = "child"
    output: ChildOutput | None = None  # pipes relaying stdout/stderr; None: share ours
    pass_fds: tuple[int, ...] = ()  # kept open in the child (a listening socket handed over)
    # Part of ending the job (telling other hosts how it ended): a stop does not signal it.
    part_of_stop: bool = False
    # A launcher that daemonizes (`torchserve --start`): when the main process exits 0 and
    # leaves processes it started, those are the child from then on (signals, its end).
    follow: bool = False


@dataclass(frozen=True)
class ChildResult:
    """How a child ended."""

    name: str
    pid: int | None
    exit_code: int
    signal: int | None  # the signal that killed it, if it died of one
    duration: float
    stop_signal: int | None = None  # the signal that asked it to stop, if any
    killed_by_us: str | None = None  # why we SIGKILLed it: "stop timeout" or "second stop signal"
    started: bool = True
    # When a followed server ended it: what died, and how ("java (PID 42) killed by SIGKILL").
    died: str | None = None


def set_child_subreaper() -> bool:
    """Make orphans of our descendants our children, so we can reap them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


@dataclass(eq=False)
class Child:
    """One started child: its main process, its tree, its own stop and result."""

    spec: ChildSpec
    popen: subprocess.Popen[bytes]
    started_at: float
    done: Any  # a future of the loop, resolved with the ChildResult
    stop_timeout: float
    state: ChildState = ChildState.RUNNING
    wait_status: int | None = None
    ended_at: float | None = None
    stop_signal: int | None = None
    killed_by_us: str | None = None
    kill_deadline: float | None = None
    killing: bool = False
    timers: list[Any] = field(default_factory=list)
    shares_terminal: bool = False  # given our terminal's foreground (not a pty of its own)
    followed: dict[int, str] = field(default_factory=dict)  # FOLLOWING: root PID -> command
    followed_status: dict[int, int] = field(default_factory=dict)  # their wait statuses

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
        tty: Any = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        signal_scope: str = "child",
        merge_echoes: bool = False,
    ) -> None:
        self.loop = loop
        self.log = log
        self.stop_timeout = stop_timeout
        self.drain_timeout = drain_timeout
        self.terminal = terminal
        self.tty = tty  # core.ttyproxy.TtyProxy: our stdout is a terminal, children get ptys
        self.signal_scope = signal_scope
        # Frozen: any signal repeated within the echo window is one signal.
        # Always: a second stop signal within it is not a second request.
        self.merge_echoes = merge_echoes
        self.stop_signal: int | None = None  # the outside signal that asked sm-entry to stop
        self.stop_asked_at: float | None = None  # when (loop time): the exit is due soon after
        self.on_first_spawn: Callable[[], object] | None = None  # runs once the child runs
        # Told of a stop instead of the children being stopped at once: serve drains first.
        self.on_stop: Callable[[int], object] | None = None
        self._stop_waiters: list[Any] = []  # futures resolved when a stop is asked
        self._last_signal_at: dict[int, float] = {}
        self._children: dict[int, Child] = {}
        self.started: dict[str, int] = {}  # children started, by name (a restarted server: >1)
        self.last_summary: dict[str, Any] = {}  # what the last child's output observers said
        self.summary_extra: dict[str, Any] = {}  # a mode's own fields for the job summary
        self.is_subreaper = os.getpid() == 1 or set_child_subreaper()
        self.ignored = inherited_ignored()
        try:
            loop.add_signal_handler(signal.SIGCHLD, self._reap)
        except RuntimeError:  # uvloop keeps SIGCHLD for itself; its wakeup runs this handler
            signal.signal(signal.SIGCHLD, lambda _s, _f: loop.call_soon_threadsafe(self._reap))
        for signum in FORWARDED:
            if signum in self.ignored:
                signal.signal(signum, signal.SIG_IGN)  # as our parent wanted; the child inherits it
            else:
                loop.add_signal_handler(signum, self._on_signal, signum)
        for signum in DROPPED:
            loop.add_signal_handler(signum, _drop_signal)
        if getattr(loop, "keeps_signals_between_runs", False):
            release_signals()  # what arrived while we started is handled on the loop's next turn
        else:  # uvloop hears signals only while it runs: they are let in once it does
            loop.call_soon(release_signals)

    # starting -------------------------------------------------------------
    def start(self, spec: ChildSpec, stop_timeout: float | None = None) -> Child:
        """Start a child in its own process group; raise when it cannot be executed."""
        output = spec.output
        controlling = output.controlling_tty if output is not None else None
        terminal = self.terminal if controlling is None else None
        preexec = terminal.child_setup() if terminal else None
        if controlling is not None and self.tty is not None:
            # A session of its own, its pty the controlling terminal (Ctrl-C, job control).
            preexec = self.tty.child_setup(controlling)
        try:
            popen = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=output.child_stdin() if output else None,
                stdout=output.child_fd("stdout") if output else None,
                stderr=output.child_fd("stderr") if output else None,
                process_group=None if controlling is not None else 0,
                start_new_session=controlling is not None,
                restore_signals=True,
                close_fds=True,
                pass_fds=spec.pass_fds,
                preexec_fn=preexec,
            )
        except OSError as exc:
            if output:
                output.abandon()
            raise _spawn_error(spec, exc) from None
        child = Child(spec=spec, popen=popen, started_at=self.loop.time(),
                      done=self.loop.create_future(),
                      stop_timeout=self.stop_timeout if stop_timeout is None else stop_timeout)
        self._children[popen.pid] = child
        self.started[spec.name] = self.started.get(spec.name, 0) + 1
        if output:
            output.started(popen.pid)
        if terminal:
            terminal.give_to(child.pgid)
        child.shares_terminal = terminal is not None
        if self.on_first_spawn is not None:
            announce, self.on_first_spawn = self.on_first_spawn, None
            announce()
        from supervisor.redact import redact_args

        self.log.info("child started", name=spec.name, child_pid=popen.pid,
                      argv=redact_args(list(spec.argv)))
        if self.stop_signal is not None and not spec.part_of_stop:
            # A stop was asked before this child existed: it gets the signal too.
            self.stop_child(child, self.stop_signal)
        return child

    async def run(self, spec: ChildSpec) -> ChildResult:
        """Start a child and wait until it and its tree are gone (unless a stop came first)."""
        if self.stop_signal is not None:
            # A job stopped before its program ran never runs it.
            return ChildResult(
                name=spec.name,
                pid=None,
                exit_code=outcome.SIGNAL_EXIT_BASE + self.stop_signal,
                signal=None,
                duration=0.0,
                stop_signal=self.stop_signal,
                started=False,
            )
        result: ChildResult = await self.start(spec).done
        return result

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less when a stop is asked; False when it was."""
        if self.stop_signal is not None:
            return False
        waiter = self.loop.create_future()
        timer = self.loop.call_later(seconds, _resolve, waiter, True)
        self._stop_waiters.append(waiter)
        try:
            return bool(await waiter)
        finally:
            timer.cancel()
            if waiter in self._stop_waiters:
                self._stop_waiters.remove(waiter)

    async def wait_for(self, future: Any) -> bool:
        """Wait until `future` is done, or less when a stop is asked; False when it was."""
        if self.stop_signal is not None:
            return False
        waiter = self.loop.create_future()
        future.add_done_callback(lambda _: _resolve(waiter, True))
        self._stop_waiters.append(waiter)
        try:
            return bool(await waiter)
        finally:
            if waiter in self._stop_waiters:
                self._stop_waiters.remove(waiter)

    def live_children(self) -> list[Child]:
        return [c for c in self._children.values() if c.state in RUNNING_STATES]

    # stopping -------------------------------------------------------------
    def request_stop(self, signum: int) -> None:
        """Stop every child (each gets `signum`, then SIGKILL at its stop timeout)."""
        if self.stop_signal is not None:
            return
        self.stop_signal = signum
        self.stop_asked_at = self.loop.time()
        self.log.info("stop requested", signal=signal_name(signum),
                      stop_timeout_s=self.stop_timeout)
        if self.on_stop is not None:
            self.on_stop(signum)
        else:
            for child in self.live_children():
                if not child.spec.part_of_stop:
                    self.stop_child(child, signum)
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            _resolve(waiter, False)

    def stop_child(self, child: Child, signum: int = signal.SIGTERM,
                   timeout: float | None = None) -> None:
        """Ask one child to stop; SIGKILL its whole tree at its stop timeout (or `timeout`)."""
        if child.state not in RUNNING_STATES:
            return
        if child.state is ChildState.RUNNING:
            child.state = ChildState.STOPPING
        child.stop_signal = signum
        if child.wait_status is None or child.state is ChildState.FOLLOWING:
            self._send(child, signum)
            self.log.info("signal forwarded", signal=signal_name(signum), child_pid=child.pid,
                          scope=self.signal_scope)
        grace = child.stop_timeout if timeout is None else timeout
        self._arm_kill(child, self.loop.time() + grace)

    def kill_all(self) -> None:
        """SIGKILL every child's tree: we are going away because of a bug of ours."""
        tree.signal_each(tree.descendants(os.getpid()), signal.SIGKILL)
        for child in self._children.values():
            tree.signal_group(child.pgid, signal.SIGKILL)

    def _send(self, child: Child, signum: int) -> None:
        """A signal to the main child, or to its process group with scope "group".

        A followed server (its launcher gone) gets it in its own processes.
        """
        if child.state is ChildState.FOLLOWING:
            tree.signal_each(self._followed_alive(child), signum)
        elif self.signal_scope == "group":
            tree.signal_group(child.pgid, signum)
        else:
            tree.signal_each([child.pid], signum)

    def _arm_kill(self, child: Child, deadline: float) -> None:
        if child.kill_deadline is not None and child.kill_deadline <= deadline:
            return
        child.kill_deadline = deadline
        delay = max(0.0, deadline - self.loop.time())
        child.timers.append(self.loop.call_later(delay, self._kill_tree, child, "stop timeout"))

    def _kill_tree(self, child: Child, reason: str) -> None:
        if child.state not in RUNNING_STATES:
            return
        if child.wait_status is None or child.state is ChildState.FOLLOWING:
            child.killed_by_us = reason
        members = self._tree_of(child)
        self.log.warning("killing the process tree", reason=reason, child_pid=child.pid,
                         processes=len(members), stop_timeout_s=child.stop_timeout)
        child.killing = True
        tree.signal_each(members, signal.SIGKILL)
        tree.signal_group(child.pgid, signal.SIGKILL)
        child.timers.append(self.loop.call_later(KILL_REAP_TIMEOUT, self._give_up, child))

    def _give_up(self, child: Child) -> None:
        if child.state is ChildState.LEFTOVERS:
            self.log.error("process tree did not die after SIGKILL; not waiting for it",
                           child_pid=child.pid)
            self._tree_gone(child)

    def drain_wait(self) -> float:
        """How long to wait for output still to come (or to be written), now.

        The drain timeout; after a stop signal, no more than what is left until
        the stop timeout and STOP_MARGIN have passed since it came: the platform
        SIGKILLs us soon after, and our exit must come first, whatever our
        stdout does (a stalled log driver).
        """
        if self.stop_asked_at is None:
            return self.drain_timeout
        left = self.stop_asked_at + self.stop_timeout + STOP_MARGIN - self.loop.time()
        return max(MIN_DRAIN_WAIT, min(self.drain_timeout, left))

    # the tree -------------------------------------------------------------
    def _tree_of(self, child: Child) -> list[int]:
        """The child's processes: its main process and descendants; once it exited, orphans."""
        if child.wait_status is None:
            return [child.pid, *tree.descendants(child.pid), *self._orphans()]
        return self._orphans()

    def _orphans(self) -> list[int]:
        """Processes reparented to us (and theirs), not those of a child still running.

        Orphans cannot tell whose they were: a mode that runs several children
        at once (serve) stops one tree before it starts the next.
        """
        if not self.is_subreaper:
            return []
        mains = {pid for pid, c in self._children.items() if c.wait_status is None}
        roots = [pid for pid in tree.children(os.getpid()) if pid not in mains]
        found = list(roots)
        for root in roots:
            found.extend(tree.descendants(root))
        return found

    def _group_left(self, child: Child) -> bool:
        """Without a subreaper only the child's process group can still be seen."""
        return not self.is_subreaper and tree.signal_group(child.pgid, 0)

    # signals --------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGWINCH and self.tty is not None:
            self.tty.resize()  # the kernel tells the children, through their ptys
            return
        now = self.loop.time()
        last = self._last_signal_at.get(signum)
        if (last is not None and now - last < SIGNAL_ECHO_WINDOW
                and (self.merge_echoes or signum in STOP)):
            self.log.debug("same signal again at once: an echo, not forwarded again",
                           signal=signal_name(signum))
            return
        self._last_signal_at[signum] = now
        if signum in STOP:
            if self.stop_signal is None:
                self.request_stop(signum)
            else:
                self.log.warning("second stop signal: killing now", signal=signal_name(signum))
                for child in self.live_children():
                    self._kill_tree(child, "second stop signal")
            return
        quiet = signum in QUIET
        targets = [c for c in self.live_children()
                   if c.wait_status is None or c.state is ChildState.FOLLOWING]
        if not targets and not quiet:
            self.log.info("signal received while no child runs: not forwarded",
                          signal=signal_name(signum))
        for child in targets:
            self._send(child, signum)
            (self.log.debug if quiet else self.log.info)(
                "signal forwarded", signal=signal_name(signum), child_pid=child.pid,
                scope=self.signal_scope,
            )

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
                for followed in self._children.values():
                    if pid in followed.followed:
                        followed.followed_status[pid] = status
            elif child.wait_status is None:
                self._on_main_exit(child, status)
        for child in list(self._children.values()):
            if child.state is ChildState.FOLLOWING:
                self._check_followed(child)
            elif child.state is ChildState.LEFTOVERS:
                self._check_tree(child)

    def _on_main_exit(self, child: Child, status: int) -> None:
        child.wait_status = status
        child.ended_at = self.loop.time()
        # Tell Popen it is reaped, so it never waits for a recycled PID.
        child.popen.returncode = os.waitstatus_to_exitcode(status)
        if self.terminal and child.shares_terminal:
            self.terminal.take_back()
        rest = self._orphans()
        if (rest and child.spec.follow and status == 0 and child.state is ChildState.RUNNING
                and self.is_subreaper):
            self._follow(child)
            return
        child.state = ChildState.LEFTOVERS
        if not rest and not self._group_left(child):
            self._tree_gone(child)
            return
        self.log.info("main process exited; stopping the rest of its process tree",
                      child_pid=child.pid, code=outcome.exit_code_for_wait_status(status),
                      processes=len(rest))
        for signum in (signal.SIGTERM, signal.SIGCONT):
            tree.signal_each(rest, signum)
            tree.signal_group(child.pgid, signum)
        self._arm_kill(child, self.loop.time() + child.stop_timeout)
        self._poll_tree(child)

    def _follow(self, child: Child) -> None:
        """The launcher exited 0 and left its server running: that server is the child now."""
        mains = {pid for pid, c in self._children.items() if c.wait_status is None}
        roots = [pid for pid in tree.children(os.getpid()) if pid not in mains]
        child.followed = {pid: tree.command_line(pid) for pid in roots}
        child.state = ChildState.FOLLOWING
        self.log.info("main process exited 0 and left its server running: following it",
                      name=child.spec.name, child_pid=child.pid,
                      processes=[f"{command} (PID {pid})" for pid, command
                                 in child.followed.items()])

    def _followed_alive(self, child: Child) -> list[int]:
        return [pid for pid in child.followed if pid not in child.followed_status]

    def _check_followed(self, child: Child) -> None:
        """The followed server's processes are all gone: it ended; stop what it left."""
        if self._followed_alive(child):
            return
        child.state = ChildState.LEFTOVERS
        rest = self._orphans()
        if not rest:
            self._tree_gone(child)
            return
        self.log.info("the followed server ended; stopping the rest of its process tree",
                      child_pid=child.pid, processes=len(rest))
        for signum in (signal.SIGTERM, signal.SIGCONT):
            tree.signal_each(rest, signum)
        self._arm_kill(child, self.loop.time() + child.stop_timeout)
        self._poll_tree(child)

    def _poll_tree(self, child: Child) -> None:
        if self._check_tree(child):
            child.timers.append(self.loop.call_later(TREE_POLL_INTERVAL, self._poll_tree, child))

    def _check_tree(self, child: Child) -> bool:
        """True while the rest of the child's tree is alive."""
        if child.state is not ChildState.LEFTOVERS:
            return False  # moved on since: nothing to poll
        rest = self._orphans()
        if not rest and not self._group_left(child):
            self._tree_gone(child)
            return False
        if child.killing:  # what was forked since the kill
            tree.signal_each(rest, signal.SIGKILL)
        return True  # some of the tree is left: poll again

    def _tree_gone(self, child: Child) -> None:
        """Every process of the child is gone: read what is left in the pipes, then finish."""
        for timer in child.timers:
            timer.cancel()
        child.timers.clear()
        output = child.spec.output
        if output is None or output.closed:
            self._finish(child)
            return
        child.state = ChildState.DRAINING
        output.on_closed = lambda: self._finish(child)
        output.drain_started()
        child.timers.append(self.loop.call_later(self.drain_wait(), self._stop_draining, child))

    def _stop_draining(self, child: Child) -> None:
        output = child.spec.output
        if child.state is not ChildState.DRAINING or output is None:
            return
        why = output.stop_draining()
        if why == "held open":
            self.log.warning("output pipes still held open (by a process outside the job's "
                             "tree); read what was in them, no longer reading them",
                             child_pid=child.pid, drain_timeout_s=self.drain_timeout)
        elif why == "stalled":
            self.log.error("our output is not being read: stopped waiting to write the rest of "
                           "the child's output", child_pid=child.pid,
                           drain_timeout_s=self.drain_timeout)
        if child.state is ChildState.DRAINING:
            child.timers.append(
                self.loop.call_later(self.drain_wait(), self._stop_draining, child))

    def _finish(self, child: Child) -> None:
        if child.state is ChildState.DONE:
            return
        child.state = ChildState.DONE
        for timer in child.timers:
            timer.cancel()
        del self._children[child.pid]
        status = child.wait_status
        assert status is not None and child.ended_at is not None
        died = None
        if child.followed_status:  # a followed server: its end is the child's
            pid, status = next(iter(child.followed_status.items()))
            died = f"{child.followed.get(pid) or 'process'} (PID {pid}) " + (
                f"killed by {signal_name(os.WTERMSIG(status))}" if os.WIFSIGNALED(status)
                else f"exited with code {os.waitstatus_to_exitcode(status)}")
        termsig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        result = ChildResult(
            name=child.spec.name,
            pid=child.pid,
            exit_code=outcome.exit_code_for_wait_status(status),
            signal=termsig,
            duration=(self.loop.time() if died else child.ended_at) - child.started_at,
            stop_signal=child.stop_signal,
            killed_by_us=child.killed_by_us,
            died=died,
        )
        summary = child.spec.output.summary() if child.spec.output else {}
        self.last_summary = summary
        self.log.info(
            "child exited",
            name=result.name,
            child_pid=result.pid,
            code=result.exit_code,
            signal=signal_name(termsig) if termsig else None,
            duration_s=round(result.duration, 3),
            **summary,
        )
        child.done.set_result(result)


def _drop_signal() -> None:
    """A signal we take so that its default action (stop, or end us) never happens."""


def _resolve(future: Any, value: object) -> None:
    if not future.done():
        future.set_result(value)


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
