"""Two hosts as two network namespaces: `sm-entry train` on each starts torchrun or mpirun.

Each "host" is a network namespace with an `eth0` (one end of a veth pair)
and its own /etc/hosts naming algo-1 and algo-2 (`ip netns exec` binds
/etc/netns/NAME/hosts), running the static binary with its own root and
resourceconfig.json. Needs root, `ip`, dist/sm-entry and torch in .venv;
the MPI tests need Open MPI and OpenSSH (client and server) instead of torch,
configured as an MPI image is: /etc/ssh (here /etc/netns/NAME/ssh) with a
host key, a user key the hosts accept, and no host-key prompts.
"""

import json
import os
import shutil
import signal
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
    wait_until,
)

HOSTS = ["algo-1", "algo-2"]
ADDRESSES = {"algo-1": "10.213.0.1", "algo-2": "10.213.0.2"}
HYPERPARAMETERS = {"sagemaker_program": '"allreduce.py"',
                   "sagemaker_torch_distributed_enabled": "true",
                   "sagemaker_mpi_num_of_processes_per_host": "2"}
TIMEOUT = 300


MPI_HYPERPARAMETERS = {"sagemaker_program": '"mpi_ranks.py"', "sagemaker_mpi_enabled": "true",
                       "sagemaker_mpi_num_of_processes_per_host": "2",
                       "sagemaker_mpi_custom_mpi_options": '"-x FAIL_RANK -x HOLD"'}


