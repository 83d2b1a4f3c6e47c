"""The /opt/ml layout and its config files: defaults when missing, errors naming the file."""

import json
import os

import pytest

from supervisor import errors
from supervisor.core import outcome
from supervisor.train import config
from supervisor.train.layout import Layout

RC = {"current_host": "algo-1", "hosts": ["algo-1"]}


def write(root, name, content):
    """Write input/config/<name>: bytes as they are, anything else as JSON."""
    path = root / "input" / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(path)


@pytest.mark.parametrize(
    ("attribute", "path"),
    [
        ("input_dir", "/opt/ml/input"),
        ("input_config_dir", "/opt/ml/input/config"),
        ("input_data_dir", "/opt/ml/input/data"),
        ("code_dir", "/opt/ml/code"),
        ("model_dir", "/opt/ml/model"),
        ("output_dir", "/opt/ml/output"),
        ("output_data_dir", "/opt/ml/output/data"),
        ("output_intermediate_dir", "/opt/ml/output/intermediate"),
        ("failure_file", "/opt/ml/output/failure"),
        ("success_file", "/opt/ml/output/success"),
        ("checkpoints_dir", "/opt/ml/checkpoints"),
    ],
)
def test_layout_paths_are_the_toolkit_paths_under_the_root(attribute, path):
    assert path == getattr(Layout("/opt/ml"), attribute)


@pytest.mark.parametrize(
    ("root", "code_dir"),
    [("/opt/ml", "/opt/ml/code"), ("/tmp/x/", "/tmp/x/code"), ("rel", "rel/code")],
)
def test_layout_joins_paths_like_os_path_join(root, code_dir):
    assert code_dir == Layout(root).code_dir


@pytest.mark.parametrize(
    ("method", "name", "path"),
    [
        ("channel_dir", "train", "/opt/ml/input/data/train"),
        ("channel_dir", "train-data", "/opt/ml/input/data/train-data"),
        ("config_file", "hyperparameters.json", "/opt/ml/input/config/hyperparameters.json"),
    ],
)
def test_layout_names_channel_dirs_and_config_files(method, name, path):
    assert path == getattr(Layout("/opt/ml"), method)(name)


def test_no_config_files_at_all_means_one_host_no_hyperparameters_no_channels(tmp_path):
    loaded = config.load(Layout(str(tmp_path)))
    assert (
        {},
        {"current_host": "algo-1", "hosts": ["algo-1"]},
        {},
        {"hyperparameters": None, "resource_config": None, "input_data_config": None},
    ) == (loaded.hyperparameters, loaded.resource_config, loaded.input_data_config, loaded.sources)


@pytest.mark.parametrize(
    ("missing", "field", "default"),
    [
        ("hyperparameters.json", "hyperparameters", {}),
        ("resourceconfig.json", "resource_config", {"current_host": "algo-1", "hosts": ["algo-1"]}),
        ("inputdataconfig.json", "input_data_config", {}),
    ],
)
def test_each_missing_file_gets_its_default_and_the_others_are_read(tmp_path, missing, field, default):
    files = {
        "hyperparameters.json": {"epochs": "3"},
        "resourceconfig.json": {"current_host": "b", "hosts": ["a", "b"]},
        "inputdataconfig.json": {"train": {"TrainingInputMode": "File"}},
    }
    paths = {
        name: write(tmp_path, name, content) for name, content in files.items() if name != missing
    }
    loaded = config.load(Layout(str(tmp_path)))
    assert default == getattr(loaded, field)
    assert loaded.sources[field] is None
    for name, other in [
        ("hyperparameters.json", "hyperparameters"),
        ("resourceconfig.json", "resource_config"),
        ("inputdataconfig.json", "input_data_config"),
    ]:
        if name != missing:
            assert (files[name], paths[name]) == (getattr(loaded, other), loaded.sources[other])


def test_values_are_kept_raw_in_file_order_with_the_last_duplicate_winning(tmp_path):
    write(tmp_path, "hyperparameters.json", b'{"b": "10", "a": 5, "n": null, "b": "11", "l": [1]}')
    loaded = config.load(Layout(str(tmp_path)))
    assert [("b", "11"), ("a", 5), ("n", None), ("l", [1])] == list(loaded.hyperparameters.items())


def test_resource_config_keeps_every_field_as_given(tmp_path):
    rc = dict(RC, network_interface_name="ethwe", topology=[{"hostName": "algo-1"}], extra={"b": 1})
    write(tmp_path, "resourceconfig.json", rc)
    assert rc == config.load(Layout(str(tmp_path))).resource_config


