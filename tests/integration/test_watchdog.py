"""The hang watchdog on real silent jobs: a blocked read, a long sleep."""

import json
import subprocess

from tests.support import Run


def events(stderr):
    return [json.loads(line) for line in stderr.splitlines()
            if line.startswith("{") and '"src":"sm-entry"' in line]


def test_a_job_blocked_on_a_read_is_stopped_and_the_failure_says_why(sm_entry, tmp_path):
    root = tmp_path / "ml"
    (root / "code").mkdir(parents=True)
    (root / "code" / "stuck.py").write_text(
        "import sys\nprint('loading', flush=True)\nsys.stdin.read()  # nobody ever writes\n")
    proc = Run([*sm_entry, "--root", str(root), "--log-format", "json", "train",
                "--hang-timeout", "1", "--hang-action", "stop", "--", "python3", "stuck.py"],
               stdin=subprocess.PIPE, env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    try:
        assert 143 == proc.wait(timeout=60)
        seen = events(proc.stderr_text())
        warning = next(e for e in seen if e["msg"] == "no output")
        assert [("S", "python3 stuck.py")] == [
            (p["state"], p["command"].rsplit("/", 1)[-1]) for p in warning["processes"]]
        lines = (root / "output" / "failure").read_text().split("\n")
        assert lines[0] == ("Hang: no output for 1 s; sm-entry stopped the job (--hang-action "
                            "stop). Its process then (state, CPU used):")
        assert lines[1].startswith("PID ") and "stuck.py (S" in lines[1]
        assert "came from outside" not in "\n".join(lines)
    finally:
        proc.proc.stdin.close()
        proc.close()


def test_silence_is_reported_again_while_it_lasts_and_warn_does_not_stop(sm_entry):
    proc = Run([*sm_entry, "--log-format", "json", "--hang-timeout", "0.5", "sh", "-c",
                "echo first; sleep 2.2; echo second"])
    try:
        assert 0 == proc.wait(timeout=60)
        assert any("second" in line for line in proc.lines)
        warnings = [e for e in events(proc.stderr_text()) if e["msg"] == "no output"]
        assert len(warnings) >= 2
        commands = [p["command"] for p in warnings[0]["processes"]]
        assert ["sh -c echo first; sleep 2.2; echo second", "sleep 2.2"] == commands
        assert all(p["cpu_s"] < 1 for w in warnings for p in w["processes"])
    finally:
        proc.close()


def test_a_hanging_jobs_token_is_neither_logged_nor_in_the_failure_file(sm_entry, tmp_path):
    root = tmp_path / "ml"
    (root / "code").mkdir(parents=True)
    (root / "code" / "stuck.py").write_text("import time\ntime.sleep(60)\n")
    proc = Run([*sm_entry, "--root", str(root), "--log-format", "json", "train",
                "--hang-timeout", "1", "--hang-action", "stop", "--", "python3", "stuck.py",
                "HF_TOKEN=hf_very_secret", "--api-key", "sk-also-secret"],
               env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    try:
        assert 143 == proc.wait(timeout=60)
        text = proc.stderr_text() + "\n".join(proc.lines)
        failure = (root / "output" / "failure").read_text()
        assert "stuck.py" in failure  # the process is named ...
        for secret in ("hf_very_secret", "sk-also-secret"):  # ... its secrets are not
            assert secret not in text and secret not in failure
        assert "HF_TOKEN=<redacted>" in failure and "--api-key <redacted>" in failure
    finally:
        proc.close()
