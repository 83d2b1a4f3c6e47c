"""Hyperparameters as the sagemaker-training toolkit (5.1.4) decodes and renders them.

User scripts parse the argv and SM_* values with argparse and json; they were
written against the toolkit, so every rule here copies its exact behaviour
(`environment.read_hyperparameters`, `mapping.to_cmd_args`,
`mapping.to_env_vars`), quirks included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

FRAMEWORK_PREFIX = "sagemaker_"

# Keys the toolkit consumes itself (params.SAGEMAKER_HYPERPARAMETERS): removed
# from the user's hyperparameters and not exposed in SM_FRAMEWORK_PARAMS.
CONSUMED_KEYS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "sagemaker_s3_output",
        "default_user_module_name",
        "_tuning_objective_metric",
    }
)


def decode_value(value: Any) -> Any:
    """json.loads of a string value, else the value itself: "10" -> 10, "adam" stays "adam"."""
    if not isinstance(value, str):
        return value  # the toolkit's json.loads raises TypeError and keeps it
    try:
        return json.loads(value)
    except ValueError:
        return value
    except RecursionError:  # the toolkit would crash; the raw string is the kindest answer
        return value


def decode(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of hyperparameters.json decoded, in file order."""
    return {key: decode_value(value) for key, value in raw.items()}


def split(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, exposed framework params, consumed keys), each in file order.

    Framework params are the `sagemaker_*` keys the toolkit does not consume
    (SM_FRAMEWORK_PARAMS); consumed keys are hidden from the user entirely.
    """
    user: dict[str, Any] = {}
    framework: dict[str, Any] = {}
    consumed: dict[str, Any] = {}
    for key, value in decoded.items():
        if key in CONSUMED_KEYS:
            consumed[key] = value
        elif key.startswith(FRAMEWORK_PREFIX):
            framework[key] = value
        else:
            user[key] = value
    return user, framework, consumed


def _arg_name(key: str) -> str:
    if not key:
        return ""
    return f"--{key}" if len(key) > 1 else f"-{key}"


def arg_value(value: Any) -> str:
    """A value as one argv item: str(), except dicts (k=v,... sorted) and None ("")."""
    if isinstance(value, dict):
        # f"{k}={v}" is the toolkit's "%s=%s" % (k, v) for every JSON type
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if value is None:
        return ""
    return str(value)


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The arguments appended to the user program: keys sorted by code point."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        args += [_arg_name(key), arg_value(hyperparameters[key])]
    return args


def env_value(value: Any) -> str:
    """A value as an environment variable: strings bare, None empty, the rest compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def env_name(key: str) -> str:
    """SM_ + the key upper-cased the way Python does it ("straße" -> "SM_STRASSE")."""
    return "SM_" + key.upper()
