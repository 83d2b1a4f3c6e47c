"""The `train`/`serve` program on PATH is never sm-entry itself."""

import os

import pytest

from supervisor import errors
from supervisor.executables import find_on_path, mode_program


def make_exe(path, text="#!/bin/sh\n"):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_skips_ourselves_and_finds_the_next(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    ours = make_exe(tmp_path / "sm-entry")
    os.symlink(ours, first / "train")
    theirs = make_exe(second / "train")
    env = {"PATH": f"{first}:{second}"}
    assert theirs == find_on_path("train", env, exclude=ours)


def test_not_executable_is_skipped(tmp_path):
    (tmp_path / "train").write_text("x")
    assert find_on_path("train", {"PATH": str(tmp_path)}, exclude=None) is None


def test_missing_program_names_the_fix(tmp_path):
    with pytest.raises(errors.CommandNotFound) as info:
        mode_program("serve", {"PATH": str(tmp_path)}, None)
    assert 127 == info.value.exit_code
    assert "sm-entry serve -- COMMAND" in info.value.message
