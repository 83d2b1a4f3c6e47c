"""Hold signals from the first instruction until the process core can forward them.

Our start takes ~200 ms (imports). A SIGTERM or SIGUSR1 arriving in that
window would otherwise kill us with its default action (or raise
KeyboardInterrupt), and the child would never run. Blocked, it stays
pending and is forwarded once the supervisor's handlers are in place; the
supervisor then clears the mask, also of anything blocked by our parent.
"""

from __future__ import annotations

import signal

HELD = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGALRM, signal.SIGTERM, signal.SIGCONT, signal.SIGTSTP, signal.SIGWINCH,
    signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
)


def hold_signals() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)


def release_signals() -> None:
    """An empty mask: what we forward must reach us, and children inherit no mask."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
