"""Find programs on PATH, never ourselves: `train`/`serve` on PATH may be sm-entry."""

from __future__ import annotations

import os
from collections.abc import Mapping

from supervisor import errors


def _same_file(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def find_on_path(name: str, environ: Mapping[str, str], exclude: str | None) -> str | None:
    """The first executable `name` on PATH that is not `exclude` (ourselves)."""
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if (
            os.path.isfile(candidate)
            and os.access(candidate, os.X_OK)
            and not _same_file(candidate, exclude)
        ):
            return candidate
    return None


def mode_program(mode: str, environ: Mapping[str, str], own_executable: str | None) -> list[str]:
    """The classic bring-your-own-container layout: a `train`/`serve` program on PATH."""
    found = find_on_path(mode, environ, own_executable)
    if found is None:
        raise errors.CommandNotFound(
            mode,
            f"no program given and no executable named {mode!r} on PATH other than sm-entry "
            f"(give one: sm-entry {mode} -- COMMAND ARGS...)",
        )
    return [found]
