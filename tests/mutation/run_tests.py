"""The test command mutmut runs for each mutant (tests/mutation/run.py gives it).

- Bytecode is dropped first: tests that pass their own env to `python -m
  supervisor` let it write .pyc files, and a later mutant of the same size
  written in the same second would load the stale bytecode (a .pyc is checked
  by the source's mtime and size only).
- mutmut counts only exit code 1 as killed: a mutant that breaks the import
  (pytest exits 2) or kills pytest must count as killed too.
- mutmut ends a run that hangs (an infinite loop in a mutant) by killing us;
  pytest then dies with us (PR_SET_PDEATHSIG) instead of spinning on as an orphan.
"""

import ctypes
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


for cache in Path("supervisor").rglob("__pycache__"):
    shutil.rmtree(cache, ignore_errors=True)
code = subprocess.call(sys.argv[1:], preexec_fn=die_with_parent)
sys.exit(0 if code == 0 else 1)
