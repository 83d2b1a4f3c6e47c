"""The model server: started on an address of ours, probed, restarted with backoff, stopped last.

Each start gets a new address (a new unix socket, or a new port): the
workers of a master killed with SIGKILL are orphans that may still hold the
old listening socket, and a new backend must never share it. The old tree is
gone before the next start anyway (the process core stops everything a child
left behind before its end is reported).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor.core.process import Child, ChildSpec, Supervisor
from supervisor.core.signals import signal_name
from supervisor.serve.probe import probe
from supervisor.serve.restart import RestartPolicy
from supervisor.serve.upstream import Address

PORT = "{port}"
SOCKET = "{socket}"
FD = "{fd}"
# Told of every change: (ready, why not, the address to send requests to when ready).
Announce = Callable[[bool, str, Address | None], None]
PROBE_TIMEOUT = 2.0  # SageMaker's own /ping deadline
STARTING_PROBE_INTERVAL = 0.25  # while the model loads: /ping turns 200 soon after it is ready


@dataclass(frozen=True)
class BackendOptions:
    probe_interval: float = 2.0
    probe_failures: int = 3
    ready_body: str | None = None
    max_restarts: int = 5
    restart_window: float = 600.0
    # What the backend gets to stop, after SIGTERM, before SIGKILL of its tree: on a restart,
    # and at least this after the drain (Java's orderly stop takes 2-4 s).
    stop_grace: float = 10.0
    ready_path: str = "/ping"  # asked for readiness and health (with ready_body, if any)
    follow: bool = True  # a launcher that exits 0 leaving its server: follow the server
    # /ping timing out while requests are in flight is "busy", as long as the backend answered
    # something within this many seconds.
    busy_timeout: float = 600.0


def free_port(port_range: str | None) -> int:
    """A free TCP port on 127.0.0.1: from SAGEMAKER_SAFE_PORT_RANGE ("XXXX-YYYY") when given."""
    candidates: Sequence[int] = [0]
    if port_range:
        low, _, high = port_range.partition("-")
        try:
            candidates = range(int(low), int(high) + 1)
        except ValueError:
            candidates = [0]
    for port in candidates:
        with socket.socket() as probe_socket:
            try:
                probe_socket.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = probe_socket.getsockname()[1]
            return found
    return free_port(None)


class Liveness:
    """Busy or dead, when /ping times out: busy while requests are in flight and answered.

    A sync server whose every worker is on a long request cannot answer its
    /ping; restarting it would kill the requests it is working on. It is
    busy, not dead, while the front has requests at it and it sent something
    back (any byte of any response) within `busy_timeout`; the clock starts
    again whenever nothing is in flight.
    """

    def __init__(self, busy_timeout: float, now: float) -> None:
        self.busy_timeout = busy_timeout
        self.progress = -1
        self.progress_at = now
        self.said_busy = False

    def busy(self, now: float, in_flight: int, progress: int) -> bool:
        if progress != self.progress or not in_flight:
            self.progress, self.progress_at = progress, now
        if not in_flight:
            self.said_busy = False
            return False
        return now - self.progress_at < self.busy_timeout


class Backend:
    """Keeps one model server serving until a stop, or until it keeps failing."""

    def __init__(self, supervisor: Supervisor, log: Any, command: Sequence[str],
                 env: Mapping[str, str], announce: Announce, options: BackendOptions,
                 make_output: Callable[[], Any], listen_fd: int | None = None,
                 public_port: int | None = None,
                 activity: Callable[[], tuple[int, int]] | None = None) -> None:
        self.supervisor = supervisor
        self.loop = supervisor.loop
        self.log = log
        self.command = list(command)
        self.env = dict(env)
        self.announce = announce
        self.options = options
        # --listen-mode handoff: the backend gets our listening socket and answers on our port.
        self.listen_fd = listen_fd
        self.public_port = public_port
        self.make_output = make_output
        # (requests at the backend now, reads from it so far), from the front; None: handoff
        self.activity = activity
        self.policy = RestartPolicy(options.max_restarts, options.restart_window)
        self.child: Child | None = None
        self.starts = 0
        self.stopping = False
        self._stop = self.loop.create_future()
        self._rundir: str | None = None

    # addresses --------------------------------------------------------------
    def next_address(self) -> Address:
        self.starts += 1
        if self.listen_fd is not None:
            return Address(port=self.public_port)  # the same socket, kept by us, each time
        if any(SOCKET in arg for arg in self.command):
            if self._rundir is None:
                self._rundir = tempfile.mkdtemp(prefix="sm-entry-serve-")
            return Address(socket_path=os.path.join(self._rundir, f"backend-{self.starts}.sock"))
        return Address(port=free_port(self.env.get("SAGEMAKER_SAFE_PORT_RANGE")))

    def spec(self, address: Address) -> ChildSpec:
        port = str(address.port) if address.port else ""
        path = address.socket_path or ""
        argv = [arg.replace(PORT, port).replace(SOCKET, path) for arg in self.command]
        env = dict(self.env)
        if self.listen_fd is not None:
            fd = str(self.listen_fd)
            argv = [arg.replace(FD, fd) for arg in argv]
            env["SM_ENTRY_LISTEN_FD"] = fd
            return ChildSpec(argv=argv, env=env, name="model server", output=self.make_output(),
                             pass_fds=(self.listen_fd,), follow=self.options.follow)
        if address.port:
            # SageMaker-aware servers (the inference toolkit, MMS) listen where this says.
            env["SM_ENTRY_BACKEND_PORT"] = env["SAGEMAKER_BIND_TO_PORT"] = port
        else:
            env["SM_ENTRY_BACKEND_SOCKET"] = path
        return ChildSpec(argv=argv, env=env, name="model server", output=self.make_output(),
                         follow=self.options.follow)

    # the life of the backend ------------------------------------------------
    async def run(self) -> int:
        """Serve until stopped (0), or until the restart budget is spent (1)."""
        while not self.stopping:
            address = self.next_address()
            self.announce(False, "the model server is starting", None)
            self.child = self.supervisor.start(self.spec(address),
                                               stop_timeout=self.options.stop_grace)
            self.log.info("model server starting", address=str(address), start=self.starts,
                          child_pid=self.child.pid)
            reason = await self._watch(self.child, address)
            if self.stopping:
                break
            delay = self.policy.next_restart(self.loop.time())
            if delay is None:
                self.log.error("model server gave up: it keeps failing", reason=reason,
                               restarts=self.policy.restarts,
                               restart_window_s=self.options.restart_window)
                self.announce(False, "the model server keeps failing", None)
                return 1
            self.log.warning("model server restarting", reason=reason, in_s=delay,
                             restarts=self.policy.restarts)
            self.announce(False, f"the model server is restarting ({reason})", None)
            await self._wait(delay)
        return 0

    async def _watch(self, child: Child, address: Address) -> str:
        """Probe until the child exits or fails its health checks: why it must be restarted."""
        ready = False
        failures = 0
        started = self.loop.time()
        liveness = Liveness(self.options.busy_timeout, started)
        while True:
            interval = self.options.probe_interval if ready else STARTING_PROBE_INTERVAL
            await self._wait(interval, child.done)
            if self.stopping:
                return "stopping"
            if child.done.done():
                result = child.done.result()
                self._down()
                how = result.died or (f"killed by {signal_name(result.signal)}" if result.signal
                                      else f"exited with code {result.exit_code}")
                self.log.warning("model server exited", how=how, child_pid=result.pid)
                self.supervisor.summary_extra["last_model_server_end"] = how
                return how
            seen = await probe(address, PROBE_TIMEOUT, self.options.ready_body,
                               self.options.ready_path)
            if self.stopping or child.done.done():
                continue
            busy = False
            if self.activity is not None:
                busy = liveness.busy(self.loop.time(), *self.activity())
            if seen.healthy:
                failures = 0
                liveness.said_busy = False
                self.policy.healthy(self.loop.time())
                if not ready:
                    ready = True
                    self.announce(True, "", address)
                    self.log.info("model server ready", address=str(address),
                                  after_s=round(self.loop.time() - started, 2))
                continue
            if not ready:
                continue  # still loading: the platform's start-up window decides, not us
            if seen.timed_out and busy:
                if not liveness.said_busy:
                    liveness.said_busy = True
                    self.log.info("model server busy: /ping timed out while requests are in "
                                  "flight and being answered; not counted as a failure",
                                  busy_timeout_s=self.options.busy_timeout)
                continue
            failures += 1
            if failures < self.options.probe_failures:
                continue
            self.log.warning("model server unhealthy", failures=failures, detail=seen.detail)
            self._down()
            self.supervisor.stop_child(child, signal.SIGTERM)
            await child.done
            return f"unhealthy: {seen.detail}"

    def _down(self) -> None:
        self.policy.unhealthy()
        self.announce(False, "the model server is not running", None)

    async def _wait(self, seconds: float, *also: Any) -> None:
        """Until `seconds` pass, a stop is asked, or one of `also` is done."""
        waiter = self.loop.create_future()

        def wake(*_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = self.loop.call_later(seconds, wake)
        for future in (self._stop, *also):
            future.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            for future in (self._stop, *also):
                future.remove_done_callback(wake)

    async def stop(self, grace: float) -> None:
        """SIGTERM to the backend's main process, `grace` seconds, SIGKILL of its tree."""
        self.stopping = True
        if not self._stop.done():
            self._stop.set_result(None)
        child = self.child
        if child is not None and not child.done.done():
            self.supervisor.stop_child(child, signal.SIGTERM, timeout=grace)
            await child.done
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
