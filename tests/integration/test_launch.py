"""`sm-entry train` under torchrun or mpirun on one host: the ranks meet, a failing rank is named.

Needs torch importable by .venv/bin/python (`make test` installs torch==2.13.0), and Open MPI's
mpirun for the MPI tests.
"""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.core import tree
from tests.support import CHILDREN, VENV_PYTHON, Run, require_root, require_tool, torch_problem

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
           "SM_ENTRY_PYTHON": str(VENV_PYTHON), "TMPDIR": str(root.parent), **extra}
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


def test_with_torchruns_tee_every_ranks_line_has_its_rank_and_local_rank(sm_entry, torch_job):
    result = train(sm_entry, torch_job, PET_TEE="3")  # torchrun reads its options from PET_*
    assert 0 == result.returncode, result.stderr[-3000:]
    said = {(r["rank"], r["local_rank"]): r["msg"] for r in map(json.loads, result.stdout.splitlines())
            if "rank" in r}
    assert {(0, 0): "rank 0 of 2 on algo-1: sum 3", (1, 1): "rank 1 of 2 on algo-1: sum 3"} == said


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


def mpi_job(tmp_path, **hyperparameters):
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps({
        "sagemaker_program": '"mpi_ranks.py"', "sagemaker_mpi_enabled": "true",
        "sagemaker_mpi_num_of_processes_per_host": "2", **hyperparameters}))
    (root / "code").mkdir()
    (root / "code" / "mpi_ranks.py").write_text((CHILDREN / "mpi_ranks.py").read_text())
    return root


def test_mpi_on_one_host_runs_the_ranks_under_mpirun_each_line_with_its_rank(sm_entry, tmp_path):
    require_tool("mpirun")
    root = mpi_job(tmp_path)
    result = train(sm_entry, root, SM_ENTRY_PYTHON=sys.executable)
    assert 0 == result.returncode, result.stderr[-3000:]
    said = {r["rank"]: r["msg"] for r in map(json.loads, result.stdout.splitlines()) if "rank" in r}
    assert {0: "rank 0 of 2, local rank 0", 1: "rank 1 of 2, local rank 1"} == said
    assert (root / "model" / "rank-1.txt").exists() and (root / "output" / "success").exists()
    started = [json.loads(line) for line in result.stderr.splitlines()
               if '"msg":"child started"' in line][-1]
    assert ["--host", "localhost:2", "-np", "2"] == started["argv"][1:5]  # no other host to wait for


def test_a_failing_mpi_rank_is_named_with_its_exception(sm_entry, tmp_path):
    require_tool("mpirun")
    root = mpi_job(tmp_path, sagemaker_mpi_custom_mpi_options='"-x FAIL_RANK"')
    result = train(sm_entry, root, FAIL_RANK="1", SM_ENTRY_PYTHON=sys.executable)
    assert 1 == result.returncode, result.stderr[-3000:]
    assert (root / "output" / "failure").read_text().startswith(
        "ValueError: corrupt shard on rank 1\nRaised in rank 1 (local rank 1) on host algo-1, "
        "which exited with code 1; mpirun then stopped the other ranks.")


def test_mpi_without_mpirun_says_what_to_install(sm_entry, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "true").symlink_to(shutil.which("true"))
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    result = subprocess.run([*sm_entry, "--root", str(root), "train", "--launcher", "mpi", "--",
                             "true"], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, env={"PATH": str(bin_dir)})
    assert 127 == result.returncode, result.stderr[-3000:]
    assert "mpirun: needed on the master host" in (root / "output" / "failure").read_text()


def test_a_stop_reaches_the_ranks_through_torchrun_and_none_is_left(sm_entry, torch_job):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
           "SM_ENTRY_PYTHON": str(VENV_PYTHON), "HOLD": "1", "TMPDIR": str(torch_job.parent)}
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


def test_a_stop_during_a_host_wait_on_a_hanging_resolver_ends_at_once(sm_entry, tmp_path):
    """The other hosts' names go to a DNS server that never answers (a black hole): a look
    blocks for seconds, off the loop, and SIGTERM still ends the job within a second."""
    require_root()
    unshare = require_tool("unshare")
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.255.255.1\noptions timeout:10 attempts:3\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost algo-1\n")
    script = (f"mount --bind {resolv} /etc/resolv.conf && mount --bind {hosts} /etc/hosts && "
              'exec "$@"')
    run = Run([unshare, "--mount", "sh", "-c", script, "sh", *sm_entry, "--root", str(root),
               "train", "--", "true"],
              env={"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
                   "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while b"waiting for hosts to resolve" not in seen and time.monotonic() < deadline:
            seen += run.proc.stderr.read1(65536)
        assert b"waiting for hosts to resolve" in seen
        time.sleep(1)  # inside a look that takes 30 s
        started = time.monotonic()
        run.kill(signal.SIGTERM)
        assert 128 + signal.SIGTERM == run.proc.wait(10)
        assert time.monotonic() - started < 1.5
    finally:
        run.close()
