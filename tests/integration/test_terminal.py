"""Interactive use: `docker run -it IMAGE sm-entry -- sh` under a pseudo-terminal."""

import os
import pty
import re
import select
import time

import pytest

from tests.support import TIMEOUT


class Terminal:
    """The controller side of a pty whose other side runs sm-entry."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a new session with the pty as controlling terminal
            os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "PS1": "$ ", "TERM": "dumb"})
        self.output = ""  # what read_until has not consumed yet
        self.transcript = ""  # everything the terminal showed

    def _read(self):
        data = os.read(self.fd, 4096).decode("utf-8", "replace")
        self.output += data
        self.transcript += data

    def read_until(self, pattern, timeout=TIMEOUT):
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while not (match := regex.search(self.output)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in {self.output!r}")
            if select.select([self.fd], [], [], remaining)[0]:
                try:
                    self._read()
                except OSError:  # EIO: the other side is closed
                    raise AssertionError(f"closed before {pattern!r}: {self.output!r}") from None
        self.output = self.output[match.end():]
        return match

    def send(self, text):
        os.write(self.fd, text.encode())

    def exit_code(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self._read()
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sm-entry did not exit")

    def close(self):
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminal(sm_entry):
    term = Terminal([*sm_entry, "--log-format", "text", "sh", "-i"])
    yield term
    term.close()


def test_interactive_child_owns_the_terminal_and_ctrl_c_reaches_only_it(terminal):
    terminal.read_until(r"\$ $")
    terminal.send("echo \"PG $(cut -d' ' -f5 /proc/$$/stat) FG $(cut -d' ' -f8 /proc/$$/stat)\"\n")
    match = terminal.read_until(r"PG (\d+) FG (\d+)")
    assert match.group(1) == match.group(2), "the shell is not the terminal's foreground group"
    terminal.send("echo st''arted; sleep 30; echo after''sleep\n")
    terminal.read_until(r"started\r")
    time.sleep(0.3)
    terminal.send("\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
    terminal.read_until(r"aftersleep\r|\$ $")
    terminal.send("echo al''ive; exit 42\n")
    terminal.read_until(r"alive\r")
    assert 42 == terminal.exit_code()
    # Ctrl-C went to the shell's group only: sm-entry neither saw nor forwarded a SIGINT.
    assert "sm-entry: child started" in terminal.transcript  # our events are in the transcript
    assert "stop requested" not in terminal.transcript
    assert "signal=SIGINT" not in terminal.transcript
