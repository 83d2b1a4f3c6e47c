"""`sm-entry serve` end to end: bind the port, start the model server, serve, drain on SIGTERM.

The port is bound before the backend starts, so the platform's first
connections are accepted at once (and answered 503 until the model is
loaded). On SIGTERM (the platform SIGKILLs 30 s later): /ping turns 503,
no new connection is accepted, requests in flight get `--stop-timeout` to
finish, then the backend gets SIGTERM (gunicorn's and uvicorn's graceful
stop), the rest of the 30 s, and SIGKILL of its tree.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
from collections.abc import Callable, Mapping
from typing import Any

from supervisor import errors, executables
from supervisor.core.process import Supervisor
from supervisor.serve.accesslog import AccessLog
from supervisor.serve.backend import FD, Backend, BackendOptions
from supervisor.serve.front import FrontConnection, FrontState, Limits, execution_parameters
from supervisor.serve.upstream import Address, UpstreamPool
from supervisor.settings import Settings

SERVE_COMMAND = "SM_ENTRY_SERVE_COMMAND"
DEFAULT_PORT = 8080
MIB = 1024 * 1024
# A ready backend whose /ping times out while requests are in flight is busy, not dead, as
# long as it answered something within this (when no request timeout says otherwise).
DEFAULT_BUSY_TIMEOUT = 600.0
# After the stop timeout, what the model server still gets before SIGKILL of its tree: our
# exit comes within the stop timeout and 2 s (SageMaker's SIGKILL: 30 s after its SIGTERM).
DRAIN_MARGIN = 1.0


def backend_command(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """After `--`, else SM_ENTRY_SERVE_COMMAND, else an executable `serve` on PATH (not us)."""
    if settings.command:
        return list(settings.command)
    configured = environ.get(SERVE_COMMAND, "").strip()
    if configured:
        try:
            return shlex.split(configured)
        except ValueError as exc:
            raise errors.ConfigError(SERVE_COMMAND, f"cannot be split into words: {exc}") from None
    return executables.mode_program("serve", environ, settings.own_executable)


def _number(environ: Mapping[str, str], name: str, default: float | None) -> float | None:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise errors.ConfigError(name, f"{value!r} is not a number") from None
    if number <= 0:
        raise errors.ConfigError(name, f"{value!r} must be more than 0")
    return number


async def run(settings: Settings, environ: Mapping[str, str], supervisor: Supervisor, log: Any,
              stdout: Any, make_output: Callable[[], Any], fields: dict[str, Any]) -> int:
    loop: Any = supervisor.loop
    serve = settings.serve
    port = serve.port or int(_number(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT)
                             or DEFAULT_PORT)
    command = backend_command(settings, environ)
    request_timeout = serve.request_timeout or _number(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT",
                                                       None)
    options = BackendOptions(probe_interval=serve.probe_interval,
                             probe_failures=serve.probe_failures, ready_body=serve.ready_body,
                             max_restarts=serve.max_restarts, restart_window=serve.restart_window,
                             stop_grace=serve.restart_grace, ready_path=serve.ready_path,
                             follow=serve.backend_exit == "follow",
                             busy_timeout=serve.busy_timeout or request_timeout
                             or DEFAULT_BUSY_TIMEOUT)
    stop_requested: asyncio.Future[int] = loop.create_future()

    def on_stop(signum: int) -> None:
        if not stop_requested.done():
            stop_requested.set_result(signum)

    supervisor.on_stop = on_stop
    if supervisor.stop_signal is not None:  # it came while we started: never lost
        log.info("stopped before the model server started: not starting it")
        return 0
    if serve.listen_mode == "handoff":
        return await _handoff(loop, settings, environ, supervisor, log, command, port, options,
                              make_output, stop_requested)
    # No cap unless the platform (batch transform) or the user sets one: asynchronous
    # inference posts bodies of up to 1 GB.
    payload_mb = serve.max_payload_mb or _number(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", None)
    max_body = int(payload_mb * MIB) if payload_mb else None
    limits = Limits(max_body=max_body, request_timeout=request_timeout,
                    client_timeout=serve.client_timeout,
                    buffer_request=int(serve.request_buffer_mb * MIB),
                    buffer_total=int(serve.request_buffer_total_mb * MIB),
                    tunnel_idle_timeout=serve.tunnel_idle_timeout)
    pool = UpstreamPool(loop)
    access_log = AccessLog(loop, stdout, {"mode": "serve", "host": fields["host"]})
    front = FrontState(loop, pool, limits, execution_parameters(environ), access_log, log)
    loop.set_exception_handler(lambda _loop, context: log.error(
        "front bug: unexpected error", error=str(context.get("exception") or context["message"])))
    try:
        server = await loop.create_server(lambda: FrontConnection(front), host="0.0.0.0",
                                          port=port, reuse_address=True, backlog=1024)
    except OSError as exc:
        raise errors.EntryError(f"cannot listen on port {port}: {exc.strerror}") from None
    log.info("listening", port=port, max_payload_bytes=max_body,
             request_timeout_s=request_timeout, loop=type(loop).__module__.split(".")[0])

    def announce(ready: bool, reason: str, address: Address | None) -> None:
        pool.set_address(address if ready else None)
        front.set_ready(ready, reason)

    backend = Backend(supervisor, log, command, environ, announce, options, make_output,
                      activity=front.activity)
    backend_task = loop.create_task(backend.run())
    try:
        await asyncio.wait({backend_task, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if not stop_requested.done():  # the backend gave up (or could not be started)
            server.close()
            await backend.stop(options.stop_grace)
            code: int = backend_task.result()
            return code
        return await _drain(loop, settings, log, server, front, backend, backend_task, options)
    finally:
        pool.close()
        front.close()
        access_log.flush()


async def _handoff(loop: Any, settings: Settings, environ: Mapping[str, str],
                   supervisor: Supervisor, log: Any, command: list[str], port: int,
                   options: BackendOptions, make_output: Callable[[], Any],
                   stop_requested: asyncio.Future[int]) -> int:
    """--listen-mode handoff: the backend serves our listening socket itself; no proxy cost.

    We keep the socket (a restarted backend gets the same one, so the port is
    never closed), and still restart a backend that dies or stops answering
    /ping; readiness and the drain are the backend's own.
    """
    if not any(FD in arg for arg in command):
        log.warning("--listen-mode handoff: the command has no {fd}; the model server must "
                    "take the socket from SM_ENTRY_LISTEN_FD", command=command)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("0.0.0.0", port))
    except OSError as exc:
        listener.close()
        raise errors.EntryError(f"cannot listen on port {port}: {exc.strerror}") from None
    listener.listen(1024)
    log.info("listening", port=port, listen_mode="handoff", fd=listener.fileno())
    backend = Backend(supervisor, log, command, environ, lambda *_: None, options, make_output,
                      listen_fd=listener.fileno(), public_port=port)
    backend_task = loop.create_task(backend.run())
    try:
        await asyncio.wait({backend_task, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if not stop_requested.done():
            await backend.stop(options.stop_grace)
            code: int = backend_task.result()
            return code
        await backend.stop(settings.stop_timeout)  # its own graceful stop, in our stop timeout
        backend_task.cancel()
        return 0
    finally:
        listener.close()


async def _drain(loop: Any, settings: Settings, log: Any, server: Any, front: FrontState,
                 backend: Backend, backend_task: Any, options: BackendOptions) -> int:
    started = loop.time()
    log.info("draining", in_flight=front.in_flight, tunnels=len(front.tunnels),
             stop_timeout_s=settings.stop_timeout)
    front.start_drain()
    server.close()
    # Tunnels do not hold the drain: the model server's stop closes them (uvicorn: 1012);
    # those still open at the stop timeout are closed by us.
    closer = loop.call_later(settings.stop_timeout, front.close_tunnels,
                             f"stop timeout {settings.stop_timeout:g} s")
    try:
        await asyncio.wait_for(front.wait_idle(), settings.stop_timeout)
        drained = True
    except TimeoutError:
        drained = False
    # The model server gets the rest of the stop timeout and a margin.
    grace = max(DRAIN_MARGIN, settings.stop_timeout + DRAIN_MARGIN - (loop.time() - started))
    await backend.stop(grace)
    backend_task.cancel()
    closer.cancel()
    front.close_tunnels("stopping")
    for connection in list(front.connections):
        connection.close()
    if drained:
        log.info("drained", after_s=round(loop.time() - started, 2))
        return 0
    log.error("drain incomplete: requests still in flight at the stop timeout",
              in_flight=front.in_flight, stop_timeout_s=settings.stop_timeout)
    return 1


def new_loop(own_executable: str | None) -> Any:
    """uvloop: the front's speed depends on it, so a front without it does not start.

    uvloop imports `ssl`; the frozen binary carries OpenSSL apart (tls.py),
    loaded here, on the serve path only.
    """
    from supervisor import tls

    try:
        tls.load(own_executable)
        import uvloop
    except (ImportError, errors.EntryError) as exc:
        reason = exc.message if isinstance(exc, errors.EntryError) else str(exc)
        raise errors.EntryError(f"the serve front cannot load uvloop: {reason}") from None
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop

