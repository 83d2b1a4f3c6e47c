"""The hang watchdog: a job that prints nothing for too long is reported, and maybe stopped.

Multi-host jobs hang (a collective that never completes, a dead rank, a
deadlocked data loader) and burn instance hours until the platform's max
runtime. Silence on stdout and stderr is the one sign every job gives; the
snapshot of its processes (state, CPU used since the last look, wchan)
tells a deadlock (all asleep, no CPU) from a long computation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.core import tree

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHOWN_IN_REASON = 5  # processes named in the failure reason


class OutputActivity:
    """When the job last printed anything (loop time); the relays set it on each read."""

    def __init__(self, now: float) -> None:
        self.last = now


@dataclass(frozen=True)
class ProcessView:
    pid: int
    state: str  # R running, S sleeping, D uninterruptible, T stopped, Z zombie
    cpu_s: float  # CPU seconds used since the previous snapshot (all of it, the first time)
    wchan: str  # the kernel function it waits in ("0" or "" when running)
    command: str


class HangWatchdog:
    """Checks the silence every so often; warns (and with action "stop", stops) past `timeout`."""

    def __init__(self, loop: Any, log: Any, timeout: float, action: str,
                 activity: OutputActivity, stop: Callable[[], object]) -> None:
        self.loop = loop
        self.log = log
        self.timeout = timeout
        self.action = action
        self.activity = activity
        self.stop = stop
        self.reason: str | None = None  # set when the watchdog stopped the job
        self._cpu: dict[int, float] = {}
        self._timer = loop.call_later(timeout, self._check)

    def close(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        now = self.loop.time()
        silent = now - self.activity.last
        if silent < self.timeout:
            self._timer = self.loop.call_at(self.activity.last + self.timeout, self._check)
            return
        processes = self.snapshot()
        self.log.warning("no output", silent_s=round(silent, 1), processes=[
            {"pid": p.pid, "state": p.state, "cpu_s": p.cpu_s, "wchan": p.wchan,
             "command": p.command} for p in processes])
        if self.action == "stop" and self.reason is None:
            self.reason = hang_reason(silent, processes)
            self.log.error("the job is hanging: stopping it", silent_s=round(silent, 1))
            self.stop()
        self._timer = self.loop.call_later(self.timeout, self._check)

    def snapshot(self) -> list[ProcessView]:
        """Every process of the job, parents first."""
        views = []
        for pid in tree.descendants(os.getpid()):
            view = _view(pid, self._cpu.get(pid, 0.0))
            if view is not None:
                self._cpu[pid] = self._cpu.get(pid, 0.0) + view.cpu_s
                views.append(view)
        return views


def _view(pid: int, seen_cpu: float) -> ProcessView | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
        try:
            with open(f"/proc/{pid}/wchan", "rb") as handle:
                wchan = handle.read().decode("ascii", "replace").strip()
        except OSError:
            wchan = ""
    except OSError:
        return None  # it ended meanwhile
    fields = stat[stat.rindex(b")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    name = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode("utf-8", "replace")
    from supervisor.redact import redact_args

    # A command line may hold a token (`mpirun -x HF_TOKEN=...`): this goes to the log and
    # into output/failure, the job's FailureReason.
    return ProcessView(pid=pid, state=fields[0].decode(), cpu_s=round(cpu - seen_cpu, 2),
                       wchan="" if wchan == "0" else wchan,
                       command=" ".join(redact_args(argv)) if argv else f"[{name}]")


def duration(seconds: float) -> str:
    """45 s, 30 min, 1.5 h: how long a person would say it was silent."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def hang_reason(silent: float, processes: list[ProcessView]) -> str:
    """The failure reason's first lines: how long, and what each process was doing."""
    lines = [f"Hang: no output for {duration(silent)}; sm-entry stopped the job "
             f"(--hang-action stop). Its {_count(processes)} then (state, CPU used):"]
    for view in processes[:SHOWN_IN_REASON]:
        waiting = f", waiting in {view.wchan}" if view.wchan else ""
        lines.append(f"PID {view.pid} {view.command[:120]} ({view.state}{waiting}, "
                     f"{view.cpu_s:g} s CPU)")
    if len(processes) > SHOWN_IN_REASON:
        lines.append(f"... and {len(processes) - SHOWN_IN_REASON} more")
    return "\n".join(lines)


def _count(processes: list[ProcessView]) -> str:
    return "process" if len(processes) == 1 else f"{len(processes)} processes"
