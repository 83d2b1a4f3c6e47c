"""Our own events: any value a user passes is printable, never a crash."""

import json

from supervisor.logs.events import JsonEventRenderer, TextEventRenderer, printable


def test_arguments_that_are_not_utf8_are_shown_escaped_in_json():
    argv = ["printf", "x\udce9"]  # what os.fsdecode makes of b"x\xe9"
    line = JsonEventRenderer({"mode": "run"})(None, "info", {"event": "child started", "argv": argv})
    assert ["printf", "x\\xe9"] == json.loads(line)["argv"]


def test_and_in_text():
    line = TextEventRenderer()(None, "info", {"event": "child started", "argv": ["x\udce9"]})
    assert b"argv=['x\\\\xe9']" in line


def test_lone_surrogates_too():
    assert "\\ud800" == printable("\ud800")
