"""Start-up, memory and size of sm-entry, against baselines measured in the same run.

Why: sm-entry is PID 1 of every training and serving container, so what it adds to a
container's start is paid at every start, and what it keeps resident is paid for the whole
job. The static binary is three processes (staticx's bootloader, PyInstaller's bootloader,
Python) that unpack themselves at each start; this shows what that costs next to a plain
`python3 -c pass` and next to `tini`, splits the start-up into its parts so that the next
optimisation goes where the time goes, and prints the targets beside the figures. It is a
benchmark, not a test: it never fails on a target.

    .venv/bin/python bench/run.py --binary dist/sm-entry --dynamic dist/sm-entry-dynamic
    .venv/bin/python bench/run.py --only startup    # sections 1-4: start-up, memory, size
    .venv/bin/python bench/run.py --only relay      # section 5: log-relay throughput (relay.py)
    .venv/bin/python bench/run.py --only serve      # section 6: the serve front vs nginx (serve.py)
    .venv/bin/python bench/run.py --only websocket  # section 7: WebSocket tunnels vs nginx

Start-up runs every command in the same randomly ordered rounds (after warm-up rounds), so
a slow moment of the machine hits all commands alike; differences of medians give the parts.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import relay
import serve
import tunnels

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = "/usr/bin/python3"
CHILD = (PYTHON, "-c", "pass")
OUR_PACKAGES = frozenset({"supervisor", "click", "structlog", "orjson"})

TARGET_ADDED_MS = 100.0  # the static build adds at most this over `python3 -c pass`
TARGET_PYTHON_RSS_MIB = 25.0  # sm-entry's Python process, peak RSS while a child runs
TARGET_SIZE_MB = 15.0  # dist/sm-entry

MB = 1_000_000
MIB = 1 << 20


def log(message: str) -> None:
    """Progress goes to stderr; stdout is the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Binaries: a snapshot of dist/, and PyInstaller variants of the same spec under build/
# --------------------------------------------------------------------------------------------


