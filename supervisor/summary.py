"""The `job summary` event at exit: what the job cost and how it ended, in one record.

CPU time is that of every process we reaped (as a subreaper, the whole tree:
workers and orphans included); peak memory is the container's (its memory
cgroup), else the largest process's; OOM kills are counted by the kernel in
that cgroup.
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Any

from supervisor.core import memory
from supervisor.core.outcome import EXIT_OK, SIGNAL_EXIT_BASE


class JobClock:
    """Taken at start: the wall clock and the cgroup's counters to compare against at exit."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.cgroup = memory.find()
        self.before = self.cgroup.read() if self.cgroup else None

    def summary(self, exit_code: int, stop_signal: int | None, restarts: int | None,
                metrics: dict[str, Any], error: str | None = None) -> dict[str, Any]:
        import resource  # at exit only: start-up does not pay for it

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        after = self.cgroup.read() if self.cgroup else None
        peak = after.peak if after and after.peak else usage.ru_maxrss * 1024
        fields: dict[str, Any] = {
            "exit_code": exit_code,
            "reason": error.split("\n")[0][:200] if error else reason(exit_code, stop_signal),
            "wall_s": round(time.monotonic() - self.started, 3),
            "cpu_user_s": round(usage.ru_utime, 3),
            "cpu_system_s": round(usage.ru_stime, 3),
            "peak_memory_bytes": peak,
            "peak_memory_of": "container" if after and after.peak else "largest process",
        }
        if self.before and after and self.before.oom_kills is not None \
                and after.oom_kills is not None:
            fields["oom_kills"] = after.oom_kills - self.before.oom_kills
        if restarts is not None:
            fields["restarts"] = restarts
        fields.update({key: value for key, value in metrics.items()
                       if key in ("metrics", "output_lost_bytes")})
        return fields


def reason(exit_code: int, stop_signal: int | None) -> str:
    """How the job's own exit code reads (sm-entry's own failures pass their message)."""
    text = "success" if exit_code == EXIT_OK else f"exit code {exit_code}"
    if exit_code > SIGNAL_EXIT_BASE:
        with contextlib.suppress(ValueError):
            text += f" (128+{signal.Signals(exit_code - SIGNAL_EXIT_BASE).name})"
    if stop_signal is not None:
        return f"stopped by {signal.Signals(stop_signal).name}: {text}"
    return text


def text_block(fields: dict[str, Any]) -> str:
    """The summary for a person: a few short lines."""
    code, why = fields["exit_code"], fields["reason"]
    lines = [f"job summary: {why}" + ("" if f"exit code {code}" in why else f" (exit code {code})"),
             f"  wall {fields['wall_s']:g} s, CPU {fields['cpu_user_s']:g} s user + "
             f"{fields['cpu_system_s']:g} s system",
             f"  peak memory {memory.human_bytes(fields['peak_memory_bytes'])} "
             f"({fields['peak_memory_of']})"]
    if "oom_kills" in fields:
        lines.append(f"  out-of-memory kills: {fields['oom_kills']}")
    if "restarts" in fields:
        lines.append(f"  restarts: {fields['restarts']}")
    if "last_model_server_end" in fields:
        lines.append(f"  last model server end: {fields['last_model_server_end']}")
    return "\n".join(lines)
