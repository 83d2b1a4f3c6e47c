"""Run one mode end to end: output, process core, the mode's child, exit code."""

from __future__ import annotations

import os
from collections.abc import Mapping

from supervisor import __version__, errors, events, program
from supervisor.eventloop import EventLoop
from supervisor.process import ChildSpec, Supervisor
from supervisor.relay import ChildOutput
from supervisor.settings import Mode, Settings
from supervisor.sinks import FdWriter
from supervisor.terminal import Terminal


def child_output(loop: EventLoop, settings: Settings, stdout: FdWriter, stderr: FdWriter,
                 host: str) -> ChildOutput:
    """Relay the child's stdout/stderr, except to a terminal (a person, not CloudWatch)."""
    return ChildOutput(
        loop,
        settings.log_format,
        {"mode": settings.mode.value, "host": host},
        stdout,
        stderr,
        framer_options={
            "max_record_bytes": settings.max_record_bytes,
            "progress_interval": settings.progress_interval,
        },
        relay_stdout=not os.isatty(1),
        relay_stderr=not os.isatty(2),
    )


def run(settings: Settings, environ: Mapping[str, str]) -> int:
    """Run the mode described by `settings`; return the exit code for sm-entry."""
    stdout, stderr = FdWriter(1, "stdout"), FdWriter(2, "stderr")
    fields = events.default_fields(settings.mode.value)
    events.configure(settings.log_format, settings.log_level, stderr, fields)
    log = events.get_logger()
    loop = EventLoop()
    try:
        supervisor = Supervisor(loop, log, settings.stop_timeout, Terminal.of_stdin(),
                                drain_timeout=settings.drain_timeout)
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
        output = child_output(loop, settings, stdout, stderr, fields["host"])
        result = supervisor.run(ChildSpec(argv=argv, env=environ, name=name, output=output))
        return result.exit_code
    except errors.EntryError as exc:
        log.error(exc.message, exit_code=exc.exit_code)
        return exc.exit_code
    finally:
        loop.close()
