"""Out of memory for certain: a job in a memory cgroup with a small limit, killed by the kernel.

Needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory (this
machine's layout); the counters of v2 are read by the same code (unit tests).
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import require_root

V1_MEMORY = Path("/sys/fs/cgroup/memory")
LIMIT = 128 << 20
HOG = "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n"


@pytest.fixture
def small_cgroup():
    require_root()
    if not (V1_MEMORY / "memory.oom_control").exists():
        pytest.skip("needs the cgroup v1 memory controller at /sys/fs/cgroup/memory")
    cgroup = V1_MEMORY / f"sm-entry-test-{os.getpid()}"
    cgroup.mkdir()
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(LIMIT))
        swap = cgroup / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(LIMIT))  # no swapping out of the limit
        yield cgroup
    finally:
        for pid in (cgroup / "cgroup.procs").read_text().split():
            os.kill(int(pid), 9)
        for _ in range(100):
            try:
                cgroup.rmdir()
                break
            except OSError:
                subprocess.run(["sleep", "0.1"])


def train_in(cgroup: Path, sm_entry, root: Path, *command: str):
    inside = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh"]
    return subprocess.run([*inside, *sm_entry, "--root", str(root), "train", "--", *command],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                               "SM_ENTRY_LOG_FORMAT": "json"})


def test_a_program_the_kernel_kills_for_memory_is_named_for_certain(sm_entry, small_cgroup,
                                                                    tmp_path):
    root = tmp_path / "ml"
    (root / "code").mkdir(parents=True)
    (root / "code" / "hog.py").write_text(HOG)
    result = train_in(small_cgroup, sm_entry, root, "python3", "hog.py")
    assert 137 == result.returncode, result.stderr[-3000:]
    first = (root / "output" / "failure").read_text().split("\n")[0]
    assert first.startswith("Out of memory: the container's memory limit (128.0 MiB) was "
                            "reached; the kernel killed PID ")
    assert first.endswith(" (python3 hog.py).")
    assert "the kernel's out-of-memory killer acted" in result.stderr


def test_a_program_killed_otherwise_is_still_only_likely(sm_entry, small_cgroup, tmp_path):
    root = tmp_path / "ml"
    (root / "code").mkdir(parents=True)
    result = train_in(small_cgroup, sm_entry, root, "sh", "-c", "kill -9 $$")
    assert 137 == result.returncode
    reason = (root / "output" / "failure").read_text()
    assert "Out of memory" not in reason and "most likely" in reason
