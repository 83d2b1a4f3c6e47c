"""Hand the controlling terminal to the child and take it back.

When a person runs sm-entry at a terminal (`docker run -it IMAGE sm-entry --
bash`, or `sm-entry train` locally), the child must own the terminal's
foreground process group so that Ctrl-C / Ctrl-Z reach it (and not us), and
it can read the terminal without being stopped by SIGTTIN. A shell does the
same for every job it starts.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def _set_foreground(fd: int, pgid: int) -> None:
    """tcsetpgrp() that works from a background group: SIGTTOU is blocked around it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        os.tcsetpgrp(fd, pgid)
    except OSError:
        pass  # the terminal went away, or it is no longer ours: nothing to hand over
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Terminal:
    """The terminal on our stdin, when our process group is its foreground."""

    def __init__(self, fd: int, own_group: int) -> None:
        self.fd = fd
        self.own_group = own_group

    @classmethod
    def of_stdin(cls) -> Terminal | None:
        try:
            if not os.isatty(0) or os.tcgetpgrp(0) != os.getpgrp():
                return None
        except OSError:
            return None
        return cls(0, os.getpgrp())

    def give_to(self, pgid: int) -> None:
        _set_foreground(self.fd, pgid)

    def take_back(self) -> None:
        _set_foreground(self.fd, self.own_group)

    def child_setup(self) -> Callable[[], None]:
        """Runs in the child before exec, so it owns the terminal before it can read it."""
        fd = self.fd

        def take_foreground() -> None:
            _set_foreground(fd, os.getpgrp())

        return take_foreground
