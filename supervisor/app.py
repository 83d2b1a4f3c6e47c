"""Run one mode end to end: output, process core, the mode's child, exit code."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor import __version__, errors, executables
from supervisor.core.eventloop import EventLoop
from supervisor.core.process import ChildSpec, Supervisor
from supervisor.core.terminal import Terminal
from supervisor.logs import events
from supervisor.logs.relay import ChildOutput, Observer
from supervisor.logs.sinks import FdWriter
from supervisor.settings import Mode, Settings


def run(settings: Settings, environ: Mapping[str, str]) -> int:
    """Run the mode described by `settings`; return the exit code for sm-entry."""
    if settings.mode is Mode.DOCTOR:
        import sys

        from supervisor.train import doctor

        return doctor.run(settings, environ, sys.stdout)
    stdout, stderr = FdWriter(1, "stdout"), FdWriter(2, "stderr")
    fields = events.default_fields(settings.mode.value)  # "host" is updated by train
    log = events.DeferredLogger(settings.log_format, settings.log_level, stderr, fields)
    loop = EventLoop()

    def make_output(observers: Sequence[Observer] = ()) -> ChildOutput:
        """Relay the child's stdout/stderr, except to a terminal (a person, not CloudWatch)."""
        record_fields = {"mode": settings.mode.value, "host": fields["host"]}
        if settings.metrics:
            from supervisor.logs.metrics import MetricScanner

            observers = [*observers, MetricScanner(settings.metrics, record_fields, stdout)]
        return ChildOutput(
            loop,
            settings.log_format,
            record_fields,
            stdout,
            stderr,
            observers=observers,
            framer_options={"max_record_bytes": settings.max_record_bytes,
                            "progress_interval": settings.progress_interval},
            relay_stdout=not os.isatty(1),
            relay_stderr=not os.isatty(2),
        )

    supervisor: Supervisor | None = None
    try:
        supervisor = Supervisor(loop, log, settings.stop_timeout, Terminal.of_stdin(),
                                drain_timeout=settings.drain_timeout)
        # Said once the first child runs, so that it starts before our logging is loaded.
        supervisor.on_first_spawn = lambda: log.info(
            "sm-entry started", version=__version__, stop_timeout_s=settings.stop_timeout,
            subreaper=supervisor.is_subreaper)
        if settings.mode is Mode.TRAIN:
            from supervisor.train import job

            return job.run(settings, environ, supervisor, log, make_output, fields)
        argv = list(settings.command)
        if not argv:
            argv = executables.mode_program(settings.mode.value, environ, settings.own_executable)
        name = "command" if settings.mode is Mode.RUN else "program"
        return supervisor.run(ChildSpec(argv=argv, env=environ, name=name,
                                        output=make_output())).exit_code
    except errors.EntryError as exc:
        log.error(exc.message, exit_code=exc.exit_code)
        return exc.exit_code
    except BaseException:
        # A bug of ours: take the children with us rather than leave them orphaned.
        if supervisor is not None:
            supervisor.kill_all()
        raise
    finally:
        _report_lost_output(log, stdout, stderr)
        loop.close()


def _report_lost_output(log: Any, *writers: FdWriter) -> None:
    for writer in writers:
        if writer.error is not None:
            log.error("output lost", stream=writer.name, error=writer.error,
                      dropped_bytes=writer.dropped_bytes)
