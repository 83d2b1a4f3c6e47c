"""A pseudo-terminal of the child's own, when ours is a terminal (`docker run -t`, SDK local mode).

Handing our terminal to the child would leave us blind: we could not read
its output (no failure text, metrics, watchdog, rank tags, format). So the
child gets a pty for its stdout and one for its stderr (each a terminal to
it: colours, progress bars, line buffering), we read their master sides as
we read pipes, and write what they print to our terminal. The stdout pty is
its controlling terminal, and, when our stdin is a terminal too, its stdin:
our terminal is put in raw mode (restored at the end) and every keystroke
goes to the child's pty, whose line discipline makes Ctrl-C a SIGINT of the
child's foreground and does its line editing and echo. The ptys' window
size follows ours (SIGWINCH).

The child's ptys do not turn "\\n" into "\\r\\n" (ONLCR off): what we read
is what the child wrote, and our terminal, left cooking its output, does it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import termios
from collections.abc import Callable
from typing import Any

# termios attribute indexes
IFLAG, OFLAG, CFLAG, LFLAG, ISPEED, OSPEED, CC = range(7)


def _size(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


class TtyProxy:
    """Our terminal (stdout, maybe stdin), and the ptys of the children that replace it."""

    def __init__(self, loop: Any, out_fd: int = 1, in_fd: int | None = 0) -> None:
        self.loop = loop
        self.out_fd = out_fd
        # Keystrokes only from a terminal whose foreground we are (not a background job).
        self.in_fd = in_fd if in_fd is not None and _foreground_terminal(in_fd) else None
        self.attributes = _attributes(out_fd) or (
            _attributes(self.in_fd) if self.in_fd is not None else None)
        self.masters: list[int] = []  # of the children's stdout ptys, for keystrokes and size
        self._saved: list[Any] | None = None
        self._reading = False

    @classmethod
    def of_stdout(cls, loop: Any) -> TtyProxy | None:
        """A proxy when our stdout is a terminal, else None."""
        return cls(loop) if os.isatty(1) else None

    @property
    def interactive(self) -> bool:
        return self.in_fd is not None

    # the children's ptys -------------------------------------------------------
    def open_pty(self) -> tuple[int, int]:
        """(master, slave) of a new pty set up like our terminal, ONLCR off, our size."""
        master, slave = os.openpty()
        with contextlib.suppress(termios.error):
            attributes: list[Any] = list(self.attributes or termios.tcgetattr(slave))
            attributes[CC] = list(attributes[CC])
            attributes[OFLAG] = int(attributes[OFLAG]) & ~termios.ONLCR
            termios.tcsetattr(slave, termios.TCSANOW, attributes)
        size = _size(self.out_fd)
        if size is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        os.set_inheritable(master, False)
        return master, slave

    def child_setup(self, slave: int) -> Callable[[], None]:
        """Before exec, in a new session: make `slave` its controlling terminal."""

        def take_controlling_terminal() -> None:
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        return take_controlling_terminal

    def attach(self, master: int) -> None:
        """A child's stdout pty: it gets our keystrokes and size from now on."""
        self.masters.append(os.dup(master))
        if self.interactive and not self._reading:
            self._raw()
            self.loop.add_reader(self.in_fd, self._keystrokes)
            self._reading = True

    def detach(self) -> None:
        """The child ended: keystrokes wait for the next one (or are dropped)."""
        for master in self.masters:
            with contextlib.suppress(OSError):
                os.close(master)
        self.masters = []

    def resize(self) -> None:
        """Our terminal changed size: so do the children's (the kernel sends them SIGWINCH)."""
        size = _size(self.out_fd)
        if size is None:
            return
        for master in self.masters:
            with contextlib.suppress(OSError):
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    def _keystrokes(self) -> None:
        assert self.in_fd is not None
        try:
            data = os.read(self.in_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # our terminal is gone
            self.loop.remove_reader(self.in_fd)
            self._reading = False
            return
        for master in self.masters[-1:]:
            with contextlib.suppress(OSError):
                os.write(master, data)

    # our terminal ------------------------------------------------------------
    def _raw(self) -> None:
        """Keystrokes as they come, none interpreted here; output still cooked (ONLCR)."""
        assert self.in_fd is not None
        try:
            self._saved = termios.tcgetattr(self.in_fd)
        except termios.error:
            return
        attributes = list(self._saved)
        attributes[IFLAG] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP
                               | termios.IXON)
        attributes[LFLAG] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        cc = list(attributes[CC])
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        attributes[CC] = cc
        with contextlib.suppress(termios.error):
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, attributes)

    def restore(self) -> None:
        """Our terminal as we found it (at our end, whatever the way)."""
        if self._reading and self.in_fd is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.in_fd)
            self._reading = False
        if self._saved is not None and self.in_fd is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.detach()


def _attributes(fd: int) -> list[Any] | None:
    try:
        return termios.tcgetattr(fd)
    except (termios.error, OSError):
        return None


def _foreground_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
