"""`sm-entry doctor`: check the /opt/ml tree and show what `train` would run.

For a person debugging a container: every problem named with its file, the
command, the working directory and the environment the program would get,
with secret values redacted.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any, TextIO

from supervisor import errors
from supervisor.core import outcome
from supervisor.settings import Settings

SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_SECURITY_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
REDACTED = "<redacted>"
# Variables whose JSON value holds hyperparameters by name.
HYPERPARAMETER_JSON = ("SM_HPS", "SM_TRAINING_ENV")


def is_secret(name: str) -> bool:
    return name in AWS_CREDENTIALS or bool(SECRET_NAME.search(name))


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if is_secret(str(k)) else _redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def _redact_args(args: list[str]) -> list[str]:
    out = list(args)
    for index, arg in enumerate(out[:-1]):
        if arg.startswith("-") and is_secret(arg.lstrip("-")):
            out[index + 1] = REDACTED
    return out


def redact(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with secrets hidden: by variable name, and inside SM_HPS & co."""
    shown = {}
    for name, value in env.items():
        if is_secret(name):
            shown[name] = REDACTED
        elif name in HYPERPARAMETER_JSON or name == "SM_USER_ARGS":
            try:
                decoded = json.loads(value)
            except ValueError:
                shown[name] = value
                continue
            if name == "SM_USER_ARGS" and isinstance(decoded, list):
                decoded = _redact_args([str(a) for a in decoded])
            shown[name] = json.dumps(_redact_json(decoded), sort_keys=True,
                                     separators=(",", ":"))
        else:
            shown[name] = value
    return shown


def run(settings: Settings, environ: Mapping[str, str], out: TextIO) -> int:
    from supervisor.train import job
    from supervisor.train.layout import Layout

    layout = Layout(settings.root)
    out.write(f"sm-entry doctor: the training job under {layout.root}\n")
    try:
        plan = job.plan(settings, environ)
    except errors.EntryError as exc:
        out.write(f"problem: {exc.message}\n")
        return exc.exit_code
    for name, source in sorted(plan.config_sources.items()):
        out.write(f"config {name}: {source or 'missing: defaults used'}\n")
    hosts = ", ".join(plan.hosts)
    out.write(f"hosts: {hosts} (this host {plan.current_host}, master {plan.master})\n")
    out.write(f"cpus: {plan.num_cpus}  gpus: {plan.num_gpus}\n")
    if plan.submit_directory:
        out.write(f"submit directory: {plan.submit_directory} (into {layout.code_dir})\n")
    if plan.install_package:
        out.write(f"before the program: pip install . in {layout.code_dir}\n")
    out.write(f"command: {shlex.join(_redact_args(plan.command()))}\n")
    out.write(f"working directory: {layout.code_dir}\n")
    out.write("environment:\n")
    for name, value in sorted(redact(plan.env).items()):
        out.write(f"  {name}={value}\n")
    return outcome.EXIT_OK
