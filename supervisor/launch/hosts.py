"""Multi-host training: wait until every host of the cluster resolves (and, for MPI, listens).

On a multi-host job the other instances' names (algo-2, ...) may not resolve
in DNS for a while after we start. The program would fail to connect, so we
wait for all of them, with exponential backoff and a deadline. An MPI master
then waits, the same way, for its workers' SSH daemons. Each look (a
resolver that hangs, a connection that does not answer) runs off the event
loop, through `off_loop`, and never past the deadline: a stop signal is
heard at once whatever the network does.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from supervisor import errors

# Runs a blocking look in a thread, for at most `limit` seconds: its result, else `default`.
OffLoop = Callable[[Callable[[], list[str]], float, list[str]], Awaitable[list[str]]]


async def on_loop(check: Callable[[], list[str]], limit: float, default: list[str]) -> list[str]:
    """The look itself, where blocking does not matter (tests)."""
    return check()


FIRST_RETRY = 0.5
MAX_RETRY = 10.0
DEFAULT_HOST_WAIT = 15 * 60.0


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


async def _until_none_missing(
    missing_among: Callable[[list[str]], list[str]],
    everything: list[str],
    deadline_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    timed_out: Callable[[list[str]], str],
    waiting: Callable[[list[str], int, float], None],
    off_loop: OffLoop,
) -> tuple[int, float]:
    """Ask `missing_among(still missing)` with backoff until none is: (retries, seconds).

    What was found once is not asked again. At the deadline, SetupError with
    `timed_out(missing)`; before each sleep, `waiting(missing, attempt,
    waited)`. `sleep` and `off_loop` raise to end the wait (a stop). A look
    that outlives the deadline counts all it asked about as missing.
    """
    started = clock()
    delay = FIRST_RETRY
    attempt = 0
    missing = list(everything)
    while True:
        left = max(0.0, deadline_s - (clock() - started))
        asked = list(missing)
        missing = await off_loop(functools.partial(missing_among, asked), max(left, 0.1), asked)
        if not missing:
            return attempt, clock() - started
        attempt += 1
        waited = clock() - started
        if waited >= deadline_s:
            raise errors.SetupError(timed_out(missing))
        waiting(missing, attempt, waited)
        await sleep(min(delay, max(0.0, deadline_s - waited)))
        delay = min(delay * 2, MAX_RETRY)


async def wait_for_hosts(
    hosts: Sequence[str],
    deadline_s: float,
    log: Any,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    resolve: Callable[[str], bool] = resolves,
    off_loop: OffLoop = on_loop,
) -> None:
    """Return once every host resolves; raise SetupError at the deadline.

    `sleep(seconds)` raises to end the wait early (a stop signal).
    """
    attempts, waited = await _until_none_missing(
        lambda asked: [host for host in asked if not resolve(host)], list(hosts), deadline_s,
        clock, sleep,
        lambda missing: (
            f"hosts did not resolve within {deadline_s:g} s: {', '.join(missing)} "
            f"(cluster: {', '.join(hosts)}); check the network and DNS, or raise --host-wait"),
        lambda missing, attempt, waited: log.info(
            "waiting for hosts to resolve", missing=missing, attempt=attempt,
            waited_s=round(waited, 1), deadline_s=deadline_s), off_loop)
    if attempts:
        log.info("all hosts resolve", hosts=list(hosts), waited_s=round(waited, 1))


def accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something listens at host:port (a TCP connection is accepted)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, UnicodeError):
        return False


async def wait_for_ssh(
    hosts: Sequence[str],
    deadline_s: float,
    log: Any,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    port: int = 22,
    accept: Callable[[str, int], bool] = accepts,
    off_loop: OffLoop = on_loop,
) -> None:
    """Return once every MPI worker's SSH daemon accepts connections; SetupError at the deadline.

    The workers start sshd only once their code and requirements are in place,
    so this is also the wait for them to be ready for their ranks. A worker
    that accepted once is not asked again.
    """
    _, waited = await _until_none_missing(
        lambda asked: [host for host in asked if not accept(host, port)], list(hosts), deadline_s,
        clock, sleep,
        lambda missing: (
            f"MPI workers did not accept SSH connections on port {port} within "
            f"{deadline_s:g} s: {', '.join(missing)}; their sm-entry starts sshd once "
            "their code is ready (see their logs), or raise --host-wait"),
        lambda missing, _attempt, waited: log.info(
            "waiting for the MPI workers' SSH daemons", missing=list(missing),
            waited_s=round(waited, 1), deadline_s=deadline_s), off_loop)
    log.info("MPI workers accept SSH connections", hosts=list(hosts), waited_s=round(waited, 1))
