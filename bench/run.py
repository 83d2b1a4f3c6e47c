"""Start-up, memory and size of sm-entry, against baselines measured in the same run.

Why: sm-entry is PID 1 of every training and serving container, so what it adds to a
container's start is paid at every start, and what it keeps resident is paid for the whole
job. The static binary is three processes (staticx's bootloader, PyInstaller's bootloader,
Python) that unpack themselves at each start; this shows what that costs next to a plain
`python3 -c pass` and next to `tini`, splits the start-up into its parts so that the next
optimisation goes where the time goes, and prints the targets beside the figures. It is a
benchmark, not a test: it never fails on a target.

    .venv/bin/python bench/run.py --binary dist/sm-entry --dynamic dist/sm-entry-dynamic

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


def variants() -> dict[str, Variant]:
    """onedir: the same code unpacked ahead; trivial-*: a program importing nothing with the
    same spec options; importtime: onedir with `-X importtime`."""
    trivial_script = BUILD / "bench-trivial" / "trivial.py"
    _write_if_changed(trivial_script, '"""Imports nothing: the floor of a frozen start."""\n')
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


@dataclass(frozen=True)
class Command:
    key: str
    label: str
    argv: tuple[str, ...]


@dataclass
class Timing:
    label: str
    samples_ms: list[float] = field(default_factory=list)
    exit_codes: set[int] = field(default_factory=set)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        if len(self.samples_ms) < 2:
            return self.samples_ms[0]
        return statistics.quantiles(self.samples_ms, n=10, method="inclusive")[8]

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_ms": round(self.median, 2),
            "p90_ms": round(self.p90, 2),
            "min_ms": round(min(self.samples_ms), 2),
            "runs": len(self.samples_ms),
            "exit_codes": sorted(self.exit_codes),
        }


def run_once(argv: Sequence[str]) -> tuple[float, int]:
    """Wall time from spawn to reaped, in ms, and the exit code; all std streams /dev/null
    (stdin too: with a terminal on stdin sm-entry would hand it to the child)."""
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), os.environ, file_actions=_QUIET)
    _, status = os.waitpid(pid, 0)
    return (time.perf_counter() - started) * 1000, os.waitstatus_to_exitcode(status)


def measure(commands: Sequence[Command], runs: int, warmup: int) -> dict[str, Timing]:
    """Every command once per round, in a fresh random order each round."""
    timings = {command.key: Timing(command.label) for command in commands}
    order = list(commands)
    shuffle = random.Random(0x5E).shuffle
    for round_number in range(warmup + runs):
        shuffle(order)
        for command in order:
            elapsed, code = run_once(command.argv)
            timings[command.key].exit_codes.add(code)
            if round_number >= warmup:
                timings[command.key].samples_ms.append(elapsed)
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
    top_level_ms: dict[str, float]  # our top-level imports, cumulative
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
            if _package(line.name) in OUR_PACKAGES:
                seen_ours = True
                sums["ours"] += line.cumulative_us
                top_level.setdefault(line.name, []).append(line.cumulative_us / 1000)
            else:
                sums["later" if seen_ours else "bootstrap"] += line.cumulative_us
        bootstrap.append(sums["bootstrap"] / 1000)
        ours.append(sums["ours"] / 1000)
        later.append(sums["later"] / 1000)
    return ImportProfile(
        runs=runs,
        bootstrap_ms=statistics.median(bootstrap),
        ours_ms=statistics.median(ours),
        later_ms=statistics.median(later),
        top_level_ms={name: statistics.median(v) for name, v in top_level.items()},
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
                process = seen[index].setdefault(pid, ProcessMemory(pid, parents[pid], name))
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
            process.pss_kib = _status_kib(rollup, "Pss")


def _unpacked(processes: Mapping[int, ProcessMemory], root: int) -> dict[str, int]:
    """Bytes the bootloaders unpacked: staticx's directory holds the PyInstaller program
    it runs (an executable not where we started the root from), PyInstaller's (_MEI*)
    holds libpython. With our patched staticx, PyInstaller's is inside staticx's."""
    found = {}
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


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def tmp_filesystem() -> str:
    """The file system of the directory the bootloaders unpack into (their first choice)."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    best, kind = "", "?"
    for line in (_read("/proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 2 and directory.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return f"{directory} ({kind})"


@dataclass
class Results:
    meta: dict[str, Any]
    timings: dict[str, Timing]
    imports: dict[str, ImportProfile]
    memory: list[TreeMemory]
    sizes: dict[str, int]
    split: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)

    def median(self, key: str) -> float | None:
        timing = self.timings.get(key)
        return timing.median if timing and timing.samples_ms else None

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
            "split": self.split,
            "importtime": {key: profile.as_json() for key, profile in self.imports.items()},
            "memory": [tree.as_json() for tree in self.memory],
            "size_bytes": self.sizes,
            "targets": self.targets,
        }