def test_resource_config_with_a_capital_c_is_read_when_the_usual_name_is_absent(tmp_path):
    path = write(tmp_path, "resourceConfig.json", {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    loaded = config.load(Layout(str(tmp_path)))
    assert ("algo-2", path) == (loaded.resource_config["current_host"], loaded.sources["resource_config"])


def test_resourceconfig_json_wins_over_resource_config_with_a_capital_c(tmp_path):
    path = write(tmp_path, "resourceconfig.json", RC)
    write(tmp_path, "resourceConfig.json", {"current_host": "x", "hosts": ["x"]})
    loaded = config.load(Layout(str(tmp_path)))
    assert (RC, path) == (loaded.resource_config, loaded.sources["resource_config"])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        # any file: not JSON, not an object, not UTF-8
        ("hyperparameters.json", b'{\n  "a": "1",\n}', "invalid JSON at line 3 column 1: Expecting property name enclosed in double quotes"),
        ("hyperparameters.json", b"", "invalid JSON at line 1 column 1: Expecting value"),
        ("hyperparameters.json", b'\xef\xbb\xbf{"a": "1"}', "invalid JSON at line 1 column 1: Unexpected UTF-8 BOM"),
        ("hyperparameters.json", b"[" * 100_000, "invalid JSON: nested too deeply"),
        ("hyperparameters.json", b'["epochs", "3"]', "must hold a JSON object, found an array"),
        ("hyperparameters.json", b'"epochs"', "must hold a JSON object, found a string"),
        ("hyperparameters.json", b"null", "must hold a JSON object, found null"),
        ("hyperparameters.json", b"3", "must hold a JSON object, found a number"),
        ("hyperparameters.json", b'{"a": "caf\xe9"}', "is not valid UTF-8 (byte 10: invalid continuation byte)"),
        ("inputdataconfig.json", b"{", "invalid JSON at line 1 column 2"),
        ("resourceconfig.json", b"true", "must hold a JSON object, found true"),
        # hyperparameters: only a distribution group list the toolkit cannot use
        ("hyperparameters.json", {"sagemaker_distribution_instance_groups": "5"}, "sagemaker_distribution_instance_groups must be a JSON list of instance group names, found 5"),
        ("hyperparameters.json", {"sagemaker_distribution_instance_groups": "null"}, "sagemaker_distribution_instance_groups must be a JSON list of instance group names, found null"),
        # resourceconfig.json
        ("resourceconfig.json", {"current_host": "algo-1"}, "hosts is missing"),
        ("resourceconfig.json", {"current_host": "algo-1", "hosts": []}, "hosts must be a non-empty list of non-empty host names, found []"),
        ("resourceconfig.json", {"current_host": "algo-1", "hosts": "algo-1"}, 'hosts must be a non-empty list of non-empty host names, found "algo-1"'),
        ("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1", ""]}, 'hosts must be a non-empty list of non-empty host names, found ["algo-1", ""]'),
        ("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1", 2]}, 'hosts must be a non-empty list of non-empty host names, found ["algo-1", 2]'),
        ("resourceconfig.json", {"hosts": ["algo-1"]}, "current_host is missing"),
        ("resourceconfig.json", {"current_host": 1, "hosts": ["algo-1"]}, "current_host must be a string, found 1"),
        ("resourceconfig.json", {"current_host": "algo-9", "hosts": ["algo-1"]}, 'current_host "algo-9" is not in hosts ["algo-1"]'),
        ("resourceconfig.json", dict(RC, current_instance_type=5), "current_instance_type must be a string, found 5"),
        ("resourceconfig.json", dict(RC, instance_groups=None), "instance_groups must be a list of instance groups, found null"),
        ("resourceconfig.json", dict(RC, instance_groups={"g": {}}), "instance_groups must be a list of instance groups"),
        ("resourceconfig.json", dict(RC, instance_groups=["g"]), 'instance_groups[0] must be an object with instance_group_name and hosts, found "g"'),
        ("resourceconfig.json", dict(RC, instance_groups=[{"hosts": ["algo-1"]}]), "instance_groups[0].instance_group_name must be a string, found null"),
        ("resourceconfig.json", dict(RC, instance_groups=[{"instance_group_name": "g", "hosts": ["algo-1"]}, {"instance_group_name": "h"}]), 'instance_groups[1].hosts (group "h") must be a list of host names, found null'),
        ("resourceconfig.json", dict(RC, instance_groups=[{"instance_group_name": "g", "hosts": "algo-1"}]), 'instance_groups[0].hosts (group "g") must be a list of host names, found "algo-1"'),
        ("resourceConfig.json", {"hosts": []}, "hosts must be a non-empty list"),
        # inputdataconfig.json
        ("inputdataconfig.json", {"train": "File"}, 'channel "train" must be an object (TrainingInputMode, ...), found "File"'),
        ("inputdataconfig.json", {"train": None}, 'channel "train" must be an object (TrainingInputMode, ...), found null'),
        ("inputdataconfig.json", {"train": {}, "test": []}, 'channel "test" must be an object'),
        ("inputdataconfig.json", {"": {}}, "a channel name is empty"),
        ("inputdataconfig.json", {".": {}}, 'channel name "." is not allowed'),
        ("inputdataconfig.json", {"..": {}}, 'channel name ".." is not allowed'),
        ("inputdataconfig.json", {"a/b": {}}, "channel name \"a/b\" contains '/'"),
        ("inputdataconfig.json", {"/etc": {}}, "channel name \"/etc\" contains '/'"),
        ("inputdataconfig.json", {"a\0b": {}}, 'channel name "a\\u0000b" contains a NUL character'),
    ],
)
def test_a_malformed_file_stops_the_job_naming_the_file_and_the_problem(tmp_path, name, content, problem):
    path = write(tmp_path, name, content)
    with pytest.raises(errors.ConfigError) as info:
        config.load(Layout(str(tmp_path)))
    assert (path, outcome.EXIT_CONFIG) == (info.value.path, info.value.exit_code)
    assert info.value.problem.startswith(problem), info.value.problem
    assert f"{path}: {info.value.problem}" == info.value.message


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"int_raw": 5, "float_raw": 2.5, "bool_raw": True, "null_raw": None},
        {"list_raw": [1, "a"], "dict_raw": {"x": 1}},
        {"sagemaker_distribution_instance_groups": '["train2"]'},
        {"sagemaker_distribution_instance_groups": ["train2"]},
        {"": "empty key", "NaN_json": "NaN"},
    ],
)
def test_hyperparameter_values_of_any_json_type_are_accepted(tmp_path, hyperparameters):
    write(tmp_path, "hyperparameters.json", hyperparameters)
    assert hyperparameters == config.load(Layout(str(tmp_path))).hyperparameters


