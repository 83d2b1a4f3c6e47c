"""Why a job failed, in the 1024 characters SageMaker shows as its FailureReason.

The root cause comes first: for a Python program the final exception line
(`ValueError: bad learning rate: -1`) and the last frames of its traceback,
taken from the child's stderr as the log framing grouped it; for a signal,
which one and who sent it.
"""

from __future__ import annotations

import os
import re
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from supervisor.logs.framing import TRACEBACK_START, Item, Lines, Record

MAX_REASON_CHARS = 1024
TAIL_LINES = 20
TRACEBACK_FRAMES = 3


# Pieces of one traceback kept while it arrives: the end holds what we show.
MAX_TRACEBACK_PIECES = 4
CHAIN_LINKS = {
    "The above exception was the direct cause of the following exception:": "cause",
    "During handling of the above exception, another exception occurred:": "context",
}
EARLIER_TRACEBACKS = 4  # a launcher's own traceback follows its rank's: look back this far
RANK_PREFIX = "[rank"
RANK_LINES = 60  # per rank: enough for a traceback's end
# torchrun ends with this when a rank failed; its report names the first rank that failed.
CHILD_FAILED = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"
ROOT_CAUSE = "Root Cause (first observed failure):"
# PyTorch's way of saying a worker process died of SIGKILL.
WORKER_KILLED = "killed by signal: Killed"
OOM_HINT = ("most likely the kernel's out-of-memory killer (the instance ran out of memory)")


class StderrTail:
    """Observes the framed stderr of a child: its last tracebacks and last lines."""

    def __init__(self) -> None:
        self.traceback: str | None = None
        self.earlier: deque[str] = deque(maxlen=EARLIER_TRACEBACKS)  # before the last one
        # torch.distributed prefixes a rank's traceback lines with "[rankN]: ": by rank
        self.rank_lines: dict[str, deque[str]] = {}
        self._traceback_pieces: list[str] = []
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def __call__(self, stream: str, items: Sequence[Item]) -> None:
        if stream != "stderr":
            return
        for item in items:
            if type(item) is Lines:
                if RANK_PREFIX in item.text:
                    self._add_rank_lines(item.text)
                self.lines.extend(item.text.split("\n")[-TAIL_LINES:])
            elif isinstance(item, Record):
                if item.text.startswith(RANK_PREFIX):
                    item = self._rank_record(item)
                if item.kind == "traceback":
                    self._add_piece(item)
                if item.text:
                    self.lines.extend(item.text.split("\n")[-TAIL_LINES:])

    def _add_rank_lines(self, text: str) -> None:
        for line in text.split("\n"):
            if line.startswith(RANK_PREFIX):
                rank, sep, rest = line[len(RANK_PREFIX):].partition("]: ")
                if sep and rank.isdigit():
                    kept = self.rank_lines.setdefault(rank, deque(maxlen=RANK_LINES))
                    kept.append(rest)

    def _rank_record(self, item: Record) -> Record:
        """A record of one rank (mpirun's, framed per rank): its lines join the rank's."""
        rank, sep, rest = item.text[len(RANK_PREFIX):].partition("]: ")
        if not (sep and rank.isdigit()):
            return item
        tag = f"{RANK_PREFIX}{rank}]: "  # torch's tag on every line, mpirun's on the first
        lines = [line.removeprefix(tag) for line in rest.split("\n")]
        self.rank_lines.setdefault(rank, deque(maxlen=RANK_LINES)).extend(lines)
        return item._replace(text="\n".join(lines))

    def rank_traceback(self, rank: str) -> str | None:
        """The last traceback a rank printed with its "[rankN]: " prefix."""
        lines = list(self.rank_lines.get(rank, ()))
        starts = [i for i, line in enumerate(lines) if line == TRACEBACK_START]
        return "\n".join(lines[starts[-1]:]) if starts else None

    def _add_piece(self, item: Record) -> None:
        """A traceback arrives whole, or in pieces (part 1..n, n said on the last)."""
        if item.part <= 1:
            self._traceback_pieces = []
        self._traceback_pieces.append(item.text)
        if len(self._traceback_pieces) > MAX_TRACEBACK_PIECES:
            # A huge traceback: its end (exception line, last frames) is what counts.
            del self._traceback_pieces[1]
        if not item.part or item.parts:
            if self.traceback is not None:
                self.earlier.append(self.traceback)
            self.traceback = "".join(self._traceback_pieces)
            self._traceback_pieces = []

    def last_lines(self, count: int) -> list[str]:
        """The last `count` non-blank lines of stderr."""
        return [line for line in self.lines if line.strip()][-count:]


