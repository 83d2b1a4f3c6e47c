"""Run one mode end to end: output, process core, the mode's child, exit code."""

from __future__ import annotations

import os
import signal
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from supervisor import __version__, errors, executables
from supervisor.core.eventloop import EventLoop
from supervisor.core.frozen import is_frozen
from supervisor.core.process import ChildSpec, Loop, Supervisor
from supervisor.core.terminal import Terminal
from supervisor.logs import events
from supervisor.logs.relay import ChildOutput, Observer
from supervisor.logs.writer import OutputWriter
from supervisor.settings import Mode, Settings

if TYPE_CHECKING:
    from supervisor.core.ttyproxy import TtyProxy
    from supervisor.logs.ranktags import RankTags
    from supervisor.summary import JobClock


LAST_FLUSH = 0.3  # seconds for the report of lost output, when the rest took all the time


def run(settings: Settings, environ: Mapping[str, str]) -> int:
    """Run the mode described by `settings`; return the exit code for sm-entry."""
    if settings.mode is Mode.DOCTOR:
        import sys

        from supervisor.train import doctor

        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        return doctor.run(settings, environ, sys.stdout)
    loop: Any
    if settings.mode is Mode.SERVE:
        from supervisor.serve.mode import new_loop

        try:  # the HTTP front needs asyncio on uvloop; train and commands do not
            loop = new_loop(settings.own_executable)
        except errors.EntryError as exc:
            return _fail_without_loop(settings, exc)
    else:
        loop = EventLoop()
    stdout, stderr = OutputWriter(1, "stdout", loop), OutputWriter(2, "stderr", loop)
    fields = events.default_fields(settings.mode.value)  # "host" is updated by train
    log = events.DeferredLogger(settings.log_format, settings.log_level, stderr, fields)

    activity = None
    if settings.hang_timeout:
        from supervisor.core.watchdog import OutputActivity

        activity = OutputActivity(loop.time())
    tty: TtyProxy | None = None
    if os.isatty(1):  # a person (or the SDK's local mode): the child gets ptys of its own
        from supervisor.core.ttyproxy import TtyProxy

        tty = TtyProxy(loop)

    def make_output(observers: Sequence[Observer] = (), tags: RankTags | None = None
                    ) -> ChildOutput:
        """Relay the child's stdout/stderr: read from pipes, or from its ptys behind a terminal.

        `tags`: the child is a launcher (mpirun, torchrun) that tags its ranks' lines.
        """
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
            relay_stdout=tty is not None or not os.isatty(1),
            relay_stderr=tty is not None or not os.isatty(2),
            activity=activity,
            tags=tags,
            tty=tty,
        )

    from supervisor.summary import JobClock

    clock = JobClock()
    supervisor: Supervisor | None = None
    watchdog: Any = None
    code: int | None = None
    error: str | None = None  # sm-entry's own failure, when it is why we exit
    try:
        supervisor = Supervisor(loop, log, settings.stop_timeout,
                                Terminal.of_stdin() if tty is None else None, tty=tty,
                                drain_timeout=settings.drain_timeout,
                                signal_scope=settings.signal_scope, merge_echoes=is_frozen())
        def started() -> None:
            log.info("sm-entry started", version=__version__, stop_timeout_s=settings.stop_timeout,
                     subreaper=supervisor.is_subreaper, signal_scope=settings.signal_scope)

        if settings.hang_timeout and activity is not None:
            from supervisor.core.watchdog import HangWatchdog

            stopping = supervisor
            watchdog = HangWatchdog(loop, log, settings.hang_timeout, settings.hang_action,
                                    activity, lambda: stopping.request_stop(signal.SIGTERM))
        if settings.mode is Mode.TRAIN:
            started()  # train has its own events before it starts a child
        else:
            # Said once the child runs, so that it starts before our logging is loaded.
            supervisor.on_first_spawn = started
        main: Coroutine[Any, Any, int]
        if settings.mode is Mode.TRAIN:
            from supervisor.train import job

            main = job.run(settings, environ, supervisor, log, make_output, fields, watchdog,
                           clock)
        elif settings.mode is Mode.SERVE:
            from supervisor.serve import mode

            main = mode.run(settings, environ, supervisor, log, stdout, make_output, fields)
        else:
            argv = list(settings.command)
            if not argv:
                argv = executables.mode_program(settings.mode.value, environ,
                                                settings.own_executable)
            name = "command" if settings.mode is Mode.RUN else "program"
            main = _exit_code(supervisor.run(ChildSpec(argv=argv, env=environ, name=name,
                                                       output=make_output())))
        code = run_until_complete(loop, main)
        return code
    except errors.EntryError as exc:
        log.error(exc.message, exit_code=exc.exit_code)
        code, error = exc.exit_code, exc.message
        return code
    except BaseException:
        # A bug of ours: take the children with us rather than leave them orphaned.
        if supervisor is not None:
            supervisor.kill_all()
        raise
    finally:
        if tty is not None:
            tty.restore()
        if watchdog is not None:
            watchdog.close()
        if code is not None:
            _summarize(log, settings, clock, code, supervisor, error)
        _flush(log, supervisor.drain_wait() if supervisor is not None else settings.drain_timeout,
               stdout, stderr)
        loop.close()


