"""Parity with the toolkit's own launch code: for each recorded tree (one host, two hosts, each
instance family, Neuron, SMDataParallel, an MPI worker), the argv and the launch environment
that `sm-entry doctor` shows are those the pinned toolkit builds for the same tree.

The toolkit side is `tests/toolkit/launch/probe.py`, run live in its venv
(sagemaker-training 5.1.4 and the PyTorch containers' sagemaker-pytorch-training
3.0.0, every process launch intercepted). The sm-entry side is the binary's
`doctor`, which plans the job without running it, in a network namespace that
has the trees' `eth0` (and `eth1`); GPUs and Neuron cores come from stand-ins for
`nvidia-smi` and `neuron-ls` on PATH. What differs on purpose is listed in
DELIBERATE, each with its reason; any other difference fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO, require_root, require_tool

LAUNCH = REPO / "tests" / "toolkit" / "launch"
TOOLKIT_PYTHON = REPO / "build" / "venv-sagemaker-training" / "bin" / "python"
CASES = sorted(path.name for path in (LAUNCH / "cases").iterdir()
               if (path / "case.json").is_file())
LAUNCH_PREFIXES = ("FI_", "RDMAV_", "NCCL_", "MASTER_", "GLOO_", "SMDATAPARALLEL_",
                   "SAGEMAKER_INSTANCE_TYPE")
# Known and wanted differences: (what, why).
DELIBERATE = {
    "ld_preload": "the toolkit preloads its own gethostname() library into MPI ranks; "
                  "sm-entry ships no library into the image",
    "localhost": "one host: sm-entry runs the ranks as localhost (no name to resolve, no SSH)",
    "exports": "sm-entry passes on -x only variables that are set (mpirun warns of the others) "
               "and also the training environment under SMDataParallel (its workers write no "
               "/etc/environment)",
    "user_wins": "a value the user set wins (the toolkit overwrites it)",
    "gloo": "GLOO_SOCKET_IFNAME beside NCCL_SOCKET_IFNAME, for the gloo backend",
    "mpirun_env": "under mpirun the PyTorch containers' own variables are not set "
                  "(sm-entry cannot tell a PyTorch image); mpirun's -x exports carry the "
                  "toolkit's",
    "sshd": "an MPI worker's sshd also logs to stderr (-e) and names the report file",
}


@pytest.fixture(scope="module")
def toolkit():
    """What the toolkit builds for every case: {name: probe output}."""
    if not TOOLKIT_PYTHON.exists():
        pytest.skip(f"{TOOLKIT_PYTHON} missing: `make test` builds it")
    done = subprocess.run([str(TOOLKIT_PYTHON), str(LAUNCH / "probe.py"), "--cases", "--print"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert 0 == done.returncode, done.stderr
    result: dict = json.loads(done.stdout.splitlines()[-1])
    return result


def stand_in(path, script):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def sm_entry_view(binary, name, options, tmp_path):
    """(argv, env) of `sm-entry doctor` on the case's tree, as the toolkit's probe sets it up."""
    case = json.loads((LAUNCH / "cases" / name / "case.json").read_text())
    args = case.get("args", [])
    gpus = int(args[args.index("--num-gpus") + 1]) if "--num-gpus" in args else 0
    neurons = int(args[args.index("--num-neurons") + 1]) if "--num-neurons" in args else 0
    base = tmp_path / "opt" / "ml"
    shutil.copytree(LAUNCH / "cases" / name / "opt_ml", base)
    (base / "model").mkdir()
    (base / "output" / "data").mkdir(parents=True)
    tools = tmp_path / "bin"
    if gpus:
        lines = "".join(f"GPU {i}: NVIDIA A100-SXM4-40GB (UUID: GPU-{i})\\n" for i in range(gpus))
        stand_in(tools / "nvidia-smi", f'printf "{lines}"\n')
    if neurons:
        devices = json.dumps([{"neuron_device": i, "nc_count": 2} for i in range(neurons // 2)])
        stand_in(tools / "neuron-ls", f"echo '{devices}'\n")
    for tool in ("mpirun", "neuron_parallel_compile", "torchrun", "sshd"):
        stand_in(tools / tool, "exit 0\n")
    if "--without-smddprun" not in args:
        stand_in(tools / "smddprun", "exit 0\n")
    python = tmp_path / "py" / "bin" / "python3"  # with mpi4py, as the toolkit assumes
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    (tmp_path / "py" / "lib" / "python3.11" / "site-packages" / "mpi4py").mkdir(parents=True)
    env = {key: value.replace("$TMP", str(tmp_path)).replace("$BASE", str(base))
           for key, value in options["base_env"].items()}
    env["PATH"] = f"{python.parent}:{tools}:{env['PATH']}"
    env.update(case.get("env") or {})
    done = subprocess.run(
        ["unshare", "--net", "--mount", "sh", "-c", "mount -t sysfs sysfs /sys && "
         'ip link add eth0 type veth peer name eth1 && exec "$@"', "-",
         *binary, "--root", str(base), "doctor"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert 0 == done.returncode, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    argv = shlex.split(next(line for line in lines if line.startswith("command: "))[9:])
    start = lines.index("environment:") + 1
    ours = dict(line.strip().split("=", 1) for line in lines[start:] if line.startswith("  "))
    replace = {str(python): "$PYTHON", str(base): "$BASE", str(tmp_path): "$TMP"}
    for path, mark in replace.items():
        argv = [word.replace(path, mark) for word in argv]
    for index, word in enumerate(argv):
        if word.startswith(("$TMP/bin/", "$TMP/py/bin/")):
            argv[index] = os.path.basename(word)
    return argv, ours, case.get("env") or {}


def normalise_toolkit(argv):
    """The toolkit's argv less what differs on purpose: its LD_PRELOAD and its -x NAME list."""
    argv = list(argv)
    if "-x" in argv:
        at = [i for i, word in enumerate(argv) if word == "-x"
              and argv[i + 1].startswith("LD_PRELOAD=")]
        for index in reversed(at):
            del argv[index:index + 2]  # ld_preload
    return argv


