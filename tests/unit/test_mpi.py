"""The MPI launcher: ranks per host, mpirun's argv, the master's report to its workers."""

import dataclasses
import json
import subprocess

import pytest

from supervisor import errors
from supervisor.launch import efa, mpi
from supervisor.launch.mpi import Mpi
from supervisor.launch.mpiworker import REPORT_VARIABLE, Report, find_sshd, report_command


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(("text", "nccl_debug", "rest"), [
    ("", "INFO", []),
    ("--NCCL_DEBUG WARN -x FOO", "WARN", ["-x", "FOO"]),
    ("-x FOO --NCCL_DEBUG=TRACE", "TRACE", ["-x", "FOO"]),
    ("-mca plm_rsh_args '-p 2222'", "INFO", ["-mca", "plm_rsh_args", "-p 2222"]),
    ("-x 'A=b", "INFO", ["-x", "'A=b"]),  # unbalanced quote: split on blanks, as the toolkit
    ("-x FOO -x BAR --NCCL_DEBUG WARN", "WARN", ["-x", "FOO", "-x", "BAR"]),
    ("-x FOO --NCCL_DEBUG", "INFO", ["-x", "FOO", "--NCCL_DEBUG"]),  # no value: mpirun says so
])
def test_custom_options_give_nccl_debug_and_the_rest_verbatim(text, nccl_debug, rest):
    assert (nccl_debug, rest) == mpi.split_custom_options(text)


@pytest.mark.parametrize(("text", "shell"), [
    ("", ["ssh"]),
    ("-x FOO", ["ssh"]),
    ("-mca plm_rsh_args '-p 2222'", ["ssh", "-p", "2222"]),
    ("--mca plm_rsh_agent /usr/bin/rsh", ["/usr/bin/rsh"]),
    ("-mca plm_rsh_agent 'ssh : rsh' -mca plm_rsh_args '-p 2222 -i key'",
     ["ssh", "-p", "2222", "-i", "key"]),
    ("-mca plm_rsh_agent", ["ssh"]),  # no value: mpirun says so, the report goes by ssh
])
def test_the_report_reaches_the_workers_as_mpirun_does(text, shell):
    assert shell == mpi.remote_shell(text)


def two_hosts(**framework):
    return Mpi(hosts=["algo-1", "algo-2"], current_host="algo-1", master="algo-1",
               processes_per_host=2, interface="eth0",
               framework={"sagemaker_mpi_enabled": True, **framework})


