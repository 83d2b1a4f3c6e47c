"""sm-entry's own events (started, signal forwarded, child exited, ...).

Events are structlog calls rendered straight to bytes (orjson for json) and
written to our stderr, in the same record schema the child's lines get,
marked with "src": "sm-entry".
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from supervisor.logs.sinks import format_timestamp
from supervisor.logs.writer import OutputWriter

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
LOG_FORMATS = ("json", "text", "raw")  # raw: the child's bytes unchanged; our events as json
_LEVEL_ALIASES = {"warn": "warning", "exception": "error", "critical": "error", "msg": "info"}


def _level_name(method_name: str) -> str:
    return _LEVEL_ALIASES.get(method_name, method_name)


class JsonEventRenderer:
    """structlog processor: event dict -> one JSON line as bytes."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
        self._fields = fields  # shared: train sets "host" once the config is read

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> bytes:
        message = event_dict.pop("event", "")
        record = {
            "ts": format_timestamp(time.time()),
            "level": _level_name(method_name),
            "src": "sm-entry",
            **self._fields,
            "msg": message,
            **event_dict,
        }
        try:
            return self._dumps(record, default=str, option=self._option)
        except TypeError:
            # A value that is not valid UTF-8 (an argument or path given to us as
            # bytes): shown escaped, never a crash of ours.
            return self._dumps(printable(record), default=str, option=self._option)


class TextEventRenderer:
    """structlog processor: event dict -> one short line for a person."""

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> bytes:
        message = event_dict.pop("event", "")
        stamp = format_timestamp(time.time())[11:]
        details = " ".join(f"{key}={printable(value)}" for key, value in event_dict.items())
        line = f"{stamp} {_level_name(method_name):<7} sm-entry: {message}"
        if details:
            line = f"{line} {details}"
        return (str(printable(line)) + "\n").encode("utf-8", "backslashreplace")


def printable(value: Any) -> Any:
    """`value` with every string made valid UTF-8: undecodable bytes shown as \\xNN."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that stands for no byte
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


class _WriterLogger:
    """structlog's final logger: every level writes the rendered bytes."""

    def __init__(self, writer: OutputWriter) -> None:
        self._write = writer.write_record

    def msg(self, message: bytes) -> None:
        self._write(message)

    debug = info = warning = warn = error = critical = exception = msg


def _import_structlog() -> Any:
    from supervisor.core.lazyimport import deferred

    with deferred():
        import structlog
    return structlog


def configure(
    log_format: str, level: str, writer: OutputWriter, fields: Mapping[str, Any]
) -> None:
    """Route structlog to `writer` with the given format, level and fixed fields."""
    structlog = _import_structlog()

    renderer = TextEventRenderer() if log_format == "text" else JsonEventRenderer(fields)
    logger = _WriterLogger(writer)
    structlog.configure(
        processors=[renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=lambda *args: logger,
        cache_logger_on_first_use=True,
    )


def get_logger() -> Any:
    return _import_structlog().get_logger()


class DeferredLogger:
    """A logger that imports and configures structlog on its first call.

    structlog's import is the largest single cost of our start (~40 ms): a
    plain `sm-entry cmd` logs nothing before its child is spawned, so the
    child starts first and the import overlaps it.
    """

    def __init__(self, log_format: str, level: str, writer: OutputWriter,
                 fields: Mapping[str, Any]) -> None:
        self._arguments = (log_format, level, writer, fields)
        self._logger: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._logger is None:
            configure(*self._arguments)
            self._logger = get_logger()
        return getattr(self._logger, name)


def default_fields(mode: str, host: str | None = None) -> dict[str, Any]:
    return {"mode": mode, "host": host or os.uname().nodename, "pid": os.getpid()}
