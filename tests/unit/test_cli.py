"""The command line becomes Settings (no process is started)."""

import click
import pytest

from supervisor.cli import parse
from supervisor.settings import Mode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("SM_ENTRY_ROOT", "SM_ENTRY_STOP_TIMEOUT", "SM_ENTRY_LOG_FORMAT",
                 "SM_ENTRY_LOG_LEVEL", "SAGEMAKER_BASE_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("args", "mode", "command"),
    [
        (["train"], Mode.TRAIN, ()),
        (["serve"], Mode.SERVE, ()),
        (["train", "--", "python3", "t.py", "--lr", "1"], Mode.TRAIN, ("python3", "t.py", "--lr", "1")),
        (["python3", "-c", "pass"], Mode.RUN, ("python3", "-c", "pass")),
        (["--", "train"], Mode.RUN, ("train",)),
        (["--", "serve", "--port", "1"], Mode.RUN, ("serve", "--port", "1")),
        (["--stop-timeout", "3", "--", "sh", "-c", "x"], Mode.RUN, ("sh", "-c", "x")),
        (["sh", "--", "x"], Mode.RUN, ("sh", "--", "x")),
        (["ls", "--help"], Mode.RUN, ("ls", "--help")),
    ],
)
def test_mode_and_command(args, mode, command):
    settings = parse(args)
    assert (mode, command) == (settings.mode, settings.command)


@pytest.mark.parametrize(("args", "timeout"), [
    (["train"], 110.0), (["serve"], 25.0), (["true"], 8.0), (["--stop-timeout", "2.5", "train"], 2.5),
])
def test_stop_timeout_defaults_per_mode(args, timeout):
    assert timeout == parse(args).stop_timeout


def test_options_from_environment(monkeypatch):
    monkeypatch.setenv("SM_ENTRY_STOP_TIMEOUT", "7")
    monkeypatch.setenv("SM_ENTRY_ROOT", "/srv/ml")
    monkeypatch.setenv("SM_ENTRY_LOG_FORMAT", "text")
    monkeypatch.setenv("SM_ENTRY_LOG_LEVEL", "debug")
    settings = parse(["train"])
    assert (7.0, "/srv/ml", "text", "debug") == (
        settings.stop_timeout, settings.root, settings.log_format, settings.log_level)


def test_root_defaults_to_sagemaker_base_dir(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", "/base")
    assert "/base" == parse(["train"]).root
    assert "/given" == parse(["--root", "/given", "train"]).root


def test_root_default_is_opt_ml():
    assert "/opt/ml" == parse(["train"]).root


@pytest.mark.parametrize("args", [[], ["--bogus"], ["--stop-timeout", "-1", "x"],
                                  ["--log-format", "xml", "x"], ["--stop-timeout"]])
def test_bad_command_lines_are_usage_errors(args):
    with pytest.raises(click.UsageError):
        parse(args)


def test_version_and_help_return_zero(capsys):
    assert 0 == parse(["--version"])
    assert 0 == parse(["--help"])
    out = capsys.readouterr().out
    assert "sm-entry 0.1.0" in out and "Examples:" in out