def split_exports(argv):
    """(argv without `-x NAME` pass-throughs, the names passed through)."""
    rest, names = [], []
    index = 0
    while index < len(argv):
        if argv[index] == "-x" and index + 1 < len(argv) and "=" not in argv[index + 1]:
            names.append(argv[index + 1])
            index += 2
            continue
        rest.append(argv[index])
        index += 1
    return rest, names


def one_host_list(argv, current_host):
    """localhost[:P] for the current host's name, slots dropped (the toolkit's SMDDP has none)."""
    argv = list(argv)
    if "--host" in argv:
        at = argv.index("--host") + 1
        hosts = argv[at].split(",")
        if len(hosts) == 1:
            argv[at] = hosts[0].split(":")[0].replace("localhost", current_host)  # localhost
    return argv


@pytest.mark.parametrize("name", CASES)
def test_the_launch_is_the_toolkits(toolkit, static_only, tmp_path, name):
    require_root()
    require_tool("unshare")
    require_tool("ip")
    theirs = toolkit[name]
    argv, ours, user = sm_entry_view([static_only], name, theirs, tmp_path)
    current = json.loads((LAUNCH / "cases" / name / "opt_ml" / "input" / "config" /
                          "resourceconfig.json").read_text())["current_host"]
    expected = normalise_toolkit(theirs["argv"])
    if os.path.basename(expected[0]) == "sshd":  # an MPI worker: sshd -D, then ours (sshd)
        assert ["sshd", "-D"] == [os.path.basename(argv[0]), argv[1]]
        return
    mine, my_exports = split_exports(one_host_list(argv, current))
    expected, their_exports = split_exports(one_host_list(expected, current))
    assert expected == mine
    # exports: ours are those of theirs that are set, and under SMDDP the training environment
    set_here = {name for name in their_exports if name in ours}
    assert set_here <= set(my_exports), set_here - set(my_exports)
    extra = set(my_exports) - set(their_exports)
    assert all(name.startswith("SM_") or name in ("PYTHONPATH",) for name in extra), extra
    # the launch environment: the toolkit's, less what the user set (theirs overwrites it)
    launch = {key: value for key, value in theirs["launch_env"].items()
              if key.startswith(LAUNCH_PREFIXES)}
    mine_launch = {key: value for key, value in ours.items() if key.startswith(LAUNCH_PREFIXES)
                   and key != "GLOO_SOCKET_IFNAME"}  # gloo
    for key, value in user.items():  # user_wins
        if key in launch:
            launch[key] = value
    if theirs["argv"][0] == "mpirun":  # mpirun_env
        launch = {key: value for key, value in launch.items()
                  if key not in ("NCCL_DEBUG", "NCCL_IB_DISABLE", "MASTER_ADDR", "MASTER_PORT",
                                 "NCCL_SOCKET_IFNAME")}
    assert launch == mine_launch
