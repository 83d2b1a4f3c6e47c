"""The test command mutmut runs for each mutant (tests/mutation/run.py gives it).

- Bytecode is dropped first: tests that pass their own env to `python -m
  supervisor` let it write .pyc files, and a later mutant of the same size
  written in the same second would load the stale bytecode (a .pyc is checked
  by the source's mtime and size only).
- mutmut counts only exit code 1 as killed: a mutant that breaks the import
  (pytest exits 2) or kills pytest must count as killed too.
- mutmut ends a run that hangs (an infinite loop in a mutant) by killing us;
  pytest then dies with us (PR_SET_PDEATHSIG) instead of spinning on as an orphan.
- A mutant of the process tree code blinds the suite's own check for leftover
  processes (it uses that code): we are a subreaper, and kill whatever is left
  under us with our own walk of /proc, so no mutant's processes outlive its run,
  and its temporary files go under a directory we remove.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def die_with_parent() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


for cache in Path("supervisor").rglob("__pycache__"):
    shutil.rmtree(cache, ignore_errors=True)
def left_under_us() -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = [], [os.getpid()]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
# The run's temporary files go under a directory of ours, removed below even when mutmut
# killed pytest before its own clean-up ran.
scratch = tempfile.mkdtemp(prefix="sm-entry-mutant-")
code = subprocess.call(sys.argv[1:], preexec_fn=die_with_parent,
                       env={**os.environ, "TMPDIR": scratch})
for pid in left_under_us():
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
with contextlib.suppress(ChildProcessError):
    while os.waitpid(-1, 0):
        pass
shutil.rmtree(scratch, ignore_errors=True)
sys.exit(0 if code == 0 else 1)
