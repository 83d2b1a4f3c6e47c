"""Local runs: fill an /opt/ml tree from `--hp` and `--channel` options.

So that a user can try their container's logic without SageMaker: the
files are written the way the platform writes them (hyperparameter values as
strings, channels under input/data/ with an inputdataconfig.json entry).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from supervisor import errors
from supervisor.train.layout import Layout

FILE_CHANNEL = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None"}


def _read_object(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(path, f"cannot update it: {exc}") from None
    if not isinstance(value, dict):
        raise errors.ConfigError(path, "cannot update it: not a JSON object")
    return value


def _write_object(path: str, value: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")


def fill(layout: Layout, hyperparameters: Sequence[tuple[str, str]],
         channels: Sequence[tuple[str, str]]) -> None:
    """Merge `--hp` values into hyperparameters.json; link `--channel` data under input/data."""
    if hyperparameters:
        path = layout.config_file("hyperparameters.json")
        merged = _read_object(path)
        merged.update(dict(hyperparameters))
        _write_object(path, merged)
    if channels:
        path = layout.config_file("inputdataconfig.json")
        config = _read_object(path)
        for name, source in channels:
            if not name or "/" in name or name in (".", ".."):
                raise errors.UsageError(f"--channel {name}={source}: bad channel name {name!r}")
            source = os.path.abspath(source)
            if not os.path.exists(source):
                raise errors.UsageError(f"--channel {name}={source}: no such file or directory")
            target = layout.channel_dir(name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(target):
                os.remove(target)
            if os.path.exists(target):
                raise errors.UsageError(
                    f"--channel {name}={source}: {target} already exists and is not a link")
            os.symlink(source, target)
            config.setdefault(name, dict(FILE_CHANNEL))
        _write_object(path, config)
