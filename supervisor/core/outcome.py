"""Exit codes: the one table that maps what happened to the number we exit with."""

from __future__ import annotations

import os

# The child's own code passes through unchanged (0..255); a child killed by
# signal N gives 128 + N, as shells report it.
EXIT_OK = 0
# Our own failures use the sysexits codes, never 125: docker and podman exit
# 125 for *their* failures, and a user must be able to tell which failed.
EXIT_USAGE = 2  # bad command line or option value (click's convention)
EXIT_SETUP_FAILED = 65  # the job could not be set up: code delivery, requirements, hosts
EXIT_INTERNAL_ERROR = 70  # a bug of sm-entry's (sysexits' EX_SOFTWARE)
EXIT_NO_TMPDIR = 73  # the bootloader found no directory to unpack into (EX_CANTCREAT)
EXIT_CONFIG = 78  # malformed /opt/ml configuration (sysexits' EX_CONFIG)
EXIT_NOT_EXECUTABLE = 126  # the program exists but cannot be executed
EXIT_NOT_FOUND = 127  # the program does not exist
SIGNAL_EXIT_BASE = 128


def exit_code_for_wait_status(status: int) -> int:
    """The shell's exit code for a waitpid() status: the code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return SIGNAL_EXIT_BASE + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)
