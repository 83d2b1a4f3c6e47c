"""The training script's argv and environment follow the toolkit's rules; resources are detected."""

import json
import os
import stat

import pytest

from supervisor.train import environment
from supervisor.train.config import TrainingConfig
from supervisor.train.environment import Resources
from supervisor.train.layout import Layout

LAYOUT = Layout("/opt/ml")
RESOURCES = Resources(num_cpus=4, num_gpus=0, num_neurons=0)
RC = {"current_host": "algo-1", "hosts": ["algo-1"]}
HETERO = {
    "current_host": "algo-3",
    "current_group_name": "train2",
    "hosts": ["algo-1", "algo-2", "algo-3", "algo-4"],
    "instance_groups": [
        {"instance_group_name": "train1", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2", "algo-1"]},
        {"instance_group_name": "train2", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-4", "algo-3"]},
    ],
}
NO_GROUPS = {"current_host": "algo-1", "hosts": ["algo-2", "algo-1"]}


def make(hyperparameters=None, resource_config=None, input_data_config=None):
    return TrainingConfig(
        hyperparameters=hyperparameters or {},
        resource_config=resource_config or dict(RC),
        input_data_config=input_data_config or {},
        sources={"hyperparameters": None, "resource_config": None, "input_data_config": None},
    )


def env_of(environ=None, resources=RESOURCES, **kwargs):
    return environment.training_env(make(**kwargs), LAYOUT, environ or {}, resources)


def training_env_json(environ=None, **kwargs):
    return json.loads(env_of(environ, **kwargs)["SM_TRAINING_ENV"])


# ------------------------------------------------------------------ variables
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SM_MODEL_DIR", "/opt/ml/model"),
        ("SM_INPUT_DIR", "/opt/ml/input"),
        ("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"),
        ("SM_OUTPUT_DIR", "/opt/ml/output"),
        ("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"),
        ("SM_OUTPUT_INTERMEDIATE_DIR", "/opt/ml/output/intermediate"),
        ("SM_MODULE_DIR", "/opt/ml/code"),
        ("SM_HOSTS", '["algo-1"]'),
        ("SM_CURRENT_HOST", "algo-1"),
        ("CURRENT_HOST", "algo-1"),
        ("SM_NETWORK_INTERFACE_NAME", "eth0"),
        ("SM_CURRENT_INSTANCE_TYPE", "local"),
        ("SM_CURRENT_INSTANCE_GROUP", "homogeneousCluster"),
        ("SM_CURRENT_INSTANCE_GROUP_HOSTS", "[]"),
        ("SM_INSTANCE_GROUPS", "[]"),
        ("SM_INSTANCE_GROUPS_DICT", "{}"),
        ("SM_DISTRIBUTION_INSTANCE_GROUPS", "[]"),
        ("SM_IS_HETERO", "false"),
        ("SM_HPS", "{}"),
        ("SM_USER_ARGS", "[]"),
        ("SM_FRAMEWORK_PARAMS", "{}"),
        ("SM_RESOURCE_CONFIG", '{"current_host":"algo-1","hosts":["algo-1"]}'),
        ("SM_INPUT_DATA_CONFIG", "{}"),
        ("SM_CHANNELS", "[]"),
        ("SM_USER_ENTRY_POINT", ""),
        ("SM_MODULE_NAME", "None"),
        ("SM_LOG_LEVEL", "20"),
        ("SM_FRAMEWORK_MODULE", ""),
        ("SM_NUM_CPUS", "4"),
        ("SM_NUM_GPUS", "0"),
        ("SM_NUM_NEURONS", "0"),
        ("SAGEMAKER_JOB_NAME", ""),
        ("SAGEMAKER_REGION", ""),
        ("PYTHONPATH", "/opt/ml/code"),
    ],
)
def test_the_defaults_of_a_bare_single_host_job(name, value):
    assert value == env_of()[name]


