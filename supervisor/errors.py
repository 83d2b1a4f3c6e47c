"""Errors that end sm-entry, each carrying the facts needed to report it once."""

from __future__ import annotations

from supervisor.core import outcome


class EntryError(Exception):
    """A failure of sm-entry itself (not of the child), with its exit code."""

    exit_code: int = outcome.EXIT_INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(EntryError):
    """Bad command line or option value."""

    exit_code = outcome.EXIT_USAGE


class CommandNotFound(EntryError):
    """The program to run does not exist."""

    exit_code = outcome.EXIT_NOT_FOUND

    def __init__(self, command: str, detail: str = "command not found") -> None:
        super().__init__(f"{command}: {detail}")
        self.command = command


class CommandNotExecutable(EntryError):
    """The program exists but cannot be executed."""

    exit_code = outcome.EXIT_NOT_EXECUTABLE

    def __init__(self, command: str, detail: str) -> None:
        super().__init__(f"{command}: {detail}")
        self.command = command


class ConfigError(EntryError):
    """A malformed file of the /opt/ml tree (or option value standing in for one)."""

    exit_code = outcome.EXIT_CONFIG

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class SetupError(EntryError):
    """The job could not be prepared: code delivery, requirements, hosts."""

    exit_code = outcome.EXIT_SETUP_FAILED


class Stopped(EntryError):
    """A stop signal came during set-up, before the program ran: 128+N, as for the program."""

    def __init__(self, signum: int, during: str) -> None:
        from supervisor.core.signals import signal_name

        super().__init__(f"stopped by {signal_name(signum)} during {during}")
        self.exit_code = outcome.SIGNAL_EXIT_BASE + signum
        self.signum = signum
