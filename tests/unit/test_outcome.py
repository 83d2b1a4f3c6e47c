"""Wait statuses map to the shell's exit codes."""

import os
import signal

import pytest

from supervisor.core import outcome


@pytest.mark.parametrize("code", [0, 1, 2, 42, 126, 127, 128, 255])
def test_exit_code_passes_through(code):
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert code == outcome.exit_code_for_wait_status(status)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV, signal.SIGUSR1])
def test_signal_death_is_128_plus_n(signum):
    pid = os.fork()
    if pid == 0:
        try:
            if signum != signal.SIGKILL:
                signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert 128 + signum == outcome.exit_code_for_wait_status(status)