def test_a_bare_job_gets_exactly_the_toolkit_variables_plus_pythonpath():
    names = {
        "CURRENT_HOST", "PYTHONPATH", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION", "SM_CHANNELS",
        "SM_CURRENT_HOST", "SM_CURRENT_INSTANCE_GROUP", "SM_CURRENT_INSTANCE_GROUP_HOSTS",
        "SM_CURRENT_INSTANCE_TYPE", "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_FRAMEWORK_MODULE",
        "SM_FRAMEWORK_PARAMS", "SM_HOSTS", "SM_HPS", "SM_INPUT_CONFIG_DIR", "SM_INPUT_DATA_CONFIG",
        "SM_INPUT_DIR", "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT", "SM_IS_HETERO",
        "SM_LOG_LEVEL", "SM_MODEL_DIR", "SM_MODULE_DIR", "SM_MODULE_NAME",
        "SM_NETWORK_INTERFACE_NAME", "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_NUM_NEURONS",
        "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR", "SM_OUTPUT_INTERMEDIATE_DIR", "SM_RESOURCE_CONFIG",
        "SM_TRAINING_ENV", "SM_USER_ARGS", "SM_USER_ENTRY_POINT",
    }
    assert names == set(env_of())


def test_training_env_holds_every_toolkit_property_in_sorted_compact_json():
    text = env_of()["SM_TRAINING_ENV"]
    data = json.loads(text)
    assert [
        "additional_framework_parameters", "channel_input_dirs", "current_host",
        "current_instance_group", "current_instance_group_hosts", "current_instance_type",
        "distribution_hosts", "distribution_instance_groups", "framework_module", "hosts",
        "hyperparameters", "input_config_dir", "input_data_config", "input_dir", "instance_groups",
        "instance_groups_dict", "is_hetero", "is_master", "is_modelparallel_enabled",
        "is_smddpmprun_installed", "is_smddprun_installed", "job_name", "log_level",
        "master_hostname", "model_dir", "module_dir", "module_name", "network_interface_name",
        "num_cpus", "num_gpus", "num_neurons", "output_data_dir", "output_dir",
        "output_intermediate_dir", "resource_config", "topology", "user_entry_point",
    ] == list(data)
    assert json.dumps(data, sort_keys=True, separators=(",", ":")) == text
    assert (False, False, None, None, [], True) == (
        data["is_smddpmprun_installed"], data["is_smddprun_installed"], data["framework_module"],
        data["job_name"], data["topology"], data["is_master"],
    )


