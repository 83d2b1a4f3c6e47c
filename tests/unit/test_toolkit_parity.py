"""sm-entry gives a training script exactly the argv and SM_* environment the toolkit does.

Each tests/toolkit/cases/<name>/ holds an /opt/ml tree and what the real
sagemaker-training 5.1.4 made of it (recorded by tests/toolkit/record_reference.py).
The tree is prepared and the environment built the way the recorder does it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from supervisor.train import config, environment
from supervisor.train.layout import Layout

TOOLKIT = Path(__file__).resolve().parent.parent / "toolkit"
CASES = TOOLKIT / "cases"
RECORDED_RESOURCES = environment.Resources(num_cpus=4, num_gpus=0, num_neurons=0)
NOT_COMPARED = {"PYTHONPATH"}  # ours has no toolkit sys.path tail (a deliberate difference)

_spec = importlib.util.spec_from_file_location("record_reference", TOOLKIT / "record_reference.py")
assert _spec is not None and _spec.loader is not None
recorder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recorder)


def _case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def _expected(name: str) -> dict:
    return json.loads((CASES / name / "expected.json").read_text(encoding="utf-8"))


def _case_param(name: str):
    expected = _expected(name)
    if "environment_error" in expected:
        reason = (
            f"deliberate difference: the toolkit crashed ({expected['environment_error']}); "
            "sm-entry uses defaults for a missing file and reads resourceConfig.json too"
        )
        return pytest.param(name, marks=pytest.mark.skip(reason=reason), id=name)
    if "env" not in expected or "argv" not in expected:
        return pytest.param(name, marks=pytest.mark.skip(reason="no argv/env recorded"), id=name)
    return pytest.param(name, id=name)


def prepare(name: str, tmp_path: Path) -> tuple[Layout, dict[str, str], list[tuple[str, str]]]:
    """The case's tree, environment and placeholders, as record_reference.record_case makes them."""
    case_dir = CASES / name
    tmp = os.path.realpath(tmp_path)
    base = os.path.join(tmp, "opt", "ml")
    if (case_dir / "opt_ml").is_dir():
        shutil.copytree(case_dir / "opt_ml", base)
    os.makedirs(os.path.join(base, "model"), exist_ok=True)
    os.makedirs(os.path.join(base, "output", "data"), exist_ok=True)
    hp_file = Path(base, "input", "config", "hyperparameters.json")
    if hp_file.exists():
        text = hp_file.read_text(encoding="utf-8")
        hp_file.write_text(text.replace("$BASE", base).replace("$TMP", tmp), encoding="utf-8")
    extra = {}
    if (case_dir / "env.json").exists():
        extra = json.loads((case_dir / "env.json").read_text(encoding="utf-8"))
    environ = dict(recorder.BASE_ENV)
    environ["HOME"] = os.path.join(tmp, "home")
    environ.update({k: recorder._expand(v, tmp, base) for k, v in extra.items()})
    environ["SAGEMAKER_BASE_DIR"] = base
    return Layout(base), environ, [(base, "$BASE"), (tmp, "$TMP")]


def ours(name: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """Our argv and added environment for a case, with the recorder's placeholders."""
    layout, environ, subs = prepare(name, tmp_path)
    cfg = config.load(layout)
    argv = environment.user_args(cfg)
    env = environment.training_env(cfg, layout, environ, RECORDED_RESOURCES)
    env = {k: v for k, v in env.items() if k not in NOT_COMPARED}
    return recorder._placeholders(argv, subs), recorder._placeholders(env, subs)


@pytest.mark.parametrize("name", [_case_param(n) for n in _case_names()])
def test_argv_matches_the_toolkit(name, tmp_path):
    argv, _ = ours(name, tmp_path)
    assert _expected(name)["argv"] == argv


@pytest.mark.parametrize("name", [_case_param(n) for n in _case_names()])
def test_environment_matches_the_toolkit(name, tmp_path):
    _, env = ours(name, tmp_path)
    assert _expected(name)["env"] == env


@pytest.mark.parametrize("name", [_case_param(n) for n in _case_names()])
def test_every_variable_the_toolkit_writes_is_ours(name, tmp_path):
    _, env = ours(name, tmp_path)
    assert set(_expected(name)["environ_written"]) <= set(env)


@pytest.mark.parametrize("name", [_case_param(n) for n in _case_names()])
def test_pythonpath_starts_with_the_code_dir_as_recorded(name, tmp_path):
    layout, environ, subs = prepare(name, tmp_path)
    cfg = config.load(layout)
    env = environment.training_env(cfg, layout, environ, RECORDED_RESOURCES)
    head = recorder._placeholders(env["PYTHONPATH"].split(":")[0], subs)
    assert _expected(name)["pythonpath"]["head"] == head


def test_a_tree_without_config_files_gets_the_minimal_case_environment(tmp_path):
    """Case `empty` crashed the toolkit; our defaults equal the toolkit's `minimal` case."""
    assert "environment_error" in _expected("empty")
    argv, env = ours("empty", tmp_path)
    assert _expected("minimal")["argv"] == argv
    assert _expected("minimal")["env"] == env


@pytest.mark.parametrize(
    ("name", "variable", "value", "argv"),
    [
        ("missing_hyperparameters", "SM_HPS", "{}", []),
        ("missing_inputdataconfig", "SM_CHANNELS", "[]", ["--epochs", "1"]),
        ("resourceConfig_capital", "SM_CURRENT_INSTANCE_TYPE", "ml.m5.xlarge", ["--epochs", "1"]),
    ],
)
def test_a_missing_file_the_toolkit_crashed_on_gets_its_default_the_rest_is_read(
    name, variable, value, argv, tmp_path
):
    assert "environment_error" in _expected(name)
    our_argv, env = ours(name, tmp_path)
    assert (value, argv) == (env[variable], our_argv)
    assert "algo-1" == env["SM_CURRENT_HOST"]


def test_every_recorded_case_is_either_compared_or_a_deliberate_difference():
    names = _case_names()
    crashed = {n for n in names if "environment_error" in _expected(n)}
    assert {"empty", "missing_hyperparameters", "missing_inputdataconfig",
            "resourceConfig_capital"} == crashed
    assert all("env" in _expected(n) for n in set(names) - crashed)
