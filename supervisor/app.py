"""Run one mode end to end: output, process core, the mode's child, exit code."""

from __future__ import annotations

from collections.abc import Mapping

from supervisor import __version__, errors, events, program
from supervisor.eventloop import EventLoop
from supervisor.process import ChildSpec, Supervisor
from supervisor.settings import Mode, Settings
from supervisor.sinks import FdWriter
from supervisor.terminal import Terminal


def run(settings: Settings, environ: Mapping[str, str]) -> int:
    """Run the mode described by `settings`; return the exit code for sm-entry."""
    stderr = FdWriter(2, "stderr")
    events.configure(
        settings.log_format, settings.log_level, stderr, events.default_fields(settings.mode.value)
    )
    log = events.get_logger()
    loop = EventLoop()
    try:
        supervisor = Supervisor(loop, log, settings.stop_timeout, Terminal.of_stdin())
        log.info(
            "sm-entry started",
            version=__version__,
            stop_timeout_s=settings.stop_timeout,
            subreaper=supervisor.is_subreaper,
        )
        argv = list(settings.command)
        if not argv:
            argv = program.mode_program(settings.mode.value, environ, settings.own_executable)
        name = "command" if settings.mode is Mode.RUN else "program"
        result = supervisor.run(ChildSpec(argv=argv, env=environ, name=name))
        return result.exit_code
    except errors.EntryError as exc:
        log.error(exc.message, exit_code=exc.exit_code)
        return exc.exit_code
    finally:
        loop.close()