@pytest.mark.parametrize(
    ("resource_config", "name", "value"),
    [
        ({"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}, "SM_HOSTS", '["algo-3","algo-1","algo-2"]'),
        ({"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}, "SM_CURRENT_HOST", "algo-2"),
        ({"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}, "CURRENT_HOST", "algo-2"),
        (dict(RC, network_interface_name="ethwe"), "SM_NETWORK_INTERFACE_NAME", "ethwe"),
        (dict(RC, current_instance_type="ml.p4d.24xlarge"), "SM_CURRENT_INSTANCE_TYPE", "ml.p4d.24xlarge"),
        (dict(RC, current_group_name="train1"), "SM_CURRENT_INSTANCE_GROUP", "train1"),
        (dict(RC, current_group_name=None), "SM_CURRENT_INSTANCE_GROUP", ""),
        (dict(RC, z=1, a={"b": 2, "a": "é"}), "SM_RESOURCE_CONFIG", '{"a":{"a":"\\u00e9","b":2},"current_host":"algo-1","hosts":["algo-1"],"z":1}'),
        (dict(RC, topology=[{"hostName": "algo-1", "capacityUnitId": "cu-1"}]), "SM_TOPOLOGY", '[{"capacityUnitId":"cu-1","hostName":"algo-1"}]'),
    ],
)
def test_resource_config_values_are_passed_on(resource_config, name, value):
    assert value == env_of(resource_config=resource_config)[name]


@pytest.mark.parametrize("topology", [None, [], {}, "", "absent"])
def test_there_is_no_sm_topology_without_a_non_empty_topology(topology):
    rc = dict(RC) if topology == "absent" else dict(RC, topology=topology)
    assert "SM_TOPOLOGY" not in env_of(resource_config=rc)


def test_channels_get_their_data_dir_upper_cased_and_a_sorted_list():
    idc = {"train-data": {"TrainingInputMode": "File"}, "test": {}, "Validation": {"TrainingInputMode": "Pipe"}}
    env = env_of(input_data_config=idc)
    assert (
        "/opt/ml/input/data/train-data",
        "/opt/ml/input/data/test",
        "/opt/ml/input/data/Validation",
        '["Validation","test","train-data"]',
        '{"Validation":{"TrainingInputMode":"Pipe"},"test":{},"train-data":{"TrainingInputMode":"File"}}',
    ) == (
        env["SM_CHANNEL_TRAIN-DATA"], env["SM_CHANNEL_TEST"], env["SM_CHANNEL_VALIDATION"],
        env["SM_CHANNELS"], env["SM_INPUT_DATA_CONFIG"],
    )


def test_two_channels_that_upper_case_alike_leave_the_later_one():
    env = env_of(input_data_config={"Train": {}, "train": {}})
    assert "/opt/ml/input/data/train" == env["SM_CHANNEL_TRAIN"]


# ------------------------------------------------------------ hyperparameters
BASIC = {
    "epochs": "10",
    "model": '"resnet"',
    "use_cuda": "true",
    "nothing": "null",
    "layers": "[64, 32]",
    "opt": '{"name": "adam", "beta": 0.9}',
    "unicode": '"héllo"',
    "sagemaker_program": '"train.py"',
    "sagemaker_mpi_enabled": "false",
    "sagemaker_foo": '"bar"',
    "_tuning_objective_metric": '"loss"',
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SM_HP_EPOCHS", "10"),
        ("SM_HP_MODEL", "resnet"),
        ("SM_HP_USE_CUDA", "true"),
        ("SM_HP_NOTHING", ""),
        ("SM_HP_LAYERS", "[64,32]"),
        ("SM_HP_OPT", '{"beta":0.9,"name":"adam"}'),
        ("SM_HP_UNICODE", "héllo"),
        ("SM_HPS", '{"epochs":10,"layers":[64,32],"model":"resnet","nothing":null,"opt":{"beta":0.9,"name":"adam"},"unicode":"h\\u00e9llo","use_cuda":true}'),
        ("SM_USER_ARGS", '["--epochs","10","--layers","[64, 32]","--model","resnet","--nothing","","--opt","beta=0.9,name=adam","--unicode","h\\u00e9llo","--use_cuda","True"]'),
        ("SM_FRAMEWORK_PARAMS", '{"sagemaker_foo":"bar","sagemaker_mpi_enabled":false}'),
    ],
)
def test_user_hyperparameters_and_framework_params_are_rendered(name, value):
    assert value == env_of(hyperparameters=BASIC)[name]


def test_framework_and_consumed_keys_are_not_user_hyperparameters():
    env = env_of(hyperparameters=BASIC)
    assert [
        "SM_HP_EPOCHS", "SM_HP_LAYERS", "SM_HP_MODEL", "SM_HP_NOTHING", "SM_HP_OPT",
        "SM_HP_UNICODE", "SM_HP_USE_CUDA",
    ] == sorted(name for name in env if name.startswith("SM_HP_"))
    assert ["--epochs", "10", "--layers", "[64, 32]", "--model", "resnet", "--nothing", "",
            "--opt", "beta=0.9,name=adam", "--unicode", "héllo", "--use_cuda", "True"] == (
        environment.user_args(make(hyperparameters=BASIC))
    )


@pytest.mark.parametrize(
    ("hyperparameters", "name", "value"),
    [
        ({"LR": "1", "lr": "2"}, "SM_HP_LR", "2"),
        ({"lr": "2", "LR": "1"}, "SM_HP_LR", "1"),
        ({"straße": "1"}, "SM_HP_STRASSE", "1"),
        ({"": "empty key"}, "SM_HP_", "empty key"),
        ({"learning-rate": "0.1"}, "SM_HP_LEARNING-RATE", "0.1"),
        ({"int_raw": 5, "null_raw": None}, "SM_HP_INT_RAW", "5"),
        ({"NaN_json": "NaN"}, "SM_HP_NAN_JSON", "NaN"),
        ({"big": "1e400"}, "SM_HPS", '{"big":Infinity}'),
        ({"sagemaker_x": "[1]", "sagemaker_": '""'}, "SM_FRAMEWORK_PARAMS", '{"sagemaker_":"","sagemaker_x":[1]}'),
    ],
)
def test_hyperparameter_variables_follow_the_toolkit_quirks(hyperparameters, name, value):
    assert value == env_of(hyperparameters=hyperparameters)[name]


# ---------------------------------------------------- program, dirs, job info
@pytest.mark.parametrize(
    ("environ", "hyperparameters", "entry", "module", "returned"),
    [
        ({}, {}, "", "None", None),
        ({}, {"sagemaker_program": '"train.py"'}, "train.py", "train", "train.py"),
        ({}, {"sagemaker_program": "train.py"}, "train.py", "train", "train.py"),
        ({}, {"sagemaker_program": '"pkg/run.py"'}, "pkg/run.py", "pkg/run", "pkg/run.py"),
        ({}, {"sagemaker_program": '"train.sh"'}, "train.sh", "train.sh", "train.sh"),
        ({}, {"sagemaker_program": "123"}, "123", "123", "123"),
        ({"SAGEMAKER_PROGRAM": "env.py"}, {}, "env.py", "env", "env.py"),
        ({"SAGEMAKER_PROGRAM": "env.py"}, {"sagemaker_program": '"hp.py"'}, "env.py", "env", "env.py"),
        ({"SAGEMAKER_PROGRAM": ""}, {"sagemaker_program": '"hp.py"'}, "hp.py", "", "hp.py"),
        ({"SAGEMAKER_PROGRAM": ""}, {}, "", "", None),
        ({}, {"sagemaker_program": '""'}, "", "", None),
    ],
)
def test_the_entry_point_comes_from_sagemaker_program_first(environ, hyperparameters, entry, module, returned):
    env = env_of(environ, hyperparameters=hyperparameters)
    assert (entry, module) == (env["SM_USER_ENTRY_POINT"], env["SM_MODULE_NAME"])
    assert returned == environment.user_entry_point(make(hyperparameters), environ)


@pytest.mark.parametrize(
    ("environ", "hyperparameters", "name", "value"),
    [
        ({}, {"sagemaker_container_log_level": "10"}, "SM_LOG_LEVEL", "10"),
        ({}, {"sagemaker_container_log_level": '"DEBUG"'}, "SM_LOG_LEVEL", "DEBUG"),
        ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "10"}, {}, "SM_LOG_LEVEL", "20"),
        ({}, {"sagemaker_submit_directory": '"s3://b/k.tar.gz"'}, "SM_MODULE_DIR", "s3://b/k.tar.gz"),
        ({}, {"sagemaker_submit_directory": "null"}, "SM_MODULE_DIR", "None"),
        ({"SAGEMAKER_SUBMIT_DIRECTORY": "/x"}, {}, "SM_MODULE_DIR", "/opt/ml/code"),
        ({}, {"sagemaker_job_name": '"my-job"'}, "SAGEMAKER_JOB_NAME", "my-job"),
        ({"SAGEMAKER_JOB_NAME": "env-job"}, {}, "SAGEMAKER_JOB_NAME", ""),
        ({}, {"sagemaker_region": '"us-west-2"'}, "SAGEMAKER_REGION", "us-west-2"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, {"sagemaker_region": '"us-west-2"'}, "SAGEMAKER_REGION", "us-west-2"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, {}, "SAGEMAKER_REGION", "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, {"sagemaker_region": '""'}, "SAGEMAKER_REGION", ""),
        ({"SAGEMAKER_REGION": "ap-south-1", "AWS_REGION": "us-east-2"}, {}, "SAGEMAKER_REGION", ""),
        ({"SAGEMAKER_TRAINING_MODULE": "pkg:main"}, {}, "SM_FRAMEWORK_MODULE", "pkg:main"),
        ({"CURRENT_HOST": "somehost"}, {}, "CURRENT_HOST", "algo-1"),
    ],
)
def test_consumed_hyperparameters_win_over_the_environment_as_in_the_toolkit(environ, hyperparameters, name, value):
    assert value == env_of(environ, hyperparameters=hyperparameters)[name]


@pytest.mark.parametrize(
    ("environ", "key", "value"),
    [
        ({}, "is_modelparallel_enabled", None),
        ({"SM_HP_MP_PARAMETERS": ""}, "is_modelparallel_enabled", ""),
        ({"SM_HP_MP_PARAMETERS": "{}"}, "is_modelparallel_enabled", False),
        ({"SM_HP_MP_PARAMETERS": '{"partitions": 2}'}, "is_modelparallel_enabled", True),
        ({}, "job_name", None),
        ({"TRAINING_JOB_NAME": "tj-123"}, "job_name", "tj-123"),
        ({}, "framework_module", None),
        ({"SAGEMAKER_TRAINING_MODULE": "pkg:main"}, "framework_module", "pkg:main"),
    ],
)
def test_training_env_reads_these_properties_from_the_environment(environ, key, value):
    assert value == training_env_json(environ)[key]


@pytest.mark.parametrize(
    ("resources", "values"),
    [
        (Resources(4, 0, 0), ("4", "0", "0")),
        (Resources(96, 8, 0), ("96", "8", "0")),
        (Resources(1, 0, 64), ("1", "0", "64")),
    ],
)
def test_resources_are_passed_as_given(resources, values):
    env = env_of(resources=resources)
    assert values == (env["SM_NUM_CPUS"], env["SM_NUM_GPUS"], env["SM_NUM_NEURONS"])


@pytest.mark.parametrize(
    ("environ", "pythonpath"),
    [
        ({}, "/opt/ml/code"),
        ({"PYTHONPATH": ""}, "/opt/ml/code"),
        ({"PYTHONPATH": "/usr/lib/extra"}, "/opt/ml/code:/usr/lib/extra"),
        ({"PYTHONPATH": "/a:/b"}, "/opt/ml/code:/a:/b"),
    ],
)
def test_pythonpath_puts_the_code_dir_before_the_inherited_one(environ, pythonpath):
    assert pythonpath == env_of(environ)["PYTHONPATH"]


# ---------------------------------------------------------------- distribution
FLAGS = [
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
]


@pytest.mark.parametrize(
    ("hyperparameters", "groups", "hosts", "master"),
    [
        ({}, [], [], "algo-1"),
        *[({flag: "true"}, ["train2"], ["algo-4", "algo-3"], "algo-4") for flag in FLAGS],
        ({"sagemaker_mpi_enabled": "false"}, [], [], "algo-1"),
        ({"sagemaker_mpi_enabled": "0"}, [], [], "algo-1"),
        ({"sagemaker_mpi_enabled": '""'}, [], [], "algo-1"),
        ({"sagemaker_mpi_enabled": "False"}, ["train2"], ["algo-4", "algo-3"], "algo-4"),
        ({"sagemaker_mpi_enabled": "1"}, ["train2"], ["algo-4", "algo-3"], "algo-4"),
        ({"sagemaker_other_enabled": "true"}, [], [], "algo-1"),
        ({"sagemaker_distribution_instance_groups": '["train1"]'}, ["train1"], ["algo-2", "algo-1"], "algo-2"),
        ({"sagemaker_distribution_instance_groups": '["train2", "train1"]'}, ["train2", "train1"], ["algo-2", "algo-1", "algo-4", "algo-3"], "algo-2"),
        ({"sagemaker_distribution_instance_groups": "[]", "sagemaker_mpi_enabled": "true"}, [], [], "algo-1"),
        ({"sagemaker_distribution_instance_groups": '["nope"]'}, ["nope"], [], "algo-1"),
        ({"sagemaker_distribution_instance_groups": '"train22"'}, "train22", ["algo-4", "algo-3"], "algo-4"),
        # a number is no list of groups: the toolkit's `in` would raise; no group takes part
        ({"sagemaker_distribution_instance_groups": "5"}, 5, [], "algo-1"),
    ],
)
def test_distribution_groups_pick_the_hosts_and_the_master(hyperparameters, groups, hosts, master):
    data = training_env_json(hyperparameters=hyperparameters, resource_config=HETERO)
    assert (groups, hosts, master, master == "algo-3") == (
        data["distribution_instance_groups"], data["distribution_hosts"],
        data["master_hostname"], data["is_master"],
    )
    assert master == environment.master_host(make(hyperparameters, HETERO))


@pytest.mark.parametrize(
    ("hyperparameters", "groups"),
    [({}, []), ({"sagemaker_torch_distributed_enabled": "true"}, ["homogeneousCluster"])],
)
def test_without_instance_groups_every_host_takes_part_and_the_first_is_master(hyperparameters, groups):
    data = training_env_json(hyperparameters=hyperparameters, resource_config=NO_GROUPS)
    assert (groups, ["algo-2", "algo-1"], "algo-2", False) == (
        data["distribution_instance_groups"], data["distribution_hosts"],
        data["master_hostname"], data["is_master"],
    )
    assert "algo-2" == environment.master_host(make(hyperparameters, NO_GROUPS))


def test_instance_groups_are_listed_and_the_current_ones_hosts_given():
    env = env_of(resource_config=HETERO)
    assert (
        '["train1","train2"]',
        '["algo-4","algo-3"]',
        "train2",
        "true",
        '{"train1":{"hosts":["algo-2","algo-1"],"instance_group_name":"train1","instance_type":"ml.c5.xlarge"},'
        '"train2":{"hosts":["algo-4","algo-3"],"instance_group_name":"train2","instance_type":"ml.p3.2xlarge"}}',
    ) == (
        env["SM_INSTANCE_GROUPS"], env["SM_CURRENT_INSTANCE_GROUP_HOSTS"],
        env["SM_CURRENT_INSTANCE_GROUP"], env["SM_IS_HETERO"], env["SM_INSTANCE_GROUPS_DICT"],
    )


@pytest.mark.parametrize(
    ("current_group", "group_hosts"),
    [("train1", '["algo-2","algo-1"]'), ("absent", "[]")],
)
def test_the_current_group_hosts_are_those_of_the_group_named_current(current_group, group_hosts):
    env = env_of(resource_config=dict(HETERO, current_group_name=current_group))
    assert group_hosts == env["SM_CURRENT_INSTANCE_GROUP_HOSTS"]


def test_one_instance_group_is_not_hetero():
    rc = dict(RC, instance_groups=[{"instance_group_name": "homogeneousCluster", "hosts": ["algo-1"]}])
    assert ("false", '["algo-1"]') == (
        env_of(resource_config=rc)["SM_IS_HETERO"], env_of(resource_config=rc)["SM_CURRENT_INSTANCE_GROUP_HOSTS"]
    )


@pytest.mark.parametrize(
    ("resource_config", "instance_type"),
    [(RC, "local"), (dict(RC, current_instance_type="ml.trn2.48xlarge"), "ml.trn2.48xlarge")],
)
def test_current_instance_type_defaults_to_local(resource_config, instance_type):
    assert instance_type == environment.current_instance_type(make(resource_config=resource_config))


# ------------------------------------------------------------------ resources
def cgroup(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({}, 8),
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "1000 100000\n"}, 1),
        ({"cpu.max": "1 100000\n"}, 1),
        ({"cpu.max": "5 1\n"}, 5),
        ({"cpu.max": "100000 0\n"}, 8),
        ({"cpu.max": "max 100000\n"}, 8),
        ({"cpu.max": "6400000 100000\n"}, 8),
        ({"cpu.max": "garbage\n"}, 8),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        ({"cpu/cpu.cfs_quota_us": "250000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),
        ({"cpu/cpu.cfs_quota_us": "300000\n"}, 8),
        ({"cpu/cpu.cfs_quota_us": "x\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),
        ({"cpu.max": "max 100000\n", "cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),
    ],
)
def test_cpus_are_the_cgroup_quota_rounded_up_within_the_cpu_count(tmp_path, monkeypatch, files, cpus):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    assert Resources(cpus, 0, 0) == environment.detect_resources("ml.m5.xlarge", cgroup(tmp_path, files))


def test_cpus_without_a_cgroup_quota_are_the_cpu_count(tmp_path):
    assert os.cpu_count() == environment.num_cpus(str(tmp_path))


def fake_tool(directory, name, script):
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("script", "gpus"),
    [
        (None, 0),
        ("printf 'GPU 0: A100 (UUID: x)\\nGPU 1: A100 (UUID: y)\\n'", 2),
        ("printf 'GPU 0: T4\\n  GPU 1 indented\\nNo GPU\\n'", 1),
        ("printf ''", 0),
        ("printf 'GPU 0: A100\\n'; exit 9", 0),
    ],
)
def test_gpus_are_the_gpu_lines_of_nvidia_smi(tmp_path, monkeypatch, script, gpus):
    bin_dir = tmp_path / "bin"
    if script is not None:
        fake_tool(bin_dir, "nvidia-smi", script)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert gpus == environment.num_gpus()


@pytest.mark.parametrize(
    ("instance_type", "script", "neurons"),
    [
        ("ml.trn2.48xlarge", None, 64),
        ("ml.trn1.32xlarge", None, 0),
        ("ml.trn1.32xlarge", """printf '[{"nc_count": 2}, {"nc_count": 2}, {}]'""", 4),
        ("ml.trn1.32xlarge", "printf 'not json'", 0),
        ("ml.trn1.32xlarge", """printf '[{"nc_count": 2}]'; exit 1""", 0),
        ("local", "printf '[]'", 0),
    ],
)
def test_neuron_cores_are_64_on_trn2_48xlarge_else_summed_from_neuron_ls(tmp_path, monkeypatch, instance_type, script, neurons):
    bin_dir = tmp_path / "bin"
    if script is not None:
        fake_tool(bin_dir, "neuron-ls", script)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert neurons == environment.num_neurons(instance_type)


def test_what_a_launcher_is_told_of_the_cluster():
    hetero = environment.distribution(make({"sagemaker_torch_distributed_enabled": "true"},
                                           {**HETERO, "network_interface_name": "ens5"}))
    assert ({"sagemaker_torch_distributed_enabled": True}, ["algo-4", "algo-3"], "algo-3",
            "algo-4", "ens5") == (hetero.framework, hetero.hosts, hetero.current_host,
                                  hetero.master, hetero.interface)
    plain = environment.distribution(make({}, NO_GROUPS))
    assert (["algo-2", "algo-1"], "algo-1", "algo-2", "eth0") == (
        plain.hosts, plain.current_host, plain.master, plain.interface)
