"""The process tree read from /proc: children of every thread, setsid'd daemons, the fallback."""

import contextlib
import os
import signal
import subprocess
import threading
import time

import pytest

from supervisor.core import tree
from tests.support import wait_until

# A shell whose child is a daemon in its own session, whose child is a sleep: three levels.
TREE_SCRIPT = "setsid sh -c 'sleep 60 & echo $! > {ready}.grandchild; wait' & echo $! > {ready}.child; wait"


@pytest.fixture(params=["children files", "stat fallback"])
def walk(request, monkeypatch):
    """Both ways of reading the tree: /proc/PID/task/TID/children, and every /proc/PID/stat."""
    monkeypatch.setattr(tree, "_children_files", request.param == "children files")
    return request.param


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _wait_for(path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and _read(path).strip():
            return int(_read(path))
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written")


@pytest.fixture
def three_levels(tmp_path):
    ready = tmp_path / "pid"
    top = subprocess.Popen(["sh", "-c", TREE_SCRIPT.format(ready=ready)], start_new_session=True)
    child = _wait_for(f"{ready}.child")
    grandchild = _wait_for(f"{ready}.grandchild")
    yield top.pid, child, grandchild
    for pid in (grandchild, child, top.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    top.wait()
    # The others come back to the test run (a subreaper) once their parents are gone: reap them.
    left, deadline = {child, grandchild}, time.monotonic() + 30
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    left.discard(pid)
            except ChildProcessError:  # not ours yet, or reaped by someone else
                if not tree.exists(pid):
                    left.discard(pid)
        time.sleep(0.01)


def _settled(pid, expected):
    """The tree once `expected` processes are there (a fork is seen a moment after its pid)."""
    deadline = time.monotonic() + 30
    while len(found := tree.descendants(pid)) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def test_every_level_is_found_parents_first_daemons_included(walk, three_levels):
    top, child, grandchild = three_levels
    found = _settled(top, 2)
    assert [child, grandchild] == found
    assert [child] == tree.children(top)
    assert [grandchild] == tree.children(child)
    assert [] == tree.children(grandchild)


def test_a_process_without_children_has_no_descendants(walk, three_levels):
    assert [] == tree.descendants(three_levels[2])


def test_children_of_every_thread_are_found(walk):
    # A child started by another thread is listed under that thread's task, not the main one.
    started = []
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "60"])))
    thread.start()
    thread.join()
    sleeper = started[0]
    try:
        # The thread's end moves its child to another thread: a moment the children files
        # do not show (the kernel says they are not reliable while children are reparented).
        wait_until(lambda: sleeper.pid in tree.children(os.getpid()), timeout=10,
                   what="the thread's child among ours")
        assert sleeper.pid in tree.descendants(os.getpid())
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_that_is_gone_has_no_children():
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert [] == tree.children(dead.pid)


def test_the_children_files_are_looked_for_once(monkeypatch):
    monkeypatch.setattr(tree, "_children_files", None)
    assert tree._have_children_files() is os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    monkeypatch.setattr(os.path, "exists", lambda path: not tree._children_files)
    assert tree._have_children_files() is tree._children_files  # cached: not looked up again


def test_signals_reach_each_process_and_count_those_still_there(three_levels):
    _, child, grandchild = three_levels
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert 2 == tree.signal_each([child, gone.pid, grandchild], signal.SIGSTOP)
    for pid in (child, grandchild):
        deadline = time.monotonic() + 30
        while b") T " not in _read(f"/proc/{pid}/stat") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b") T " in _read(f"/proc/{pid}/stat")  # stopped: the signal arrived
    tree.signal_each([child, grandchild], signal.SIGCONT)


def test_a_group_signal_says_whether_the_group_is_there(three_levels):
    top = three_levels[0]
    assert tree.signal_group(os.getpgid(top), 0)
    assert tree.exists(top)
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    assert not tree.signal_group(gone.pid, 0)
    assert not tree.exists(gone.pid)


def test_asking_whether_a_process_exists_sends_it_nothing():
    sleeper = subprocess.Popen(["sleep", "60"])  # SIGHUP or SIGINT would end it
    try:
        assert tree.exists(sleeper.pid)
        time.sleep(0.2)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