def _diff(*terms: tuple[float, float | None]) -> float | None:
    """sum(sign * value), or None when a value is missing."""
    total = 0.0
    for sign, value in terms:
        if value is None:
            return None
        total += sign * value
    return total


def compute_split(r: Results) -> list[dict[str, Any]]:
    """The static build's `python3 -c pass` start-up as a sum of parts (differences of
    medians, so a part can come out slightly negative in a noisy run)."""
    m = r.median
    version, run = r.imports.get("version"), r.imports.get("run")
    run_imports = _diff(
        (1, run.ours_ms + run.later_ms if run else None),
        (-1, version.ours_ms + version.later_ms if version else None),
    )
    rest = _diff((1, m("static")), (-1, m("static-version")), (-1, m("python")))
    supervise = _diff((1, rest), (-1, run_imports)) if run_imports is not None else None
    imports_note = (
        f"; -X importtime: {version.ours_ms:.1f} ms of it is importing supervisor/click/"
        f"structlog/orjson"
        if version
        else ""
    )
    trivial_extract = _diff((1, m("trivial-onefile")), (-1, m("trivial-onedir")))
    rows = [
        (
            "Python start",
            m("trivial-onedir"),
            "a PyInstaller onedir program that imports nothing, same spec options: bootloader,"
            " libpython, interpreter init, base_library.zip",
        ),
        (
            "our imports + CLI (--version)",
            _diff((1, m("onedir-version")), (-1, m("trivial-onedir"))),
            f"onedir --version - trivial onedir{imports_note}",
        ),
        (
            "PyInstaller one-file extraction",
            _diff((1, m("dynamic-version")), (-1, m("onedir-version"))),
            f"dynamic --version - onedir --version (trivial program: {ms(trivial_extract)} ms)",
        ),
        (
            "staticx extraction",
            _diff((1, m("static-version")), (-1, m("dynamic-version"))),
            "static --version - dynamic --version",
        ),
        (
            "imports a run adds",
            run_imports,
            "-X importtime, run path - --version path (structlog, orjson, supervisor.app...)",
        ),
        (
            "supervise: set up, spawn, reap, exit",
            supervise if run_imports is not None else rest,
            "static child run - static --version - python3 -c pass - imports a run adds",
        ),
        ("the child (python3 -c pass)", m("python"), "python3 -c pass alone"),
    ]
    total = m("static")
    return [
        {
            "part": part,
            "ms": None if value is None else round(value, 2),
            "share": None if value is None or not total else round(100 * value / total, 1),
            "how": how,
        }
        for part, value, how in rows
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
        f"  start-up    {meta['runs']} runs per command after {meta['warmup']} warm-up"
        " rounds, all commands interleaved in random order, std streams on /dev/null"
    )
    out.append("")
    out.extend(_startup_section(r))
    out.append("")
    out.extend(_split_section(r))
    out.append("")
    out.extend(_memory_section(r))
    out.append("")
    out.extend(_size_section(r))
    out.append("")
    out.append(f"  (bench took {meta['elapsed_s']:.0f} s)")
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
    static = r.median("static")
    if static is not None and baseline is not None:
        added = static - baseline
        r.targets["static_added_ms"] = {
            "value": round(added, 2),
            "target": TARGET_ADDED_MS,
            "met": added <= TARGET_ADDED_MS,
        }
        lines.append(
            f"  target: the static build adds <= {TARGET_ADDED_MS:.0f} ms over python3 -c"
            f" pass: it adds {added:.1f} ms -> {verdict(added <= TARGET_ADDED_MS)}"
        )
    return lines


