"""Rendering framed items to bytes: the JSON record schema and the fast batch path."""

import json

import pytest

from supervisor.logs.framing import Lines, Record
from supervisor.logs.sinks import (
    JsonRecordRenderer,
    TextRecordRenderer,
    format_timestamp,
    line_level,
)

FIELDS = {"mode": "train", "host": "algo-1", "pid": 42}


def render(items, now=1795000000.123):
    return [json.loads(line) for line in JsonRecordRenderer("stdout", FIELDS).render(items, now).splitlines()]


@pytest.mark.parametrize(("line", "level"), [
    ("ERROR:root:bad", "error"),
    ("2026-11-24 12:00:00,000 - trainer - WARNING - slow", "warning"),
    ("[INFO] started", "info"),
    ("DEBUG detail", "debug"),
    ("CRITICAL: out of disk", "critical"),
    ("plain text", "info"),
    ("an error in lower case is not a level", "info"),
    ("x" * 100 + " ERROR far from the start", "info"),
])
def test_line_level(line, level):
    assert level == line_level(line)


def test_batch_of_plain_lines_renders_one_record_each():
    lines = ["a", 'quote " and \\ backslash', "tab\there", "é✓", ""]
    records = render([Lines("\n".join(lines))])
    assert lines == [r["msg"] for r in records]
    assert {"ts", "level", "stream", "mode", "host", "pid", "msg"} == set(records[0])
    assert ("stdout", "train", "algo-1", 42) == (records[0]["stream"], records[0]["mode"],
                                                 records[0]["host"], records[0]["pid"])


def test_block_with_levels_renders_per_line_levels():
    records = render([Lines("ok\nERROR:root:bad\nfine")])
    assert ["info", "error", "info"] == [r["level"] for r in records]


def test_json_line_keeps_its_fields_and_ours_do_not_overwrite():
    records = render([Lines('{"level": "debug", "pid": 7, "loss": 0.5}')])
    assert {"level": "debug", "pid": 7, "loss": 0.5, "stream": "stdout"} == {
        k: records[0][k] for k in ("level", "pid", "loss", "stream")}
    assert "msg" not in records[0]


def test_records_for_tracebacks_and_parts():
    records = render([Record("Traceback...\nValueError: x", "traceback"),
                      Record("aaa", "part", 1), Record("bb", "part", 2, 2)])
    assert "error" == records[0]["level"]
    assert [(1, None), (2, 2)] == [(r["part"], r.get("parts")) for r in records[1:]]


def test_timestamp_format():
    assert "2026-11-18T11:06:40.123Z" == format_timestamp(1795000000.123)
    assert "2026-11-18T11:06:40.999Z" == format_timestamp(1795000000.9999)


def test_text_renderer_prints_lines_as_they_are():
    out = TextRecordRenderer().render([Lines("a\nb"), Record("T\n  x", "traceback")], 0.0)
    assert b"a\nb\nT\n  x\n" == out


def test_a_rank_tag_becomes_a_field():
    records = render([Lines("[rank3]: Traceback (most recent call last):\n"
                            "[rank3]: ValueError: corrupt\nplain [rank5]: not a tag")])
    assert [(3, "Traceback (most recent call last):"), (3, "ValueError: corrupt"),
            (None, "plain [rank5]: not a tag")] == [(r.get("rank"), r["msg"]) for r in records]


def test_with_the_ranks_per_host_a_tagged_record_also_gets_its_local_rank():
    renderer = JsonRecordRenderer("stderr", {"host": "algo-2"}, slots=2)
    records = [json.loads(line) for line in renderer.render(
        [Lines("[rank3]: loss 0.5\nuntagged"), Record("[rank2]: Traceback...", "traceback")],
        0.0).splitlines()]
    assert [(3, 1, "loss 0.5"), (None, None, "untagged"), (2, 0, "Traceback...")] == [
        (r.get("rank"), r.get("local_rank"), r["msg"]) for r in records]
