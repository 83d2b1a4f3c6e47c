"""Metrics from log lines, as CloudWatch Embedded Metric Format (EMF) records.

SageMaker's MetricDefinitions (a Name and a Regex whose first group is the
value) are matched by the platform against the raw log text, so a regex
anchored with `^` stops matching once lines are wrapped in JSON. We apply the
same definitions ourselves and print one EMF record per match, which
CloudWatch Logs turns into a metric whatever the log format.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor import errors
from supervisor.logs.framing import Item, Lines
from supervisor.logs.writer import OutputWriter

NAMESPACE = "sm-entry"
DIMENSIONS = ("host", "mode")
MAX_DEFINITIONS = 40  # SageMaker's own limit per job


def parse_definitions(options: Sequence[tuple[str, str]], env_json: str | None
                      ) -> tuple[tuple[str, str], ...]:
    """`--metric NAME=REGEX` options plus SM_ENTRY_METRICS (MetricDefinitions JSON)."""
    definitions = list(options)
    if env_json:
        try:
            value = json.loads(env_json)
        except ValueError as exc:
            raise errors.UsageError(f"SM_ENTRY_METRICS: not JSON: {exc}") from None
        if not isinstance(value, list):
            raise errors.UsageError('SM_ENTRY_METRICS: expected a list of {"Name", "Regex"}')
        for index, entry in enumerate(value):
            if not (isinstance(entry, dict) and isinstance(entry.get("Name"), str)
                    and isinstance(entry.get("Regex"), str)):
                raise errors.UsageError(
                    f'SM_ENTRY_METRICS[{index}]: expected {{"Name": str, "Regex": str}}')
            definitions.append((entry["Name"], entry["Regex"]))
    if len(definitions) > MAX_DEFINITIONS:
        raise errors.UsageError(f"at most {MAX_DEFINITIONS} metric definitions")
    for name, regex in definitions:
        compile_definition(name, regex)
    return tuple(definitions)


def compile_definition(name: str, regex: str) -> re.Pattern[str]:
    if not name:
        raise errors.UsageError(f"metric {regex!r}: empty name")
    try:
        pattern = re.compile(regex, re.MULTILINE)
    except re.error as exc:
        raise errors.UsageError(f"metric {name}: bad regex {regex!r}: {exc}") from None
    if pattern.groups < 1:
        raise errors.UsageError(f"metric {name}: regex {regex!r} needs a group for the value")
    return pattern


def emf_record(name: str, value: float, fields: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": int(now * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(DIMENSIONS)],
                "Metrics": [{"Name": name, "Unit": "None"}],
            }],
        },
        **{key: str(fields.get(key, "")) for key in DIMENSIONS},
        name: value,
    }


class MetricScanner:
    """Observer of framed output: an EMF record per match, and the last value of each."""

    def __init__(self, definitions: Sequence[tuple[str, str]], fields: Mapping[str, Any],
                 writer: OutputWriter) -> None:
        import orjson

        self._dumps = orjson.dumps
        self.patterns = [(name, compile_definition(name, regex)) for name, regex in definitions]
        self.fields = fields
        self.writer = writer
        self.last: dict[str, float] = {}

    def __call__(self, stream: str, items: Sequence[Item]) -> None:
        now = time.time()
        records = []
        for item in items:
            text = item.text
            for name, pattern in self.patterns:
                for match in pattern.finditer(text):
                    if type(item) is Lines and "\n" in match.group(0):
                        continue  # a match must lie within one line
                    try:
                        value = float(match.group(1))
                    except (TypeError, ValueError):
                        continue
                    if not math.isfinite(value):
                        continue
                    self.last[name] = value
                    records.append(self._dumps(emf_record(name, value, self.fields, now)))
        if records:
            self.writer.write_record(b"\n".join(records) + b"\n")

    def summary(self) -> dict[str, Any]:
        return {"metrics": dict(self.last)} if self.last else {}
