"""The torchrun launcher: which launcher, how many ranks, torchrun's argv and environment."""

import pytest

from supervisor import errors
from supervisor.launch import torchrun
from supervisor.launch.torchrun import Torchrun


@pytest.mark.parametrize(("requested", "framework", "chosen"), [
    ("auto", {}, "none"),
    ("auto", {"sagemaker_torch_distributed_enabled": True}, "torchrun"),
    ("auto", {"sagemaker_pytorch_ddp_enabled": True}, "smddp"),  # as the PyTorch containers
    ("auto", {"sagemaker_distributed_dataparallel_enabled": True}, "smddp"),
    ("auto", {"sagemaker_pytorch_ddp_enabled": True,
              "sagemaker_torch_distributed_enabled": True}, "smddp"),  # their order
    ("auto", {"sagemaker_torch_distributed_enabled": True,
              "sagemaker_distributed_dataparallel_enabled": True}, "torchrun"),
    ("auto", {"sagemaker_torch_distributed_enabled": False}, "none"),
    ("auto", {"sagemaker_torch_distributed_enabled": "False"}, "torchrun"),  # a truthy string
    ("auto", {"sagemaker_mpi_enabled": True, "sagemaker_pytorch_ddp_enabled": True}, "mpi"),
    ("none", {"sagemaker_torch_distributed_enabled": True}, "none"),
    ("torchrun", {}, "torchrun"),
])
def test_the_launcher_is_the_one_asked_for_else_what_the_hyperparameters_enable(
        requested, framework, chosen):
    assert chosen == torchrun.choose(requested, framework)


@pytest.mark.parametrize(("gpus", "neurons", "framework", "count"), [
    (0, 0, {}, 1),
    (8, 0, {}, 8),
    (0, 32, {}, 32),
    (4, 32, {}, 4),
    (4, 0, {"sagemaker_mpi_num_of_processes_per_host": 2}, 2),  # the hyperparameter wins
    (0, 32, {"sagemaker_mpi_num_of_processes_per_host": 2}, 2),
    (0, 0, {"sagemaker_mpi_num_of_processes_per_host": "3"}, 3),
    (4, 0, {"sagemaker_mpi_num_of_processes_per_host": 0}, 4),
    (0, 0, {"sagemaker_mpi_num_of_processes_per_host": ""}, 1),
])
def test_ranks_per_host_are_the_hyperparameter_else_gpus_else_neuron_cores_else_one(
        gpus, neurons, framework, count):
    assert count == torchrun.processes_per_host(gpus, neurons, framework)


@pytest.mark.parametrize("value", ["two", -1, True])
def test_a_number_of_processes_that_is_not_one_is_named(value):
    with pytest.raises(errors.ConfigError, match="sagemaker_mpi_num_of_processes_per_host") as info:
        torchrun.processes_per_host(0, 0, {"sagemaker_mpi_num_of_processes_per_host": value})
    assert info.value.message.endswith(f"{value!r} is not a number of processes")


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


TWO_HOSTS = Torchrun(hosts=["algo-1", "algo-2"], current_host="algo-2", master="algo-1",
                     nproc_per_node=2, interface="eth0")


def test_several_hosts_meet_at_the_master_on_port_7777_with_their_node_rank(tmp_path):
    python = executable(tmp_path / "venv" / "bin" / "python3")
    launcher = executable(tmp_path / "venv" / "bin" / "torchrun")
    argv = TWO_HOSTS.command([python, "train.py", "--epochs", "3"], {"PATH": "/nowhere"})
    assert [launcher, "--nnodes", "2", "--nproc_per_node", "2", "--master_addr", "algo-1",
            "--master_port", "7777", "--node_rank", "1", "train.py", "--epochs", "3"] == argv


def test_one_host_gets_no_rendezvous_arguments_and_a_module_stays_a_module(tmp_path):
    launcher = executable(tmp_path / "bin" / "torchrun")
    one = Torchrun(hosts=["algo-1"], current_host="algo-1", master="algo-1", nproc_per_node=1,
                   interface="eth0")
    argv = one.command(["/usr/bin/python3", "-m", "pkg.train", "--lr", "0.1"],
                       {"PATH": str(tmp_path / "bin")})
    assert [launcher, "--nnodes", "1", "--nproc_per_node", "1", "-m", "pkg.train", "--lr",
            "0.1"] == argv


def test_a_program_that_is_not_python_runs_with_no_python(tmp_path):
    launcher = executable(tmp_path / "bin" / "torchrun")
    argv = TWO_HOSTS.command(["/bin/sh", "train.sh", "--x", "1"], {"PATH": str(tmp_path / "bin")})
    assert [launcher, "--no-python", "/bin/sh", "train.sh", "--x", "1"] == argv[:1] + argv[-5:]


