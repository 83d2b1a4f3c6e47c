#!/usr/bin/env python3
"""Writes the cases/<name>/opt_ml trees and case.json files of the launch probe.

Run with any Python 3 (`python3 tests/toolkit/launch/make_cases.py`). Then record
what the toolkit makes of them with the toolkit venv:
`build/venv-sagemaker-training/bin/python tests/toolkit/launch/probe.py --cases`.
hyperparameters.json is written as the SageMaker Python SDK writes it: every value
a JSON text, as a string.
"""
import json
import os

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def hp_enc(v):
    # as the SageMaker Python SDK writes hyperparameters: every value a JSON text, as a string
    return json.dumps(v)


def make(name, *, hosts, itype, hp, args=(), env=None, description="", current="algo-1"):
    d = os.path.join(CASES, name, "opt_ml")
    cfg = os.path.join(d, "input", "config")
    os.makedirs(cfg, exist_ok=True)
    os.makedirs(os.path.join(d, "code"), exist_ok=True)
    base_hp = {"epochs": 2, "sagemaker_program": "train.py", "sagemaker_container_log_level": 20,
               "sagemaker_job_name": "launch-probe-job", "sagemaker_region": "us-west-2"}
    base_hp.update(hp)
    with open(os.path.join(cfg, "hyperparameters.json"), "w") as f:
        json.dump({k: hp_enc(v) for k, v in base_hp.items()}, f, indent=2)
        f.write("\n")
    rc = {"current_host": current, "current_instance_type": itype,
          "current_group_name": "homogeneousCluster", "hosts": hosts,
          "instance_groups": [{"instance_group_name": "homogeneousCluster",
                               "instance_type": itype, "hosts": hosts}],
          "network_interface_name": "eth0"}
    with open(os.path.join(cfg, "resourceconfig.json"), "w") as f:
        json.dump(rc, f, indent=2)
        f.write("\n")
    with open(os.path.join(cfg, "inputdataconfig.json"), "w") as f:
        json.dump({"training": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                                "RecordWrapperType": "None"}}, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "code", "train.py"), "w") as f:
        f.write("# the user program: the probe never runs it\n")
    case = {"description": description, "args": list(args)}
    if env:
        case["env"] = env
    with open(os.path.join(CASES, name, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")


H2 = ["algo-1", "algo-2"]
TD = {"sagemaker_torch_distributed_enabled": True}
make("torch_distributed_1host_cpu", hosts=["algo-1"], itype="ml.c5.xlarge", hp=TD,
     description="torch_distributed on one CPU host: torchrun --nnodes 1 --nproc_per_node 1, no rendezvous options, no EFA variables")
make("torch_distributed_2host_p4d", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8"],
     description="torch_distributed, 2 x ml.p4d.24xlarge (EFA + RDMA list), 8 GPUs, hyperparameters as SDK v2 writes them")
make("torch_distributed_2host_g5", hosts=H2, itype="ml.g5.48xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.g5.48xlarge"), args=["--num-gpus", "8"],
     description="torch_distributed, 2 x ml.g5.48xlarge (EFA list, not RDMA), 8 GPUs")
make("torch_distributed_2host_trn1_neuron_compile", hosts=H2, itype="ml.trn1.32xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.trn1.32xlarge"), args=["--num-neurons", "32"],
     env={"RUN_NEURON_PARALLEL_COMPILE": "1"},
     description="torch_distributed, 2 x ml.trn1.32xlarge (EFA + RDMA list), 32 Neuron cores (neuron-ls), RUN_NEURON_PARALLEL_COMPILE=1")
make("torch_distributed_user_env_p4d", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8"],
     env={"FI_PROVIDER": "sockets", "FI_EFA_USE_DEVICE_RDMA": "0", "RDMAV_FORK_SAFE": "0",
          "NCCL_PROTO": "LL128", "NCCL_SOCKET_IFNAME": "ens5", "NCCL_DEBUG": "INFO",
          "NCCL_IB_DISABLE": "0", "MASTER_PORT": "1234"},
     description="as torch_distributed_2host_p4d with the variables already set by the user (image ENV / job Environment): the toolkits overwrite every one")
make("torch_distributed_hp_instance_type", hosts=H2, itype="ml.c5.18xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p4d.24xlarge", sagemaker_mpi_num_of_processes_per_host=4),
     args=["--num-gpus", "8"],
     description="torch_distributed reads the instance type from resourceconfig only (the sagemaker_instance_type hyperparameter is ignored: no EFA variables); sagemaker_mpi_num_of_processes_per_host wins over the 8 GPUs for --nproc_per_node")
SMDDP = {"sagemaker_distributed_dataparallel_enabled": True,
         "sagemaker_distributed_dataparallel_custom_mpi_options": ""}
