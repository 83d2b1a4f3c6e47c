"""mpirun across the hosts of a training job, as the SageMaker training toolkit starts it.

The master (the first distribution host) runs `mpirun` over every host; the
other hosts run an SSH daemon, through which mpirun starts its daemon
(`orted`) there and the ranks under it (see `mpiworker`). The options are
the toolkit's: one slot per rank on each host, the ranks mapped by slot (so
rank r runs on host r // P), TCP on the cluster's interface only, the job
aborted as soon as a rank exits non-zero, every line tagged with its rank.
Two flavours, as the toolkit's two runners: MPI (sagemaker_mpi_enabled) and
SMDataParallel (smddp: the same launch with `smddprun` before the program
and its own options and exports).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor import errors
from supervisor.executables import find_on_path

NUM_PROCESSES = "sagemaker_mpi_num_processes"
CUSTOM_OPTIONS = "sagemaker_mpi_custom_mpi_options"
SMDDP_CUSTOM_OPTIONS = "sagemaker_distributed_dataparallel_custom_mpi_options"
SMDDP_SERVER_PORT = 7592
MISSING_SMDDPRUN = ("smddprun (SageMaker's data parallel library) is not on PATH: the ranks run "
                    "without it, as the toolkit does")
DEFAULT_NCCL_DEBUG = "INFO"
# Passed on to every rank when set here (the toolkit's list).
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MISSING_MPIRUN = ("needed on the master host to launch an MPI job (sagemaker_mpi_enabled): "
                  "install Open MPI in the image (Debian/Ubuntu: apt-get install openmpi-bin)")


def _count(name: str, framework: Mapping[str, Any]) -> int:
    """A number of processes the hyperparameters give; 0 when unset (or 0, as the toolkit's)."""
    value = framework.get(name)
    if value is None or value == "":
        return 0
    try:
        count: int | None = int(value)
    except (TypeError, ValueError):
        count = None
    if count is None or count < 0 or isinstance(value, bool):
        raise errors.ConfigError(name, f"{value!r} is not a number of processes")
    return count


def split_custom_options(text: str) -> tuple[str, list[str]]:
    """(NCCL_DEBUG, the other options): `--NCCL_DEBUG X` is the toolkit's one known option."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()  # an unbalanced quote: as the toolkit splits
    nccl_debug = DEFAULT_NCCL_DEBUG
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--NCCL_DEBUG" and index + 1 < len(words):
            nccl_debug = words[index + 1]
            index += 2
            continue
        if word.startswith("--NCCL_DEBUG="):
            nccl_debug = word.partition("=")[2]
        else:
            rest.append(word)
        index += 1
    return nccl_debug, rest


def remote_shell(custom_options: str) -> list[str]:
    """How mpirun reaches the workers: the custom options' plm_rsh_agent (the first of its
    `a : b` choices) and plm_rsh_args, else ssh. The master's report goes the same way."""
    _, words = split_custom_options(custom_options)
    agent, extra = "ssh", ""
    for index, word in enumerate(words[:-2]):
        if word in ("-mca", "--mca"):
            name, value = words[index + 1], words[index + 2]
            if name == "plm_rsh_agent":
                agent = value.split(":")[0].strip() or "ssh"
            elif name == "plm_rsh_args":
                extra = value
    try:
        return [*shlex.split(agent), *shlex.split(extra)]
    except ValueError:
        return [*agent.split(), *extra.split()]