def _split_section(r: Results) -> list[str]:
    lines = ["2. Where the static build's start-up goes"]
    refs = [
        ("static-version", "--version"),
        ("dynamic-version", "--version"),
        ("onedir-version", "--version"),
        ("trivial-onefile", ""),
        ("trivial-onedir", ""),
    ]
    rows = []
    for key, _ in refs:
        timing = r.timings.get(key)
        if timing is None:
            rows.append([key, "n/a", "n/a"])
        else:
            failed = sorted(timing.exit_codes - {0})
            rows.append(
                [
                    timing.label + (f"  [exit {failed}]" if failed else ""),
                    ms(timing.median),
                    ms(timing.p90),
                ]
            )
    lines.append("  reference runs, timed in the same rounds as section 1:")
    lines.append(table(["command", "median ms", "p90 ms"], rows, indent="    "))
    lines.append("")
    r.split = compute_split(r)
    rows = [
        [
            row["part"],
            ms(row["ms"]),
            "n/a" if row["share"] is None else f"{row['share']:.0f}%",
            row["how"],
        ]
        for row in r.split
    ]
    total = r.median("static")
    rows.append(["total (sum of the parts)", ms(total), "100%", "static python3 -c pass"])
    lines.append(table(["part", "ms", "share", "how measured (medians)"], rows))
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
    tops = ", ".join(f"{name} {value:.1f}" for name, value in top_items(run.top_level_ms, 6))
    lines.append(f"  our top-level imports, run path (ms, cumulative): {tops}")
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
                    mib(tree.total("pss_kib")),
                ]
            )
        if tree.note:
            rows.append([tree.label, tree.note, "", "", ""])
    lines.append(table(["run", "process", "peak RSS MiB", "RSS MiB", "PSS MiB"], rows))
    lines.append(
        "  peak RSS = VmHWM (highest seen); RSS and PSS while the child ran; PSS splits"
        " shared pages, so its sum is what the tree costs together"
    )
    for tree in r.memory:
        if tree.unpacked:
            parts = ", ".join(
                f"{name} directory {size / MB:.1f} MB" for name, size in tree.unpacked.items()
            )
            lines.append(
                f"  unpacked by {tree.label} per start: {parts} (in {r.meta['tmp']};"
                " PyInstaller's is inside staticx's when both are given)"
            )
    python = next((t.role_peak_kib(PYTHON_ROLE) for t in r.memory if t.label == "sm-entry"), None)
    tini = next((t.total("peak_rss_kib") for t in r.memory if t.label == "tini"), None)
    if python is not None:
        met = python / 1024 <= TARGET_PYTHON_RSS_MIB
        r.targets["python_peak_rss_mib"] = {
            "value": round(python / 1024, 2),
            "target": TARGET_PYTHON_RSS_MIB,
            "met": met,
        }
        ratio = f" ({python / tini:.0f}x tini's {tini / 1024:.1f} MiB)" if tini else ""
        lines.append(
            f"  target: sm-entry's Python process <= {TARGET_PYTHON_RSS_MIB:.0f} MiB:"
            f" peak {python / 1024:.1f} MiB{ratio} -> {verdict(met)}"
        )
    return lines


def _size_section(r: Results) -> list[str]:
    lines = ["4. Size"]
    rows = [[name, f"{size / MB:.2f}", f"{size / MIB:.2f}"] for name, size in r.sizes.items()]
    lines.append(table(["file", "MB", "MiB"], rows))
    static = r.sizes.get(r.meta["binary"])
    if static is not None:
        met = static / MB <= TARGET_SIZE_MB
        r.targets["static_size_mb"] = {
            "value": round(static / MB, 2),
            "target": TARGET_SIZE_MB,
            "met": met,
        }
        lines.append(
            f"  target: {r.meta['binary']} <= {TARGET_SIZE_MB:.0f} MB: {static / MB:.2f}"
            f" MB -> {verdict(met)}"
        )
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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    snapshot_dir = BUILD / "bench-bin"
    static = snapshot(Path(args.binary), snapshot_dir / "static")
    dynamic = snapshot(Path(args.dynamic), snapshot_dir / "dynamic")
    built = ensure_built(variants(), args.skip_build)
    tini = shutil.which("tini") or "/usr/bin/tini"

    log(f"timing start-up: {args.runs} runs after {args.warmup} warm-up rounds")
    commands = [
        Command("python", "python3 -c pass", CHILD),
        Command("tini", "tini -- python3 -c pass", (tini, "--", *CHILD)),
        Command("static", f"{args.binary} python3 -c pass", (str(static), *CHILD)),
        Command("dynamic", f"{args.dynamic} python3 -c pass", (str(dynamic), *CHILD)),
        Command("static-version", f"{args.binary} --version", (str(static), "--version")),
        Command("dynamic-version", f"{args.dynamic} --version", (str(dynamic), "--version")),
    ]
    if "onedir" in built:
        onedir = str(built["onedir"])
        name = built["onedir"].relative_to(ROOT)
        commands.append(Command("onedir", f"{name} python3 -c pass", (onedir, *CHILD)))
        commands.append(Command("onedir-version", f"{name} --version", (onedir, "--version")))
    for kind in ("onefile", "onedir"):
        if f"trivial-{kind}" in built:
            commands.append(
                Command(
                    f"trivial-{kind}",
                    f"trivial {kind} program (imports nothing)",
                    (str(built[f"trivial-{kind}"]),),
                )
            )
    if not Path(tini).exists():
        commands = [c for c in commands if c.key != "tini"]
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
    }
    for key in ("binary", "dynamic"):
        meta[f"{key}_mtime"] = time.strftime(
            "%Y-%m-%d %H:%M:%S",
            time.localtime((static if key == "binary" else dynamic).stat().st_mtime),
        )
    results = Results(meta, timings, imports, memory, sizes)
    if "onedir" in built:
        results.meta["onedir_largest_files"] = largest_files(built["onedir"].parent, 5)
    meta["elapsed_s"] = time.monotonic() - started
    text = report(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results.as_json(), indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
