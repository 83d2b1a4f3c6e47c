"""Interactive use: `docker run -it IMAGE sm-entry -- sh` under a pseudo-terminal."""

import json
import os
import pty
import re
import select
import sys
import time

import pytest

from tests.support import TIMEOUT


class Terminal:
    """The controller side of a pty whose other side runs sm-entry."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a new session with the pty as controlling terminal
            os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "PS1": "$ ", "TERM": "dumb",
                                      "TMPDIR": os.environ["TMPDIR"]})
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


# Behind a terminal (`docker run -t`, the SDK's local mode) the child has ptys of its own:
# sm-entry reads them, so everything it does with a job's output works as without a terminal.
def run_at_terminal(argv, env=None, size=(40, 100), resize=None):
    """Run argv on a pty of ours (rows x cols); the transcript and the exit code."""
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the size is set before sm-entry starts, which copies it once at start
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "TERM": "dumb",
                                  "TMPDIR": os.environ["TMPDIR"], **(env or {})})
    transcript = b""
    deadline = time.monotonic() + TIMEOUT
    resized = False
    while time.monotonic() < deadline:
        if resize and not resized and b"\nready\r" in transcript:  # (not the argv logged)
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", resize[0], resize[1], 0, 0))
            resized = True
        if select.select([fd], [], [], 0.1)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            transcript += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return transcript.decode("utf-8", "replace"), os.waitstatus_to_exitcode(status)


def test_behind_a_terminal_a_failing_script_s_exception_is_in_the_failure_file(sm_entry, tmp_path):
    root = tmp_path / "ml"
    code = root / "code"
    code.mkdir(parents=True)
    (code / "train.py").write_text("def main():\n    raise ValueError('bad rate')\n\nmain()\n")
    transcript, exit_code = run_at_terminal([*sm_entry, "--root", str(root), "train"],
                                            env={"SAGEMAKER_PROGRAM": "train.py"})
    assert 1 == exit_code
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("ValueError: bad rate\n"), reason
    assert 'train.py", line 2, in main' in reason
    assert "ValueError: bad rate" in transcript  # and the person at the terminal saw it


def test_behind_a_terminal_the_child_sees_terminals_and_its_streams_stay_apart(sm_entry):
    code = ("import sys; print('out', sys.stdout.isatty(), flush=True); "
            "print('err', sys.stderr.isatty(), file=sys.stderr, flush=True)")
    transcript, exit_code = run_at_terminal([*sm_entry, "--", sys.executable, "-c", code],
                                            env={"SM_ENTRY_LOG_FORMAT": "json"})
    assert 0 == exit_code
    records = [json.loads(line) for line in transcript.splitlines() if line.startswith("{")]
    lines = {(r["stream"], r["msg"]) for r in records if "stream" in r}
    assert {("stdout", "out True"), ("stderr", "err True")} <= lines  # json, as asked


def test_behind_a_terminal_the_child_s_window_size_follows_ours(sm_entry):
    code = ("import os, signal, sys, time\n"
            "size = lambda: os.get_terminal_size(sys.stdout.fileno())\n"
            "print('size', tuple(size()), flush=True)\n"
            "signal.signal(signal.SIGWINCH, lambda *a: print('resized', tuple(size()), flush=True))\n"
            "print('ready', flush=True)\n"
            "time.sleep(2)\n")
    transcript, exit_code = run_at_terminal([*sm_entry, "--", sys.executable, "-c", code],
                                            size=(40, 100), resize=(50, 120))
    assert 0 == exit_code
    assert "size (100, 40)" in transcript
    assert "resized (120, 50)" in transcript


def test_an_interactive_python_behind_sm_entry_takes_keystrokes_edits_and_ctrl_c(sm_entry):
    term = Terminal([*sm_entry, "--", sys.executable, "-i", "-q"])
    try:
        term.read_until(r">>> ")
        term.send("6*9\x7f7\n")  # a mistake erased: the line discipline edits the line
        term.read_until(r"^42\r?$")
        term.send("import time; time.sleep(30)\n")
        time.sleep(0.5)
        term.send("\x03")  # Ctrl-C: KeyboardInterrupt in the child, not a stop of sm-entry
        term.read_until(r"KeyboardInterrupt")
        term.send("exit(7)\n")
        assert 7 == term.exit_code()
        assert "stop requested" not in term.transcript
    finally:
        term.close()