@dataclass
class Segment:
    """One traceback of a chain: its frames, its exception, how it follows the one before."""

    link: str | None = None  # "cause", "context", "worker" (carried in the previous message)
    frames: list[list[str]] = field(default_factory=list)
    exception: str = ""


def parse_traceback(text: str) -> list[Segment]:
    """The tracebacks of a chain, in the order Python prints them."""
    segments: list[Segment] = []
    link: str | None = None
    current: Segment | None = None
    for line in text.rstrip("\n").split("\n"):
        if line in CHAIN_LINKS:
            link = CHAIN_LINKS[line]
        elif line.endswith(TRACEBACK_START):
            worker = line != TRACEBACK_START and current is not None and bool(current.exception)
            current = Segment(link="worker" if worker else link)
            segments.append(current)
            link = None
        elif current is None or not line.strip():
            continue
        elif current.exception:
            continue  # more lines of the message
        elif line.startswith("  File "):
            current.frames.append([line])
        elif line.startswith((" ", "\t")):
            if current.frames:
                current.frames[-1].append(line)
        else:
            current.exception = line
    segments = [s for s in segments if s.exception or s.frames]
    if segments:
        segments[0].link = None  # the first follows nothing (a stray chain line before it)
    return segments


def exception_summary(traceback_text: str) -> tuple[list[str], list[str]]:
    """(lines naming the exception: root cause first, the last frames of the root's traceback)."""
    segments = parse_traceback(traceback_text)
    if not segments:
        return [], []
    last = len(segments) - 1
    if segments[last].link == "worker":
        # The exception that ended the program wraps a worker's: the worker's is the cause.
        root, shown = last, last - 1
        lines = [segments[root].exception, f"Raised in a worker process, as: "
                 f"{segments[shown].exception}"]
    else:
        root = last
        while segments[root].link == "cause":
            root -= 1
        lines = [segments[root].exception]
        if root != last:
            lines.append(f"Which caused: {segments[last].exception}")
        elif segments[last].link == "context":
            lines.append(f"While handling: {segments[last - 1].exception}")
    if any(WORKER_KILLED in segment.exception for segment in segments):
        lines.append(f"A worker process was killed by SIGKILL: {OOM_HINT}.")
    frames = [line for frame in segments[root].frames[-TRACEBACK_FRAMES:] for line in frame]
    return [line for line in lines if line], frames


def _signal_text(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} (signal {signum})"
    except ValueError:
        return f"signal {signum}"


INTERPRETERS = ("python", "sh", "bash", "dash")


def program_label(argv: Sequence[str]) -> str:
    """What to call the program in a reason: the script, not its interpreter."""
    name = os.path.basename(argv[0]) if argv else "the program"
    if name.startswith(INTERPRETERS) and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2]
        if argv[1] == "-c":
            return f"{name} -c"
        if not argv[1].startswith("-"):
            return os.path.basename(argv[1])
    return name


@dataclass
class RankFailure:
    """torchrun's "Root Cause" block: which rank failed first, where, how."""

    fields: dict[str, str]

    @property
    def where(self) -> str:
        rank = self.fields.get("rank")  # "1 (local_rank: 1)"
        text = f"rank {rank.replace('(local_rank: ', '(local rank ')}" if rank else "a rank"
        host = self.fields.get("host")
        return f"{text} on host {host}" if host else text


def torchrun_root_cause(lines: Sequence[str]) -> RankFailure | None:
    """The root cause block of torchrun's ChildFailedError report, if the tail holds one."""
    starts = [index for index, line in enumerate(lines) if line == ROOT_CAUSE]
    if not starts:
        return None
    fields: dict[str, str] = {}
    for line in list(lines)[starts[-1] + 1:]:
        name, sep, value = line.partition(":")
        if sep and line.startswith("  ") and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    return RankFailure(fields)


