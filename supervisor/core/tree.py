"""The processes under a PID, read from /proc: a job's whole tree, daemons included.

A process group misses what called setsid() (daemons, `nohup`, a launcher
putting each worker in its own session). As a subreaper we are the parent
of every orphan of the job, so walking down from ourselves finds all of it.
The kernel lists each task's children in /proc/PID/task/TID/children; on a
kernel built without that file, the parent of every process is read from
/proc/PID/stat instead.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

_children_files: bool | None = None


def _have_children_files() -> bool:
    global _children_files
    if _children_files is None:
        pid = os.getpid()
        _children_files = os.path.exists(f"/proc/{pid}/task/{pid}/children")
    return _children_files


def children(pid: int) -> list[int]:
    """The direct children of `pid` (of any of its threads)."""
    if not _have_children_files():
        return [child for child, parent in _parents().items() if parent == pid]
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before their children."""
    found: list[int] = []
    if not _have_children_files():
        parents = _parents()
        by_parent: dict[int, list[int]] = {}
        for child, parent in parents.items():
            by_parent.setdefault(parent, []).append(child)
        frontier = [pid]
        while frontier:
            level = [c for p in frontier for c in by_parent.get(p, ())]
            found.extend(level)
            frontier = level
        return found
    frontier = [pid]
    seen = {pid}
    while frontier:
        level = [c for p in frontier for c in children(p) if c not in seen]
        seen.update(level)
        found.extend(level)
        frontier = level
    return found


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process we can see."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # it ended while /proc was read
        fields = stat[stat.rindex(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    return parents


def signal_each(pids: Iterable[int], signum: int) -> int:
    """Send `signum` to each process; how many were still there."""
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass  # it is there, but no longer ours to signal (a set-uid program)
        sent += 1
    return sent


def signal_group(pgid: int, signum: int) -> bool:
    """Send a signal to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the group is there, not ours to signal
    return True


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it is there, not ours to signal
    return True


__all__ = ["children", "descendants", "exists", "signal", "signal_each", "signal_group"]


def command_line(pid: int) -> str:
    """The command of `pid`, its words joined by spaces ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return ""
    return b" ".join(word for word in words if word).decode("utf-8", "replace")
