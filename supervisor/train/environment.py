"""The argv and SM_* environment the sagemaker-training toolkit (5.1.4) gives a training script.

Training scripts read these variables (SM_MODEL_DIR, SM_CHANNEL_TRAIN,
SM_HPS, SM_TRAINING_ENV...) and parse the argv with argparse, so both are
reproduced byte for byte from the toolkit's `Environment` (checked against
recorded data in tests/toolkit/cases). Only the machine's resources are
detected here; everything else is a pure function of the config files and
the environment sm-entry was given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.train import hyperparameters as hp
from supervisor.train.config import TrainingConfig
from supervisor.train.layout import Layout

CGROUP_ROOT = "/sys/fs/cgroup"
DETECT_TIMEOUT = 30.0  # nvidia-smi can hang on a broken driver; the toolkit waits forever

DEFAULT_LOG_LEVEL = 20  # logging.INFO
DEFAULT_INSTANCE_TYPE = "local"
DEFAULT_INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_NETWORK_INTERFACE = "eth0"
TRN2_48XLARGE_NEURON_CORES = 64

DISTRIBUTION_INSTANCE_GROUPS = "sagemaker_distribution_instance_groups"
# Any of these (truthy after decoding) puts the current group into the
# distribution instance groups (Environment.get_distribution_instance_groups_from_resource_config).
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)


@dataclass(frozen=True)
class Resources:
    """What the machine has; detected once, passed in so tests can fix it."""

    num_cpus: int
    num_gpus: int
    num_neurons: int


# ------------------------------------------------------------------ resources
def detect_resources(current_instance_type: str, cgroup_root: str = CGROUP_ROOT) -> Resources:
    """CPUs (within the container's CPU quota), NVIDIA GPUs and Neuron cores."""
    return Resources(
        num_cpus=num_cpus(cgroup_root),
        num_gpus=num_gpus(),
        num_neurons=num_neurons(current_instance_type),
    )


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _quota_cpus(quota: str, period: str) -> int | None:
    """ceil(quota / period), or None when there is no quota ("max", -1) or it is unreadable."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return -(-q // p)


def cgroup_cpu_limit(cgroup_root: str = CGROUP_ROOT) -> int | None:
    """The CPUs the container's cgroup quota allows (v2 cpu.max, else v1 cfs), or None."""
    v2 = _read_text(os.path.join(cgroup_root, "cpu.max"))
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2:
            return _quota_cpus(fields[0], fields[1])
        return None
    quota = _read_text(os.path.join(cgroup_root, "cpu", "cpu.cfs_quota_us"))
    period = _read_text(os.path.join(cgroup_root, "cpu", "cpu.cfs_period_us"))
    if quota is None or period is None:
        return None
    return _quota_cpus(quota.strip(), period.strip())


def num_cpus(cgroup_root: str = CGROUP_ROOT) -> int:
    """os.cpu_count(), lowered to the cgroup quota (the toolkit ignores the quota)."""
    count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is None:
        return count
    return max(1, min(limit, count))


def _output_of(argv: list[str]) -> str | None:
    """stdout of a detection tool, or None if it is missing, fails or hangs."""
    import subprocess

    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=DETECT_TIMEOUT,
            check=True,
        )
        return done.stdout.decode("utf-8", "replace")
    except Exception:  # any failure means "none of these here"
        return None


def num_gpus() -> int:
    """Lines starting with "GPU " in `nvidia-smi --list-gpus`; 0 without nvidia-smi."""
    output = _output_of(["nvidia-smi", "--list-gpus"])
    if output is None:
        return 0
    return sum(1 for line in output.split("\n") if line.startswith("GPU "))


def num_neurons(current_instance_type: str) -> int:
    """64 on trn2.48xlarge, else the nc_count sum of `neuron-ls -j`; 0 on any error."""
    if "trn2.48xlarge" in current_instance_type:
        return TRN2_48XLARGE_NEURON_CORES
    output = _output_of(["neuron-ls", "-j"])
    if output is None:
        return 0
    import json

    try:
        return sum(int(device.get("nc_count", 0)) for device in json.loads(output))
    except Exception:  # unexpected output: no Neuron cores we can use
        return 0


# ------------------------------------------------------------- the toolkit view
def _member(name: Any, groups: Any) -> bool:
    """The toolkit's `name in groups` (a list; a string or object works too, by accident)."""
    try:
        return bool(name in groups)
    except TypeError:
        return False