def snapshot(binary: Path, directory: Path, attempts: int = 30) -> Path:
    """Copy `binary` to `directory` and check it runs: dist/ may be rebuilt while we run."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / binary.name
    partial = directory / f"{binary.name}.partial"
    for attempt in range(attempts):
        try:
            shutil.copy2(binary, partial)
            partial.chmod(0o755)
            check = subprocess.run(
                [str(partial), "--version"], capture_output=True, timeout=60, check=False
            )
            if check.returncode == 0:
                partial.replace(dest)
                return dest
            log(f"{binary} --version exited {check.returncode}; retrying")
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
            log(f"{binary}: {exc}; retrying ({attempt + 1}/{attempts})")
        time.sleep(2)
    raise SystemExit(f"bench: {binary} is missing or does not run (make build)")


class SpecError(Exception):
    """build.spec no longer has the text a derived spec is made from."""


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SpecError(f"build.spec: expected exactly one {old!r}")
    return text.replace(old, new)


def derived_spec(
    path: Path, *, script: Path | None = None, interpreter_options: Sequence[str] = ()
) -> Path:
    """build.spec, written under build/: ROOT made absolute (build.spec computes it from
    SPECPATH), optionally another entry script and extra interpreter options."""
    text = (ROOT / "build.spec").read_text()
    text = _replace_once(text, "ROOT = os.path.abspath(SPECPATH)", f"ROOT = {str(ROOT)!r}")
    if script is not None:
        text = _replace_once(
            text, 'os.path.join(ROOT, "supervisor", "__main__.py")', repr(str(script))
        )
    if interpreter_options:
        toc = ", ".join(f"({option!r}, None, 'OPTION')" for option in interpreter_options)
        text = _replace_once(text, "    a.scripts,\n", f"    a.scripts,\n    [{toc}],\n")
    _write_if_changed(path, text)
    return path


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _sources() -> tuple[Path, ...]:
    return (ROOT / "build.spec", *sorted((ROOT / "supervisor").rglob("*.py")))


@dataclass(frozen=True)
class Variant:
    """A PyInstaller build of build.spec (or of a spec derived from it) under build/."""

    name: str
    spec: Path
    distpath: Path
    workpath: Path
    onedir: bool
    inputs: tuple[Path, ...]

    @property
    def executable(self) -> Path:
        if self.onedir:
            return self.distpath / self.name / self.name
        return self.distpath / self.name

    def is_stale(self) -> bool:
        if not self.executable.exists():
            return True
        built = self.executable.stat().st_mtime
        return any(source.stat().st_mtime > built for source in self.inputs if source.exists())

    def build(self) -> str | None:
        """Build it; None when it worked, else the reason."""
        env = {
            **os.environ,
            "SM_ENTRY_BUILD_NAME": self.name,
            "SM_ENTRY_ONEDIR": "1" if self.onedir else "0",
        }
        command = [
            str(VENV_BIN / "pyinstaller"),
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(self.distpath.relative_to(ROOT)),
            "--workpath",
            str(self.workpath.relative_to(ROOT)),
            str(self.spec.relative_to(ROOT)),
        ]
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not self.executable.exists():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"pyinstaller exited {result.returncode}: {' / '.join(tail)}"
        log(f"built {self.executable.relative_to(ROOT)} in {time.monotonic() - started:.1f} s")
        return None


# Imports nothing; its one line marks the moment Python runs a frozen program's script.
TRIVIAL_PROGRAM = 'print("ready", flush=True)\n'


def variants() -> dict[str, Variant]:
    """onedir: the same code unpacked ahead; trivial-*: a program importing nothing with the
    same spec options; importtime: onedir with `-X importtime`."""
    trivial_script = BUILD / "bench-trivial" / "trivial.py"
    _write_if_changed(trivial_script, TRIVIAL_PROGRAM)
    result = {
        "onedir": Variant(
            "sm-entry-onedir",
            ROOT / "build.spec",
            BUILD / "bench-onedir",
            BUILD / "bench-onedir-work",
            onedir=True,
            inputs=_sources(),
        ),
    }
    try:
        trivial_spec = derived_spec(BUILD / "bench-trivial" / "trivial.spec", script=trivial_script)
        importtime_spec = derived_spec(
            BUILD / "bench-importtime" / "importtime.spec", interpreter_options=["X importtime"]
        )
    except SpecError as exc:
        log(f"{exc}; no trivial or -X importtime build")
        return result
    for onedir, kind in ((False, "onefile"), (True, "onedir")):
        result[f"trivial-{kind}"] = Variant(
            f"trivial-{kind}",
            trivial_spec,
            BUILD / "bench-trivial",
            BUILD / f"bench-trivial-work-{kind}",
            onedir=onedir,
            inputs=(ROOT / "build.spec", trivial_spec, trivial_script),
        )
    result["importtime"] = Variant(
        "sm-entry-importtime",
        importtime_spec,
        BUILD / "bench-importtime",
        BUILD / "bench-importtime-work",
        onedir=True,
        inputs=(*_sources(), importtime_spec),
    )
    return result


def ensure_built(all_variants: Mapping[str, Variant], skip_build: bool) -> dict[str, Path]:
    """The executables that exist after (re)building the missing or stale ones."""
    ready = {}
    for key, variant in all_variants.items():
        if variant.is_stale() and not skip_build:
            log(f"building {variant.executable.relative_to(ROOT)} (missing or older than sources)")
            problem = variant.build()
            if problem:
                log(f"{variant.name}: {problem}")
        if variant.executable.exists():
            ready[key] = variant.executable
        else:
            log(f"{variant.executable.relative_to(ROOT)} is missing; its figures are n/a")
    return ready


# --------------------------------------------------------------------------------------------
# Start-up timing
# --------------------------------------------------------------------------------------------

_QUIET = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
# Section 2's commands, whose milestones it shows.
MILESTONE_COMMANDS = (
    "static-run",
    "dynamic-run",
    "onedir-run",
    "static-version",
    "dynamic-version",
    "onedir-version",
    "trivial-onefile",
    "trivial-onedir",
)
OUTPUT = "output"  # milestone: the first line on a watched stdout
REAPED = "reaped"  # milestone: waitpid returned


@dataclass(frozen=True)
class Command:
    key: str
    label: str
    argv: tuple[str, ...]
    watch: int | None = None  # a fd whose lines are timed as they arrive (else /dev/null)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Timing:
    label: str
    samples_ms: list[float] = field(default_factory=list)
    exit_codes: set[int] = field(default_factory=set)
    milestones_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        if len(self.samples_ms) < 2:
            return self.samples_ms[0]
        return statistics.quantiles(self.samples_ms, n=10, method="inclusive")[8]

    def milestone(self, name: str) -> float | None:
        return _median(self.milestones_ms.get(name, []))

    def as_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "label": self.label,
            "median_ms": round(self.median, 2),
            "p90_ms": round(self.p90, 2),
            "min_ms": round(min(self.samples_ms), 2),
            "runs": len(self.samples_ms),
            "exit_codes": sorted(self.exit_codes),
        }
        if self.milestones_ms:
            result["milestones_median_ms"] = {
                name: round(statistics.median(values), 2)
                for name, values in self.milestones_ms.items()
            }
        return result


def run_once(command: Command) -> tuple[float, int, dict[str, float]]:
    """Wall time from spawn to reaped (ms), the exit code, and when each milestone arrived.

    Std streams are /dev/null (stdin too: with a terminal there sm-entry would hand it to
    the child), except `watch`, a pipe: its first line is the OUTPUT milestone, and each
    sm-entry JSON event line is a milestone named by its msg ("child started"...)."""
    actions: list[tuple[Any, ...]] = list(_QUIET)
    read_end = write_end = -1
    if command.watch is not None:
        read_end, write_end = os.pipe()  # both close-on-exec; dup2 clears it on the copy
        actions[command.watch] = (os.POSIX_SPAWN_DUP2, write_end, command.watch)
    started = time.perf_counter()
    pid = os.posix_spawn(command.argv[0], list(command.argv), os.environ, file_actions=actions)
    milestones: dict[str, float] = {}
    if command.watch is not None:
        os.close(write_end)
        pending = b""
        while chunk := os.read(read_end, 65536):
            now = (time.perf_counter() - started) * 1000
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                milestones.setdefault(_milestone_name(line), now)
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - started) * 1000
    milestones[REAPED] = elapsed
    return elapsed, os.waitstatus_to_exitcode(status), milestones


def _milestone_name(line: bytes) -> str:
    if line.startswith(b"{"):
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(line).get("msg"))
    return OUTPUT


def measure(commands: Sequence[Command], runs: int, warmup: int) -> dict[str, Timing]:
    """Every command once per round, in a fresh random order each round."""
    timings = {command.key: Timing(command.label) for command in commands}
    order = list(commands)
    shuffle = random.Random(0x5E).shuffle
    for round_number in range(warmup + runs):
        shuffle(order)
        for command in order:
            elapsed, code, milestones = run_once(command)
            timing = timings[command.key]
            timing.exit_codes.add(code)
            if round_number >= warmup:
                timing.samples_ms.append(elapsed)
                for name, at in milestones.items():
                    timing.milestones_ms.setdefault(name, []).append(at)
    return timings


# --------------------------------------------------------------------------------------------
# -X importtime of the frozen program
# --------------------------------------------------------------------------------------------

_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


@dataclass(frozen=True)
class ImportLine:
    name: str
    level: int
    self_us: int
    cumulative_us: int
    top: str  # the top-level import it happened under


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Lines in print order (an import's line follows those of the imports it caused)."""
    raw = []
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            raw.append((name, len(indent) // 2, int(self_us), int(cumulative_us)))
    parsed = []
    top = ""
    for name, level, self_us, cumulative_us in reversed(raw):
        if level == 0:
            top = name
        parsed.append(ImportLine(name, level, self_us, cumulative_us, top))
    parsed.reverse()
    return parsed


def _package(name: str) -> str:
    return name.split(".", 1)[0]


@dataclass
class ImportProfile:
    """Medians over runs of one command line of the -X importtime build."""

    runs: int
    bootstrap_ms: float  # top-level imports before our first one (PyInstaller, encodings...)
    ours_ms: float  # top-level imports of supervisor, click, structlog, orjson
    later_ms: float  # other top-level imports after ours (standard library used at run time)
    top_level_ms: dict[str, float]  # every top-level import, cumulative
    bootstrap_names: frozenset[str]  # those before our first one
    self_ms: dict[str, float]  # every module's own time
    top_of: dict[str, str]  # module -> the top-level import it came under

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "bootstrap_ms": round(self.bootstrap_ms, 2),
            "ours_ms": round(self.ours_ms, 2),
            "later_ms": round(self.later_ms, 2),
            "top_level_ms": {k: round(v, 2) for k, v in self.top_level_ms.items()},
            "top_self_ms": {k: round(v, 2) for k, v in top_items(self.self_ms, 15)},
        }


def profile_imports(executable: Path, args: Sequence[str], runs: int) -> ImportProfile | None:
    bootstrap, ours, later = [], [], []
    top_level: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    top_of: dict[str, str] = {}
    bootstrap_names: set[str] = set()
    for _ in range(runs):
        result = subprocess.run(
            [str(executable), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        lines = parse_importtime(result.stderr)
        if not lines:
            return None
        sums = {"bootstrap": 0, "ours": 0, "later": 0}
        seen_ours = False
        for line in lines:
            own.setdefault(line.name, []).append(line.self_us / 1000)
            top_of.setdefault(line.name, line.top)
            if line.level:
                continue
            top_level.setdefault(line.name, []).append(line.cumulative_us / 1000)
            if _package(line.name) in OUR_PACKAGES:
                seen_ours = True
                sums["ours"] += line.cumulative_us
            elif seen_ours:
                sums["later"] += line.cumulative_us
            else:
                sums["bootstrap"] += line.cumulative_us
                bootstrap_names.add(line.name)
        bootstrap.append(sums["bootstrap"] / 1000)
        ours.append(sums["ours"] / 1000)
        later.append(sums["later"] / 1000)
    return ImportProfile(
        runs=runs,
        bootstrap_ms=statistics.median(bootstrap),
        ours_ms=statistics.median(ours),
        later_ms=statistics.median(later),
        top_level_ms={name: statistics.median(v) for name, v in top_level.items()},
        bootstrap_names=frozenset(bootstrap_names),
        self_ms={name: statistics.median(v) for name, v in own.items()},
        top_of=top_of,
    )


def top_items(values: Mapping[str, float], count: int) -> list[tuple[str, float]]:
    return sorted(values.items(), key=lambda item: item[1], reverse=True)[:count]


# --------------------------------------------------------------------------------------------
# Memory: every process of a tree, sampled from /proc while the child sleeps
# --------------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if stat:
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _tree(root: int, parents: Mapping[int, int]) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    pending = [root]
    while pending:
        pid = pending.pop()
        yield pid
        pending.extend(children.get(pid, []))


def _status_kib(status: str, key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _tree_bytes(directory: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            with contextlib.suppress(OSError):  # removed while we walk
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


@dataclass
class ProcessMemory:
    pid: int
    parent: int
    name: str
    role: str = ""
    peak_rss_kib: int = 0  # VmHWM, the highest seen
    rss_kib: int = 0  # VmRSS while the child ran
    anon_kib: int = 0  # RssAnon while the child ran: memory of its own, not file pages
    pss_kib: int = 0  # Pss while the child ran (shared pages split between processes)


@dataclass
class TreeMemory:
    label: str
    processes: list[ProcessMemory] = field(default_factory=list)  # without the child
    unpacked: dict[str, int] = field(default_factory=dict)  # directory -> bytes in it
    note: str = ""

    def total(self, attribute: str) -> int:
        return sum(int(getattr(process, attribute)) for process in self.processes)

    def role_peak_kib(self, role: str) -> int | None:
        found = [p.peak_rss_kib for p in self.processes if p.role == role]
        return found[0] if found else None

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "processes": [asdict(process) for process in self.processes],
            "sum_peak_rss_kib": self.total("peak_rss_kib"),
            "sum_rss_kib": self.total("rss_kib"),
            "sum_anon_kib": self.total("anon_kib"),
            "sum_pss_kib": self.total("pss_kib"),
            "unpacked_bytes": self.unpacked,
            "note": self.note,
        }


PYTHON_ROLE = "Python (the supervisor)"
ANCESTOR_ROLES = ("PyInstaller bootloader", "staticx bootloader")  # upwards from Python


@dataclass(frozen=True)
class MemoryCase:
    label: str
    argv: tuple[str, ...]
    roles: tuple[str, ...]  # the child's parent, its parent, ...


CHILD_NAME = "sleep"


def measure_memory(cases: Sequence[MemoryCase]) -> list[TreeMemory]:
    """Start every case at once; sample each process tree every 10 ms until all exit.

    The supervised child (`sleep`, and the same pid before its exec) is left out; the other
    processes are named from it upwards with the case's roles."""
    roots = [
        os.posix_spawn(case.argv[0], list(case.argv), os.environ, file_actions=_QUIET)
        for case in cases
    ]
    seen: list[dict[int, ProcessMemory]] = [{} for _ in cases]
    children: list[set[int]] = [set() for _ in cases]
    unpacked: list[dict[str, int] | None] = [None for _ in cases]
    running = set(roots)
    while running:
        parents = _parents()
        for index, root in enumerate(roots):
            if root not in running:
                continue
            for pid in _tree(root, parents):
                status = _read(f"/proc/{pid}/status")
                if status is None:
                    continue
                match = re.search(r"^Name:\s+(.*)$", status, re.MULTILINE)
                name = match.group(1) if match else "?"
                process = seen[index].setdefault(pid, ProcessMemory(pid, parents.get(pid, 0), name))
                if name == CHILD_NAME and pid != root:
                    children[index].add(pid)
                process.peak_rss_kib = max(process.peak_rss_kib, _status_kib(status, "VmHWM"))
            steady = {p: v for p, v in seen[index].items() if p not in children[index]}
            if children[index]:
                _sample_steady_state(steady)
                if unpacked[index] is None:
                    unpacked[index] = _unpacked(steady, root)
        for root in list(running):
            done, _ = os.waitpid(root, os.WNOHANG)
            if done:
                running.discard(root)
        time.sleep(0.01)
    results = []
    for index, case in enumerate(cases):
        processes = seen[index]
        supervisors = {processes[child].parent for child in children[index]}
        for child in children[index]:
            del processes[child]
        _name_roles(processes, supervisors, case.roles)
        tree = TreeMemory(case.label, unpacked=unpacked[index] or {})
        tree.processes = sorted(processes.values(), key=lambda p: p.pid)
        if not children[index]:
            tree.note = f"no {CHILD_NAME} child was seen: steady-state figures are 0"
        results.append(tree)
    return results


def _sample_steady_state(processes: Mapping[int, ProcessMemory]) -> None:
    """While the child runs the supervisor is in its steady state: its RSS and Pss."""
    for pid, process in processes.items():
        status = _read(f"/proc/{pid}/status")
        rollup = _read(f"/proc/{pid}/smaps_rollup")
        if status is not None and rollup is not None:
            process.rss_kib = _status_kib(status, "VmRSS")
            process.anon_kib = _status_kib(status, "RssAnon")
            process.pss_kib = _status_kib(rollup, "Pss")


def _unpacked(processes: Mapping[int, ProcessMemory], root: int) -> dict[str, int]:
    """Bytes the bootloaders unpacked: staticx's directory holds the PyInstaller program
    it runs (an executable not where we started the root from), PyInstaller's (_MEI*)
    holds libpython. With our patched staticx, PyInstaller's is inside staticx's."""
    found: dict[str, int] = {}
    try:
        root_exe = os.readlink(f"/proc/{root}/exe")
    except OSError:
        return found
    for pid in processes:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe != root_exe and "staticx" in exe:
            found["staticx"] = _tree_bytes(Path(exe).parent)
        maps = _read(f"/proc/{pid}/maps") or ""
        libpython = re.search(r"(/\S+)/libpython[^/\s]*$", maps, re.MULTILINE)
        if libpython and "_MEI" in libpython.group(1):
            found["pyinstaller"] = _tree_bytes(Path(libpython.group(1)))
    return found


def _name_roles(
    processes: Mapping[int, ProcessMemory], supervisors: set[int], roles: Sequence[str]
) -> None:
    """The child's parent gets roles[0], its parent roles[1], and so on."""
    for pid in supervisors:
        current = processes.get(pid)
        for role in roles:
            if current is None or current.role:
                break
            current.role = role
            current = processes.get(current.parent)
    for process in processes.values():
        if not process.role:
            process.role = f"other: {process.name}"


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Plain-text columns: the first left-aligned, numbers right-aligned, the last (when
    it is text) left-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for column, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            left = column == 0 or (column == len(cells) - 1 and not _numeric(rows, column))
            out.append(cell.ljust(width) if left else cell.rjust(width))
        return indent + "  ".join(out).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _numeric(rows: Sequence[Sequence[str]], column: int) -> bool:
    return all(re.fullmatch(r"[-+]?[\d.]+[x%]?|n/a|", row[column]) for row in rows)


def ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def tmp_filesystem() -> str:
    """The file system of the directory the bootloaders unpack into (their first choice)."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    best, kind = "", "?"
    for line in (_read("/proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 2 and directory.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return f"{directory} ({kind})"


@dataclass(frozen=True)
class Part:
    name: str
    how: str
    static: float | None
    dynamic: float | None


@dataclass(frozen=True)
class Target:
    what: str
    value: float
    limit: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def line(self) -> str:
        verdict = "met" if self.met else "NOT MET"
        return (
            f"  target: {self.what} <= {self.limit:g} {self.unit}:"
            f" {self.value:.1f} {self.unit} -> {verdict}"
        )


def compute_targets(r: Results) -> dict[str, Target]:
    found = {}
    static, baseline = r.median("static"), r.median("python")
    if static is not None and baseline is not None:
        found["static_added_ms"] = Target(
            "what the static build adds to python3 -c pass",
            static - baseline,
            TARGET_ADDED_MS,
            "ms",
        )
    python = next((t.role_peak_kib(PYTHON_ROLE) for t in r.memory if t.label == "sm-entry"), None)
    if python is not None:
        found["python_peak_rss_mib"] = Target(
            "peak RSS of sm-entry's Python process", python / 1024, TARGET_PYTHON_RSS_MIB, "MiB"
        )
    size = r.sizes.get(r.meta["binary"])
    if size is not None:
        found["static_size_mb"] = Target(
            f"size of {r.meta['binary']}", size / MB, TARGET_SIZE_MB, "MB"
        )
    return found


@dataclass
class Results:
    meta: dict[str, Any]
    timings: dict[str, Timing]
    imports: dict[str, ImportProfile]
    memory: list[TreeMemory]
    sizes: dict[str, int]
    parts: list[Part] = field(default_factory=list)  # compute_split()
    targets: dict[str, Target] = field(default_factory=dict)  # compute_targets()

    def median(self, key: str) -> float | None:
        timing = self.timings.get(key)
        return timing.median if timing and timing.samples_ms else None

    def milestone(self, key: str, name: str) -> float | None:
        timing = self.timings.get(key)
        return timing.milestone(name) if timing else None

    def as_json(self) -> dict[str, Any]:
        baseline = self.median("python")
        startup = {}
        for key, timing in self.timings.items():
            entry = timing.as_json()
            if baseline is not None:
                entry["added_ms"] = round(timing.median - baseline, 2)
                entry["ratio"] = round(timing.median / baseline, 2)
            startup[key] = entry
        return {
            "meta": self.meta,
            "startup": startup,
            "split": [
                {**asdict(part), "static": _round(part.static), "dynamic": _round(part.dynamic)}
                for part in self.parts
            ],
            "importtime": {key: profile.as_json() for key, profile in self.imports.items()},
            "memory": [tree.as_json() for tree in self.memory],
            "size_bytes": self.sizes,
            "targets": {
                name: {**asdict(target), "value": _round(target.value), "met": target.met}
                for name, target in self.targets.items()
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _diff(*terms: tuple[float, float | None]) -> float | None:
    """sum(sign * value), or None when a value is missing."""
    total = 0.0
    for sign, value in terms:
        if value is None:
            return None
        total += sign * value
    return total


STARTED, CHILD_STARTED, CHILD_EXITED = "sm-entry started", "child started", "child exited"


def compute_split(r: Results) -> list[Part]:
    """`sm-entry python3 -c pass` as a sum of parts, for the static and the dynamic build.

    Every part is a difference of medians of milestones (when the first line of a watched
    stream arrived: the version line, sm-entry's JSON events; when the process was reaped),
    so a part can come out slightly negative in a noisy run. What happens before and after
    Python runs our code comes from comparing the same milestone across the static, dynamic
    and onedir builds and a trivial onedir program."""

    def at(key: str, milestone: str) -> float | None:
        timing = r.timings.get(key)
        return timing.milestone(milestone) if timing else None

    def tail(key: str) -> float | None:  # from the version line to reaped
        return _diff((1, at(key, REAPED)), (-1, at(key, OUTPUT)))

    onedir_line, trivial_line = at("onedir-version", OUTPUT), at("trivial-onedir", OUTPUT)
    dynamic_line = at("dynamic-version", OUTPUT)
    trivial_unpack = _diff((1, at("trivial-onefile", OUTPUT)), (-1, trivial_line))

    def column(build: str) -> list[float | None]:
        run, version = f"{build}-run", f"{build}-version"
        static = build == "static"
        return [
            _diff((1, at(version, OUTPUT)), (-1, dynamic_line)) if static else None,
            _diff((1, dynamic_line), (-1, onedir_line)),
            trivial_line,
            _diff((1, onedir_line), (-1, trivial_line)),
            _diff((1, at(run, STARTED)), (-1, at(version, OUTPUT))),
            _diff((1, at(run, CHILD_STARTED)), (-1, at(run, STARTED))),
            _diff((1, at(run, CHILD_EXITED)), (-1, at(run, CHILD_STARTED))),
            _diff((1, at(run, REAPED)), (-1, at(run, CHILD_EXITED)), (-1, tail(version))),
            tail("onedir-version"),
            _diff((1, tail("dynamic-version")), (-1, tail("onedir-version"))),
            _diff((1, tail(version)), (-1, tail("dynamic-version"))) if static else None,
        ]

    names_hows = [
        ("staticx: unpack, start the program", "static - dynamic, at the --version line"),
        (
            "PyInstaller one-file: unpack",
            f"dynamic - onedir, at the --version line (trivial program: {ms(trivial_unpack)})",
        ),
        ("Python start", "trivial onedir program (prints a line, imports nothing): its line"),
        ("our imports + CLI to --version", "onedir --version line - trivial onedir line"),
        ("run-path imports + set-up", "'sm-entry started' event - --version line, same build"),
        ("child start (spawn)", "'child started' event - 'sm-entry started' event"),
        (
            "child runs, is reaped",
            f"'child exited' - 'child started' (python3 -c pass alone: {ms(r.median('python'))})",
        ),
        ("wind-down after the child", "reaped - 'child exited', less the --version tail below"),
        (
            "Python exit",
            f"onedir --version: reaped - its line (trivial program: {ms(tail('trivial-onedir'))})",
        ),
        ("PyInstaller one-file: clean up", "dynamic - onedir, from the --version line to reaped"),
        ("staticx: clean up", "static - dynamic, from the --version line to reaped"),
    ]
    return [
        Part(name, how, static, dynamic)
        for (name, how), static, dynamic in zip(
            names_hows, column("static"), column("dynamic"), strict=True
        )
    ]


def report(r: Results) -> str:
    out: list[str] = []
    meta = r.meta
    out.append("sm-entry benchmark: start-up, memory and size, against baselines of this run")
    out.append(f"  machine     {meta['cpus']} CPUs, {meta['kernel']}, unpacking into {meta['tmp']}")
    for key in ("binary", "dynamic"):
        out.append(
            f"  {key:<11} {meta[key]} (built {meta[key + '_mtime']}; run from a copy in"
            f" {meta['snapshot_dir']})"
        )
    out.append(
        f"  start-up    {meta['runs']} runs per command after {meta['warmup']} warm-up rounds;"
        " all commands of sections 1 and 2 interleaved in random order"
    )
    out.append(
        "  builds      build/bench-onedir: sm-entry-onedir, the same code unpacked ahead;"
        " build/bench-trivial: trivial-*, a program"
    )
    out.append(
        "              that prints a line and imports nothing; build/bench-importtime: onedir with"
        " -X importtime (all from build.spec)"
    )
    for warning in meta["warnings"]:
        out.append(f"  WARNING     {warning}")
    out.append("")
    out.extend(_startup_section(r))
    out.append("")
    out.extend(_split_section(r))
    out.append("")
    out.extend(_memory_section(r))
    out.append("")
    out.extend(_size_section(r))
    return "\n".join(out)


def _startup_section(r: Results) -> list[str]:
    baseline = r.median("python")
    tini = r.median("tini")
    rows = []
    for key in ("python", "tini", "static", "dynamic", "onedir"):
        timing = r.timings.get(key)
        if timing is None or not timing.samples_ms:
            rows.append([key, "n/a", "n/a", "n/a", "n/a", "n/a"])
            continue
        failed = sorted(timing.exit_codes - {0})
        label = timing.label + (f"  [exit {failed}]" if failed else "")
        added = None if baseline is None else timing.median - baseline
        over_tini = None if tini is None or key == "python" else timing.median - tini
        rows.append(
            [
                label,
                ms(timing.median),
                ms(timing.p90),
                "baseline" if key == "python" else ms(added, signed=True),
                "" if key in ("python", "tini") else ms(over_tini, signed=True),
                f"{timing.median / baseline:.1f}x" if baseline else "n/a",
            ]
        )
    lines = ["1. Start-up: `/usr/bin/python3 -c pass` run plainly and through each entrypoint"]
    lines.append(table(["command", "median ms", "p90 ms", "added ms", "vs tini ms", "ratio"], rows))
    if "static_added_ms" in r.targets:
        lines.append(r.targets["static_added_ms"].line())
    return lines


def _split_section(r: Results) -> list[str]:
    lines = ["2. Where the start-up goes: `sm-entry python3 -c pass`, split into its parts"]
    lines.append(
        "  milestones (ms after spawn, medians): the first stdout line (--version; the trivial"
        " program's line), sm-entry's JSON events on stderr, reaped"
    )
    rows = []
    for key in MILESTONE_COMMANDS:
        timing = r.timings.get(key)
        if timing is None or not timing.samples_ms:
            rows.append([key, "n/a", "", "", "", "", ""])
            continue
        failed = sorted(timing.exit_codes - {0})
        rows.append(
            [
                timing.label + (f"  [exit {failed}]" if failed else ""),
                *(
                    ms(timing.milestone(name)) if name in timing.milestones_ms else ""
                    for name in (OUTPUT, STARTED, CHILD_STARTED, CHILD_EXITED, REAPED)
                ),
                ms(timing.p90),
            ]
        )
    headers = ["command", "line", "started", "child started", "child exited", "reaped", "p90"]
    lines.append("    (p90 is of reaped)")
    lines.append(table(headers, rows, indent="    "))
    lines.append("")
    parts = r.parts
    totals = {build: r.milestone(f"{build}-run", REAPED) for build in ("static", "dynamic")}
    static_total = totals["static"]
    rows = []
    for part in parts:
        share = "n/a"
        if part.static is not None and static_total:
            share = f"{100 * part.static / static_total:.0f}%"
        dynamic = "-" if part.dynamic is None and "staticx" in part.name else ms(part.dynamic)
        rows.append([part.name, ms(part.static), share, dynamic, part.how])
    rows.append(["total (sum of the parts)", ms(static_total), "", ms(totals["dynamic"]), ""])
    headers = ["part", "static ms", "share", "dynamic ms", "how (differences of medians)"]
    lines.append(table(headers, rows))
    if static_total:
        groups = {
            "unpacking and cleaning up (staticx, PyInstaller one-file)": (0, 1, 9, 10),
            "Python start and exit": (2, 8),
            "our Python code (imports, CLI, set-up, spawn, wind-down)": (3, 4, 5, 7),
            "the child itself": (6,),
        }
        for label, indices in groups.items():
            value = sum(parts[i].static or 0.0 for i in indices)
            lines.append(f"  static, {label}: {value:.1f} ms ({100 * value / static_total:.0f}%)")
    lines.extend(_importtime_lines(r))
    return lines


def _importtime_lines(r: Results) -> list[str]:
    version, run = r.imports.get("version"), r.imports.get("run")
    if version is None or run is None:
        return ["  -X importtime: n/a (no importtime build)"]
    lines = [
        "",
        f"  -X importtime of the frozen code (onedir build with X importtime, medians of"
        f" {run.runs} runs; importtime itself slows imports a little):",
    ]
    rows = [
        [
            label,
            ms(p.bootstrap_ms),
            ms(p.ours_ms),
            ms(p.later_ms),
            ms(p.bootstrap_ms + p.ours_ms + p.later_ms),
        ]
        for label, p in (("sm-entry --version", version), ("sm-entry python3 -c pass", run))
    ]
    lines.append(table(["path", "bootstrap ms", "ours ms", "later ms", "all ms"], rows, "    "))
    lines.append(
        "    bootstrap: top-level imports before our first one (PyInstaller's"
        " pyimod*/pyiboot*, encodings...); ours: top-level imports of supervisor*,"
    )
    lines.append(
        "    click, structlog, orjson (cumulative); later: other top-level imports after"
        " ours (standard library imported inside functions)"
    )
    ours = {k: v for k, v in run.top_level_ms.items() if _package(k) in OUR_PACKAGES}
    tops = ", ".join(f"{name} {value:.1f}" for name, value in top_items(ours, 6))
    lines.append(f"  our top-level imports, run path (ms, cumulative): {tops}")
    bootstrap = {k: v for k, v in version.top_level_ms.items() if k in version.bootstrap_names}
    tops = ", ".join(f"{name} {value:.1f}" for name, value in top_items(bootstrap, 6))
    lines.append(f"  bootstrap imports, --version path (ms, cumulative): {tops}")
    if "ctypes" in version.bootstrap_names:
        lines.append(
            "    (ctypes: imported by PyInstaller's bootstrap, for its ctypes hooks, at every start"
            " because the bundle holds ctypes; the trivial program has none)"
        )
    lines.append("  largest own (self) import times, run path (ms, under which top-level import):")
    rows = [
        [name, ms(value), run.top_of.get(name, "")] for name, value in top_items(run.self_ms, 12)
    ]
    lines.append(table(["module", "self ms", "imported under"], rows, "    "))
    packages: dict[str, float] = {}
    for name, value in run.self_ms.items():
        packages[_package(name)] = packages.get(_package(name), 0.0) + value
    by_package = ", ".join(f"{name} {value:.1f}" for name, value in top_items(packages, 8))
    lines.append(f"  self time by package, run path (ms): {by_package}")
    lines.append(
        "  note: modules imported with importlib.import_module (supervisor.lazyimport's"
        " stand-ins) get no line of their own;"
    )
    lines.append(
        "  their own time is counted as self time of the import that was running"
        " (totals stay right)"
    )
    return lines


def _memory_section(r: Results) -> list[str]:
    lines = ["3. Memory while a child runs (`sleep 2`, left out): every other process of the tree"]
    rows = []
    for tree in r.memory:
        for process in tree.processes:
            rows.append(
                [
                    tree.label,
                    process.role,
                    mib(process.peak_rss_kib),
                    mib(process.rss_kib),
                    mib(process.anon_kib),
                    mib(process.pss_kib),
                ]
            )
        if len(tree.processes) > 1:
            rows.append(
                [
                    tree.label,
                    "sum",
                    mib(tree.total("peak_rss_kib")),
                    mib(tree.total("rss_kib")),
                    mib(tree.total("anon_kib")),
                    mib(tree.total("pss_kib")),
                ]
            )
        if tree.note:
            rows.append([tree.label, tree.note, "", "", "", ""])
    headers = ["run", "process", "peak RSS MiB", "RSS MiB", "anon MiB", "PSS MiB"]
    lines.append(table(headers, rows))
    lines.append(
        "  peak RSS = VmHWM, the highest over the process's life; RSS, anon (RssAnon: not file"
        " pages) and PSS (shared pages split"
    )
    lines.append(
        "  between the processes mapping them, so its sum is what the tree costs together)"
        " while the child ran. staticx's bootloader"
    )
    lines.append(
        "  maps its own file and the program it unpacks while unpacking: file pages, counted"
        " in its peak, gone once Python runs"
    )
    for tree in r.memory:
        if tree.unpacked:
            parts = ", ".join(
                f"{name} directory {size / MB:.1f} MB" for name, size in tree.unpacked.items()
            )
            lines.append(f"  unpacked by {tree.label} at each start: {parts}")
    if any(tree.unpacked for tree in r.memory):
        lines.append(
            f"    (into {r.meta['tmp']}; with our patched staticx, PyInstaller's directory is"
            " inside staticx's)"
        )
    target = r.targets.get("python_peak_rss_mib")
    tini = next((t.total("peak_rss_kib") for t in r.memory if t.label == "tini"), None)
    if target is not None:
        lines.append(target.line())
        if tini:
            lines.append(
                f"    ({target.value * 1024 / tini:.0f}x tini's peak of {tini / 1024:.1f} MiB)"
            )
    return lines


def _size_section(r: Results) -> list[str]:
    lines = ["4. Size"]
    rows = [[name, f"{size / MB:.2f}", f"{size / MIB:.2f}"] for name, size in r.sizes.items()]
    lines.append(table(["file", "MB", "MiB"], rows))
    sizes = list(r.sizes.values())
    lines.append(
        f"  staticx adds {(sizes[0] - sizes[1]) / MB:.2f} MB: its bootloader and the system"
        " libraries it bundles (the C library, the loader...)"
    )
    largest = r.meta.get("onedir_largest_files", {})
    if largest:
        lines.append("  largest files of the same bundle (the onedir build):")
        rows = [[name, f"{size / MB:.2f}"] for name, size in largest.items()]
        lines.append(table(["file", "MB"], rows, indent="    "))
    if "static_size_mb" in r.targets:
        lines.append(r.targets["static_size_mb"].line())
    return lines


def largest_files(directory: Path, count: int) -> dict[str, int]:
    sizes = {}
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            path = Path(dirpath) / name
            sizes[str(path.relative_to(directory))] = path.lstat().st_size
    return dict(sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:count])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="dist/sm-entry", help="the static build")
    parser.add_argument("--dynamic", default="dist/sm-entry-dynamic", help="the PyInstaller build")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--importtime-runs", type=int, default=7)
    parser.add_argument(
        "--skip-build",
        action="store_true",
        help="use the build/bench-* variants as they are (n/a when missing)",
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="run one part: startup (sections 1-4), relay (section 5), serve (section 6) or "
        "websocket (section 7); default: all",
    )
    relay.add_arguments(parser)
    serve.add_arguments(parser)
    tunnels.add_arguments(parser)
    return parser.parse_args(argv)


PARTS = ("startup", "relay", "serve", "websocket")


def warnings(dynamic: Path, built: Mapping[str, Path]) -> list[str]:
    """What makes this run's comparisons less than clean."""
    found = []
    newest = max(_sources(), key=lambda path: path.stat().st_mtime)
    if newest.stat().st_mtime > dynamic.stat().st_mtime:
        found.append(
            f"{newest.relative_to(ROOT)} changed after the binaries were built, while the"
            " build/bench-* builds use the current sources: differences between them mix two"
            " versions of the code (make build)"
        )
    missing = sorted({"onedir", "trivial-onefile", "trivial-onedir", "importtime"} - set(built))
    if missing:
        found.append(f"no {', '.join(missing)} build: the figures that need it are n/a")
    return found


def startup_commands(
    static: Path, dynamic: Path, built: Mapping[str, Path], args: argparse.Namespace
) -> list[Command]:
    """Section 1's commands (std streams on /dev/null) and section 2's (one stream watched)."""
    tini = shutil.which("tini") or "/usr/bin/tini"
    builds = {"static": (args.binary, static), "dynamic": (args.dynamic, dynamic)}
    if "onedir" in built:
        builds["onedir"] = ("sm-entry-onedir", built["onedir"])
    commands = [Command("python", "python3 -c pass", CHILD)]
    if Path(tini).exists():
        commands.append(Command("tini", "tini -- python3 -c pass", (tini, "--", *CHILD)))
    for key, (name, path) in builds.items():
        commands += [
            Command(key, f"{name} python3 -c pass", (str(path), *CHILD)),
            Command(f"{key}-run", f"{name} python3 -c pass", (str(path), *CHILD), watch=2),
            Command(f"{key}-version", f"{name} --version", (str(path), "--version"), watch=1),
        ]
    for kind in ("onefile", "onedir"):
        if f"trivial-{kind}" in built:
            path = built[f"trivial-{kind}"]
            commands.append(
                Command(f"trivial-{kind}", f"trivial-{kind} program", (str(path),), watch=1)
            )
    return commands


def run_startup(args: argparse.Namespace, static: Path, snapshot_dir: Path) -> Results:
    """Sections 1-4: start-up, where it goes, memory, size."""
    dynamic = snapshot(Path(args.dynamic), snapshot_dir / "dynamic")
    built = ensure_built(variants(), args.skip_build)
    tini = shutil.which("tini") or "/usr/bin/tini"

    log(f"timing start-up: {args.runs} rounds after {args.warmup} warm-up rounds")
    commands = startup_commands(static, dynamic, built, args)
    timings = measure(commands, args.runs, args.warmup)

    imports: dict[str, ImportProfile] = {}
    if "importtime" in built:
        log("profiling imports with -X importtime")
        for key, command_args in (("version", ["--version"]), ("run", list(CHILD))):
            profile = profile_imports(built["importtime"], command_args, args.importtime_runs)
            if profile is not None:
                imports[key] = profile

    log("sampling memory")
    cases = [
        MemoryCase(
            "sm-entry",
            (str(static), "--log-format", "json", "sleep", "2"),
            (PYTHON_ROLE, *ANCESTOR_ROLES),
        ),
        MemoryCase(
            "sm-entry-dynamic",
            (str(dynamic), "--log-format", "json", "sleep", "2"),
            (PYTHON_ROLE, ANCESTOR_ROLES[0]),
        ),
        MemoryCase("tini", (tini, "--", "sleep", "2"), ("tini",)),
        MemoryCase(
            "python3",
            (
                PYTHON,
                "-c",
                "import os; os.waitpid(os.spawnlp(os.P_NOWAIT, 'sleep', 'sleep', '2'), 0)",
            ),
            ("bare python3 (reference)",),
        ),
    ]
    memory = measure_memory([case for case in cases if Path(case.argv[0]).exists()])

    sizes = {args.binary: static.stat().st_size, args.dynamic: dynamic.stat().st_size}
    meta: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "tmp": tmp_filesystem(),
        "binary": args.binary,
        "dynamic": args.dynamic,
        "snapshot_dir": str(snapshot_dir.relative_to(ROOT)),
        "runs": args.runs,
        "warmup": args.warmup,
        "warnings": warnings(dynamic, built),
    }
    for key, path in (("binary", static), ("dynamic", dynamic)):
        meta[f"{key}_mtime"] = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime)
        )
    if "onedir" in built:
        meta["onedir_largest_files"] = largest_files(built["onedir"].parent, 6)
    results = Results(meta, timings, imports, memory, sizes)
    results.parts = compute_split(results)
    results.targets = compute_targets(results)
    return results


def relay_header(args: argparse.Namespace, static: Path, snapshot_dir: Path) -> str:
    """The report's head when the relay runs alone (the start-up report has its own)."""
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(static.stat().st_mtime))
    return "\n".join(
        [
            "sm-entry benchmark: log-relay throughput, against baselines of this run",
            f"  machine     {os.cpu_count()} CPUs, {platform.system()} {platform.release()},"
            f" unpacking into {tmp_filesystem()}",
            f"  binary      {args.binary} (built {built}; run from a copy in"
            f" {snapshot_dir.relative_to(ROOT)})",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = [args.only] if args.only else list(PARTS)
    started = time.monotonic()
    snapshot_dir = BUILD / "bench-bin"
    static = snapshot(Path(args.binary), snapshot_dir / "static")
    output: dict[str, Any] = {}
    texts = []
    if "startup" in parts:
        results = run_startup(args, static, snapshot_dir)
        results.meta["elapsed_s"] = time.monotonic() - started
        output.update(results.as_json())
        texts.append(report(results))
    if "relay" in parts:
        if "startup" not in parts:
            texts.append(relay_header(args, static, snapshot_dir))
        relay_results = relay.run(static, args)
        output["relay"] = relay_results.as_json()
        texts.append("\n".join(relay_results.report_lines()))
    if "serve" in parts:
        serve_results = serve.run(static, args)
        output["serve"] = serve_results.as_json()
        texts.append("\n".join(serve_results.report_lines()))
    if "websocket" in parts:
        websocket_results = tunnels.run(static, args)
        output["websocket"] = websocket_results.as_json()
        texts.append("\n".join(websocket_results.report_lines()))
    elapsed = time.monotonic() - started
    output["elapsed_s"] = round(elapsed, 1)
    print("\n\n".join(texts))
    print(f"\n  (bench took {elapsed:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
