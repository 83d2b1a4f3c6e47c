"""`sm-entry doctor`: check the /opt/ml tree and show what `train` would run.

For a person debugging a container: every problem named with its file, the
command, the working directory and the environment the program would get,
with secret values redacted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TextIO

from supervisor import errors
from supervisor.core import outcome
from supervisor.redact import redact_args, redact_env
from supervisor.settings import Settings


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
    for warning in plan.warnings:
        out.write(f"warning: {warning}\n")
    if plan.submit_directory:
        out.write(f"submit directory: {plan.submit_directory} (into {layout.code_dir})\n")
    if plan.install_package:
        out.write(f"before the program: pip install . in {layout.code_dir}\n")
    out.write(f"command: {shlex.join(redact_args(plan.command()))}\n")
    if plan.mpi_worker:
        out.write(f"  (an MPI worker: the master {plan.master}'s mpirun starts the ranks here "
                  "over SSH)\n")
    out.write(f"working directory: {layout.code_dir}\n")
    out.write("environment:\n")
    for name, value in sorted(redact_env(plan.env).items()):
        out.write(f"  {name}={value}\n")
    return outcome.EXIT_OK
