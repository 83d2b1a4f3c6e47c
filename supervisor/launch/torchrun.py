"""torchrun across the hosts of a training job, as the SageMaker PyTorch containers start it.

Each host's sm-entry starts one torchrun, its main child: our stop signals
reach torchrun first, which stops its ranks in its own order. torchrun
starts `nproc_per_node` ranks and meets the other hosts' torchruns at the
master (`--master_addr`, port 7777, `--node_rank` = the host's place in the
distribution hosts). A single host gets no rendezvous arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor import errors
from supervisor.executables import find_on_path

MASTER_PORT = 7777
LAUNCHERS = ("auto", "torchrun", "mpi", "none")
# The framework hyperparameters that ask for torchrun (native PyTorch DDP, torch_distributed).
TORCHRUN_FLAGS = ("sagemaker_torch_distributed_enabled", "sagemaker_pytorch_ddp_enabled")
MPI_FLAG = "sagemaker_mpi_enabled"
PROCESSES_PER_HOST = "sagemaker_mpi_num_of_processes_per_host"


def choose(requested: str, framework: Mapping[str, Any]) -> str:
    """The launcher: the one asked for (--launcher), else what the hyperparameters enable.

    A flag counts when its decoded value is truthy, as the toolkits read it
    (`"false"` decodes to False; the string `"False"` is truthy).
    """
    if requested != "auto":
        return requested
    if framework.get(MPI_FLAG):
        return "mpi"
    if any(framework.get(flag) for flag in TORCHRUN_FLAGS):
        return "torchrun"
    return "none"


def processes_per_host(num_gpus: int, num_neurons: int, framework: Mapping[str, Any]) -> int:
    """Ranks per host: GPUs, else Neuron cores, else sagemaker_mpi_num_of_processes_per_host."""
    if num_gpus > 0:
        return num_gpus
    if num_neurons > 0:
        return num_neurons
    value = framework.get(PROCESSES_PER_HOST)
    try:
        count = int(value) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        raise errors.ConfigError(PROCESSES_PER_HOST, f"{value!r} is not a number of processes"
                                 ) from None
    return count if count > 0 else 1


@dataclass(frozen=True)
class Torchrun:
    """One host's part of a torchrun job."""

    hosts: list[str]  # the distribution hosts, in order: node ranks
    current_host: str
    master: str
    nproc_per_node: int
    interface: str  # the network interface the hosts reach each other on

    @staticmethod
    def tees(environ: Mapping[str, str]) -> bool:
        """torchrun tags its ranks' lines only with --tee, which it reads from PET_TEE here."""
        return environ.get("PET_TEE", "0").strip() not in ("", "0")

    @property
    def first_rank(self) -> int:
        """This host's first global rank: torchrun numbers ranks node by node."""
        if self.current_host in self.hosts:
            return self.hosts.index(self.current_host) * self.nproc_per_node
        return 0

    @property
    def takes_part(self) -> bool:
        """False on a host outside the distribution instance groups: it runs nothing."""
        return self.current_host in self.hosts or not self.hosts

    def command(self, program: Sequence[str], environ: Mapping[str, str]) -> list[str]:
        """torchrun's argv around the program (a Python script, a module, or any executable)."""
        python, target = _split_python(program)
        # The torchrun of the interpreter that runs the script, else the first on PATH.
        beside = os.path.join(os.path.dirname(python), "torchrun") if python else ""
        if beside and os.path.isfile(beside) and os.access(beside, os.X_OK):
            launcher: str | None = beside
        else:
            launcher = find_on_path("torchrun", environ, None)
        if launcher is None:
            if python is None:
                raise errors.CommandNotFound(
                    "torchrun", "needed by the torchrun launcher, and not on PATH")
            argv = [python, "-m", "torch.distributed.run"]
        else:
            argv = [launcher]
        argv += ["--nnodes", str(max(1, len(self.hosts))), "--nproc_per_node",
                 str(self.nproc_per_node)]
        if len(self.hosts) > 1:
            argv += ["--master_addr", self.master, "--master_port", str(MASTER_PORT),
                     "--node_rank", str(self.hosts.index(self.current_host))]
        return argv + target

    def environment(self, environ: Mapping[str, str],
                    net: str = "/sys/class/net") -> dict[str, str]:
        """What the ranks need to find each other; a value the user set wins.

        The interface is named only when this host has it (a local run without
        resourceconfig.json gets the toolkit's "eth0", which may not exist).
        """
        wanted = {"MASTER_ADDR": self.master, "MASTER_PORT": str(MASTER_PORT)}
        if os.path.isdir(os.path.join(net, self.interface)):
            wanted["NCCL_SOCKET_IFNAME"] = wanted["GLOO_SOCKET_IFNAME"] = self.interface
        return {name: value for name, value in wanted.items() if not environ.get(name)}


def _split_python(program: Sequence[str]) -> tuple[str | None, list[str]]:
    """(interpreter, torchrun's target): `x.py args`, `-m module args`, or `--no-python argv`."""
    if len(program) >= 2 and os.path.basename(program[0]).startswith("python"):
        if program[1] == "-m" and len(program) >= 3:
            return program[0], ["-m", *program[2:]]
        if not program[1].startswith("-"):
            return program[0], list(program[1:])
    return None, ["--no-python", *program]
