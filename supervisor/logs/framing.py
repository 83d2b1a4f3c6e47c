"""Bytes from a child's pipe -> log records: the framing, with no clock and no I/O.

CloudWatch makes one event of every line we print, so framing decides what
a person will see there: a Python traceback or a Java stack trace must be one
event, not thirty; a tqdm bar rewriting itself with `\\r` must be a few
events, not one multi-megabyte line; no event may exceed the per-event limit.

`LineFramer.feed()` takes bytes and the current time and returns items:
`Lines`, a block of ordinary lines (the fast, common case: a whole read is
often one block, never split into Python strings), or a `Record` for
anything framed specially. A line that may still gain continuation lines is
held back, and released by the next line, by `release_due()` once it has
been idle for `group_idle` seconds, or by `close()` at the end of the stream.
"""

from __future__ import annotations

import re
from typing import NamedTuple

TRACEBACK_START = "Traceback (most recent call last):"
CHAIN_PHRASES = frozenset({
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
})
CONTINUATION_PREFIXES = (" ", "\t")
DEFAULT_GROUP_IDLE = 0.2  # seconds
# A group still growing after this many idle times is let out (and a new one begun).
GROUP_MAX_AGE_IDLES = 5
DEFAULT_MAX_RECORD_BYTES = 256 * 1024  # CloudWatch's event limit, after JSON escaping
DEFAULT_PROGRESS_INTERVAL = 5.0  # seconds
RECORD_OVERHEAD = 2048  # room left in each record for our own fields
WORST_ESCAPE = 6  # one byte can take six when escaped (\u001f)
_CONTROL_BYTES = bytes(range(0x20))
_INDENTED_LINE = re.compile(r"\n[ \t]")  # one regex scan beats two substring scans here


class Lines(NamedTuple):
    """A block of ordinary lines, joined by newlines (no trailing newline)."""

    text: str


class Record(NamedTuple):
    """A line, or a group of lines, framed specially."""

    text: str
    kind: str = "line"  # traceback | group | progress | part
    part: int = 0  # 1-based index of a piece of a split line or group
    parts: int = 0  # how many pieces there were: set on the last piece only


Item = Lines | Record


class _Output:
    """Collects items, joining consecutive ordinary lines into one block."""

    __slots__ = ("items", "run")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.run: list[str] = []

    def lines(self, lines: list[str]) -> None:
        self.run.extend(lines)

    def block(self, text: str) -> None:
        self._flush()
        self.items.append(Lines(text))

    def record(self, record: Record) -> None:
        self._flush()
        self.items.append(record)

    def done(self) -> list[Item]:
        self._flush()
        return self.items

    def _flush(self) -> None:
        if self.run:
            self.items.append(Lines("\n".join(self.run)))
            self.run = []


def is_continuation(line: str) -> bool:
    return line.startswith(CONTINUATION_PREFIXES)


def escaped_size(data: bytes) -> int:
    """Bytes `data` takes as a JSON string body (orjson escapes only these)."""
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    return len(data) + data.count(b'"') + data.count(b"\\") + (WORST_ESCAPE - 1) * controls


def _utf8_boundary(data: bytes, cut: int) -> int:
    """The largest cut <= `cut` that does not split a UTF-8 sequence of valid `data`."""
    back = cut
    while 0 < back < len(data) and (data[back] & 0xC0) == 0x80:
        back -= 1
    return back if back > 0 else cut


