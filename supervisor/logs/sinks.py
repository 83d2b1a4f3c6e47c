"""Record renderers: framed items of the child's output -> the bytes we print."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.logs.framing import Lines, Record

_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(now: float) -> str:
    """UTC time as 2026-11-24T12:00:00.123Z; the seconds part is cached."""
    global _ts_cache
    second = int(now)
    if _ts_cache[0] != second:
        _ts_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_ts_cache[1]}.{min(999, round((now - second) * 1000)):03d}Z"


# Child records ---------------------------------------------------------------
LOG_FORMATS = ("json", "text", "raw")
# A level word near the start of a line (Python logging's formats put it there).
_LEVEL_WORD = re.compile(r"\b(CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG)\b")
_LEVEL_SCAN_CHARS = 80
# A block containing none of these has no line of another level than info
# (INFO itself needs no search: it is the default).
_LEVEL_HINTS = ("ERROR", "WARN", "DEBUG", "CRIT", "FATAL")
# torch.distributed tags a rank's traceback lines "[rank3]: ": a field, not part of the text.
RANK_TAG = "[rank"
_RANK_LINE = re.compile(r"\[rank(\d+)\]: ?")
_LEVEL_OF = {
    "CRITICAL": "critical", "FATAL": "critical", "ERROR": "error", "WARNING": "warning",
    "WARN": "warning", "INFO": "info", "DEBUG": "debug",
}


def line_level(text: str) -> str:
    """The level a line states (`ERROR:root:...`, `[WARNING] ...`, `- INFO -`), else info."""
    match = _LEVEL_WORD.search(text, 0, _LEVEL_SCAN_CHARS)
    if match:
        return _LEVEL_OF[match.group(1)]
    return "info"


class JsonRecordRenderer:
    """Framed items of one stream -> JSON lines, rendered in batches with orjson.

    Ordinary lines with no level word and no JSON object of their own are the
    common case: their records differ only in "msg", so a whole block of them
    is rendered with one `orjson.dumps`, with no per-line Python.
    """

    def __init__(self, stream: str, fields: Mapping[str, Any], slots: int | None = None) -> None:
        import orjson

        self._slots = slots  # ranks per host, when a launcher's ranks are tagged: local ranks
        self._dumps = orjson.dumps
        self._loads = orjson.loads
        self._stream = stream
        self._fields = {"stream": stream, **fields}

    def _prefix(self, ts: str, level: str) -> bytes:
        head = self._dumps({"ts": ts, "level": level, **self._fields})
        return head[:-1] + b',"msg":'

    def render(self, items: Sequence[Lines | Record], now: float) -> bytes:
        ts = format_timestamp(now)
        prefixes: dict[str, bytes] = {}
        out: list[bytes] = []
        for item in items:
            if type(item) is Lines:
                out.append(self._block(item.text, ts, prefixes))
                continue
            assert isinstance(item, Record)
            extra: dict[str, Any] = {}
            if item.part:
                extra["part"] = item.part
                if item.parts:
                    extra["parts"] = item.parts
            level = "error" if item.kind == "traceback" else line_level(item.text)
            out.append(self._one(item.text, ts, level, prefixes, extra))
        return b"".join(out)

    def _block(self, text: str, ts: str, prefixes: dict[str, bytes]) -> bytes:
        if not _all_info(text):
            return b"".join(self._one(line, ts, line_level(line), prefixes, {})
                            for line in text.split("\n"))
        prefix = prefixes.get("info") or prefixes.setdefault("info", self._prefix(ts, "info"))
        if "\\" not in text:
            # One dumps() for the whole block; without a backslash in the text,
            # every escaped "\n" in it is a line break, made a record boundary
            # with one bytes.replace (far faster than a dumps() per line).
            body = self._dumps(text).replace(b"\\n", b'"}\n' + prefix + b'"')
            return b"".join((prefix, body, b"}\n"))
        dumps = self._dumps
        # Each dumps() result is consumed at once: keeping thousands of them
        # alive (as a list for join) makes orjson ~20x slower here.
        return b"".join([prefix + dumps(line) + b"}\n" for line in text.split("\n")])

    def _one(self, text: str, ts: str, level: str, prefixes: dict[str, bytes],
             extra: dict[str, Any]) -> bytes:
        if text.startswith(RANK_TAG) and (tag := _RANK_LINE.match(text)):
            rank = int(tag[1])
            extra = {**extra, "rank": rank}
            if self._slots:
                extra["local_rank"] = rank % self._slots
            text = text[tag.end():]
        if text.startswith("{") and text.endswith("}"):
            try:
                theirs = self._loads(text)
                if isinstance(theirs, dict):
                    # An already-structured line stays structured: theirs win over ours.
                    record = {"ts": ts, "level": level, **self._fields, **extra}
                    record.update(theirs)
                    return self._dumps(record, default=str) + b"\n"
            except (TypeError, ValueError):
                pass  # not JSON, or too deep to write back: it stays a line of text
        if extra:
            record = {"ts": ts, "level": level, **self._fields, **extra, "msg": text}
            return self._dumps(record) + b"\n"
        prefix = prefixes.get(level) or prefixes.setdefault(level, self._prefix(ts, level))
        return prefix + self._dumps(text) + b"}\n"


def _all_info(text: str) -> bool:
    """True when no line of `text` can have a level of its own or be a JSON object.

    Plain substring searches over the whole batch: far cheaper than a regex
    per line, and almost always conclusive.
    """
    return not (any(word in text for word in _LEVEL_HINTS)
                or text.startswith("{") or "\n{" in text or RANK_TAG in text)


class TextRecordRenderer:
    """Framed items -> the child's lines as they were, for a person at a terminal."""

    def render(self, items: Sequence[Lines | Record], now: float) -> bytes:
        texts = [item.text for item in items]
        if not texts:
            return b""
        return ("\n".join(texts) + "\n").encode("utf-8", "replace")
