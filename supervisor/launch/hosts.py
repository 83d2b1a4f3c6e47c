"""Multi-host training: wait until every host of the cluster resolves.

On a multi-host job the other instances' names (algo-2, ...) may not resolve
in DNS for a while after we start. The program would fail to connect, so we
wait for all of them, with exponential backoff and a deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from supervisor import errors

FIRST_RETRY = 0.5
MAX_RETRY = 10.0
DEFAULT_HOST_WAIT = 15 * 60.0


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


async def wait_for_hosts(
    hosts: Sequence[str],
    deadline_s: float,
    log: Any,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    resolve: Callable[[str], bool] = resolves,
) -> None:
    """Return once every host resolves; raise SetupError at the deadline.

    `sleep(seconds)` raises to end the wait early (a stop signal).
    """
    started = clock()
    delay = FIRST_RETRY
    attempt = 0
    while True:
        missing = [host for host in hosts if not resolve(host)]
        if not missing:
            if attempt:
                log.info("all hosts resolve", hosts=list(hosts),
                         waited_s=round(clock() - started, 1))
            return
        attempt += 1
        waited = clock() - started
        if waited >= deadline_s:
            raise errors.SetupError(
                f"hosts did not resolve within {deadline_s:g} s: {', '.join(missing)} "
                f"(cluster: {', '.join(hosts)}); check the network and DNS, or raise --host-wait"
            )
        log.info("waiting for hosts to resolve", missing=missing, attempt=attempt,
                 waited_s=round(waited, 1), deadline_s=deadline_s)
        await sleep(min(delay, max(0.0, deadline_s - waited)))
        delay = min(delay * 2, MAX_RETRY)