def _error_file_traceback(path: str | None) -> str | None:
    """The failing rank's traceback from its torchelastic error file (written with @record)."""
    if not path or not path.startswith("/"):
        return None
    try:
        import json

        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        extra = data["message"]["extraInfo"]
        text = extra.get("py_callstack")
        return text if isinstance(text, str) and text else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _launcher_failure(tail: StderrTail) -> list[str] | None:
    """For a torchrun whose rank failed: the rank's exception first, then which rank it was."""
    if not tail.traceback or CHILD_FAILED not in tail.traceback:
        return None
    cause = torchrun_root_cause(tail.lines)
    where = cause.where if cause else "a rank"
    code = cause.fields.get("exitcode", "").split(" (pid")[0].strip() if cause else ""
    rank_traceback = _error_file_traceback(cause.fields.get("error_file") if cause else None)
    if rank_traceback is None and cause:
        rank_traceback = tail.rank_traceback(cause.fields.get("rank", "").split(" ")[0])
    if rank_traceback is None:
        rank_traceback = next((t for t in reversed(tail.earlier) if CHILD_FAILED not in t), None)
    parts: list[str] = []
    frames: list[str] = []
    if rank_traceback:
        exception, frames = exception_summary(rank_traceback)
        parts.extend(exception)
    ended = f", which exited with code {code}" if code else ""
    parts.append(f"Raised in {where}{ended}; torchrun then stopped the other ranks "
                 "(ChildFailedError)." if parts else
                 f"torchrun: {where} failed{' with exit code ' + code if code else ''}; "
                 "torchrun then stopped the other ranks (ChildFailedError).")
    if code == "-9":
        parts.append(f"The rank was killed by SIGKILL: {OOM_HINT}.")
    if frames:
        parts.append("Last frames:\n" + "\n".join(frames))
    return parts


RankHost = Callable[[int], "tuple[str, int] | None"]  # rank -> (host, local rank)
# mpirun's report of the first rank that failed (orte_abort_on_non_zero_status).
MPIRUN_EXITED = "mpirun detected that one or more processes exited with non-zero status"
_MPIRUN_PROCESS = re.compile(r"^\s*Process name: \[\[\d+,\d+\],(\d+)\]")
_MPIRUN_EXIT_CODE = re.compile(r"^\s*Exit code:\s*(-?\d+)")
_MPIRUN_SIGNAL = re.compile(r"mpirun noticed that process rank (\d+) with PID \d+ on node "
                            r"(\S+) exited on signal (\d+)")
# Under mpi4py (`python -m mpi4py`) an uncaught exception calls MPI_Abort instead.
_MPIRUN_ABORT = re.compile(r"MPI_ABORT was invoked on rank (\d+)")


def _mpirun_failure(tail: StderrTail, rank_host: RankHost) -> list[str] | None:
    """For an mpirun whose rank failed: the rank's exception first, then which rank, where."""
    lines = list(tail.lines)
    rank: int | None = None
    how = ""
    killed = False
    for index, line in enumerate(lines):
        if MPIRUN_EXITED in line:
            for later in lines[index + 1:]:
                if (match := _MPIRUN_PROCESS.match(later)) and rank is None:
                    rank = int(match[1])
                elif match := _MPIRUN_EXIT_CODE.match(later):
                    how = f"which exited with code {match[1]}"
                    break
        elif (match := _MPIRUN_ABORT.search(line)) and rank is None:
            rank = int(match[1])
            how = "which called MPI_Abort"
        elif match := _MPIRUN_SIGNAL.search(line):
            rank = int(match[1])
            signum = int(match[3])
            killed = signum == signal.SIGKILL
            how = f"which was killed by {_signal_text(signum)}"
    if rank is None:
        return None
    place = rank_host(rank)
    where = (f"rank {rank} (local rank {place[1]}) on host {place[0]}" if place
             else f"rank {rank}")
    parts: list[str] = []
    frames: list[str] = []
    rank_traceback = tail.rank_traceback(str(rank))
    if rank_traceback:
        parts, frames = exception_summary(rank_traceback)
    ended = f", {how}" if how else ""
    if parts:
        parts.append(f"Raised in {where}{ended}; mpirun then stopped the other ranks.")
    else:
        parts.append(f"mpirun: {where} failed{ended}; mpirun then stopped the other ranks.")
        own = [line for line in tail.rank_lines.get(str(rank), ()) if line.strip()][-5:]
        if own:
            parts.append("Last lines of its stderr:\n" + "\n".join(own))
    if killed:
        parts.append(f"The rank was killed by SIGKILL: {OOM_HINT}.")
    if frames:
        parts.append("Last frames:\n" + "\n".join(frames))
    return parts