make("smddp_2host_p4d", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(SMDDP, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8"],
     description="smdistributed dataparallel, 2 x ml.p4d.24xlarge, 8 GPUs, smddprun installed: mpirun ... smddprun python -m mpi4py train.py")
make("smddp_2host_p4d_without_smddprun", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(SMDDP, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8", "--without-smddprun"],
     description="as smddp_2host_p4d, `which smddprun` failing: the toolkit prints a warning and leaves smddprun out")
make("smddp_1host_p4d_no_hp_instance_type", hosts=["algo-1"], itype="ml.p4d.24xlarge",
     hp=dict(SMDDP, sagemaker_distributed_dataparallel_custom_mpi_options="--NCCL_DEBUG WARN -x FOO=1"),
     args=["--num-gpus", "8"],
     description="smdistributed dataparallel on one host without the sagemaker_instance_type hyperparameter: instance type from SM_TRAINING_ENV current_instance_type; SINGLENODE; custom MPI options")
make("pytorch_ddp_2host_p4d", hosts=H2, itype="ml.p4d.24xlarge",
     hp={"sagemaker_pytorch_ddp_enabled": True, "sagemaker_instance_type": "ml.p4d.24xlarge"},
     args=["--num-gpus", "8"],
     description="distribution={'pytorchddp': {'enabled': True}}: the PyTorch toolkit runs it with the SMDataParallel runner (mpirun + smddprun), not torchrun")
MPI = {"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2,
       "sagemaker_mpi_custom_mpi_options": "--NCCL_DEBUG WARN -x FOO=1"}
make("mpi_2host", hosts=H2, itype="ml.c5.18xlarge", hp=MPI, args=["--framework", "none"],
     description="MPI, 2 x ml.c5.18xlarge CPU, 2 processes per host, custom MPI options; sagemaker-training's own trainer (no framework module)")
make("mpi_2host_worker", hosts=H2, itype="ml.c5.18xlarge", hp=MPI, args=["--framework", "none"],
     current="algo-2",
     description="as mpi_2host, seen from the worker algo-2: sshd -D, /etc/environment appended with the whole environment")
make("mpi_2host_p4d_pytorch", hosts=H2, itype="ml.p4d.24xlarge",
     hp={"sagemaker_mpi_enabled": True, "sagemaker_mpi_custom_mpi_options": ""},
     args=["--num-gpus", "8", "--torch-version", "2.6.0"],
     description="MPI through the PyTorch DLC path, 2 x ml.p4d.24xlarge, 8 GPUs (one rank per GPU): the -x EFA exports; SM_DLC_TORCH_VERSION from the torch stub")
make("torch_distributed_native_launcher_exit1", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p4d.24xlarge", sagemaker_toolkit_native_launcher_enabled=True),
     args=["--num-gpus", "8", "--exit-code", "1"],
     description="sagemaker_toolkit_native_launcher_enabled: the PyTorch toolkit passes capture_error=False, entry_point.run calls runner.run(wait, capture_error) positionally and TorchDistributedRunner.run takes (capture_error, wait): wait=False, process.create, whose return code nobody checks -- torchrun exits 1 and the job reports success")
make("torch_distributed_2host_p4d_exit1", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8", "--exit-code", "1"],
     description="as torch_distributed_2host_p4d with torchrun exiting 1: ExecuteUserScriptError, failure file, exit 1")
H3 = ["algo-1", "algo-2", "algo-3"]
make("torch_distributed_3host_p5_worker", hosts=H3, itype="ml.p5.48xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p5.48xlarge"), args=["--num-gpus", "8"],
     current="algo-3",
     description="torch_distributed, 3 x ml.p5.48xlarge seen from algo-3: --node_rank 2, EFA + RDMA")
make("torch_distributed_2host_g4dn", hosts=H2, itype="ml.g4dn.12xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.g4dn.12xlarge"), args=["--num-gpus", "4"],
     description="torch_distributed, 2 x ml.g4dn.12xlarge (EFA list, not RDMA), 4 GPUs")
make("torch_distributed_2host_p6e_gb200", hosts=H2, itype="ml.p6e-gb200.36xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p6e-gb200.36xlarge"), args=["--num-gpus", "4"],
     description="torch_distributed, 2 x ml.p6e-gb200.36xlarge (EFA + RDMA list), 4 GPUs")
make("torch_distributed_2host_p5en_unlisted", hosts=H2, itype="ml.p5en.48xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.p5en.48xlarge"), args=["--num-gpus", "8"],
     description="torch_distributed, 2 x ml.p5en.48xlarge: in neither of 5.1.4's lists, no FI_*")
make("torch_distributed_2host_trn2", hosts=H2, itype="ml.trn2.48xlarge",
     hp=dict(TD, sagemaker_instance_type="ml.trn2.48xlarge"),
     description="torch_distributed, 2 x ml.trn2.48xlarge: 64 Neuron cores by name (no neuron-ls), no FI_*")
make("smddp_2host_g5", hosts=H2, itype="ml.g5.48xlarge",
     hp=dict(SMDDP, sagemaker_instance_type="ml.g5.48xlarge"), args=["--num-gpus", "8"],
     description="smdistributed dataparallel, 2 x ml.g5.48xlarge: FI_PROVIDER and RDMAV_FORK_SAFE whatever the type, NCCL_PROTO (EFA list), no device RDMA")
make("smddp_2host_worker", hosts=H2, itype="ml.p4d.24xlarge",
     hp=dict(SMDDP, sagemaker_instance_type="ml.p4d.24xlarge"), args=["--num-gpus", "8"],
     current="algo-2",
     description="smdistributed dataparallel seen from the worker algo-2: sshd -D")
