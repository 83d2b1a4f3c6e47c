"""`sm-entry train` under torchrun on one host: the ranks meet, a failing rank is named.

Needs torch importable by .venv/bin/python (`make test` installs torch==2.13.0).
"""

import json
import signal
import subprocess
from pathlib import Path

import pytest

from supervisor.core import tree
from tests.support import CHILDREN, VENV_PYTHON, Run, torch_problem

HYPERPARAMETERS = {"sagemaker_program": '"allreduce.py"',
                   "sagemaker_torch_distributed_enabled": "true",
                   "sagemaker_mpi_num_of_processes_per_host": "2"}


@pytest.fixture
def torch_job(tmp_path):
    problem = torch_problem()
    if problem:
        pytest.skip(problem)
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    (root / "code").mkdir()
    (root / "code" / "allreduce.py").write_text((CHILDREN / "allreduce.py").read_text())
    return root


def train(sm_entry, root: Path, **extra):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
           "SM_ENTRY_PYTHON": str(VENV_PYTHON), **extra}
    return subprocess.run([*sm_entry, "--root", str(root), "train"], capture_output=True,
                          text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


def test_torch_distributed_runs_the_ranks_under_torchrun(sm_entry, torch_job):
    result = train(sm_entry, torch_job)
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "3" == (torch_job / "model" / "sum.txt").read_text()  # 1 + 2: both ranks took part
    started = [json.loads(line) for line in result.stderr.splitlines()
               if '"msg":"child started"' in line]
    assert ["--nnodes", "1", "--nproc_per_node", "2", "allreduce.py"] == started[-1]["argv"][1:]
    assert (torch_job / "output" / "success").exists()


def test_a_failing_rank_is_named_with_its_exception(sm_entry, torch_job):
    result = train(sm_entry, torch_job, FAIL_RANK="1")
    assert 0 != result.returncode
    reason = (torch_job / "output" / "failure").read_text()
    assert reason.startswith("ValueError: corrupt shard on rank 1\nRaised in rank 1 (local rank 1)")
    assert "allreduce.py" in reason


def test_a_host_outside_the_distribution_groups_runs_nothing_and_succeeds(sm_entry, tmp_path):
    root = tmp_path / "ml"
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({
        **HYPERPARAMETERS, "sagemaker_distribution_instance_groups": '["gpus"]'}))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-2", "current_group_name": "data", "hosts": ["algo-1", "algo-2"],
        "instance_groups": [{"instance_group_name": "gpus", "hosts": ["algo-1"]},
                            {"instance_group_name": "data", "hosts": ["algo-2"]}]}))
    (root / "code").mkdir()
    (root / "code" / "allreduce.py").write_text("raise SystemExit('must not run here')\n")
    result = subprocess.run([*sm_entry, "--root", str(root), "train", "--host-wait", "0"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                                 "SM_ENTRY_LOG_FORMAT": "json"})
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "nothing to run here" in result.stderr
    assert "child started" not in result.stderr
    assert (root / "output" / "success").exists()


def test_mpi_asked_for_explicitly_is_refused_clearly(sm_entry, tmp_path):
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    result = subprocess.run([*sm_entry, "--root", str(root), "train", "--launcher", "mpi", "--",
                             "true"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    assert 78 == result.returncode
    assert "--launcher: mpi is not supported yet" in (root / "output" / "failure").read_text()


def test_a_stop_reaches_the_ranks_through_torchrun_and_none_is_left(sm_entry, torch_job):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
           "SM_ENTRY_PYTHON": str(VENV_PYTHON), "HOLD": "1"}
    proc = Run([*sm_entry, "--root", str(torch_job), "train"], env=env)
    try:
        ranks = [int(proc.wait_for_line(rf"rank {rank} holding pid (\d+)", timeout=240).group(1))
                 for rank in (0, 1)]
        proc.kill(signal.SIGTERM)
        assert 0 != proc.wait(timeout=120)
        assert not any(tree.exists(pid) for pid in ranks)
        assert "SIGTERM" in (torch_job / "output" / "failure").read_text()
    finally:
        proc.close()
