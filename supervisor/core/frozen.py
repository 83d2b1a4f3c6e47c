"""Undo what the two bootloaders of the frozen binary add to our environment.

`dist/sm-entry` runs as staticx bootloader -> PyInstaller bootloader -> our
Python. Each layer adds variables that are about *us*, not the user: the
PyInstaller bootloader points LD_LIBRARY_PATH at its unpack directory (a
system python3 started with it would load our bundled libssl), staticx adds
its bundle paths, and our patched staticx bootloader points TMPDIR at its
own unpack directory so PyInstaller unpacks next to it. A child must see the
environment sm-entry was given, so `child_base_env` is the one place that
turns our environment back into the user's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# Set by PyInstaller's onefile bootloader.
_PYI_PREFIX = "_PYI_"
LD_LIBRARY_PATH = "LD_LIBRARY_PATH"
LD_LIBRARY_PATH_ORIG = "LD_LIBRARY_PATH_ORIG"
# Set by staticx; STATICX_ORIG_TMPDIR / STATICX_TMPDIR_UNSET by our patch of
# its bootloader (bootloader/staticx-bootloader.patch), which must say what
# TMPDIR was before it pointed TMPDIR at its own directory.
_STATICX_PREFIX = "STATICX_"
STATICX_PROG_PATH = "STATICX_PROG_PATH"
STATICX_ORIG_TMPDIR = "STATICX_ORIG_TMPDIR"
STATICX_TMPDIR_UNSET = "STATICX_TMPDIR_UNSET"


def is_frozen() -> bool:
    """True when running as the PyInstaller-built binary."""
    return bool(getattr(sys, "frozen", False))


def child_base_env(environ: Mapping[str, str], frozen: bool | None = None) -> dict[str, str]:
    """The environment the user gave sm-entry, without what the bootloaders added."""
    if frozen is None:
        frozen = is_frozen()
    env = {
        name: value
        for name, value in environ.items()
        if not name.startswith((_PYI_PREFIX, _STATICX_PREFIX))
    }
    if frozen:
        env.pop(LD_LIBRARY_PATH, None)
        original = env.pop(LD_LIBRARY_PATH_ORIG, None)
        if original is not None:
            env[LD_LIBRARY_PATH] = original
    if STATICX_ORIG_TMPDIR in environ:
        env["TMPDIR"] = environ[STATICX_ORIG_TMPDIR]
    elif STATICX_TMPDIR_UNSET in environ:
        env.pop("TMPDIR", None)
    return env


def restore_user_environment() -> None:
    """Make os.environ the user's environment, for us and every child."""
    clean = child_base_env(os.environ)
    if clean != dict(os.environ):
        os.environ.clear()
        os.environ.update(clean)


def own_executable(environ: Mapping[str, str]) -> str | None:
    """The path the user ran us by, to avoid running ourselves as `train`."""
    if STATICX_PROG_PATH in environ:
        return environ[STATICX_PROG_PATH]
    if is_frozen():
        return sys.executable
    if sys.argv and sys.argv[0]:
        return os.path.abspath(sys.argv[0])
    return None
