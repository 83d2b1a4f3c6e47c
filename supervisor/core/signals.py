"""Which signals we hold, forward, drop or leave ignored; held from the first instruction.

Our start takes ~200 ms (imports). A SIGTERM or SIGUSR1 arriving in that
window would otherwise kill us with its default action (or raise
KeyboardInterrupt), and the child would never run. Blocked, it stays
pending and is forwarded once the supervisor's handlers are in place; the
supervisor then clears the mask, also of anything blocked by our parent.

Every signal whose default action would end us is either forwarded or
dropped: a stray SIGPWR or SIGPROF must never kill PID 1 and orphan the job.
Only the synchronous faults (SEGV, BUS, FPE, ILL, TRAP, ABRT) keep their
default action, as under tini: they mean a bug of ours.
"""

from __future__ import annotations

import signal

# Passed on to the child (or its process group with --signal-scope group).
FORWARDED: tuple[int, ...] = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGALRM, signal.SIGTERM, signal.SIGCONT, signal.SIGTSTP, signal.SIGWINCH,
    signal.SIGPWR, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGIO,
    signal.SIGSTKFLT, signal.SIGURG,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
)
STOP = frozenset({signal.SIGTERM, signal.SIGINT})
# Caught and dropped: a background read or write must never stop us, and a
# SIGSYS (a seccomp filter's answer) must not kill us. Caught rather than
# ignored, so that children get their default action back at exec.
DROPPED: tuple[int, ...] = (signal.SIGTTIN, signal.SIGTTOU, signal.SIGSYS)
# Forwarded without an info event each time (a terminal resize is not news).
QUIET = frozenset({signal.SIGWINCH, signal.SIGCONT, signal.SIGURG})
# Ignored by Python itself at start-up (it raises EPIPE/EFBIG instead); the
# child gets them back as default (subprocess's restore_signals).
PYTHON_IGNORES = frozenset({signal.SIGPIPE, signal.SIGXFSZ})

HELD: tuple[int, ...] = (*FORWARDED, *DROPPED, signal.SIGCHLD)

_inherited_ignored: frozenset[int] = frozenset()


def hold_signals() -> None:
    """Block every signal we handle, and remember which our parent set to be ignored.

    Blocking changes no disposition, so a signal ignored by our parent (a
    `nohup`, a shell's background job ignoring SIGINT/SIGQUIT) is seen here
    as SIG_IGN, as the bootloaders of the frozen binary pass it on unchanged.
    """
    global _inherited_ignored
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    _inherited_ignored = frozenset(
        signum for signum in FORWARDED if signal.getsignal(signum) == signal.SIG_IGN
    )


def inherited_ignored() -> frozenset[int]:
    """Signals our parent ignored: they stay ignored for us and for the child, as under tini."""
    return _inherited_ignored


def release_signals() -> None:
    """An empty mask: what we forward must reach us, and children inherit no mask."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
