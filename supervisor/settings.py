"""Settings: everything the command line and SM_ENTRY_* variables decided."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ROOT = "/opt/ml"


class Mode(enum.StrEnum):
    """What sm-entry was started to do."""

    TRAIN = "train"
    SERVE = "serve"
    RUN = "run"  # any other command, supervised the way tini would
    DOCTOR = "doctor"  # check the tree, print what train would run


# Inside the platform's SIGKILL windows: training jobs get 120 s after
# SIGTERM, endpoints 30 s, `docker stop` 10 s. The margin leaves time to kill,
# drain the logs and write the outcome.
DEFAULT_STOP_TIMEOUT = {Mode.TRAIN: 110.0, Mode.SERVE: 25.0, Mode.RUN: 8.0, Mode.DOCTOR: 0.0}


@dataclass(frozen=True)
class ServeOptions:
    """How `serve` runs its model server (see supervisor/serve/)."""

    port: int | None = None  # else SAGEMAKER_BIND_TO_PORT, else 8080
    ready_body: str | None = None  # /ping is healthy only with this text in its body
    probe_interval: float = 2.0
    probe_failures: int = 3
    max_restarts: int = 5
    restart_window: float = 600.0
    request_timeout: float | None = None  # else SAGEMAKER_MODEL_SERVER_TIMEOUT, else none
    listen_mode: str = "proxy"  # or "handoff": the backend gets our listening socket
    client_timeout: float = 60.0  # a client silent this long mid-request (or not reading) is closed
    request_buffer_mb: float = 8.0  # a body up to this is read whole before it is forwarded
    request_buffer_total_mb: float = 64.0  # ... while the bodies kept stay within this
    busy_timeout: float | None = None  # else the request timeout, else 600 s
    max_payload_mb: float | None = None  # else SAGEMAKER_MAX_PAYLOAD_IN_MB, else no limit
    tunnel_idle_timeout: float | None = None  # a WebSocket tunnel silent this long is closed
    ready_path: str = "/ping"  # the backend path whose 200 means ready (and healthy)
    backend_exit: str = "follow"  # a launcher exiting 0, leaving its server: follow | restart
    restart_grace: float = 10.0  # SIGTERM to SIGKILL when the backend is stopped


@dataclass(frozen=True)
class Settings:
    """What to run and how, decided once at start."""

    mode: Mode
    root: str
    stop_timeout: float
    log_format: str
    log_level: str
    command: tuple[str, ...] = ()  # explicit program and arguments, if given
    own_executable: str | None = None  # so `train` on PATH is never ourselves
    drain_timeout: float = 5.0
    progress_interval: float = 5.0
    max_record_bytes: int = 256 * 1024
    metrics: tuple[tuple[str, str], ...] = ()  # (name, regex) pairs
    hyperparameters: tuple[tuple[str, str], ...] = ()  # local runs: --hp KEY=VALUE
    channels: tuple[tuple[str, str], ...] = ()  # local runs: --channel NAME=PATH
    host_wait: float = 15 * 60.0  # multi-host: how long the other hosts may take to resolve
    signal_scope: str = "child"  # who hears forwarded signals: the main child, or its group
    hang_timeout: float | None = None  # seconds without output before a `no output` warning
    hang_action: str = "warn"  # or "stop": the job is stopped at the first warning
    launcher: str = "auto"  # train: torchrun | mpi | none, else what the hyperparameters enable
    serve: ServeOptions = ServeOptions()


def default_root(environ: Mapping[str, str]) -> str:
    """The /opt/ml root: SAGEMAKER_BASE_DIR when set (as the toolkit does)."""
    return environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_ROOT