class Cluster:
    """Two namespaces joined by a veth pair; removed whatever happens."""

    def __init__(self, ip: str, tmp_path: Path, hyperparameters=None, program="allreduce.py"):
        self.hyperparameters = hyperparameters or HYPERPARAMETERS
        self.program = program
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
            self.name_hosts(host, HOSTS)

    def name_hosts(self, host: str, names: list[str]) -> None:
        """The host's /etc/hosts, rewritten in place (the same file stays bind-mounted)."""
        (Path("/etc/netns") / self.names[host] / "hosts").write_text(
            "127.0.0.1 localhost\n" + "".join(f"{ADDRESSES[name]} {name}\n" for name in names))

    def _run(self, *args: str) -> None:
        subprocess.run([self.ip, *args], check=True, capture_output=True, timeout=30)

    def root(self, host: str) -> Path:
        root = self.tmp_path / host
        (root / "input" / "config").mkdir(parents=True)
        config = root / "input" / "config"
        (config / "hyperparameters.json").write_text(json.dumps(self.hyperparameters))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": host, "hosts": HOSTS, "network_interface_name": "eth0"}))
        (root / "code").mkdir()
        shutil.copy(CHILDREN / self.program, root / "code" / self.program)
        return root

    def configure_ssh(self, keygen: str) -> None:
        """Each host's /etc/ssh as an MPI image has it: sshd and ssh trusting one key."""
        keys = self.tmp_path / "ssh"
        keys.mkdir()
        for name in ("host_key", "user_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
                           check=True, timeout=60)
        shutil.copy(keys / "user_key.pub", keys / "authorized_keys")
        for ns in self.names.values():
            etc = Path("/etc/netns") / ns / "ssh"
            etc.mkdir(parents=True)
            (etc / "sshd_config").write_text(
                f"HostKey {keys / 'host_key'}\nAuthorizedKeysFile {keys / 'authorized_keys'}\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n")
            (etc / "ssh_config").write_text(
                f"Host *\n  IdentityFile {keys / 'user_key'}\n  StrictHostKeyChecking no\n"
                "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")

    def namespace_id(self, host: str) -> str:
        return subprocess.run([self.ip, "netns", "exec", self.names[host], "readlink",
                               "/proc/self/ns/net"], check=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    def train(self, host: str, root: Path, host_wait: str = "120", **extra: str
              ) -> subprocess.Popen:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json",
               "SM_ENTRY_PYTHON": str(VENV_PYTHON), "TMPDIR": str(self.tmp_path), **extra}
        proc = subprocess.Popen(
            [self.ip, "netns", "exec", self.names[host], STATIC_BINARY, "--root", str(root),
             "train", "--host-wait", host_wait],
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


@pytest.fixture
def mpi_cluster(tmp_path):
    require_root()
    ip = require_tool("ip")
    require_binary(STATIC_BINARY)
    for tool in ("mpirun", "ssh"):
        require_tool(tool)
    keygen = require_tool("ssh-keygen")
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("needs an SSH server (/usr/sbin/sshd): run `make test-deps` as root")
    made = Cluster(ip, tmp_path, MPI_HYPERPARAMETERS, "mpi_ranks.py")
    try:
        made.configure_ssh(keygen)
        yield made
    finally:
        made.close()


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    proc.stdout_text = stdout
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
    cluster.name_hosts("algo-1", ["algo-1"])  # algo-2 is not in DNS yet
    first = cluster.train("algo-1", roots["algo-1"])
    time.sleep(20)  # algo-2 appears 20 s later, as a slow instance would
    cluster.name_hosts("algo-1", HOSTS)
    second = cluster.train("algo-2", roots["algo-2"])
    for host, proc in (("algo-1", first), ("algo-2", second)):
        code, stderr = finish(proc)
        assert 0 == code, f"{host}: {stderr[-3000:]}"
        if host == "algo-1":
            waits = [r for r in records(stderr) if r["msg"] == "waiting for hosts to resolve"]
            assert waits and ["algo-2"] == waits[0]["missing"]
    assert "10" == (roots["algo-1"] / "model" / "sum.txt").read_text()


def test_a_host_that_never_appears_fails_clearly_at_the_host_wait_deadline(cluster):
    root = cluster.root("algo-1")
    cluster.name_hosts("algo-1", ["algo-1"])
    code, stderr = finish(cluster.train("algo-1", root, host_wait="3"))
    assert 65 == code, stderr[-3000:]
    assert (root / "output" / "failure").read_text().startswith(
        "hosts did not resolve within 3 s: algo-2 (cluster: algo-1, algo-2)")
    assert "child started" not in stderr


def test_a_rank_that_raises_fails_both_hosts_and_is_named(cluster):
    roots = {host: cluster.root(host) for host in HOSTS}
    procs = {host: cluster.train(host, roots[host], FAIL_RANK="3") for host in HOSTS}
    results = {host: finish(proc) for host, proc in procs.items()}
    assert all(code != 0 for code, _ in results.values()), results
    reason = (roots["algo-2"] / "output" / "failure").read_text()
    assert reason.startswith("ValueError: corrupt shard on rank 3\nRaised in rank 3 (local rank 1)")
    assert (roots["algo-1"] / "output" / "failure").exists()


def records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_mpirun_on_the_master_runs_two_ranks_on_each_host_and_both_succeed(mpi_cluster):
    roots = {host: mpi_cluster.root(host) for host in HOSTS}
    worker = mpi_cluster.train("algo-2", roots["algo-2"])
    master = mpi_cluster.train("algo-1", roots["algo-1"])
    (code, stderr), (worker_code, worker_stderr) = finish(master), finish(worker)
    assert 0 == code, stderr[-3000:]
    assert 0 == worker_code, worker_stderr[-3000:]
    model = roots["algo-1"] / "model"  # the ranks write where the master's SM_MODEL_DIR says
    where = {rank: (model / f"rank-{rank}.txt").read_text() for rank in range(4)}
    assert [mpi_cluster.namespace_id("algo-1")] * 2 + [mpi_cluster.namespace_id("algo-2")] * 2 \
        == [where[rank] for rank in range(4)]
    # Every rank's line is a record of the master's log with its rank as a field.
    said = {r["rank"]: r["msg"] for r in records(stdout_of(master)) if "rank" in r}
    assert {rank: f"rank {rank} of 4, local rank {rank % 2}" for rank in range(4)} == said
    assert (roots["algo-1"] / "output" / "success").exists()
    assert (roots["algo-2"] / "output" / "success").exists()
    started = [r for r in records(worker_stderr) if r.get("msg") == "child started"]
    assert ["/usr/sbin/sshd", "-D", "-e"] == started[0]["argv"][:3]


def stdout_of(proc: subprocess.Popen) -> str:
    return proc.stdout_text  # set by finish()


def test_a_rank_that_raises_on_the_worker_fails_both_hosts_and_is_named(mpi_cluster):
    roots = {host: mpi_cluster.root(host) for host in HOSTS}
    worker = mpi_cluster.train("algo-2", roots["algo-2"])
    master = mpi_cluster.train("algo-1", roots["algo-1"], FAIL_RANK="3")
    (code, stderr), (worker_code, _) = finish(master), finish(worker)
    assert 1 == code and 1 == worker_code, stderr[-3000:]
    reason = (roots["algo-1"] / "output" / "failure").read_text()
    assert reason.startswith("ValueError: corrupt shard on rank 3\nRaised in rank 3 (local rank 1) "
                             "on host algo-2, which exited with code 1; mpirun then stopped")
    assert (roots["algo-2"] / "output" / "failure").read_text() == (
        f"The MPI job failed on the master host algo-1 (exit code 1): {reason}")
    traceback = [r for r in records(stderr) if r.get("rank") == 3 and r["level"] == "error"]
    assert traceback[0]["msg"].startswith("Traceback (most recent call last):\n  File ")


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def holding_mpi_job(mpi_cluster):
    """Both hosts started, every rank holding: (roots, worker, master, the four rank PIDs)."""
    roots = {host: mpi_cluster.root(host) for host in HOSTS}
    worker = mpi_cluster.train("algo-2", roots["algo-2"])
    master = mpi_cluster.train("algo-1", roots["algo-1"], HOLD="1")
    model = roots["algo-1"] / "model"
    wait_until(lambda: all((model / f"rank-{rank}.pid").exists() for rank in range(4)),
               timeout=120, what="every rank holding")
    return roots, worker, master, [int((model / f"rank-{rank}.pid").read_text())
                                   for rank in range(4)]


def test_sigterm_to_a_worker_stops_the_ranks_under_its_sshd_and_the_job_fails(mpi_cluster):
    roots, worker, master, all_ranks = holding_mpi_job(mpi_cluster)
    pids = all_ranks[2:]  # the worker's
    assert all(worker.pid in ancestors(pid) for pid in pids)  # under the worker's sm-entry
    worker.send_signal(signal.SIGTERM)
    worker_code, worker_stderr = finish(worker)
    assert 143 == worker_code, worker_stderr[-3000:]
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert (roots["algo-2"] / "output" / "failure").read_text().startswith("stopped")
    code, stderr = finish(master)
    assert code != 0, stderr[-3000:]


def test_sigterm_to_the_master_stops_every_rank_through_mpirun_and_both_hosts_fail(mpi_cluster):
    roots, worker, master, pids = holding_mpi_job(mpi_cluster)
    master.send_signal(signal.SIGTERM)
    (code, stderr), (worker_code, worker_stderr) = finish(master), finish(worker)
    assert code != 0, stderr[-3000:]
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    reason = (roots["algo-1"] / "output" / "failure").read_text()
    assert "SIGTERM" in reason
    # The master told the worker at once (no wait for its fallback), even though it was stopped.
    assert code == worker_code, worker_stderr[-3000:]
    assert (roots["algo-2"] / "output" / "failure").read_text() == (
        f"The MPI job failed on the master host algo-1 (exit code {code}): {reason}")


def test_a_worker_whose_sshd_refuses_the_report_for_a_while_still_gets_it(mpi_cluster):
    # The report goes the way mpirun went (plm_rsh_agent): here an ssh that fails as ssh does
    # when it cannot connect (exit 255) for the report's first 5 s, then lets it through.
    agent = mpi_cluster.tmp_path / "flaky-ssh"
    first = mpi_cluster.tmp_path / "first-report"
    agent.write_text(
        "#!/bin/sh\n"
        'case "$*" in *SM_ENTRY_MPI_REPORT*)\n'
        f'  [ -f {first} ] || date +%s > {first}\n'
        f'  [ $(($(date +%s) - $(cat {first}))) -ge 5 ] || exit 255;;\n'
        "esac\n"
        'exec ssh "$@"\n')
    agent.chmod(0o755)
    mpi_cluster.hyperparameters = {**MPI_HYPERPARAMETERS, "sagemaker_mpi_custom_mpi_options":
                                   f'"-x FAIL_RANK -x HOLD -mca plm_rsh_agent {agent}"'}
    roots = {host: mpi_cluster.root(host) for host in HOSTS}
    worker = mpi_cluster.train("algo-2", roots["algo-2"])
    master = mpi_cluster.train("algo-1", roots["algo-1"])
    (code, stderr), (worker_code, worker_stderr) = finish(master), finish(worker)
    assert 0 == code, stderr[-3000:]
    assert 0 == worker_code, worker_stderr[-3000:]  # told by the master, not by a fallback
    assert first.exists()
    retries = [r for r in records(stderr) if r.get("msg") == "MPI workers not reachable yet: "
               "asking again"]
    assert retries and ["algo-2"] == retries[0]["hosts"]
    assert (roots["algo-2"] / "output" / "success").exists()


def test_a_master_killed_before_mpirun_fails_the_worker_at_its_own_deadline(mpi_cluster):
    roots = {host: mpi_cluster.root(host) for host in HOSTS}
    master = mpi_cluster.train("algo-1", roots["algo-1"])
    master.kill()  # before it could start anything on the worker
    started = time.monotonic()
    worker = mpi_cluster.train("algo-2", roots["algo-2"], host_wait="6")
    worker_code, worker_stderr = finish(worker)
    assert 1 == worker_code, worker_stderr[-3000:]
    assert time.monotonic() - started < 60
    assert (roots["algo-2"] / "output" / "failure").read_text().startswith(
        "the master (algo-1) did not start the MPI job on this host within 6 s (--host-wait)")
