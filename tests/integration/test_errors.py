"""Bad command lines and missing programs: one clear line, a meaningful code."""

import subprocess

import pytest


def run(sm_entry, *args, **kwargs):
    return subprocess.run([*sm_entry, *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "text"}, **kwargs)


@pytest.mark.parametrize(("args", "needle"), [
    ([], "give a mode"),
    (["--bogus"], "No such option"),
    (["--stop-timeout", "soon", "true"], "soon"),
    (["--log-format", "xml", "true"], "xml"),
])
def test_usage_errors_are_one_line_with_code_2(sm_entry, args, needle):
    result = run(sm_entry, *args)
    assert 2 == result.returncode
    assert 1 == len(result.stderr.strip().splitlines()), result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_missing_command_is_127(sm_entry):
    result = run(sm_entry, "no-such-command-anywhere")
    assert 127 == result.returncode
    assert "no-such-command-anywhere: command not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: (p.write_text("#!/bin/sh\n"), p.chmod(0o644)), "Permission denied"),
    (lambda p: (p.write_text("#!/no/such/interpreter\n"), p.chmod(0o755)), "bad interpreter"),
    (lambda p: p.mkdir(), "Permission denied"),
])
def test_not_executable_is_126(sm_entry, tmp_path, make, needle):
    target = tmp_path / "prog"
    make(target)
    result = run(sm_entry, str(target))
    assert 126 == result.returncode
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_help_and_version(sm_entry):
    assert "Examples:" in run(sm_entry, "--help").stdout
    assert "sm-entry 0.1.0" == run(sm_entry, "--version").stdout.strip()


def test_console_script_is_the_same_cli():
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("sm-entry")
    if not script.exists():
        pytest.skip("sm-entry console script not installed in this environment (pip install .)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert "sm-entry 0.1.0" == result.stdout.strip()
