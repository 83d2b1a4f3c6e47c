"""Why a job failed, in the 1024 characters SageMaker shows as its FailureReason.

The root cause comes first: for a Python program the final exception line
(`ValueError: bad learning rate: -1`) and the last frames of its traceback,
taken from the child's stderr as the log framing grouped it; for a signal,
which one and who sent it.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Sequence

from supervisor.logs.framing import Item, Lines, Record

MAX_REASON_CHARS = 1024
TAIL_LINES = 20
TRACEBACK_FRAMES = 3


class StderrTail:
    """Observes the framed stderr of a child: its last traceback and last lines."""

    def __init__(self) -> None:
        self.traceback: str | None = None
        self._traceback_pieces: list[str] = []
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def __call__(self, stream: str, items: Sequence[Item]) -> None:
        if stream != "stderr":
            return
        for item in items:
            if type(item) is Lines:
                self.lines.extend(item.text.split("\n")[-TAIL_LINES:])
            elif isinstance(item, Record):
                if item.kind == "traceback":
                    self._traceback_pieces.append(item.text)
                    if not item.part or item.parts:
                        self.traceback = "".join(self._traceback_pieces)
                        self._traceback_pieces = []
                if item.text:
                    self.lines.extend(item.text.split("\n")[-TAIL_LINES:])

    def last_lines(self, count: int) -> list[str]:
        """The last `count` non-blank lines of stderr."""
        return [line for line in self.lines if line.strip()][-count:]


def exception_summary(traceback_text: str) -> tuple[str, list[str]]:
    """(the final exception line, the last frames) of a Python traceback."""
    lines = traceback_text.rstrip("\n").split("\n")
    last = ""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line and not line.startswith((" ", "\t")) and not line.startswith("Traceback ("):
            last = line
            lines = lines[:index]
            break
    # The last traceback of a chain is the one that ended the program.
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (")]
    frames_text = lines[starts[-1] + 1 :] if starts else lines
    frames: list[list[str]] = []
    for line in frames_text:
        if line.startswith("  File "):
            frames.append([line])
        elif frames and line.startswith("    "):
            frames[-1].append(line)
    flat = [line for frame in frames[-TRACEBACK_FRAMES:] for line in frame]
    return last, flat


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


def describe(
    program: str,
    exit_code: int,
    died_of: int | None,
    stop_signal: int | None,
    killed_by_us: str | None,
    stop_timeout: float,
    tail: StderrTail | None,
) -> str:
    """The failure reason for a program that ended with `exit_code`."""
    parts: list[str] = []
    if tail is not None and tail.traceback:
        exception, frames = exception_summary(tail.traceback)
        if exception:
            parts.append(exception)
        if frames:
            parts.append("Last frames:\n" + "\n".join(frames))
    if killed_by_us:
        origin = _signal_text(stop_signal) if stop_signal else "a stop signal"
        why = (f"it did not exit within the {stop_timeout:g} s stop timeout"
               if killed_by_us == "stop timeout" else f"a {killed_by_us} followed")
        parts.append(
            f"{program} was stopped: {origin} came from outside (StopTrainingJob or a spot "
            f"interruption) and {why}, so sm-entry killed it with SIGKILL (exit code "
            f"{exit_code})."
        )
    elif died_of is not None:
        text = f"{program} was killed by {_signal_text(died_of)}"
        if stop_signal is not None and died_of == stop_signal:
            text += (", which sm-entry forwarded from outside (StopTrainingJob or a spot "
                     "interruption)")
        elif died_of == signal.SIGKILL:
            text += (", not sent by sm-entry: most likely the kernel's out-of-memory killer "
                     "(the instance ran out of memory)")
        parts.append(f"{text} (exit code {exit_code}).")
    else:
        text = f"{program} exited with code {exit_code}"
        if exit_code == 137:
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
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(truncate(reason))
    return True
