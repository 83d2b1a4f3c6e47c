"""The region of the AWS config file, read as botocore reads it, without botocore.

`SAGEMAKER_REGION` is boto3's region when no hyperparameter gives one:
AWS_DEFAULT_REGION, else `region` of the profile in the config file. Reading
that file here costs a configparser; importing botocore for it would cost
tens of milliseconds of every training start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def config_file(environ: Mapping[str, str]) -> str:
    path = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    home = environ.get("HOME")
    if path.startswith("~") and home:
        return home + path[1:]
    return os.path.expanduser(path)


def config_file_region(environ: Mapping[str, str]) -> str | None:
    """`region` of the profile (AWS_PROFILE, else default) in the config file, or None."""
    path = config_file(environ)
    if not os.path.isfile(path):
        return None
    import configparser

    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None  # botocore would refuse the file too; the download says so
    sections = [f"profile {profile}", profile] if profile == "default" else [f"profile {profile}"]
    for section in sections:
        if parser.has_option(section, "region"):
            return parser.get(section, "region").strip() or None
    return None
