"""Which program a training job runs, and with which interpreter."""

from __future__ import annotations

import os
from collections.abc import Mapping

from supervisor import errors
from supervisor.executables import find_on_path, mode_program

PYTHON_OVERRIDE = "SM_ENTRY_PYTHON"
TRAIN_COMMAND = "SM_ENTRY_TRAIN_COMMAND"
PACKAGE_FILES = ("setup.py", "pyproject.toml")


def python_command(environ: Mapping[str, str]) -> str:
    """The image's python3 (SM_ENTRY_PYTHON overrides), resolved on the child's PATH."""
    name = environ.get(PYTHON_OVERRIDE) or "python3"
    found = find_on_path(name, environ, None) if os.sep not in name else name
    if found is None:
        raise errors.CommandNotFound(
            name, f"needed to run the Python program, and not on PATH (set {PYTHON_OVERRIDE})"
        )
    return found


def _check_entry_point(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or ".." in parts or not name.strip():
        raise errors.ConfigError(
            "SAGEMAKER_PROGRAM", f"{name!r} must be a path relative to the code directory"
        )


def training_command(
    explicit: tuple[str, ...],
    entry_point: str | None,
    code_dir: str,
    environ: Mapping[str, str],
    own_executable: str | None,
) -> tuple[list[str], bool]:
    """The training program's argv, and whether the code dir must be pip-installed first.

    In order: the command given after `--` (or SM_ENTRY_TRAIN_COMMAND); the
    SAGEMAKER_PROGRAM / sagemaker_program entry point in the code directory;
    an executable named `train` on PATH. The hyperparameter arguments are
    appended by the caller. No shell ever re-parses anything.
    """
    if explicit:
        return list(explicit), False
    configured = environ.get(TRAIN_COMMAND, "").strip()
    if configured:
        import shlex

        try:
            return shlex.split(configured), False
        except ValueError as exc:
            raise errors.ConfigError(TRAIN_COMMAND, f"cannot be split into words: {exc}") from None
    if entry_point:
        _check_entry_point(entry_point)
        path = os.path.join(code_dir, entry_point)
        module = entry_point[:-3] if entry_point.endswith(".py") else entry_point
        if any(os.path.isfile(os.path.join(code_dir, f)) for f in PACKAGE_FILES):
            # A package (setup.py / pyproject.toml): installed, then run as a module.
            return [python_command(environ), "-m", module.replace("/", ".")], True
        if os.path.isdir(path):
            return [python_command(environ), "-m", module.replace("/", ".")], False
        if not os.path.exists(path):
            raise errors.CommandNotFound(
                entry_point, f"no such file in the code directory {code_dir}")
        if entry_point.endswith(".py"):
            return [python_command(environ), entry_point], False
        if entry_point.endswith(".sh"):
            return ["/bin/sh", entry_point], False
        return [os.path.join(".", entry_point)], False
    return mode_program("train", environ, own_executable), False