@dataclass(frozen=True)
class Mpi:
    """One host's part of an MPI job."""

    hosts: list[str]  # the distribution hosts, master first
    current_host: str
    master: str
    processes_per_host: int
    interface: str
    framework: Mapping[str, Any]
    flavor: str = "mpi"  # or "smddp"
    instance_type: str = "local"  # where the toolkit's runner reads it: which EFA exports

    @property
    def custom_options(self) -> str:
        name = SMDDP_CUSTOM_OPTIONS if self.flavor == "smddp" else CUSTOM_OPTIONS
        return str(self.framework.get(name) or "")

    @property
    def takes_part(self) -> bool:
        """False on a host outside the distribution instance groups: it runs nothing."""
        return self.current_host in self.hosts or not self.hosts

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master

    @property
    def workers(self) -> list[str]:
        return [host for host in self.hosts if host != self.master]

    @property
    def num_processes(self) -> int:
        every = self.processes_per_host * max(1, len(self.hosts))
        if self.flavor == "smddp":  # (SMDataParallel's runner does not read it)
            return every
        return _count(NUM_PROCESSES, self.framework) or every

    def rank_host(self, rank: int) -> tuple[str, int] | None:
        """(host, local rank) of a rank: mapped by slot, P slots per host in order."""
        host = rank // self.processes_per_host
        if 0 <= host < len(self.hosts):
            return self.hosts[host], rank % self.processes_per_host
        return None

    def command(self, program: Sequence[str], environ: Mapping[str, str],
                exports: Sequence[str], mpi4py: bool = False,
                net: str = "/sys/class/net") -> list[str]:
        """mpirun's argv: the toolkit's options, the custom ones, the exports, the program.

        `exports` are the variables the toolkit made (SM_*, PYTHONPATH): every
        rank on every host sees the master's values. `mpi4py`: run a Python
        program as `python -m mpi4py`, which aborts the whole job on an
        uncaught exception instead of leaving the other ranks waiting.
        """
        from supervisor.launch import efa

        mpirun = find_on_path("mpirun", environ, None)
        if mpirun is None:
            raise errors.CommandNotFound("mpirun", MISSING_MPIRUN)
        smddp = self.flavor == "smddp"
        slots = self.processes_per_host
        several = len(self.hosts) > 1
        # One host runs its ranks itself: no name to resolve, no SSH.
        hosts = self.hosts if several else ["localhost"]
        host_list = (hosts if slots == 1 and not (smddp and several)
                     else [f"{host}:{slots}" for host in hosts])
        nccl_debug, custom = split_custom_options(self.custom_options)
        argv = [mpirun, "--host", ",".join(host_list), "-np", str(self.num_processes),
                "--allow-run-as-root"]
        argv += ["--tag-output", "--oversubscribe"] if smddp else ["--display-map", "--tag-output"]
        # The interface is named only when this host has it (a local run without
        # resourceconfig.json gets the toolkit's "eth0", which may not exist).
        interface = self.interface if os.path.isdir(os.path.join(net, self.interface)) else None
        if interface:
            argv += ["-mca", "btl_tcp_if_include", interface,
                     "-mca", "oob_tcp_if_include", interface]
        argv += ["-mca", "plm_rsh_no_tree_spawn", "1"]
        if not smddp:
            argv += ["-bind-to", "none", "-map-by", "slot"]
        argv += ["-mca", "pml", "ob1", "-mca", "btl", "^openib",
                 "-mca", "orte_abort_on_non_zero_status", "1",
                 "-mca", "btl_vader_single_copy_mechanism", "none"]
        if smddp:
            argv += ["-mca", "plm_rsh_num_concurrent", str(max(1, len(self.hosts)))]
        else:
            argv += ["-x", "NCCL_MIN_NRINGS=4"]
        if interface:
            argv += ["-x", f"NCCL_SOCKET_IFNAME={interface}"]
        argv += ["-x", f"NCCL_DEBUG={nccl_debug}"]
        # mpirun warns of each -x NAME that is not set: only those that are.
        for name in ("LD_LIBRARY_PATH", "PATH"):
            if name in environ:
                argv += ["-x", name]
        if smddp:
            before, after = efa.smddp_exports(self.instance_type)
            flag = "SMDATAPARALLEL_USE_HOMOGENEOUS" if several else "SMDATAPARALLEL_USE_SINGLENODE"
            argv += ["-x", f"{flag}=1", *efa.export_args(before, environ), *custom,
                     *efa.export_args(after, environ)]
            if several:
                argv += efa.export_args([("SMDATAPARALLEL_SERVER_ADDR", self.master),
                                         ("SMDATAPARALLEL_SERVER_PORT", str(SMDDP_SERVER_PORT)),
                                         ("SAGEMAKER_INSTANCE_TYPE", self.instance_type)],
                                        environ)
        else:
            argv += [*custom, *efa.export_args(efa.mpi_exports(self.instance_type), environ)]
        for name in [*CREDENTIALS, *exports]:
            if name in environ:
                argv += ["-x", name]
        if smddp and find_on_path("smddprun", environ, None) is not None:
            argv.append("smddprun")  # by name: mpirun starts it on every host
        if mpi4py and len(program) >= 2 and _is_python(program[0]):
            program = [program[0], "-m", "mpi4py", *program[1:]]
        return argv + list(program)


def _is_python(path: str) -> bool:
    return os.path.basename(path).startswith("python")


def has_mpi4py(python: str, environ: Mapping[str, str]) -> bool:
    """Whether the interpreter can import mpi4py, read from its installation (no process).

    Looks in PYTHONPATH and in the site-packages/dist-packages of the
    interpreter's prefix (a venv, conda, /usr/local, Debian's /usr/lib/python3:
    `python3*` covers `python3`).
    """
    import glob

    path = python if os.sep in python else find_on_path(python, environ, None)
    if path is None:
        return False
    prefixes = {os.path.dirname(os.path.dirname(os.path.abspath(path))),
                os.path.dirname(os.path.dirname(os.path.realpath(path)))}
    places = [entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    for prefix in prefixes:
        places += glob.glob(os.path.join(prefix, "lib", "python3*", "*-packages"))
        places += glob.glob(os.path.join(prefix, "local", "lib", "python3*", "*-packages"))
    return any(os.path.isdir(os.path.join(place, "mpi4py")) for place in places)
