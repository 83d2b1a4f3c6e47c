"""The watchdog's words: durations and the failure reason."""

import pytest

from supervisor.core.watchdog import ProcessView, duration, hang_reason


@pytest.mark.parametrize(("seconds", "text"), [
    (1, "1 s"), (119, "119 s"), (120, "2 min"), (1800, "30 min"), (7199, "120 min"),
    (7200, "2.0 h"), (5400 * 4, "6.0 h"),
])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert text == duration(seconds)


def test_the_reason_names_at_most_five_processes_and_counts_the_rest():
    views = [ProcessView(pid=10 + i, state="S", cpu_s=0.5, wchan="futex_wait_queue" if i else "",
                         command=f"python3 rank{i}.py") for i in range(7)]
    lines = hang_reason(1800, views).split("\n")
    assert lines[0] == ("Hang: no output for 30 min; sm-entry stopped the job (--hang-action "
                        "stop). Its 7 processes then (state, CPU used):")
    assert lines[1] == "PID 10 python3 rank0.py (S, 0.5 s CPU)"
    assert lines[2] == "PID 11 python3 rank1.py (S, waiting in futex_wait_queue, 0.5 s CPU)"
    assert lines[6:] == ["... and 2 more"]

