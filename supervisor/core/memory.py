"""The memory cgroup sm-entry runs in: its limit, its peak and how often the kernel OOM-killed.

The kernel counts OOM kills per cgroup (v2 `memory.events`: `oom_kill`;
v1 `memory.oom_control`: `oom_kill`, kernels >= 4.13). Read at the start
of a job and when it fails, a count that grew turns "likely out of memory"
into a certainty. A container usually sees its own cgroup mounted at
/sys/fs/cgroup (its path in /proc/self/cgroup is then not under the mount):
both places are tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"
UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages)


@dataclass(frozen=True)
class MemoryCounters:
    """One reading; None where the kernel does not tell."""

    oom_kills: int | None
    limit: int | None  # bytes; None: no limit
    peak: int | None  # bytes: the most the cgroup ever used


@dataclass(frozen=True)
class MemoryCgroup:
    """Where our memory controller's files are, and which interface they speak."""

    directory: str
    version: int  # 1 or 2

    def read(self) -> MemoryCounters:
        if self.version == 2:
            events = _fields(os.path.join(self.directory, "memory.events"))
            return MemoryCounters(
                oom_kills=events.get("oom_kill"),
                limit=_number(os.path.join(self.directory, "memory.max")),
                peak=_number(os.path.join(self.directory, "memory.peak")),
            )
        control = _fields(os.path.join(self.directory, "memory.oom_control"))
        return MemoryCounters(
            oom_kills=control.get("oom_kill"),
            limit=_number(os.path.join(self.directory, "memory.limit_in_bytes")),
            peak=_number(os.path.join(self.directory, "memory.max_usage_in_bytes")),
        )


def find(proc_cgroup: str = PROC_CGROUP, root: str = CGROUP_ROOT) -> MemoryCgroup | None:
    """Our memory cgroup, or None when none can be read (no /sys/fs/cgroup, no controller)."""
    try:
        with open(proc_cgroup, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if "memory" in controllers.split(","):
            return _first_readable(
                [os.path.join(root, "memory", path.lstrip("/")), os.path.join(root, "memory")],
                "memory.oom_control", 1)
    for line in lines:
        if line.startswith("0::"):
            path = line[3:]
            return _first_readable([os.path.join(root, path.lstrip("/")), root],
                                   "memory.events", 2)
    return None


def _first_readable(directories: list[str], probe: str, version: int) -> MemoryCgroup | None:
    for directory in directories:
        if os.access(os.path.join(directory, probe), os.R_OK):
            return MemoryCgroup(os.path.normpath(directory), version)
    return None


def _fields(path: str) -> dict[str, int]:
    """`name value` lines (memory.events, memory.oom_control)."""
    fields: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                name, _, value = line.partition(" ")
                if value.strip().isdigit():
                    fields[name] = int(value)
    except OSError:
        pass
    return fields


def _number(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return None if value >= UNLIMITED else value


def human_bytes(count: int) -> str:
    """1.5 GiB, 64.0 MiB: the sizes a person reads in a failure reason."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{count} B"
        size /= 1024
    return f"{size:.1f} GiB"
