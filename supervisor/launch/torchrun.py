"""torchrun across the hosts of a training job, as the SageMaker PyTorch containers start it.

Each host's sm-entry starts one torchrun, its main child: our stop signals
reach torchrun first, which stops its ranks in its own order. torchrun
starts `nproc_per_node` ranks and meets the other hosts' torchruns at the
master (`--master_addr`, port 7777, `--node_rank` = the host's place in the
distribution hosts). A single host gets no rendezvous arguments. The
environment is the toolkit's (torch_distributed.py, with the EFA settings of
`efa`) and the PyTorch containers' (sagemaker-pytorch-training), except that
a value the user set wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor import errors
from supervisor.executables import find_on_path

MASTER_PORT = 7777
LAUNCHERS = ("auto", "torchrun", "mpi", "smddp", "none")
# The framework hyperparameters that ask for a launcher, in the order the PyTorch containers
# look at them (sagemaker-pytorch-training 3.0.0): pytorchddp is SMDataParallel's mpirun.
FLAGS = (
    ("sagemaker_mpi_enabled", "mpi"),
    ("sagemaker_pytorch_ddp_enabled", "smddp"),
    ("sagemaker_torch_distributed_enabled", "torchrun"),
    ("sagemaker_distributed_dataparallel_enabled", "smddp"),
)
PROCESSES_PER_HOST = "sagemaker_mpi_num_of_processes_per_host"
NEURON_COMPILE = "RUN_NEURON_PARALLEL_COMPILE"
MISSING_NEURON_COMPILE = ("asked for by RUN_NEURON_PARALLEL_COMPILE=1, and not on PATH: use an "
                          "image with the Neuron SDK (aws-neuronx-tools), or unset the variable")
# What the PyTorch containers set for every job, beside torch_distributed's own.
PYTORCH_CONTAINER_SETTINGS = {"NCCL_IB_DISABLE": "1", "NCCL_DEBUG": "WARN"}


def choose(requested: str, framework: Mapping[str, Any]) -> str:
    """The launcher: the one asked for (--launcher), else what the hyperparameters enable.

    A flag counts when its decoded value is truthy, as the toolkits read it
    (`"false"` decodes to False; the string `"False"` is truthy).
    """
    if requested != "auto":
        return requested
    for flag, launcher in FLAGS:
        if framework.get(flag):
            return launcher
    return "none"


def processes_per_host(num_gpus: int, num_neurons: int, framework: Mapping[str, Any]) -> int:
    """Ranks per host, for every launcher as the toolkit counts them:
    sagemaker_mpi_num_of_processes_per_host when given, else GPUs, else Neuron cores, else 1."""
    value = framework.get(PROCESSES_PER_HOST)
    if value is not None and value != "":
        try:
            count = int(value) if not isinstance(value, bool) else -1
        except (TypeError, ValueError):
            count = -1
        if count < 0:
            raise errors.ConfigError(PROCESSES_PER_HOST,
                                     f"{value!r} is not a number of processes")
        if count > 0:
            return count
    if num_gpus > 0:
        return num_gpus
    return num_neurons if num_neurons > 0 else 1


@dataclass(frozen=True)
class Torchrun:
    """One host's part of a torchrun job."""

    hosts: list[str]  # the distribution hosts, in order: node ranks
    current_host: str
    master: str
    nproc_per_node: int
    interface: str  # the network interface the hosts reach each other on
    instance_type: str = "local"  # resourceconfig's: which EFA settings apply

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
        if environ.get(NEURON_COMPILE) == "1":  # exactly "1", as the toolkit reads it
            compiler = find_on_path("neuron_parallel_compile", environ, None)
            if compiler is None:
                raise errors.CommandNotFound("neuron_parallel_compile", MISSING_NEURON_COMPILE)
            argv = [compiler, *argv]
        argv += ["--nnodes", str(max(1, len(self.hosts))), "--nproc_per_node",
                 str(self.nproc_per_node)]
        if len(self.hosts) > 1:
            argv += ["--master_addr", self.master, "--master_port", str(MASTER_PORT),
                     "--node_rank", str(self.hosts.index(self.current_host))]
        return argv + target

    def environment(self, environ: Mapping[str, str],
                    net: str = "/sys/class/net") -> dict[str, str]:
        """What the ranks need to find each other and to use EFA; a value the user set wins.

        The interface is named only when this host has it (a local run without
        resourceconfig.json gets the toolkit's "eth0", which may not exist).
        """
        from supervisor.launch import efa

        wanted = efa.torchrun_settings(self.instance_type)
        if os.path.isdir(os.path.join(net, self.interface)):
            wanted["NCCL_SOCKET_IFNAME"] = wanted["GLOO_SOCKET_IFNAME"] = self.interface
        wanted.update(PYTORCH_CONTAINER_SETTINGS)
        wanted.update({"MASTER_ADDR": self.master, "MASTER_PORT": str(MASTER_PORT)})
        return {name: value for name, value in wanted.items() if not environ.get(name)}


def _split_python(program: Sequence[str]) -> tuple[str | None, list[str]]:
    """(interpreter, torchrun's target): `x.py args`, `-m module args`, or `--no-python argv`."""
    if len(program) >= 2 and os.path.basename(program[0]).startswith("python"):
        if program[1] == "-m" and len(program) >= 3:
            return program[0], ["-m", *program[2:]]
        if not program[1].startswith("-"):
            return program[0], list(program[1:])
    return None, ["--no-python", *program]
