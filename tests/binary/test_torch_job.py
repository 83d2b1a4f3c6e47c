"""A PyTorch job with DataLoader workers, stopped with SIGTERM under dist/sm-entry as PID 1.

The default signal scope sends SIGTERM to the training script only: its handler
sets a flag, the loop checkpoints and the job succeeds while the DataLoader's
workers still run (the script stops them on its way out). With
`--signal-scope group` the workers get SIGTERM too and die at once, and
torch's SIGCHLD handler turns that into a RuntimeError in the main process:
the job fails, whatever the script does.

Needs root (a PID namespace) and torch importable by .venv/bin/python (CI
installs torch==2.13.0 into the venv).
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    CHILDREN,
    STATIC_BINARY,
    VENV_PYTHON,
    Pid1,
    children_of,
    process_state,
    require_binary,
    require_root,
    require_tool,
    torch_problem,
)

JOB = CHILDREN / "dataloader_job.py"
STARTED = r"training started pid (\d+) workers (\d+),(\d+)$"
# Importing torch takes seconds on a slow machine; the job needs ~3 s here.
START_TIMEOUT = 90.0
# The job's own grace: a hung job is SIGKILLed by sm-entry well before our timeout.
STOP_TIMEOUT = 20.0
EXIT_TIMEOUT = 60.0


@pytest.fixture
def static() -> str:
    require_root()
    require_tool("unshare")
    binary = require_binary(STATIC_BINARY)
    problem = torch_problem()
    if problem:
        pytest.skip(problem)
    return binary


def make_tree(root: Path) -> Path:
    """A minimal /opt/ml tree: `sm-entry train` creates model/ and output/ itself."""
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text("{}")
    return root


def start_job(static: str, root: Path, *options: str) -> Pid1:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "raw"}
    return Pid1([static, "--root", str(root), "--stop-timeout", str(STOP_TIMEOUT), *options,
                 "train", "--", str(VENV_PYTHON), str(JOB),
                 "--checkpoint-dir", str(root / "checkpoints")], env=env)


def pid_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def descendants(pid: int) -> list[int]:
    found = []
    for child in children_of(pid):
        found.extend([child, *descendants(child)])
    return found


def host_pids(pid1: int) -> dict[int, int]:
    """{pid inside the namespace: pid outside} for PID 1's tree."""
    mapping = {}
    for pid in [pid1, *descendants(pid1)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspids = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        assert nspids is not None
        mapping[int(nspids.group(1).split()[-1])] = pid
    return mapping


class Job:
    """The job's main process and DataLoader workers, pids outside and inside the namespace."""

    def __init__(self, proc: Pid1) -> None:
        started = proc.wait_for_line(STARTED, timeout=START_TIMEOUT)
        self.main_inside, *self.workers_inside = (int(p) for p in started.groups())
        outside = host_pids(proc.pid1)
        self.main = outside[self.main_inside]
        self.workers = [outside[p] for p in self.workers_inside]
        # What the script printed is the tree we see: sm-entry > main > two workers.
        assert self.main in descendants(proc.pid1)
        assert sorted(self.workers) == sorted(children_of(self.main))


def in_namespace(namespace: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def assert_all_gone(pids: list[int], namespace: str) -> None:
    """None of `pids` runs (a reused pid outside the namespace is another process)."""
    def gone(pid: int) -> bool:
        if process_state(pid) is None:
            return True
        try:
            return pid_namespace(pid) != namespace
        except OSError:
            return True

    assert [] == [pid for pid in pids if not gone(pid)]
    assert [] == in_namespace(namespace)


def sm_entry_events(stderr: str) -> list[dict]:
    """sm-entry's own events (json lines) among the job's raw stderr."""
    events = []
    for line in stderr.splitlines():
        if line.startswith('{"ts"'):
            record = json.loads(line)
            if record.get("src") == "sm-entry":
                events.append(record)
    return events


def load_checkpoint(path: Path) -> dict:
    code = ("import json, sys, torch; s = torch.load(sys.argv[1]); print(json.dumps("
            "{'keys': sorted(s), 'epoch': s['epoch'], 'step': s['step'], "
            "'layers': len(s['model']), 'momentum': len(s['optimizer']['state'])}))")
    result = subprocess.run([str(VENV_PYTHON), "-c", code, str(path)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert 0 == result.returncode, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_sigterm_mid_epoch_as_pid1_lets_the_dataloader_job_checkpoint_and_succeed(static, tmp_path):
    root = make_tree(tmp_path / "ml")
    proc = start_job(static, root)
    try:
        namespace = pid_namespace(proc.pid1)
        job = Job(proc)
        proc.kill(signal.SIGTERM)
        stopped = proc.wait_for_line(r"stop requested at step (\d+) workers alive (\d+)$",
                                     timeout=EXIT_TIMEOUT)
        saved = proc.wait_for_line(r"checkpoint saved step (\d+) path (.+)$", timeout=EXIT_TIMEOUT)
        code = proc.wait(EXIT_TIMEOUT)
        stderr = proc.stderr_text()
    finally:
        proc.close()

    assert 0 == code, stderr[-3000:]
    # The handler ran while the workers lived: SIGTERM reached the main process only.
    assert "2" == stopped.group(2)
    assert "killed by signal" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    forwarded = [e for e in sm_entry_events(stderr) if e["msg"] == "signal forwarded"]
    assert [("SIGTERM", "child")] == [(e["signal"], e["scope"]) for e in forwarded]
    # Nothing had to be killed: the script stopped its workers itself on its way out.
    assert [] == [e["msg"] for e in sm_entry_events(stderr)
                  if e["level"] == "error" or e["msg"].startswith(("killing", "second stop"))]

    checkpoint = root / "checkpoints" / "checkpoint.pt"
    assert str(checkpoint) == saved.group(2)
    state = load_checkpoint(checkpoint)
    assert ["epoch", "model", "optimizer", "step"] == state["keys"]
    assert int(saved.group(1)) == state["step"] == int(stopped.group(1)) >= 1
    assert 8 == state["layers"] and 8 == state["momentum"]  # 4 Linear layers, weight and bias
    assert not (root / "checkpoints" / "checkpoint.pt.tmp").exists()

    assert (root / "output" / "success").exists()
    assert not (root / "output" / "failure").exists()
    assert_all_gone([job.main, *job.workers], namespace)


def test_group_scope_kills_the_workers_first_and_the_job_fails(static, tmp_path):
    root = make_tree(tmp_path / "ml")
    proc = start_job(static, root, "--signal-scope", "group")
    try:
        namespace = pid_namespace(proc.pid1)
        job = Job(proc)
        proc.kill(signal.SIGTERM)
        code = proc.wait(EXIT_TIMEOUT)
        stderr = proc.stderr_text()
    finally:
        proc.close()

    # The workers died of the SIGTERM at once; torch's SIGCHLD handler raised that
    # in the main process, wherever it was (waiting for a batch, or in torch.save).
    assert 1 == code, stderr[-3000:]
    assert not (root / "output" / "success").exists()
    reason = (root / "output" / "failure").read_text()
    killed = re.search(r"DataLoader worker \(pid (\d+)\) is killed by signal: Terminated", reason)
    assert killed, reason
    assert int(killed.group(1)) in job.workers_inside, reason
    # It never got as far as a whole checkpoint (at most a partial checkpoint.pt.tmp).
    assert not any("checkpoint saved" in line for line in proc.lines), proc.lines
    assert not (root / "checkpoints" / "checkpoint.pt").exists()
    forwarded = [e for e in sm_entry_events(stderr) if e["msg"] == "signal forwarded"]
    assert [("SIGTERM", "group")] == [(e["signal"], e["scope"]) for e in forwarded]
    assert_all_gone([job.main, *job.workers], namespace)
