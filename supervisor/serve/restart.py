"""When to restart a model server that died, and when to give up: a pure policy, no clock.

A backend that crashes is restarted after a backoff that doubles from 0.5 s
up to 30 s, and starts again from 0.5 s once it has been healthy for a
minute. Too many restarts within the restart window mean it will not get
better: sm-entry then exits non-zero so that the platform replaces the
instance, rather than keep a useless container alive.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_RESET = 60.0  # healthy this long: the next crash starts from FIRST_BACKOFF again
DEFAULT_MAX_RESTARTS = 5
DEFAULT_RESTART_WINDOW = 600.0


@dataclass
class RestartPolicy:
    """Decides the delay before each restart; `None` when the budget is spent."""

    max_restarts: int = DEFAULT_MAX_RESTARTS
    window: float = DEFAULT_RESTART_WINDOW

    def __post_init__(self) -> None:
        self._restarts: deque[float] = deque()  # when each restart was decided
        self._next_backoff = FIRST_BACKOFF
        self._healthy_since: float | None = None

    @property
    def restarts(self) -> int:
        return len(self._restarts)

    def healthy(self, now: float) -> None:
        """The backend answered its health check."""
        if self._healthy_since is None:
            self._healthy_since = now

    def unhealthy(self) -> None:
        self._healthy_since = None

    def next_restart(self, now: float) -> float | None:
        """The backend died (or was found dead): how long to wait before starting it again."""
        if self._healthy_since is not None and now - self._healthy_since >= HEALTHY_RESET:
            self._next_backoff = FIRST_BACKOFF
        self._healthy_since = None
        while self._restarts and now - self._restarts[0] > self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            return None
        self._restarts.append(now)
        delay = self._next_backoff
        self._next_backoff = min(self._next_backoff * 2, MAX_BACKOFF)
        return delay
