"""The three files of input/config/, read once, with defaults and errors that name the file.

The toolkit crashes with a traceback when a file is missing or malformed. We
give defaults for a missing file (a local run needs none of them) and stop a
malformed one with errors.ConfigError naming the file and what is wrong.
Values are kept exactly as the file has them: the toolkit's rendering of the
environment depends on them (dict order, raw non-string values).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor import errors
from supervisor.train.layout import Layout

HYPERPARAMETERS_FILE = "hyperparameters.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
RESOURCE_CONFIG_FILE_CAPITAL = "resourceConfig.json"  # the spelling of some local tools
INPUT_DATA_CONFIG_FILE = "inputdataconfig.json"

DISTRIBUTION_INSTANCE_GROUPS = "sagemaker_distribution_instance_groups"


def default_resource_config() -> dict[str, Any]:
    """A single host, as SageMaker describes a one-instance job."""
    return {"current_host": "algo-1", "hosts": ["algo-1"]}


@dataclass(frozen=True)
class TrainingConfig:
    """What the platform told the job: the three config files, or their defaults."""

    hyperparameters: dict[str, Any]  # raw values as in the file
    resource_config: dict[str, Any]  # as in the file, or default_resource_config()
    input_data_config: dict[str, dict[str, Any]]
    sources: dict[str, str | None]  # file each came from (None = default), for `doctor`


def load(layout: Layout) -> TrainingConfig:
    """Read and check hyperparameters.json, resourceconfig.json, inputdataconfig.json."""
    hyperparameters, hp_path = _read_first(layout, [HYPERPARAMETERS_FILE], check_hyperparameters)
    resource_config, rc_path = _read_first(
        layout, [RESOURCE_CONFIG_FILE, RESOURCE_CONFIG_FILE_CAPITAL], check_resource_config)
    input_data_config, idc_path = _read_first(
        layout, [INPUT_DATA_CONFIG_FILE], check_input_data_config)
    return TrainingConfig(
        hyperparameters={} if hyperparameters is None else hyperparameters,
        resource_config=default_resource_config() if resource_config is None else resource_config,
        input_data_config={} if input_data_config is None else input_data_config,
        sources={
            "hyperparameters": hp_path,
            "resource_config": rc_path,
            "input_data_config": idc_path,
        },
    )


def _read_first(
    layout: Layout, names: list[str], check: Callable[[str, Mapping[str, Any]], None]
) -> tuple[dict[str, Any] | None, str | None]:
    """The first of `names` that exists, checked, and its path; (None, None) when none does."""
    for name in names:
        path = layout.config_file(name)
        value = read_object(path)
        if value is not None:
            check(path, value)
            return value, path
    return None, None


def read_object(path: str) -> dict[str, Any] | None:
    """The JSON object in `path`; None when the file does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise errors.ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.ConfigError(
            path, f"is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.ConfigError(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise errors.ConfigError(path, "invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise errors.ConfigError(path, f"must hold a JSON object, found {json_kind(value)}")
    return value


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number"


def show(value: Any, limit: int = 80) -> str:
    """A value as JSON, cut short: messages name what was found, not a whole file."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_hyperparameters(path: str, hyperparameters: Mapping[str, Any]) -> None:
    """Any JSON value is accepted (decoded later); only a value the toolkit trips on is not."""
    if DISTRIBUTION_INSTANCE_GROUPS in hyperparameters:
        from supervisor.train.hyperparameters import decode_value

        groups = decode_value(hyperparameters[DISTRIBUTION_INSTANCE_GROUPS])
        # The toolkit tests `name in groups`: a list (or, as it happens, a string
        # or an object) works; anything else crashes it.
        if not isinstance(groups, list | str | dict):
            raise errors.ConfigError(
                path,
                f"{DISTRIBUTION_INSTANCE_GROUPS} must be a JSON list of instance group "
                f"names, found {show(groups)}",
            )


def _host_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(h, str) and h for h in value)


def check_resource_config(path: str, config: Mapping[str, Any]) -> None:
    """hosts, current_host and instance_groups must be usable as the toolkit uses them."""
    if "hosts" not in config:
        raise errors.ConfigError(path, "hosts is missing (the list of the job's host names)")
    hosts = config["hosts"]
    if not hosts or not _host_names(hosts):
        raise errors.ConfigError(
            path, f"hosts must be a non-empty list of non-empty host names, found {show(hosts)}"
        )
    if "current_host" not in config:
        raise errors.ConfigError(path, "current_host is missing (this host's name, one of hosts)")
    current = config["current_host"]
    if not isinstance(current, str):
        raise errors.ConfigError(path, f"current_host must be a string, found {show(current)}")
    if current not in hosts:
        raise errors.ConfigError(
            path, f"current_host {show(current)} is not in hosts {show(hosts)}"
        )
    instance_type = config.get("current_instance_type", "")
    if not isinstance(instance_type, str):
        raise errors.ConfigError(
            path, f"current_instance_type must be a string, found {show(instance_type)}"
        )
    if "instance_groups" in config:
        _check_instance_groups(path, config["instance_groups"])


def _check_instance_groups(path: str, groups: Any) -> None:
    if not isinstance(groups, list):
        raise errors.ConfigError(
            path, f"instance_groups must be a list of instance groups, found {show(groups)}"
        )
    for index, group in enumerate(groups):
        where = f"instance_groups[{index}]"
        if not isinstance(group, dict):
            raise errors.ConfigError(
                path,
                f"{where} must be an object with instance_group_name and hosts, "
                f"found {show(group)}",
            )
        name = group.get("instance_group_name")
        if not isinstance(name, str):
            raise errors.ConfigError(
                path, f"{where}.instance_group_name must be a string, found {show(name)}"
            )
        if not _host_names(group.get("hosts")):
            raise errors.ConfigError(
                path,
                f"{where}.hosts (group {show(name)}) must be a list of host names, "
                f"found {show(group.get('hosts'))}",
            )


def channel_name_problem(name: str) -> str | None:
    """Why `name` cannot be a directory under input/data, or None."""
    if not name:
        return "a channel name is empty"
    if name in (".", ".."):
        return f"channel name {show(name)} is not allowed"
    if "/" in name:
        return f"channel name {show(name)} contains '/'"
    if "\0" in name:
        return f"channel name {show(name)} contains a NUL character"
    return None


def check_input_data_config(path: str, config: Mapping[str, Any]) -> None:
    """Each channel is a directory name mapped to an object (TrainingInputMode, ...)."""
    for name, channel in config.items():
        problem = channel_name_problem(name)
        if problem:
            raise errors.ConfigError(path, problem)
        if not isinstance(channel, dict):
            raise errors.ConfigError(
                path,
                f"channel {show(name)} must be an object (TrainingInputMode, ...), "
                f"found {show(channel)}",
            )
