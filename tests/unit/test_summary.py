"""The job summary's words: how the job ended, as a person reads it."""

import pytest

from supervisor.summary import reason, text_block


@pytest.mark.parametrize(("code", "stop", "text"), [
    (0, None, "success"), (2, None, "exit code 2"), (137, None, "exit code 137 (128+SIGKILL)"),
    (143, 15, "stopped by SIGTERM: exit code 143 (128+SIGTERM)"), (0, 2, "stopped by SIGINT: success"),
    (200, None, "exit code 200"),
])
def test_the_summary_says_how_the_job_ended(code, stop, text):
    assert text == reason(code, stop)


def test_the_text_block_is_a_few_short_lines():
    fields = {"exit_code": 1, "reason": "exit code 1", "wall_s": 12.5, "cpu_user_s": 3.25,
              "cpu_system_s": 0.5, "peak_memory_bytes": 3 << 30,
              "peak_memory_of": "container", "oom_kills": 1, "restarts": 2}
    assert text_block(fields).split("\n") == [
        "job summary: exit code 1", "  wall 12.5 s, CPU 3.25 s user + 0.5 s system",
        "  peak memory 3.0 GiB (container)", "  out-of-memory kills: 1", "  restarts: 2"]
