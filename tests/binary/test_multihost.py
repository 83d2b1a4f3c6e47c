"""Two hosts as two network namespaces: `sm-entry train` on each starts torchrun, the ranks meet.

Each "host" is a network namespace with an `eth0` (one end of a veth pair)
and its own /etc/hosts naming algo-1 and algo-2 (`ip netns exec` binds
/etc/netns/NAME/hosts), running the static binary with its own root and
resourceconfig.json. Needs root, `ip`, dist/sm-entry and torch in .venv.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import (
    CHILDREN,
    STATIC_BINARY,
    VENV_PYTHON,
    require_binary,
    require_root,
    require_tool,
    torch_problem,
)

HOSTS = ["algo-1", "algo-2"]
ADDRESSES = {"algo-1": "10.213.0.1", "algo-2": "10.213.0.2"}
HYPERPARAMETERS = {"sagemaker_program": '"allreduce.py"',
                   "sagemaker_torch_distributed_enabled": "true",
                   "sagemaker_mpi_num_of_processes_per_host": "2"}
TIMEOUT = 300


class Cluster:
    """Two namespaces joined by a veth pair; removed whatever happens."""

    def __init__(self, ip: str, tmp_path: Path) -> None:
        self.ip = ip
        tag = f"{os.getpid() % 100000}"
        self.names = {host: f"sm{tag}-{host}" for host in HOSTS}
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []
        veth = (f"sma{tag}", f"smb{tag}")
        self._run("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for host, end in zip(HOSTS, veth, strict=True):
            ns = self.names[host]
            self._run("netns", "add", ns)
            self._run("link", "set", end, "netns", ns)
            self._run("-n", ns, "link", "set", end, "name", "eth0")
            self._run("-n", ns, "addr", "add", f"{ADDRESSES[host]}/24", "dev", "eth0")
            self._run("-n", ns, "link", "set", "eth0", "up")
            self._run("-n", ns, "link", "set", "lo", "up")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
                f"{address} {name}\n" for name, address in ADDRESSES.items()))

    def _run(self, *args: str) -> None:
        subprocess.run([self.ip, *args], check=True, capture_output=True, timeout=30)

    def root(self, host: str) -> Path:
        root = self.tmp_path / host
        (root / "input" / "config").mkdir(parents=True)
        config = root / "input" / "config"
        (config / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": host, "hosts": HOSTS, "network_interface_name": "eth0"}))
        (root / "code").mkdir()
        shutil.copy(CHILDREN / "allreduce.py", root / "code" / "allreduce.py")
        return root

    def train(self, host: str, root: Path, **extra: str) -> subprocess.Popen:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
               "SM_ENTRY_PYTHON": str(VENV_PYTHON), **extra}
        proc = subprocess.Popen(
            [self.ip, "netns", "exec", self.names[host], STATIC_BINARY, "--root", str(root),
             "train", "--host-wait", "120"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        for ns in self.names.values():
            subprocess.run([self.ip, "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    require_root()
    ip = require_tool("ip")
    require_binary(STATIC_BINARY)
    problem = torch_problem()
    if problem:
        pytest.skip(problem)
    made = Cluster(ip, tmp_path)
    try:
        yield made
    finally:
        made.close()


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, stderr


def test_two_hosts_two_ranks_each_all_reduce_and_rank_0_writes_the_model(cluster):
    roots = {host: cluster.root(host) for host in HOSTS}
    procs = {host: cluster.train(host, roots[host]) for host in HOSTS}
    results = {host: finish(proc) for host, proc in procs.items()}
    for host, (code, stderr) in results.items():
        assert 0 == code, f"{host}: {stderr[-3000:]}"
    assert "10" == (roots["algo-1"] / "model" / "sum.txt").read_text()  # 1+2+3+4: four ranks
    assert not (roots["algo-2"] / "model" / "sum.txt").exists()
    started = [json.loads(line) for line in results["algo-2"][1].splitlines()
               if '"msg":"child started"' in line][-1]
    assert ["--nnodes", "2", "--nproc_per_node", "2", "--master_addr", "algo-1",
            "--master_port", "7777", "--node_rank", "1", "allreduce.py"] == started["argv"][1:]


def test_a_host_starting_late_is_waited_for(cluster):
    roots = {host: cluster.root(host) for host in HOSTS}
    first = cluster.train("algo-1", roots["algo-1"])
    time.sleep(20)  # algo-2's sm-entry starts 20 s later, as a slow instance would
    second = cluster.train("algo-2", roots["algo-2"])
    for host, proc in (("algo-1", first), ("algo-2", second)):
        code, stderr = finish(proc)
        assert 0 == code, f"{host}: {stderr[-3000:]}"
    assert "10" == (roots["algo-1"] / "model" / "sum.txt").read_text()


def test_a_rank_that_raises_fails_both_hosts_and_is_named(cluster):
    roots = {host: cluster.root(host) for host in HOSTS}
    procs = {host: cluster.train(host, roots[host], FAIL_RANK="3") for host in HOSTS}
    results = {host: finish(proc) for host, proc in procs.items()}
    assert all(code != 0 for code, _ in results.values()), results
    reason = (roots["algo-2"] / "output" / "failure").read_text()
    assert reason.startswith("ValueError: corrupt shard on rank 3\nRaised in rank 3 (local rank 1)")
    assert (roots["algo-1"] / "output" / "failure").exists()
