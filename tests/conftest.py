import ctypes
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from supervisor.core import tree
from tests.support import OPEN_RUNS, SOURCE_COMMAND, STATIC_BINARY, require_binary

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
                "test_oom"}


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


# What our programs put in the temporary directory: the static binary's unpacking, serve's
# sockets, the tests' own PID-1 runs, the log directories of the torchrun the tests start.
# Any of these left in /tmp after the run is a leak of ours (other names may be another
# program's, running beside the tests).
OUR_TEMPORARY = ("staticx-", "_MEI", "sm-entry-", ".sm-entry-", "pymp-", "torchelastic_")


PRIVATE_TMPDIR = "sm-entry-tests-"  # each run's own TMPDIR, checked apart (runs may overlap)


def _tmp_entries() -> set[str]:
    if os.environ.get("SM_ENTRY_TESTS_SHARED_TMP") == "1":
        return set()  # other runs use /tmp meanwhile (make mutation); the private TMPDIR counts
    return {name for name in os.listdir("/tmp")
            if name.startswith(OUR_TEMPORARY) and not name.startswith(PRIVATE_TMPDIR)}


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind():
    """The whole run leaves no process and no temporary file behind; else it fails.

    pytest is made a subreaper, so whatever a test leaves running comes back
    to it here instead of disappearing under the machine's init. The run gets
    a private TMPDIR, which must be empty at the end (pytest's own directory
    aside), and /tmp must not have gained anything named like ours.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    before = _tmp_entries()
    private = tempfile.mkdtemp(prefix=PRIVATE_TMPDIR)
    os.environ["TMPDIR"] = tempfile.tempdir = private
    yield
    deadline = time.monotonic() + 10
    while (left := tree.descendants(os.getpid())) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    described = [_describe(pid) for pid in left]
    tree.signal_each(left, signal.SIGKILL)
    _reap()
    added = sorted(_tmp_entries() - before)
    added += sorted(f"{private}/{name}" for name in os.listdir(private)
                    if not name.startswith("pytest-of-"))
    shutil.rmtree(private, ignore_errors=True)
    problems = []
    if described:
        problems.append(f"processes left running: {described}")
    if added:
        problems.append(f"/tmp entries left: {added}")
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