def complete_prefix_length(data: bytes) -> int:
    """Length of `data` without a UTF-8 sequence cut short at its end (more may follow)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        needed = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 1
        return len(data) - back if back < needed else len(data)
    return len(data)


def split_bytes(data: bytes, budget: int) -> list[bytes]:
    """Cut `data` into valid UTF-8 pieces, each of escaped size <= `budget`.

    Invalid bytes are replaced first (U+FFFD, 3 bytes each), since that is
    what will be printed.
    """
    data = data.decode("utf-8", "replace").encode()
    pieces = []
    while escaped_size(data) > budget:
        cut = min(len(data), budget)
        while escaped_size(data[:cut]) > budget:
            cut = max(1, cut * budget // escaped_size(data[:cut]) - 1)
        cut = _utf8_boundary(data, cut)
        pieces.append(data[:cut])
        data = data[cut:]
    pieces.append(data)
    return pieces


def _final_state(line: str) -> str:
    """What a line rewritten with \\r shows at its end (`\\r\\n` endings included)."""
    states = [state for state in line.split("\r") if state]
    return states[-1] if states else ""


class LineFramer:
    """Frames one stream (a child's stdout or stderr)."""

    def __init__(
        self,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        group_idle: float = DEFAULT_GROUP_IDLE,
    ) -> None:
        self.budget = max(64, max_record_bytes - RECORD_OVERHEAD)
        # No line of at most this many characters can exceed the budget.
        self.safe_line_chars = self.budget // WORST_ESCAPE
        self.progress_interval = progress_interval
        self.group_idle = group_idle
        self.group_max_age = group_idle * GROUP_MAX_AGE_IDLES
        self._carry = b""  # bytes of an unfinished line
        self._carry_parts = 0  # pieces of the unfinished line already emitted
        self._held: list[str] = []  # lines that may still gain continuations
        self._held_kind = "line"  # line | group | traceback
        self._held_at = 0.0  # when the last held line arrived
        self._held_since = 0.0  # when the first held line arrived
        self._held_size = 0
        self._exception_seen = False  # the held traceback's exception line arrived
        self._chained = False  # ... and a "During handling ..." line followed it
        self._progress: str | None = None  # latest \r state of the unfinished line
        self._progress_emitted: str | None = None
        self._progress_at = float("-inf")  # when a progress state was last emitted

    # public ---------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> list[Item]:
        out = _Output()
        if self._carry:
            data = self._carry + data
        end = data.rfind(b"\n")
        if end < 0:
            self._carry = data
            self._bound_unfinished(now, out)
            return out.done()
        self._carry = data[end + 1 :]
        complete = data[:end]
        if self._progress is not None or self._carry_parts:
            first_end = complete.find(b"\n")
            self._finish_unfinished(complete if first_end < 0 else complete[:first_end], now, out)
            if first_end < 0:
                self._bound_unfinished(now, out)
                return out.done()
            complete = complete[first_end + 1 :]
        text = complete.decode("utf-8", "replace")
        if "\r" in text or TRACEBACK_START in text or self._may_have_long_line(text):
            for line in text.split("\n"):
                self._frame_line(line, now, out)
        else:
            self._frame_plain(text, now, out)
        self._bound_unfinished(now, out)
        return out.done()

    def next_deadline(self) -> float | None:
        """When `release_due` will have something to do, if ever."""
        deadlines = []
        if self._held:
            deadlines.append(self._held_at + self.group_idle)
        if self._progress is not None and self._progress != self._progress_emitted:
            deadlines.append(self._progress_at + self.progress_interval)
        return min(deadlines) if deadlines else None

    def release_due(self, now: float) -> list[Item]:
        """Release what has waited long enough: idle groups, the latest progress state."""
        out = _Output()
        if self._held and now - self._held_at >= self.group_idle:
            self._release(out)
        if (
            self._progress is not None
            and self._progress != self._progress_emitted
            and now - self._progress_at >= self.progress_interval
        ):
            self._emit_progress(now, out)
        return out.done()

    def close(self) -> list[Item]:
        """End of stream: everything held, and a last line that has no newline."""
        out = _Output()
        if self._carry or self._progress is not None or self._carry_parts:
            last, self._carry = self._carry, b""
            self._finish_unfinished(last, 0.0, out)
        self._release(out)
        return out.done()

    # complete lines -------------------------------------------------------
    def _may_have_long_line(self, text: str) -> bool:
        """Cheap test, no split: a line of 2w characters covers an aligned window of w."""
        window = self.safe_line_chars // 2
        if len(text) <= self.safe_line_chars:
            return False
        return any("\n" not in text[start : start + window]
                   for start in range(0, len(text) - window + 1, window))

    def _frame_plain(self, text: str, now: float, out: _Output) -> None:
        """No traceback start, no \\r, nothing too long: one block, unless indented."""
        start = 0
        while self._held_kind != "line":
            end = text.find("\n", start)
            self._frame_line(text[start:] if end < 0 else text[start:end], now, out)
            if end < 0:
                return
            start = end + 1
        text = text[start:] if start else text
        if _INDENTED_LINE.search(text) or text.startswith(CONTINUATION_PREFIXES):
            for line in text.split("\n"):
                self._frame_line(line, now, out)
            return
        self._release(out)
        last = text.rfind("\n")
        if last >= 0:
            out.block(text[:last])
        self._hold(text[last + 1 :], now)

    def _frame_line(self, line: str, now: float, out: _Output) -> None:
        if "\r" in line:
            line = _final_state(line)
        awaiting_exception = self._held_kind == "traceback" and not self._exception_seen
        if self._too_long(line) and not (awaiting_exception and self._is_exception_line(line)):
            self._release(out)
            self._emit_pieces(line.encode(), 1, True, "part", out)
            return
        if self._held and self._continues(line):
            if awaiting_exception and self._exception_seen:
                # A traceback keeps its exception line, however long the message
                # (emitted as traceback pieces if need be): it is the failure reason.
                self._held.append(line)
                self._held_size += len(line) + 1  # with its exception line
                self._held_at = now
                if self._held_size >= self.safe_line_chars:
                    self._release(out)
                return
            if (now - self._held_since < self.group_max_age
                    and self._held_size + len(line) < self.safe_line_chars):
                self._held.append(line)
                self._held_size += len(line) + 1
                self._held_at = now
                return
            # A group that keeps growing is let out now: nothing waits forever.
            self._release(out)
        else:
            self._release(out)
        self._hold(line, now)

    @staticmethod
    def _is_exception_line(line: str) -> bool:
        return not (is_continuation(line) or line in CHAIN_PHRASES or line == ""
                    or line.endswith(TRACEBACK_START))

    def _hold(self, line: str, now: float) -> None:
        """Start holding `line`: it may gain continuation lines."""
        self._held = [line]
        self._held_size = len(line) + 1
        self._held_at = self._held_since = now
        if line == TRACEBACK_START:
            self._held_kind = "traceback"

    def _continues(self, line: str) -> bool:
        """Does `line` belong to what is held? Updates the traceback's state."""
        if self._held_kind != "traceback":
            if is_continuation(line):
                self._held_kind = "group"
                return True
            return False
        if is_continuation(line):
            return True
        if line == TRACEBACK_START:
            if self._chained or not self._exception_seen:
                self._exception_seen = self._chained = False
                return True
            return False  # a new, unrelated traceback
        if line.endswith(TRACEBACK_START) and self._exception_seen:
            # "Original Traceback (most recent call last):": a worker's traceback
            # carried in the exception's message (PyTorch's DataLoader, Ray).
            self._exception_seen = False
            return True
        if line in CHAIN_PHRASES or line == "":
            if self._exception_seen and line:
                self._chained = True
            return True
        if not self._exception_seen:
            self._exception_seen = True  # `ValueError: bad learning rate: -1`
            return True
        return False

    def _release(self, out: _Output) -> None:
        if not self._held:
            return
        held, kind = self._held, self._held_kind
        self._held, self._held_kind = [], "line"
        self._exception_seen = self._chained = False
        if kind == "line":
            out.lines(held)
            return
        trailing = 0
        if kind == "traceback":
            # Blank or "During handling..." lines no traceback followed are not part of it.
            while trailing < len(held) - 1 and (held[-1 - trailing] == ""
                                                or held[-1 - trailing] in CHAIN_PHRASES):
                trailing += 1
        self._emit_record("\n".join(held[: len(held) - trailing]), kind, kind, out)
        out.lines(held[len(held) - trailing :])

    def _too_long(self, text: str) -> bool:
        """Does `text` exceed the budget once escaped? (The length test spares most encodes.)"""
        return len(text) > self.safe_line_chars and escaped_size(text.encode()) > self.budget

    def _emit_record(self, text: str, kind: str, piece_kind: str, out: _Output) -> None:
        """One record of `kind`, or pieces of `piece_kind` when it is too long for one."""
        if self._too_long(text):
            self._emit_pieces(text.encode(), 1, True, piece_kind, out)
        else:
            out.record(Record(text, kind))

    def _emit_pieces(self, data: bytes, first: int, last: bool, kind: str, out: _Output) -> None:
        pieces = split_bytes(data, self.budget)
        for index, piece in enumerate(pieces):
            number = first + index
            total = number if last and index == len(pieces) - 1 else 0
            out.record(Record(piece.decode(), kind, number, total))

    # the unfinished line: progress bars and over-long lines ----------------
    def _bound_unfinished(self, now: float, out: _Output) -> None:
        """Keep the unfinished line small: only its latest \\r state, or its last piece."""
        carry = self._carry
        if b"\r" in carry and not self._carry_parts:
            states = [state for state in carry.split(b"\r") if state]
            if states:
                self._release(out)
                if escaped_size(states[-1]) > self.budget:
                    # A "state" this long is no progress bar: keep its newest part.
                    cut = len(states[-1]) - self.safe_line_chars
                    while cut < len(states[-1]) and (states[-1][cut] & 0xC0) == 0x80:
                        cut += 1
                    states[-1] = states[-1][cut:]
                self._progress = states[-1].decode("utf-8", "replace")
                # keep the newest state: it may still be being written
                self._carry = b"" if carry.endswith(b"\r") else b"\r" + states[-1]
                if now - self._progress_at >= self.progress_interval:
                    self._emit_progress(now, out)
            return
        if escaped_size(carry) > self.budget:
            complete = complete_prefix_length(carry)
            pieces = split_bytes(carry[:complete], self.budget)
            self._release(out)
            for piece in pieces[:-1]:
                self._carry_parts += 1
                out.record(Record(piece.decode(), "part", self._carry_parts))
            self._carry = pieces[-1] + carry[complete:]

    def _emit_progress(self, now: float, out: _Output) -> None:
        assert self._progress is not None
        out.record(Record(self._progress, "progress"))
        self._progress_emitted = self._progress
        self._progress_at = now

    def _finish_unfinished(self, rest: bytes, now: float, out: _Output) -> None:
        """The end of an unfinished line arrived: its final state, or its last piece."""
        if self._carry_parts:
            first = self._carry_parts + 1
            self._carry_parts = 0
            self._release(out)
            self._emit_pieces(rest[:-1] if rest.endswith(b"\r") else rest, first, True, "part", out)
            return
        if self._progress is not None or b"\r" in rest:
            final = _final_state(rest.decode("utf-8", "replace")) or self._progress or ""
            emitted = self._progress_emitted
            self._progress = self._progress_emitted = None
            self._progress_at = float("-inf")
            if final != emitted:
                self._release(out)
                self._emit_record(final, "progress", "part", out)
            return
        self._frame_line(rest.decode("utf-8", "replace"), now, out)