def test_the_master_runs_mpirun_over_every_host_with_the_toolkits_options(tmp_path):
    mpirun = executable(tmp_path / "bin" / "mpirun")
    env = {"PATH": str(tmp_path / "bin"), "SM_MODEL_DIR": "/opt/ml/model",
           "PYTHONPATH": "/opt/ml/code", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_SESSION_TOKEN": "t", "LD_LIBRARY_PATH": "/opt/lib"}
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    argv = two_hosts(sagemaker_mpi_custom_mpi_options="--NCCL_DEBUG WARN -x FOO").command(
        ["/usr/bin/python3", "train.py", "--lr", "0.1"], env,
        ["PYTHONPATH", "SM_MODEL_DIR", "SM_UNSET"], net=str(tmp_path / "net"))
    assert [mpirun, "--host", "algo-1:2,algo-2:2", "-np", "4", "--allow-run-as-root",
            "--display-map", "--tag-output",
            "-mca", "btl_tcp_if_include", "eth0", "-mca", "oob_tcp_if_include", "eth0",
            "-mca", "plm_rsh_no_tree_spawn", "1", "-bind-to", "none", "-map-by", "slot",
            "-mca", "pml", "ob1", "-mca", "btl", "^openib",
            "-mca", "orte_abort_on_non_zero_status", "1",
            "-mca", "btl_vader_single_copy_mechanism", "none",
            "-x", "NCCL_MIN_NRINGS=4", "-x", "NCCL_SOCKET_IFNAME=eth0", "-x", "NCCL_DEBUG=WARN",
            "-x", "LD_LIBRARY_PATH", "-x", "PATH", "-x", "FOO",
            "-x", "AWS_ACCESS_KEY_ID", "-x", "AWS_SECRET_ACCESS_KEY", "-x", "AWS_SESSION_TOKEN",
            "-x", "PYTHONPATH", "-x", "SM_MODEL_DIR",
            "/usr/bin/python3", "train.py", "--lr", "0.1"] == argv


def exports(argv):
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-x"]


@pytest.mark.parametrize(("instance_type", "efa"), [
    ("ml.p4d.24xlarge", ["FI_PROVIDER=efa", "NCCL_PROTO=simple", "FI_EFA_USE_DEVICE_RDMA=1"]),
    ("ml.g5.48xlarge", ["FI_PROVIDER=efa", "NCCL_PROTO=simple"]),
    ("ml.c5.18xlarge", []),
])
def test_mpi_exports_the_efa_settings_after_the_custom_options_and_the_users_win(
        tmp_path, instance_type, efa):
    executable(tmp_path / "bin" / "mpirun")
    job = dataclasses.replace(two_hosts(sagemaker_mpi_custom_mpi_options="-x FOO"),
                              instance_type=instance_type)
    env = {"PATH": str(tmp_path / "bin"), "SM_HOSTS": "[]"}
    argv = job.command(["./run.sh"], env, ["SM_HOSTS"], net=str(tmp_path))
    assert ["NCCL_MIN_NRINGS=4", "NCCL_DEBUG=INFO", "PATH", "FOO", *efa, "SM_HOSTS"] == exports(argv)
    env["FI_PROVIDER"] = "sockets"
    assert ("FI_PROVIDER" in exports(job.command(["./run.sh"], env, [], net=str(tmp_path)))
            ) == bool(efa)


def smddp(hosts, instance_type="ml.p4d.24xlarge", **framework):
    return Mpi(hosts=hosts, current_host="algo-1", master="algo-1", processes_per_host=8,
               interface="eth0", framework=framework, flavor="smddp",
               instance_type=instance_type)


def test_smddp_on_two_hosts_is_the_toolkits_mpirun_with_smddprun(tmp_path):
    mpirun = executable(tmp_path / "bin" / "mpirun")
    executable(tmp_path / "bin" / "smddprun")
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    env = {"PATH": str(tmp_path / "bin"), "SM_HOSTS": "[]"}
    job = smddp(["algo-1", "algo-2"], sagemaker_distributed_dataparallel_custom_mpi_options=(
        "--NCCL_DEBUG WARN -x FOO=1"), sagemaker_mpi_num_processes=3)
    argv = job.command(["/usr/bin/python3", "train.py", "--lr", "1"], env, ["SM_HOSTS"],
                       mpi4py=True, net=str(tmp_path / "net"))
    assert [mpirun, "--host", "algo-1:8,algo-2:8", "-np", "16", "--allow-run-as-root",
            "--tag-output", "--oversubscribe",
            "-mca", "btl_tcp_if_include", "eth0", "-mca", "oob_tcp_if_include", "eth0",
            "-mca", "plm_rsh_no_tree_spawn", "1", "-mca", "pml", "ob1", "-mca", "btl", "^openib",
            "-mca", "orte_abort_on_non_zero_status", "1",
            "-mca", "btl_vader_single_copy_mechanism", "none",
            "-mca", "plm_rsh_num_concurrent", "2",
            "-x", "NCCL_SOCKET_IFNAME=eth0", "-x", "NCCL_DEBUG=WARN", "-x", "PATH",
            "-x", "SMDATAPARALLEL_USE_HOMOGENEOUS=1", "-x", "FI_PROVIDER=efa",
            "-x", "RDMAV_FORK_SAFE=1", "-x", "FOO=1",
            "-x", "NCCL_PROTO=simple", "-x", "FI_EFA_USE_DEVICE_RDMA=1",
            "-x", "SMDATAPARALLEL_SERVER_ADDR=algo-1", "-x", "SMDATAPARALLEL_SERVER_PORT=7592",
            "-x", "SAGEMAKER_INSTANCE_TYPE=ml.p4d.24xlarge", "-x", "SM_HOSTS",
            "smddprun", "/usr/bin/python3", "-m", "mpi4py", "train.py", "--lr", "1"] == argv


def test_smddp_on_one_host_runs_singlenode_and_without_smddprun_the_program_alone(tmp_path):
    executable(tmp_path / "bin" / "mpirun")
    argv = smddp(["algo-1"], instance_type="ml.g5.12xlarge").command(
        ["./run.sh"], {"PATH": str(tmp_path / "bin")}, [], net=str(tmp_path))
    assert "localhost:8" == argv[argv.index("--host") + 1]
    assert ["NCCL_DEBUG=INFO", "PATH", "SMDATAPARALLEL_USE_SINGLENODE=1", "FI_PROVIDER=efa",
            "RDMAV_FORK_SAFE=1"] == exports(argv)
    assert ["RDMAV_FORK_SAFE=1", "./run.sh"] == argv[-2:]  # no smddprun: the program alone
    assert "1" == argv[argv.index("plm_rsh_num_concurrent") + 1]


def test_smddp_reads_its_own_custom_options_and_its_instance_type_hyperparameter_first():
    job = smddp(["algo-1"], sagemaker_mpi_custom_mpi_options="-x MPI",
                sagemaker_distributed_dataparallel_custom_mpi_options="-x SMDDP")
    assert "-x SMDDP" == job.custom_options
    assert "-x MPI" == dataclasses.replace(job, flavor="mpi").custom_options
    hp = {"sagemaker_instance_type": "ml.p4d.24xlarge"}
    config = {"current_instance_type": "ml.c5.xlarge"}
    assert "ml.p4d.24xlarge" == efa.instance_type(config, hp, smddp=True)
    assert "ml.c5.xlarge" == efa.instance_type(config, hp)  # torchrun, MPI: resourceconfig's
    assert "ml.c5.xlarge" == efa.instance_type(config, {"sagemaker_instance_type": None},
                                               smddp=True)  # instance groups: null
    assert "local" == efa.instance_type({}, {})


def test_one_slot_per_host_names_the_hosts_alone_and_num_processes_overrides(tmp_path):
    executable(tmp_path / "bin" / "mpirun")
    job = Mpi(hosts=["algo-1", "algo-2", "algo-3"], current_host="algo-1", master="algo-1",
              processes_per_host=1, interface="ens5",
              framework={"sagemaker_mpi_num_processes": 2})
    (tmp_path / "net" / "ens5").mkdir(parents=True)
    argv = job.command(["./run.sh"], {"PATH": str(tmp_path / "bin")}, [],
                       net=str(tmp_path / "net"))
    assert ["algo-1,algo-2,algo-3", "2"] == [argv[argv.index("--host") + 1],
                                             argv[argv.index("-np") + 1]]
    assert "ens5" == argv[argv.index("btl_tcp_if_include") + 1]


def test_one_host_runs_its_ranks_locally_and_an_interface_it_lacks_is_not_named(tmp_path):
    executable(tmp_path / "bin" / "mpirun")
    job = Mpi(hosts=["algo-1"], current_host="algo-1", master="algo-1", processes_per_host=2,
              interface="eth0", framework={})
    argv = job.command(["./run.sh"], {"PATH": str(tmp_path / "bin")}, [],
                       net=str(tmp_path / "net"))
    assert "localhost:2" == argv[argv.index("--host") + 1]
    assert not [word for word in argv if "eth0" in word or "if_include" in word]


def test_with_mpi4py_a_python_program_runs_under_it_and_another_does_not(tmp_path):
    executable(tmp_path / "bin" / "mpirun")
    env = {"PATH": str(tmp_path / "bin")}
    argv = two_hosts().command(["/usr/bin/python3", "train.py"], env, [], mpi4py=True)
    assert ["/usr/bin/python3", "-m", "mpi4py", "train.py"] == argv[-4:]
    assert ["./train.sh", "x"] == two_hosts().command(["./train.sh", "x"], env, [],
                                                      mpi4py=True)[-2:]


def test_without_mpirun_the_error_says_what_to_install(tmp_path):
    with pytest.raises(errors.CommandNotFound, match=r"^mpirun: needed on the master host .*"
                                                     r": install Open MPI in the image"):
        two_hosts().command(["python3", "train.py"], {"PATH": str(tmp_path)}, [])


def test_mpi4py_is_found_in_the_interpreters_site_packages_or_pythonpath(tmp_path):
    python = executable(tmp_path / "venv" / "bin" / "python3")
    env = {"PATH": "/nowhere"}
    assert not mpi.has_mpi4py(python, env)
    (tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "mpi4py").mkdir(parents=True)
    assert mpi.has_mpi4py(python, env)
    other = executable(tmp_path / "other" / "bin" / "python")
    (tmp_path / "extra" / "mpi4py").mkdir(parents=True)
    assert not mpi.has_mpi4py(other, env)
    assert mpi.has_mpi4py("python", {"PATH": str(tmp_path / "other" / "bin"),
                                     "PYTHONPATH": str(tmp_path / "extra")})
    assert not mpi.has_mpi4py("python", {"PATH": "/nowhere", "PYTHONPATH": str(tmp_path / "extra")})


@pytest.mark.parametrize("packages", ["lib/python3/dist-packages",  # Debian's python3-mpi4py
                                      "local/lib/python3.11/dist-packages"])  # pip on Debian
def test_mpi4py_is_found_where_debian_puts_it(tmp_path, packages):
    python = executable(tmp_path / "usr" / "bin" / "python3")
    (tmp_path / "usr" / packages / "mpi4py").mkdir(parents=True)
    assert mpi.has_mpi4py(python, {"PATH": "/nowhere"})


def test_rank_hosts_follow_the_slots_of_each_host_in_order():
    job = two_hosts()
    assert [("algo-1", 0), ("algo-1", 1), ("algo-2", 0), ("algo-2", 1), None] == [
        job.rank_host(rank) for rank in range(5)]


def test_roles_master_workers_and_hosts_outside_the_distribution():
    job = two_hosts()
    assert job.is_master and ["algo-2"] == job.workers and job.takes_part
    worker = Mpi(hosts=["algo-1", "algo-2"], current_host="algo-2", master="algo-1",
                 processes_per_host=1, interface="eth0", framework={})
    assert not worker.is_master and worker.takes_part
    outside = Mpi(hosts=["algo-1", "algo-2"], current_host="algo-3", master="algo-1",
                  processes_per_host=1, interface="eth0", framework={})
    assert not outside.takes_part


def test_the_report_command_writes_the_report_where_the_worker_sshd_said(tmp_path):
    report = Report(1, "ValueError: it's \"quoted\"\n$HOME `x`", "algo-1")
    target = tmp_path / "report"
    subprocess.run(["sh", "-c", report_command(report)], check=True,
                   env={"PATH": "/usr/bin:/bin", REPORT_VARIABLE: str(target)})
    assert report == Report.decode(target.read_text(), "unused")
    assert not (tmp_path / "report.part").exists()
    assert 0o600 == target.stat().st_mode & 0o777


def test_without_the_variable_the_report_command_writes_nothing(tmp_path):
    done = subprocess.run(["sh", "-c", report_command(Report(0, None, "algo-1"))],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert 0 != done.returncode and [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["", "not json", json.dumps({"reason": "x"}), "[1]"])
def test_an_unreadable_report_is_a_failure_that_says_so(text):
    report = Report.decode(text, "algo-1")
    assert 1 == report.exit_code and "algo-1" == report.master
    assert "could not be read" in report.reason


def test_without_sshd_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr("supervisor.launch.mpiworker.SSHD_PATHS", ())
    with pytest.raises(errors.CommandNotFound, match=r"sshd: .*openssh-server"):
        find_sshd({"PATH": str(tmp_path)})
    sshd = executable(tmp_path / "sshd")
    assert sshd == find_sshd({"PATH": str(tmp_path)})