def _fail_without_loop(settings: Settings, exc: errors.EntryError) -> int:
    """Report an error met before the mode's loop existed, in the format asked."""
    loop = EventLoop()
    stderr = OutputWriter(2, "stderr", loop)
    log = events.DeferredLogger(settings.log_format, settings.log_level, stderr,
                                events.default_fields(settings.mode.value))
    log.error(exc.message, exit_code=exc.exit_code)
    _flush(log, settings.drain_timeout, stderr)
    loop.close()
    return exc.exit_code


def _summarize(log: Any, settings: Settings, clock: JobClock, code: int,
               supervisor: Supervisor | None, error: str | None) -> None:
    """One `job summary` event (a short block in text format)."""
    from supervisor.summary import text_block

    started = supervisor.started if supervisor else {}
    restarts = max(0, started.get("model server", 0) - 1) if settings.mode is Mode.SERVE else None
    fields = clock.summary(code, supervisor.stop_signal if supervisor else None, restarts,
                           supervisor.last_summary if supervisor else {}, error)
    if supervisor is not None:
        fields.update(supervisor.summary_extra)
    if settings.log_format == "text":
        log.info(text_block(fields))
    else:
        log.info("job summary", **fields)


def run_until_complete(loop: Loop, main: Coroutine[Any, Any, int]) -> int:
    """Run `main`; on our loop, after one turn for what is pending (signals held at start-up).

    uvloop forgets a signal that comes between two runs, so it is run once,
    and its mode sees a stop that came first (`Supervisor.stop_signal`).
    """
    if getattr(loop, "keeps_signals_between_runs", False):
        loop.call_soon(loop.stop)
        loop.run_forever()  # a stop that came while we started is seen before anything runs
    task = loop.create_task(main)
    task.add_done_callback(lambda _: loop.stop())
    loop.run_forever()
    result: int = task.result()
    return result


async def _exit_code(result: Coroutine[Any, Any, Any]) -> int:
    code: int = (await result).exit_code
    return code


def _flush(log: Any, timeout: float, *writers: OutputWriter) -> None:
    """Write out what is queued, report losses: all of it within `timeout` (a stalled reader
    must not keep us), and a last moment for the report itself."""
    import time

    deadline = time.monotonic() + timeout
    for writer in writers:
        if not writer.flush(max(0.0, deadline - time.monotonic())) and writer.error is None:
            writer.error = f"{writer.name}: not being read (gave up after {timeout:g} s)"
    for writer in writers:
        if writer.error is not None or writer.dropped_bytes:
            log.error("output lost", stream=writer.name, error=writer.error,
                      dropped_bytes=writer.dropped_bytes + writer.pending_bytes)
    deadline = max(deadline, time.monotonic() + LAST_FLUSH)
    for writer in writers:
        writer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