@dataclass(frozen=True)
class OutOfMemory:
    """The kernel's OOM killer did act in our cgroup while the program ran (its count grew)."""

    limit: str | None  # "15.2 GiB"; None: the cgroup has no limit
    killed: str | None  # "PID 42 (python3 train.py)" when it was the program itself

    def text(self) -> str:
        who = self.killed or "a process of the job"
        if self.limit is None:
            return (f"Out of memory: the machine ran out of memory (the container has no "
                    f"limit of its own); the kernel killed {who}.")
        return (f"Out of memory: the container's memory limit ({self.limit}) was reached; "
                f"the kernel killed {who}.")


def describe(
    program: str,
    exit_code: int,
    died_of: int | None,
    stop_signal: int | None,
    killed_by_us: str | None,
    stop_timeout: float,
    tail: StderrTail | None,
    oom: OutOfMemory | None = None,
    rank_host: RankHost | None = None,
) -> str:
    """The failure reason for a program that ended with `exit_code`.

    `rank_host`: the program is mpirun; where each rank runs.
    """
    parts: list[str] = [oom.text()] if oom else []
    launcher = None
    if tail is not None:
        launcher = (_mpirun_failure(tail, rank_host) if rank_host is not None
                    else _launcher_failure(tail))
    if launcher:
        parts.extend(launcher)
    elif tail is not None and tail.traceback:
        exception, frames = exception_summary(tail.traceback)
        if oom:  # certain now: no "most likely" guess
            exception = [line for line in exception if OOM_HINT not in line]
        parts.extend(exception)
        if frames:
            parts.append("Last frames:\n" + "\n".join(frames))
    if killed_by_us:
        origin = _signal_text(stop_signal) if stop_signal else "a stop signal"
        why = (f"it did not exit within the {stop_timeout:g} s stop timeout"
               if killed_by_us == "stop timeout" else f"a {killed_by_us} followed")
        parts.append(
            f"{program} was stopped: {origin} came from outside sm-entry and {why}, so "
            f"sm-entry killed it with SIGKILL (exit code {exit_code})."
        )
    elif died_of is not None:
        text = f"{program} was killed by {_signal_text(died_of)}"
        if stop_signal is not None and died_of == stop_signal:
            text += ", which sm-entry forwarded from outside"
        elif died_of == signal.SIGKILL and not oom:
            text += f", not sent by sm-entry: {OOM_HINT}"
        parts.append(f"{text} (exit code {exit_code}).")
    else:
        text = f"{program} exited with code {exit_code}"
        if stop_signal is not None:
            text += f" after sm-entry forwarded {_signal_text(stop_signal)} from outside"
        if exit_code == 137 and not oom:
            text += " (137 = 128+SIGKILL: most likely killed for running out of memory)"
        parts.append(text + ".")
        if not (tail and tail.traceback) and tail is not None and tail.lines:
            last_lines = tail.last_lines(5)
            if last_lines:
                parts.append("Last lines of its stderr:\n" + "\n".join(last_lines))
    return truncate("\n".join(parts))


def truncate(text: str, limit: int = MAX_REASON_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def write_failure(path: str, reason: str) -> bool:
    """Write the reason unless the program wrote its own; True when written."""
    if os.path.exists(path):
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    from supervisor.logs.events import printable

    with open(path, "w", encoding="utf-8") as handle:
        handle.write(truncate(printable(reason)))
    return True
