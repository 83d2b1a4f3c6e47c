"""Secrets hidden before anything is printed: argv, environment, URLs with credentials.

Used by the "child started" event and by `doctor`: CloudWatch logs and a
pasted `doctor` output must not carry tokens. A value is secret when its name
says so (KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL), whether it comes as
`--hf-token VALUE`, `--hf-token=VALUE` or `HF_TOKEN=VALUE` (anywhere in an
argv: `mpirun -x HF_TOKEN=...`), and the password of any
`scheme://user:password@host` is hidden wherever it appears. Used too by
the hang watchdog, whose process listing goes into output/failure.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_SECURITY_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
REDACTED = "<redacted>"
# Variables whose JSON value holds hyperparameters by name.
HYPERPARAMETER_JSON = ("SM_HPS", "SM_TRAINING_ENV")
# Variables that hold a command line.
COMMAND_VARIABLES = ("SM_ENTRY_TRAIN_COMMAND", "SM_ENTRY_SERVE_COMMAND")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)=")  # NAME=VALUE, as env and -x take it
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")


def is_secret(name: str) -> bool:
    return name in AWS_CREDENTIALS or bool(SECRET_NAME.search(name))


def redact_url_passwords(text: str) -> str:
    """`https://user:token@host` -> `https://user:<redacted>@host`, anywhere in `text`."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)


def redact_args(args: Sequence[str]) -> list[str]:
    """An argv with every secret hidden: `--token VALUE`, `--token=VALUE`, and `NAME=VALUE`
    wherever it stands (`mpirun -x HF_TOKEN=...`, `env WANDB_API_KEY=...`)."""
    out = [redact_url_passwords(arg) for arg in args]
    hide_next = False
    for index, arg in enumerate(out):
        if hide_next:
            out[index] = REDACTED
            hide_next = False
            continue
        if arg.startswith("-"):
            name, equals, _value = arg.partition("=")
            if not is_secret(name.lstrip("-")):
                continue
            if equals:
                out[index] = f"{name}={REDACTED}"
            else:
                hide_next = True
        elif (assignment := _ASSIGNMENT.match(arg)) and is_secret(assignment.group(1)):
            out[index] = f"{assignment.group(1)}={REDACTED}"
    return out


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if is_secret(str(k)) else _redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    if isinstance(value, str):
        return redact_url_passwords(value)
    return value


def redact_command(text: str) -> str:
    """A command line given as one string (SM_ENTRY_TRAIN_COMMAND), with its secrets hidden."""
    try:
        words = shlex.split(text)
    except ValueError:
        return redact_url_passwords(text)
    return shlex.join(redact_args(words))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with secrets hidden: by name, in command lines, in SM_HPS & co, in URLs."""
    shown = {}
    for name, value in env.items():
        if is_secret(name):
            shown[name] = REDACTED
        elif name in COMMAND_VARIABLES:
            shown[name] = redact_command(value)
        elif name in HYPERPARAMETER_JSON or name == "SM_USER_ARGS":
            try:
                decoded = json.loads(value)
            except ValueError:
                shown[name] = redact_url_passwords(value)
                continue
            if name == "SM_USER_ARGS" and isinstance(decoded, list):
                decoded = redact_args([str(a) for a in decoded])
            shown[name] = json.dumps(_redact_json(decoded), sort_keys=True,
                                     separators=(",", ":"))
        else:
            shown[name] = redact_url_passwords(value)
    return shown
