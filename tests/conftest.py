import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from supervisor.core import tree
from tests.support import OPEN_RUNS, SOURCE_COMMAND, STATIC_BINARY, ExactEnv, require_binary

PR_SET_CHILD_SUBREAPER = 36

# As a background job (`make test &`) or under nohup, the shell ignores SIGINT, SIGQUIT
# or SIGHUP for us, and sm-entry, as tini does, keeps what its parent ignores ignored for
# its child. The tests send those signals: they run with a foreground command's dispositions
# (the tests of that very rule give the child their own).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
# Modules whose every test needs root (namespaces, chroot, podman).
ROOT_MODULES = {"test_pid1", "test_chroot", "test_podman", "test_torch_job", "test_multihost",
                "test_oom", "test_sdk_local", "test_toolkit_launch_parity"}


@pytest.fixture(params=["source", pytest.param("static", marks=pytest.mark.binary)])
def sm_entry(request) -> list[str]:
    """sm-entry as a command prefix: from source, and as the built static binary."""
    if request.param == "source":
        return list(SOURCE_COMMAND)
    return [require_binary(STATIC_BINARY)]


@pytest.fixture
def static_only() -> str:
    return require_binary(STATIC_BINARY)


def pytest_collection_modifyitems(items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "binary" in parts:
            item.add_marker(pytest.mark.binary)
        if Path(str(item.fspath)).stem in ROOT_MODULES:
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _end_what_the_test_started():
    """Pass or fail, every process a test started through tests.support is ended."""
    yield
    for run in list(OPEN_RUNS):
        run.close()


PRIVATE_TMPDIR = "sm-entry-tests-"  # each run's own TMPDIR


class _PrivateTmpPopen(subprocess.Popen):  # type: ignore[type-arg]
    """Every process a test starts gets the run's own TMPDIR, unless it is given another
    (or an ExactEnv).

    So whatever our programs leave (the static binary's unpacking, serve's
    sockets, torchrun's logs) is found in the run's directory, and only
    there: another program on the machine that writes to /tmp meanwhile (an
    sm-entry outside this run) is never taken for a leak of ours.
    """

    def __init__(self, *args, **kwargs):
        env = kwargs.get("env")
        if (env is not None and "TMPDIR" not in env and "TMPDIR" in os.environ
                and not isinstance(env, ExactEnv)):
            kwargs["env"] = {**env, "TMPDIR": os.environ["TMPDIR"]}
        super().__init__(*args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind():
    """The whole run leaves no process and no temporary file behind; else it fails.

    pytest is made a subreaper, so whatever a test leaves running comes back
    to it here instead of disappearing under the machine's init. The run gets
    a private TMPDIR, handed to every process a test starts, which must be
    empty at the end (pytest's own directory aside).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    private = tempfile.mkdtemp(prefix=PRIVATE_TMPDIR)
    os.environ["TMPDIR"] = tempfile.tempdir = private
    subprocess.Popen = _PrivateTmpPopen  # type: ignore[misc]
    yield
    deadline = time.monotonic() + 10
    while (left := tree.descendants(os.getpid())) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    described = [_describe(pid) for pid in left]
    tree.signal_each(left, signal.SIGKILL)
    _reap()
    added = sorted(f"{private}/{name}" for name in os.listdir(private)
                   if not name.startswith("pytest-of-"))
    shutil.rmtree(private, ignore_errors=True)
    problems = []
    if described:
        problems.append(f"processes left running: {described}")
    if added:
        problems.append(f"temporary entries left: {added}")
    if problems:
        pytest.fail("the test run left things behind: " + "; ".join(problems), pytrace=False)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return str(pid)
    return f"{pid} {command!r}"
