"""The toolkit's cluster settings for the instances with EFA (sagemaker-training 5.1.4).

NCCL over EFA needs libfabric told to use it (`FI_PROVIDER=efa`) and, on
the types whose EFA does RDMA, that too (`FI_EFA_USE_DEVICE_RDMA=1`, and
`RDMAV_FORK_SAFE=1` so that a fork does not corrupt registered memory);
`NCCL_PROTO=simple` copes with EFA's out-of-order delivery. The lists are
the toolkit's (`SM_EFA_NCCL_INSTANCES`, `SM_EFA_RDMA_INSTANCES` in its
`__init__.py`); newer types join them in newer toolkits, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EFA_INSTANCES = frozenset({
    "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge", "ml.p3dn.24xlarge",
    "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge",
    "ml.trn1.32xlarge", "ml.p6e-gb200.36xlarge",
})
RDMA_INSTANCES = frozenset({
    "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.p5e.48xlarge",
    "ml.trn1.32xlarge", "ml.p6e-gb200.36xlarge",
})
# SMDataParallel's runner reads the instance type from this hyperparameter first.
INSTANCE_TYPE_HYPERPARAMETER = "sagemaker_instance_type"


def instance_type(resource_config: Mapping[str, Any], framework: Mapping[str, Any],
                  smddp: bool = False) -> str:
    """Where the toolkit reads it: resourceconfig's current_instance_type (torchrun, MPI); for
    SMDataParallel the sagemaker_instance_type hyperparameter first (the SDK sets it; with
    instance groups it is null, and resourceconfig's is used)."""
    if smddp and framework.get(INSTANCE_TYPE_HYPERPARAMETER):
        return str(framework[INSTANCE_TYPE_HYPERPARAMETER])
    return str(resource_config.get("current_instance_type") or "local")


def torchrun_settings(instance_type: str) -> dict[str, str]:
    """torch_distributed's: libfabric on EFA types, RDMA on RDMA types, NCCL_PROTO always."""
    settings = {}
    if instance_type in EFA_INSTANCES:
        settings["FI_PROVIDER"] = "efa"
    if instance_type in RDMA_INSTANCES:
        settings["FI_EFA_USE_DEVICE_RDMA"] = "1"
        settings["RDMAV_FORK_SAFE"] = "1"
    settings["NCCL_PROTO"] = "simple"
    return settings


def mpi_exports(instance_type: str) -> list[tuple[str, str]]:
    """The MPI runner's, in its order: FI_PROVIDER and NCCL_PROTO on EFA, RDMA on RDMA types."""
    exports = []
    if instance_type in EFA_INSTANCES:
        exports += [("FI_PROVIDER", "efa"), ("NCCL_PROTO", "simple")]
    if instance_type in RDMA_INSTANCES:
        exports.append(("FI_EFA_USE_DEVICE_RDMA", "1"))
    return exports


def smddp_exports(instance_type: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """SMDataParallel's: (before the custom options, after them). Its libfabric settings
    are given whatever the type; NCCL_PROTO on the EFA types, RDMA on the RDMA types."""
    after = []
    if instance_type in EFA_INSTANCES:
        after.append(("NCCL_PROTO", "simple"))
    if instance_type in RDMA_INSTANCES:
        after.append(("FI_EFA_USE_DEVICE_RDMA", "1"))
    return [("FI_PROVIDER", "efa"), ("RDMAV_FORK_SAFE", "1")], after


def export_args(pairs: list[tuple[str, str]], environ: Mapping[str, str]) -> list[str]:
    """mpirun's `-x NAME=VALUE` for each; a value the user set wins (`-x NAME` passes it on)."""
    args = []
    for name, value in pairs:
        args += ["-x", name if environ.get(name) else f"{name}={value}"]
    return args