@pytest.mark.parametrize(
    "channels",
    [
        {"train": {"TrainingInputMode": "File"}},
        {"train-data": {}, "Validation": {"TrainingInputMode": "Pipe"}, ".hidden": {}, "a..b": {}},
    ],
)
def test_channels_that_are_plain_directory_names_are_accepted(tmp_path, channels):
    write(tmp_path, "inputdataconfig.json", channels)
    assert channels == config.load(Layout(str(tmp_path))).input_data_config


@pytest.mark.parametrize(
    "resource_config",
    [
        RC,
        {"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]},
        dict(RC, instance_groups=[]),
        dict(RC, current_group_name=None, network_interface_name=5, topology=None),
        dict(RC, instance_groups=[{"instance_group_name": "g", "hosts": [], "instance_type": "x"}]),
    ],
)
def test_resource_configs_the_toolkit_can_use_are_accepted(tmp_path, resource_config):
    write(tmp_path, "resourceconfig.json", resource_config)
    assert resource_config == config.load(Layout(str(tmp_path))).resource_config


def test_a_config_file_that_is_a_directory_names_the_os_error(tmp_path):
    path = tmp_path / "input" / "config" / "hyperparameters.json"
    path.mkdir(parents=True)
    with pytest.raises(errors.ConfigError) as info:
        config.load(Layout(str(tmp_path)))
    assert (str(path), "cannot be read: Is a directory") == (info.value.path, info.value.problem)


def test_an_unreadable_config_file_names_the_os_error(tmp_path, monkeypatch):
    path = write(tmp_path, "inputdataconfig.json", {})
    if os.geteuid() == 0:  # root reads files whatever their mode: fail the open itself

        def refuse(name, *args, **kwargs):
            if name == path:
                raise PermissionError(13, "Permission denied", name)
            return open(name, *args, **kwargs)

        monkeypatch.setattr(config, "open", refuse, raising=False)
    else:
        os.chmod(path, 0)
    with pytest.raises(errors.ConfigError) as info:
        config.load(Layout(str(tmp_path)))
    assert (path, "cannot be read: Permission denied") == (info.value.path, info.value.problem)


def test_a_config_dir_that_is_a_file_is_an_error_not_a_missing_file(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "config").write_text("")
    with pytest.raises(errors.ConfigError) as info:
        config.load(Layout(str(tmp_path)))
    assert "cannot be read: Not a directory" == info.value.problem
