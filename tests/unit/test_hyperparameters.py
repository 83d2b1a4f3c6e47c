"""Hyperparameters are decoded, split and rendered exactly as the sagemaker-training toolkit does."""

import math

import pytest

from supervisor.train import hyperparameters as hp


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("10", 10),
        ("0.001", 0.001),
        ('"resnet"', "resnet"),
        ("adam", "adam"),
        ("true", True),
        ("false", False),
        ("True", "True"),
        ("null", None),
        ("[64, 32]", [64, 32]),
        ('{"name": "adam"}', {"name": "adam"}),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("1e400", math.inf),
        ("-1e400", -math.inf),
        ("1E5", 100000.0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        (" 10 ", 10),
        ('"\\"true\\""', '"true"'),
        ('""', ""),
        ("nan", "nan"),
        ("inf", "inf"),
        ("010", "010"),
        ("+3", "+3"),
        ("0x10", "0x10"),
        ("", ""),
        ("   ", "   "),
        ("line1\nline2", "line1\nline2"),
        ("\ufeff1", "\ufeff1"),
        ("[" * 100_000, "[" * 100_000),
    ],
)
def test_a_string_value_is_json_decoded_or_kept_as_is(raw, decoded):
    assert decoded == hp.decode_value(raw)


def test_nan_in_json_becomes_a_float_nan():
    assert math.isnan(hp.decode({"x": "NaN"})["x"])


@pytest.mark.parametrize("value", [5, 2.5, True, False, None, [1, "a"], {"x": 1}])
def test_a_value_that_is_not_a_string_is_kept_as_given(value):
    assert value == hp.decode_value(value)


def test_decode_keeps_the_file_order():
    assert ["b", "a", "c"] == list(hp.decode({"b": "1", "a": "2", "c": "3"}))


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("epochs", "user"),
        ("sagemaker", "user"),
        ("SageMaker_foo", "user"),
        ("Sagemaker_program", "user"),
        ("sagemaker_program", "consumed"),
        ("sagemaker_submit_directory", "consumed"),
        ("sagemaker_enable_cloudwatch_metrics", "consumed"),
        ("sagemaker_region", "consumed"),
        ("sagemaker_container_log_level", "consumed"),
        ("sagemaker_job_name", "consumed"),
        ("sagemaker_s3_output", "consumed"),
        ("default_user_module_name", "consumed"),
        ("_tuning_objective_metric", "consumed"),
        ("sagemaker_mpi_enabled", "framework"),
        ("sagemaker_distribution_instance_groups", "framework"),
        ("sagemaker_foo", "framework"),
        ("sagemaker_", "framework"),
    ],
)
def test_split_puts_each_key_where_the_toolkit_does(key, where):
    user, framework, consumed = hp.split({key: 1})
    assert {where: {key: 1}} == {
        name: part
        for name, part in (("user", user), ("framework", framework), ("consumed", consumed))
        if part
    }


def test_split_keeps_the_file_order_in_each_part():
    user, framework, _ = hp.split(
        {"z": 1, "sagemaker_b": 2, "a": 3, "sagemaker_a": 4, "sagemaker_program": "x"}
    )
    assert (["z", "a"], ["sagemaker_b", "sagemaker_a"]) == (list(user), list(framework))


@pytest.mark.parametrize(
    ("hyperparameters", "argv"),
    [
        ({}, []),
        ({"epochs": 10}, ["--epochs", "10"]),
        ({"b": 1, "a": 2}, ["-a", "2", "-b", "1"]),
        ({"lr": 1, "LR": 2, "Zeta": 3}, ["--LR", "2", "--Zeta", "3", "--lr", "1"]),
        ({"x": "one-char", "é": "v", "": "empty key"}, ["", "empty key", "-x", "one-char", "-é", "v"]),
        ({"with space": "a b"}, ["--with space", "a b"]),
        ({"use_cuda": False, "flag": True}, ["--flag", "True", "--use_cuda", "False"]),
        ({"null_val": None}, ["--null_val", ""]),
        ({"f": 1e-05, "g": 1e20, "h": 100.0, "i": 0.001}, ["-f", "1e-05", "-g", "1e+20", "-h", "100.0", "-i", "0.001"]),
        ({"p": math.inf, "n": -math.inf, "z": -0.0}, ["-n", "-inf", "-p", "inf", "-z", "-0.0"]),
        ({"nan": math.nan}, ["--nan", "nan"]),
        ({"big": 123456789012345678901234567890}, ["--big", "123456789012345678901234567890"]),
        ({"layers": [64, 32]}, ["--layers", "[64, 32]"]),
        ({"strlist": ["x", "y z"]}, ["--strlist", "['x', 'y z']"]),
        ({"mixed": [1, "a", None, True, 1.5, {"k": "v"}, 1e20]}, ["--mixed", "[1, 'a', None, True, 1.5, {'k': 'v'}, 1e+20]"]),
        ({"opt": {"name": "adam", "beta": 0.9}}, ["--opt", "beta=0.9,name=adam"]),
        ({"nested": {"a": {"b": [1, 2, {"c": None}]}, "d": False}}, ["--nested", "a={'b': [1, 2, {'c': None}]},d=False"]),
        ({"d": {"s": "str", "n": None, "l": ["a", 1], "B": 1}}, ["-d", "B=1,l=['a', 1],n=None,s=str"]),
        ({"empty_dict": {}, "empty_list": []}, ["--empty_dict", "", "--empty_list", "[]"]),
        ({"json_in_str": '{"a": 1}'}, ["--json_in_str", '{"a": 1}']),
        ({"unicode": "héllo ✓"}, ["--unicode", "héllo ✓"]),
    ],
)
def test_cmd_args_are_rendered_as_the_toolkit_renders_them(hyperparameters, argv):
    assert argv == hp.to_cmd_args(hyperparameters)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("adam", "adam"),
        ("", ""),
        ("héllo ✓", "héllo ✓"),
        ("line1\nline2", "line1\nline2"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (10, "10"),
        (1.5, "1.5"),
        (1e-05, "1e-05"),
        (1e20, "1e+20"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ([64, 32], "[64,32]"),
        ([], "[]"),
        ({}, "{}"),
        ({"b": 1, "a": {"d": None, "c": [True]}}, '{"a":{"c":[true],"d":null},"b":1}'),
        (["é", "✓"], '["\\u00e9","\\u2713"]'),
        (["😀"], '["\\ud83d\\ude00"]'),
    ],
)
def test_env_values_are_bare_strings_or_compact_sorted_ascii_json(value, text):
    assert text == hp.env_value(value)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("lr", "SM_LR"),
        ("LR", "SM_LR"),
        ("hp_learning-rate", "SM_HP_LEARNING-RATE"),
        ("hp_straße", "SM_HP_STRASSE"),
        ("hp_é", "SM_HP_É"),
        ("hp_", "SM_HP_"),
        ("channel_train data", "SM_CHANNEL_TRAIN DATA"),
    ],
)
def test_env_names_are_sm_plus_the_key_upper_cased_by_python(key, name):
    assert name == hp.env_name(key)
