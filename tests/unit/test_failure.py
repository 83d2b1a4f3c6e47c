"""Failure reasons: root cause first, within SageMaker's 1024 characters."""

import signal

import pytest

from supervisor.logs.framing import Lines, Record
from supervisor.train.failure import (
    StderrTail,
    describe,
    exception_summary,
    program_label,
    truncate,
)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 30, in <module>\n'
    "    main()\n"
    '  File "train.py", line 20, in main\n'
    "    fit(lr)\n"
    '  File "train.py", line 10, in fit\n'
    "    check(lr)\n"
    '  File "train.py", line 5, in check\n'
    '    raise ValueError(f"bad learning rate: {lr}")\n'
    "ValueError: bad learning rate: -1"
)


def tail_with(*items):
    tail = StderrTail()
    tail("stderr", list(items))
    return tail


def test_exception_summary_gives_the_last_line_and_last_frames():
    last, frames = exception_summary(TRACEBACK)
    assert "ValueError: bad learning rate: -1" == last
    assert '  File "train.py", line 5, in check' == frames[-2]
    assert 6 == len(frames)  # the last three frames, each with its code line


def test_python_failure_starts_with_the_exception_line():
    reason = describe("train.py", 1, None, None, None, 110, tail_with(Record(TRACEBACK, "traceback")))
    assert reason.startswith("ValueError: bad learning rate: -1\nLast frames:\n")
    assert "train.py exited with code 1." in reason


def test_stdout_is_not_a_traceback_source():
    tail = StderrTail()
    tail("stdout", [Record(TRACEBACK, "traceback")])
    assert tail.traceback is None


def test_sigkill_not_from_us_suggests_out_of_memory():
    reason = describe("train.sh", 137, signal.SIGKILL, None, None, 110, StderrTail())
    assert "SIGKILL (signal 9)" in reason and "out-of-memory" in reason


def test_kill_after_stop_timeout_says_who_and_why():
    reason = describe("train.py", 137, signal.SIGKILL, signal.SIGTERM, "stop timeout", 110, StderrTail())
    assert "SIGTERM (signal 15) came from outside" in reason and "110 s stop timeout" in reason


def test_forwarded_signal_death():
    reason = describe("train.py", 143, signal.SIGTERM, signal.SIGTERM, None, 110, StderrTail())
    assert "killed by SIGTERM (signal 15), which sm-entry forwarded from outside" in reason


def test_plain_exit_shows_the_last_stderr_lines():
    reason = describe("run.sh", 3, None, None, None, 110, tail_with(Lines("x\ncannot open data")))
    assert reason.startswith("run.sh exited with code 3.")
    assert reason.endswith("cannot open data")


def test_reason_is_at_most_1024_characters():
    huge = Record(TRACEBACK.replace("-1", "-1" * 2000), "traceback")
    assert len(describe("train.py", 1, None, None, None, 110, tail_with(huge))) <= 1024
    assert 1024 == len(truncate("x" * 5000))


def test_second_stop_signal_kill_is_not_blamed_on_the_timeout():
    reason = describe("train.py", 137, signal.SIGKILL, signal.SIGTERM, "second stop signal", 110,
                      StderrTail())
    assert "a second stop signal followed" in reason and "stop timeout" not in reason


@pytest.mark.parametrize(("argv", "label"), [
    (["/usr/bin/python3", "train.py", "--lr", "1"], "train.py"),
    (["python3", "-m", "pkg.train"], "pkg.train"),
    (["python3", "-c", "pass"], "python3 -c"),
    (["/bin/sh", "run.sh"], "run.sh"),
    (["./train"], "train"),
])
def test_program_label_names_the_script(argv, label):
    assert label == program_label(argv)