def test_without_torchrun_the_interpreter_runs_torch_distributed_run(tmp_path):
    argv = TWO_HOSTS.command(["/nowhere/python3", "train.py"], {"PATH": str(tmp_path)})
    assert ["/nowhere/python3", "-m", "torch.distributed.run", "--nnodes", "2"] == argv[:5]
    with pytest.raises(errors.CommandNotFound, match="torchrun"):
        TWO_HOSTS.command(["./train"], {"PATH": str(tmp_path)})


CONTAINER = {"NCCL_PROTO": "simple", "NCCL_IB_DISABLE": "1", "NCCL_DEBUG": "WARN"}


def test_the_ranks_learn_the_master_and_the_interface_unless_the_user_set_them(tmp_path):
    (tmp_path / "eth0").mkdir()
    assert {"MASTER_ADDR": "algo-1", "MASTER_PORT": "7777", "NCCL_SOCKET_IFNAME": "eth0",
            "GLOO_SOCKET_IFNAME": "eth0", **CONTAINER} == TWO_HOSTS.environment({}, str(tmp_path))
    mine = {"GLOO_SOCKET_IFNAME": "lo", "MASTER_PORT": "1234", "NCCL_DEBUG": "INFO"}
    assert {"MASTER_ADDR": "algo-1", "NCCL_SOCKET_IFNAME": "eth0", "NCCL_PROTO": "simple",
            "NCCL_IB_DISABLE": "1"} == TWO_HOSTS.environment(mine, str(tmp_path))


def test_an_interface_this_host_lacks_is_not_named(tmp_path):
    assert {"MASTER_ADDR": "algo-1", "MASTER_PORT": "7777", **CONTAINER} == (
        TWO_HOSTS.environment({}, str(tmp_path)))


@pytest.mark.parametrize(("instance_type", "efa"), [
    ("ml.p4d.24xlarge", {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1",
                         "RDMAV_FORK_SAFE": "1"}),
    ("ml.trn1.32xlarge", {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1",
                          "RDMAV_FORK_SAFE": "1"}),
    ("ml.p6e-gb200.36xlarge", {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1",
                               "RDMAV_FORK_SAFE": "1"}),
    ("ml.g5.48xlarge", {"FI_PROVIDER": "efa"}),  # EFA without RDMA
    ("ml.g4dn.12xlarge", {"FI_PROVIDER": "efa"}),
    ("ml.p3dn.24xlarge", {"FI_PROVIDER": "efa"}),
    ("ml.g5.12xlarge", {}),  # no EFA
    ("ml.p5en.48xlarge", {}),  # not in 5.1.4's lists
    ("local", {}),
])
def test_the_efa_settings_follow_the_instance_type_and_the_users_win(tmp_path, instance_type,
                                                                     efa):
    job = Torchrun(hosts=["algo-1", "algo-2"], current_host="algo-1", master="algo-1",
                   nproc_per_node=8, interface="eth0", instance_type=instance_type)
    wanted = job.environment({}, str(tmp_path))
    assert efa == {name: value for name, value in wanted.items() if name.startswith(("FI_", "RD"))}
    mine = {"FI_PROVIDER": "sockets", "FI_EFA_USE_DEVICE_RDMA": "0", "RDMAV_FORK_SAFE": "0",
            "NCCL_PROTO": "LL128"}
    assert not set(mine) & set(job.environment(mine, str(tmp_path)))


def test_neuron_parallel_compile_comes_first_when_asked_for_exactly(tmp_path):
    launcher = executable(tmp_path / "bin" / "torchrun")
    compiler = executable(tmp_path / "bin" / "neuron_parallel_compile")
    env = {"PATH": str(tmp_path / "bin"), "RUN_NEURON_PARALLEL_COMPILE": "1"}
    argv = TWO_HOSTS.command(["/usr/bin/python3", "train.py"], env)
    assert [compiler, launcher, "--nnodes", "2"] == argv[:4]
    for value in ("0", "true", ""):  # the toolkit reads exactly "1"
        env["RUN_NEURON_PARALLEL_COMPILE"] = value
        assert launcher == TWO_HOSTS.command(["/usr/bin/python3", "train.py"], env)[0]
    (tmp_path / "bin" / "neuron_parallel_compile").unlink()
    env["RUN_NEURON_PARALLEL_COMPILE"] = "1"
    with pytest.raises(errors.CommandNotFound, match="RUN_NEURON_PARALLEL_COMPILE=1"):
        TWO_HOSTS.command(["/usr/bin/python3", "train.py"], env)


def test_a_host_outside_the_distribution_hosts_takes_no_part():
    assert TWO_HOSTS.takes_part
    outside = Torchrun(hosts=["algo-1", "algo-2"], current_host="algo-3", master="algo-1",
                       nproc_per_node=1, interface="eth0")
    assert not outside.takes_part