def _instance_groups(resource_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = resource_config.get("instance_groups", [])
    return groups if isinstance(groups, list) else []


@dataclass(frozen=True)
class _Cluster:
    """The toolkit's instance-group and distribution properties."""

    hosts: list[str]
    current_host: str
    current_instance_group: Any
    current_instance_group_hosts: list[str]
    instance_groups: list[Any]
    instance_groups_dict: dict[str, Any]
    distribution_instance_groups: Any
    distribution_hosts: list[str]
    master_hostname: str


def _cluster(resource_config: Mapping[str, Any], framework: Mapping[str, Any]) -> _Cluster:
    hosts = resource_config["hosts"]
    current_group = resource_config.get("current_group_name", DEFAULT_INSTANCE_GROUP)
    groups = _instance_groups(resource_config)

    current_group_hosts: list[str] = []
    for group in groups:
        if current_group == group["instance_group_name"]:
            current_group_hosts = group["hosts"]
            break

    if DISTRIBUTION_INSTANCE_GROUPS in framework:
        distribution_groups = framework[DISTRIBUTION_INSTANCE_GROUPS]
    elif any(framework.get(flag, False) for flag in DISTRIBUTION_FLAGS):
        distribution_groups = [current_group]
    else:
        distribution_groups = []

    if groups:
        distribution_hosts = [
            host
            for group in groups
            if _member(group["instance_group_name"], distribution_groups)
            for host in group["hosts"]
        ]
    else:  # no instance groups (local mode): every host takes part
        distribution_hosts = list(hosts)

    return _Cluster(
        hosts=hosts,
        current_host=resource_config["current_host"],
        current_instance_group=current_group,
        current_instance_group_hosts=current_group_hosts,
        instance_groups=[group["instance_group_name"] for group in groups],
        instance_groups_dict={group["instance_group_name"]: group for group in groups},
        distribution_instance_groups=distribution_groups,
        distribution_hosts=distribution_hosts,
        master_hostname=distribution_hosts[0] if distribution_hosts else hosts[0],
    )


def _entry_point_value(consumed: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    # SAGEMAKER_PROGRAM wins; an empty one falls back to the hyperparameter.
    return environ.get("SAGEMAKER_PROGRAM") or consumed.get("sagemaker_program")


def _module_name(consumed: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    program = environ.get("SAGEMAKER_PROGRAM")
    # str(None) is "None": the toolkit's SM_MODULE_NAME when there is no program.
    name = program if program is not None else str(consumed.get("sagemaker_program"))
    return name[:-3] if name.endswith(".py") else name


def user_entry_point(config: TrainingConfig, environ: Mapping[str, str]) -> str | None:
    """The program to run: SAGEMAKER_PROGRAM, else hyperparameter sagemaker_program."""
    _, _, consumed = hp.split(hp.decode(config.hyperparameters))
    value = _entry_point_value(consumed, environ)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def user_args(config: TrainingConfig) -> list[str]:
    """The arguments appended to the program: the user hyperparameters, toolkit-rendered."""
    user, _, _ = hp.split(hp.decode(config.hyperparameters))
    return hp.to_cmd_args(user)


def master_host(config: TrainingConfig) -> str:
    """The first host of the distribution instance groups, else the first host as given."""
    _, framework, _ = hp.split(hp.decode(config.hyperparameters))
    return str(_cluster(config.resource_config, framework).master_hostname)


@dataclass(frozen=True)
class Distribution:
    """What a launcher needs: the framework parameters and who takes part, in order."""

    framework: dict[str, Any]
    hosts: list[str]  # the distribution hosts (all hosts without instance groups)
    current_host: str
    master: str
    interface: str


def distribution(config: TrainingConfig) -> Distribution:
    _, framework, _ = hp.split(hp.decode(config.hyperparameters))
    rc = config.resource_config
    cluster = _cluster(rc, framework)
    return Distribution(
        framework=dict(framework),
        hosts=[str(host) for host in cluster.distribution_hosts],
        current_host=str(cluster.current_host),
        master=str(cluster.master_hostname),
        interface=str(rc.get("network_interface_name", DEFAULT_NETWORK_INTERFACE)),
    )


def current_instance_type(config: TrainingConfig) -> str:
    """The instance type resourceconfig.json names, "local" without one."""
    return str(config.resource_config.get("current_instance_type", DEFAULT_INSTANCE_TYPE))


def toolkit_properties(
    config: TrainingConfig, layout: Layout, environ: Mapping[str, str], resources: Resources
) -> dict[str, Any]:
    """The toolkit's `dict(Environment())`: what SM_TRAINING_ENV holds."""
    user, framework, consumed = hp.split(hp.decode(config.hyperparameters))
    rc = config.resource_config
    cluster = _cluster(rc, framework)
    mp_parameters = environ.get("SM_HP_MP_PARAMETERS")
    return {
        "additional_framework_parameters": framework,
        "channel_input_dirs": {name: layout.channel_dir(name) for name in config.input_data_config},
        "current_host": cluster.current_host,
        "current_instance_group": cluster.current_instance_group,
        "current_instance_group_hosts": cluster.current_instance_group_hosts,
        "current_instance_type": rc.get("current_instance_type", DEFAULT_INSTANCE_TYPE),
        "distribution_hosts": cluster.distribution_hosts,
        "distribution_instance_groups": cluster.distribution_instance_groups,
        "framework_module": environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": cluster.hosts,
        "hyperparameters": user,
        "input_config_dir": layout.input_config_dir,
        "input_data_config": config.input_data_config,
        "input_dir": layout.input_dir,
        "instance_groups": cluster.instance_groups,
        "instance_groups_dict": cluster.instance_groups_dict,
        "is_hetero": len(cluster.instance_groups) > 1,
        "is_master": cluster.current_host == cluster.master_hostname,
        # The toolkit's `mp and mp != "{}"`: null when unset, "" when empty.
        "is_modelparallel_enabled": mp_parameters and mp_parameters != "{}",
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": environ.get("TRAINING_JOB_NAME"),
        "log_level": consumed.get("sagemaker_container_log_level", DEFAULT_LOG_LEVEL),
        "master_hostname": cluster.master_hostname,
        "model_dir": layout.model_dir,
        "module_dir": str(consumed.get("sagemaker_submit_directory", layout.code_dir)),
        "module_name": _module_name(consumed, environ),
        "network_interface_name": rc.get("network_interface_name", DEFAULT_NETWORK_INTERFACE),
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "num_neurons": resources.num_neurons,
        "output_data_dir": layout.output_data_dir,
        "output_dir": layout.output_dir,
        "output_intermediate_dir": layout.output_intermediate_dir,
        "resource_config": rc,
        "topology": rc.get("topology", []),
        "user_entry_point": _entry_point_value(consumed, environ),
    }


def training_env(
    config: TrainingConfig, layout: Layout, environ: Mapping[str, str], resources: Resources
) -> dict[str, str]:
    """Every variable sm-entry adds to the child's environment (SM_*, CURRENT_HOST, ...)."""
    props = toolkit_properties(config, layout, environ, resources)
    user, _, consumed = hp.split(hp.decode(config.hyperparameters))
    channels: dict[str, str] = props["channel_input_dirs"]
    # Environment.to_env_vars, in its order: a later key wins when two upper-case alike.
    values: dict[str, Any] = {
        "hosts": props["hosts"],
        "network_interface_name": props["network_interface_name"],
        "hps": user,
        "user_entry_point": props["user_entry_point"],
        "framework_params": props["additional_framework_parameters"],
        "resource_config": props["resource_config"],
        "input_data_config": props["input_data_config"],
        "output_data_dir": props["output_data_dir"],
        "channels": sorted(channels),
        "current_host": props["current_host"],
        "current_instance_type": props["current_instance_type"],
        "current_instance_group": props["current_instance_group"],
        "current_instance_group_hosts": props["current_instance_group_hosts"],
        "instance_groups": props["instance_groups"],
        "instance_groups_dict": props["instance_groups_dict"],
        "distribution_instance_groups": props["distribution_instance_groups"],
        "is_hetero": props["is_hetero"],
        "module_name": props["module_name"],
        "log_level": props["log_level"],
        "framework_module": props["framework_module"],
        "input_dir": props["input_dir"],
        "input_config_dir": props["input_config_dir"],
        "output_dir": props["output_dir"],
        "num_cpus": props["num_cpus"],
        "num_gpus": props["num_gpus"],
        "num_neurons": props["num_neurons"],
        "model_dir": props["model_dir"],
        "module_dir": props["module_dir"],
        "training_env": props,
        "user_args": hp.to_cmd_args(user),
        "output_intermediate_dir": props["output_intermediate_dir"],
    }
    if props["topology"]:  # only GB200 UltraServers have one
        values["topology"] = props["topology"]
    for name, path in channels.items():
        values["channel_" + name] = path
    for key, value in user.items():
        values["hp_" + key] = value
    env = {hp.env_name(key): hp.env_value(value) for key, value in values.items()}

    # What the toolkit's Environment() writes into os.environ.
    env["CURRENT_HOST"] = hp.env_value(props["current_host"])
    env["SAGEMAKER_JOB_NAME"] = hp.env_value(consumed.get("sagemaker_job_name", ""))
    if "sagemaker_region" in consumed:
        region = consumed["sagemaker_region"]
    else:  # boto3's region: AWS_DEFAULT_REGION, else the AWS config file's
        from supervisor.train import awsconfig

        region = environ.get("AWS_DEFAULT_REGION") or awsconfig.config_file_region(environ)
    env["SAGEMAKER_REGION"] = hp.env_value(region) if region else ""

    # The code directory first (scripts import their sibling modules), then the user's.
    inherited = environ.get("PYTHONPATH")
    env["PYTHONPATH"] = layout.code_dir + (":" + inherited if inherited else "")
    return env
