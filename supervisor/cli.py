"""The command line: click commands and options turned into Settings; nothing else."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from supervisor.core.lazyimport import deferred

# Everything imported at start-up goes through deferred(): see lazyimport.
with deferred():
    import click

    from supervisor import __version__
    from supervisor.core import frozen, outcome
    from supervisor.core.signals import hold_signals
    from supervisor.logs import events
    from supervisor.settings import DEFAULT_STOP_TIMEOUT, Mode, Settings, default_root

MAIN_HELP = """\
A container entrypoint (PID 1) for machine-learning jobs.

\b
SageMaker starts the container as `IMAGE train` or `IMAGE serve`; with
ENTRYPOINT ["sm-entry"] those become the modes below. Any other command is
run as a supervised child, the way tini runs it: signals forwarded to it,
every zombie reaped, everything it started stopped when it ends, its exit
code returned (128+N when it died of signal N).

\b
Examples:
  sm-entry train                        run the training program
  sm-entry train -- python3 train.py    run this training command
  sm-entry serve -- gunicorn app:app    serve with this model server
  sm-entry python3 job.py --epochs 3    supervise any command
  sm-entry -- train.sh                  run a program named like a mode

Every option can also be set with the SM_ENTRY_* variable shown, since
SageMaker only appends `train` or `serve` to the ENTRYPOINT.

\b
Exit codes: the child's own code; 128+N when it died of signal N (137 when
it was killed after the stop timeout; 128+N also when a stop signal came
during set-up); 2 bad usage; 65 set-up failed; 70 internal error of
sm-entry; 73 no directory to unpack into; 78 bad configuration; 126 command
not executable; 127 command not found.
"""

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
COMMAND_CONTEXT = {**CONTEXT, "allow_interspersed_args": False, "ignore_unknown_options": True}
MODE_CONTEXT = {**CONTEXT, "allow_interspersed_args": False}


class EntryGroup(click.Group):
    """A group whose unknown first word is a command to run, not an error."""

    def __init__(self, *args: Any, run_command: click.Command, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_command = run_command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            raise click.UsageError(
                "give a mode (train, serve) or a command to run; an image whose ENTRYPOINT is "
                "sm-entry should also carry CMD [\"train\"] (or [\"serve\"]), which SageMaker's "
                "own argument replaces: some launchers (SDK v3's local ModelTrainer) pass none",
                ctx)
        rest = super().parse_args(ctx, [*args])
        remaining = [*ctx._protected_args, *rest]
        start = len(args) - len(remaining)
        # `sm-entry -- train` runs a program called train, not the mode.
        ctx.meta["explicit_command"] = start > 0 and args[start - 1] == "--"
        return rest

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if not ctx.meta.get("explicit_command") and args and args[0] in self.commands:
            return super().resolve_command(ctx, args)
        if args and args[0].startswith("-") and not ctx.meta.get("explicit_command"):
            raise click.NoSuchOption(args[0], ctx=ctx)
        return "run", self.run_command, args


def _metrics(ctx: click.Context, options: Sequence[str]) -> tuple[tuple[str, str], ...]:
    from supervisor import errors
    from supervisor.logs.metrics import parse_definitions

    pairs = []
    for option in options:
        name, sep, regex = option.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{option!r} is not NAME=REGEX", ctx=ctx,
                                     param_hint="--metric")
        pairs.append((name, regex))
    try:
        return parse_definitions(pairs, os.environ.get("SM_ENTRY_METRICS"))
    except errors.UsageError as exc:
        raise click.UsageError(exc.message, ctx=ctx) from None


def _global_options(ctx: click.Context) -> dict[str, Any]:
    """The group's options, overridden by those given after the mode."""
    options = dict(ctx.find_root().params)
    options.update({k: v for k, v in ctx.params.items() if k in options and v not in (None, ())})
    return options


def _settings(ctx: click.Context, mode: Mode, command: Sequence[str],
              **extra: Any) -> Settings:
    options = _global_options(ctx)
    log_format = options["log_format"]
    if log_format is None:
        log_format = "text" if sys.stderr.isatty() else "json"
    stop_timeout = options["stop_timeout"]
    return Settings(
        mode=mode,
        root=options["root"] or default_root(os.environ),
        stop_timeout=DEFAULT_STOP_TIMEOUT[mode] if stop_timeout is None else stop_timeout,
        log_format=log_format,
        log_level=options["log_level"],
        signal_scope=options["signal_scope"] or "child",
        command=tuple(command),
        own_executable=(ctx.find_root().obj or {}).get("own_executable"),
        drain_timeout=options["drain_timeout"],
        progress_interval=options["progress_interval"],
        max_record_bytes=options["max_record_bytes"],
        metrics=_metrics(ctx, options["metric"]),
        hang_timeout=options["hang_timeout"],
        hang_action=options["hang_action"] or "warn",
        **extra,
    )


# Options accepted before the mode (`sm-entry --root X train`) and after it
# (`sm-entry train --root X`); each also read from its SM_ENTRY_* variable.
GLOBAL_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--root", {
        "envvar": "SM_ENTRY_ROOT", "metavar": "DIR",
        "help": "The /opt/ml tree. [default: $SAGEMAKER_BASE_DIR, else /opt/ml]"}),
    ("--stop-timeout", {
        "envvar": "SM_ENTRY_STOP_TIMEOUT", "type": click.FloatRange(min=0), "metavar": "SECONDS",
        "help": "After SIGTERM/SIGINT, how long the child gets to stop before its whole process "
        "tree is SIGKILLed; also the grace given to what it leaves running when it exits. "
        "[default: 110 for train, 25 for serve, 8 for a command]"}),
    ("--signal-scope", {
        "envvar": "SM_ENTRY_SIGNAL_SCOPE", "type": click.Choice(("child", "group")),
        "help": "Who hears the signals sm-entry forwards (SIGTERM included): child, the main "
        "child only, which stops its own workers in its own order (a DataLoader, torchrun, "
        "gunicorn); group, its whole process group (a shell script whose commands should all "
        "hear them). [default: child]"}),
    ("--log-format", {
        "envvar": "SM_ENTRY_LOG_FORMAT", "type": click.Choice(events.LOG_FORMATS),
        "help": "json: one JSON record per line of the child and per event of ours; text: the "
        "child's lines as they are; raw: the child's bytes unchanged (our events in json). "
        "[default: text when stderr is a terminal, else json]"}),
    ("--log-level", {
        "envvar": "SM_ENTRY_LOG_LEVEL", "type": click.Choice(list(events.LEVELS)),
        "default": "info",
        "help": "The least important of sm-entry's own events to print. [default: info]"}),
    ("--drain-timeout", {
        "envvar": "SM_ENTRY_DRAIN_TIMEOUT", "type": click.FloatRange(min=0), "default": 5.0,
        "metavar": "SECONDS",
        "help": "After the job's processes are gone, how long to keep reading output pipes "
        "that other processes still hold open, and to wait for a stalled reader of our own "
        "output. [default: 5]"}),
    ("--progress-interval", {
        "envvar": "SM_ENTRY_PROGRESS_INTERVAL", "type": click.FloatRange(min=0), "default": 5.0,
        "metavar": "SECONDS",
        "help": "A progress bar redrawn with \\r is printed at most this often, and at its "
        "end. [default: 5]"}),
    ("--metric", {
        "multiple": True, "metavar": "NAME=REGEX",
        "help": "Print a CloudWatch EMF metric NAME for each line matching REGEX (its first group "
        "is the value), as SageMaker MetricDefinitions do; repeatable. SM_ENTRY_METRICS may hold "
        'MetricDefinitions JSON: [{"Name": ..., "Regex": ...}].'}),
    ("--hang-timeout", {
        "envvar": "SM_ENTRY_HANG_TIMEOUT", "type": click.FloatRange(min=0.1),
        "metavar": "SECONDS",
        "help": "When the job prints nothing for this long, log a `no output` warning with a "
        "snapshot of its processes (state, CPU used since, command, wchan), again every "
        "SECONDS while it stays silent. [default: off]"}),
    ("--hang-action", {
        "envvar": "SM_ENTRY_HANG_ACTION", "type": click.Choice(("warn", "stop")),
        "help": "stop: after the first `no output` warning also stop the job as SIGTERM would "
        "(the same grace), with the reason in output/failure. [default: warn]"}),
    ("--max-record-bytes", {
        "envvar": "SM_ENTRY_MAX_RECORD_BYTES", "type": click.IntRange(min=4096),
        "default": 256 * 1024, "metavar": "BYTES",
        "help": "Longer lines are split into parts so that no printed record exceeds this "
        "(CloudWatch's event limit). [default: 262144]"}),
]


def global_options(in_mode: bool) -> Callable[[F], F]:
    """The GLOBAL_OPTIONS; after a mode they have no default (the group's value applies)."""

    def decorate(function: F) -> F:
        for name, kwargs in reversed(GLOBAL_OPTIONS):
            if in_mode:
                kwargs = {k: v for k, v in kwargs.items() if k not in ("envvar", "default")}
            else:
                kwargs = {**kwargs, "show_envvar": True}
            function = click.option(name, **kwargs)(function)
        return function

    return decorate


@click.command(
    "run",
    context_settings=COMMAND_CONTEXT,
    help="Run COMMAND as a supervised child.",
    add_help_option=False,
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, command: tuple[str, ...]) -> Settings:
    return _settings(ctx, Mode.RUN, command)


@click.group(
    cls=EntryGroup,
    run_command=run_command,
    context_settings={**CONTEXT, "allow_interspersed_args": False},
    help=MAIN_HELP,
    options_metavar="[OPTIONS]",
    subcommand_metavar="train|serve|COMMAND [ARGS]...",
)
@click.version_option(__version__, "-V", "--version", message="sm-entry %(version)s")
@global_options(in_mode=False)
@click.pass_context
def cli(ctx: click.Context, /, **_options: Any) -> None:
    """sm-entry (help text is MAIN_HELP)."""


def _key_values(ctx: click.Context, param: click.Parameter,
                values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", ctx=ctx, param=param)
        pairs.append((key, rest))
    return tuple(pairs)


@cli.command(context_settings=MODE_CONTEXT)
@global_options(in_mode=True)
@click.option("--hp", "hyperparameters", multiple=True, metavar="KEY=VALUE",
              callback=_key_values,
              help="Local run: set a hyperparameter in input/config/hyperparameters.json.")
@click.option("--channel", "channels", multiple=True, metavar="NAME=PATH", callback=_key_values,
              help="Local run: make PATH the data of channel NAME (input/data/NAME).")
@click.option("--host-wait", envvar="SM_ENTRY_HOST_WAIT", show_envvar=True,
              type=click.FloatRange(min=0), default=15 * 60.0, show_default=True,
              metavar="SECONDS", help="Multi-host: how long the other hosts may take to resolve "
              "(and, for MPI, to start their SSH daemons).")
@click.option("--launcher", envvar="SM_ENTRY_LAUNCHER", show_envvar=True,
              type=click.Choice(["auto", "torchrun", "mpi", "smddp", "none"]), default="auto",
              show_default=True,
              help="Start the program under torchrun on every host of the job; or under "
              "mpirun from the master, the other hosts running sshd (needs mpirun and sshd "
              "in the image); smddp: mpirun as SageMaker's data parallel library starts it "
              "(smddprun before the program when installed); or alone. Ranks per host: "
              "sagemaker_mpi_num_of_processes_per_host, else one per GPU, else per Neuron "
              "core, else 1. The EFA settings of the toolkit follow the instance type. auto: "
              "as the PyTorch containers choose: mpi when sagemaker_mpi_enabled, smddp for "
              "pytorch_ddp, torchrun for torch_distributed, smddp for "
              "distributed_dataparallel.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def train(ctx: click.Context, /, hyperparameters: tuple[tuple[str, str], ...],
          channels: tuple[tuple[str, str], ...], host_wait: float, launcher: str,
          command: tuple[str, ...], **_options: Any) -> Settings:
    """Run a SageMaker training job, as the sagemaker-training toolkit would.

    \b
    Reads input/config/*.json under the root, exports the toolkit's SM_*
    variables, and runs, in the code directory (<root>/code), the first of:
      COMMAND given after --  (or SM_ENTRY_TRAIN_COMMAND)
      SAGEMAKER_PROGRAM / hyperparameter sagemaker_program (.py with python3,
        .sh with /bin/sh, a package with python3 -m, else executed)
      an executable named `train` on PATH (not sm-entry itself)
    with the hyperparameters appended as --key value arguments. Writes
    output/success, or output/failure with the reason.

    \b
    Try it locally:
      sm-entry train --root /tmp/ml --hp epochs=3 --channel train=./data -- python3 train.py
    """
    return _settings(ctx, Mode.TRAIN, command, hyperparameters=hyperparameters,
                     channels=channels, host_wait=host_wait, launcher=launcher)


@cli.command(context_settings=CONTEXT)
@global_options(in_mode=True)
@click.pass_context
def doctor(ctx: click.Context, /, **_options: Any) -> Settings:
    """Check the /opt/ml tree; show the command and environment train would use.

    Secret values (names with KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL) are redacted.
    """
    return _settings(ctx, Mode.DOCTOR, ())


def _request_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith("/") or any(c in value for c in " \t\r\n"):
        raise click.BadParameter(f"{value!r} is not a path (it starts with / and has no space)",
                                 ctx=ctx, param=param)
    return value


@cli.command(context_settings=MODE_CONTEXT)
@global_options(in_mode=True)
@click.option("--port", envvar="SM_ENTRY_PORT", show_envvar=True, type=click.IntRange(1, 65535),
              help="The port of the front. [default: $SAGEMAKER_BIND_TO_PORT, else 8080]")
@click.option("--ready-path", envvar="SM_ENTRY_READY_PATH", show_envvar=True, metavar="PATH",
              default="/ping", show_default=True, callback=_request_path,
              help="The backend path asked for readiness and health: ready when it answers 200 "
              "(and --ready-body). For servers whose /ping says 200 before the model is "
              "loaded: TorchServe /models/NAME (with --ready-body READY), Triton "
              "/v2/health/ready, vLLM and TGI /health.")
@click.option("--ready-body", envvar="SM_ENTRY_READY_BODY", show_envvar=True, metavar="TEXT",
              help="The backend is ready only when its answer to --ready-path is 200 with TEXT "
              "in its body (MMS answers 200 \"Unhealthy\" while loading).")
@click.option("--backend-exit", envvar="SM_ENTRY_BACKEND_EXIT", show_envvar=True,
              type=click.Choice(("follow", "restart")), default="follow", show_default=True,
              help="When the model server's command exits 0 and leaves processes it started "
              "(a launcher that daemonizes: torchserve --start), follow: they are the model "
              "server from then on (health checks, signals, the drain, a restart when they end); "
              "restart: stop them and start the command again.")
@click.option("--restart-grace", envvar="SM_ENTRY_RESTART_GRACE", show_envvar=True,
              type=click.FloatRange(min=0), default=10.0, show_default=True, metavar="SECONDS",
              help="When the model server is stopped (a restart, the end of the drain), how long "
              "it gets after SIGTERM before its whole tree is SIGKILLed.")
@click.option("--probe-interval", envvar="SM_ENTRY_PROBE_INTERVAL", show_envvar=True,
              type=click.FloatRange(min=0.05), default=2.0, show_default=True, metavar="SECONDS",
              help="How often the ready backend's /ping is checked.")
@click.option("--probe-failures", envvar="SM_ENTRY_PROBE_FAILURES", show_envvar=True,
              type=click.IntRange(min=1), default=3, show_default=True, metavar="N",
              help="Failed checks in a row after which the backend is restarted.")
@click.option("--max-restarts", envvar="SM_ENTRY_MAX_RESTARTS", show_envvar=True,
              type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="Restarts allowed within --restart-window; one more and sm-entry exits 1, so "
              "that the platform replaces the instance.")
@click.option("--restart-window", envvar="SM_ENTRY_RESTART_WINDOW", show_envvar=True,
              type=click.FloatRange(min=1), default=600.0, show_default=True, metavar="SECONDS")
@click.option("--request-timeout", envvar="SM_ENTRY_REQUEST_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0.001), metavar="SECONDS",
              help="A request not answered within this gets 504. [default: "
              "$SAGEMAKER_MODEL_SERVER_TIMEOUT, else none: async inference runs up to an hour]")
@click.option("--listen-mode", envvar="SM_ENTRY_LISTEN_MODE", show_envvar=True,
              type=click.Choice(("proxy", "handoff")), default="proxy", show_default=True,
              help="proxy: sm-entry's front answers /ping and proxies to the model server. "
              "handoff: the model server gets sm-entry's listening socket ({fd}, "
              "SM_ENTRY_LISTEN_FD: gunicorn --bind fd://{fd}, uvicorn --fd {fd}) and serves "
              "the port itself, with no proxy cost; /ping and the drain are then its own.")
@click.option("--client-timeout", envvar="SM_ENTRY_CLIENT_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              metavar="SECONDS",
              help="A client that sends nothing for this long in the middle of a request head "
              "or body, or reads nothing of an answer, is closed (408 when it can be answered), "
              "with the model server's connection it held.")
@click.option("--request-buffer-mb", envvar="SM_ENTRY_REQUEST_BUFFER_MB", show_envvar=True,
              type=click.FloatRange(min=0), default=8.0, show_default=True, metavar="MB",
              help="A request body up to this size is read whole before it is sent to the model "
              "server, so that a slow client never holds one of its workers; larger bodies are "
              "streamed as they arrive. 0: stream every body.")
@click.option("--request-buffer-total-mb", envvar="SM_ENTRY_REQUEST_BUFFER_TOTAL_MB",
              show_envvar=True, type=click.FloatRange(min=0), default=64.0, show_default=True,
              metavar="MB",
              help="The most memory all the bodies read whole may take together; past it, "
              "bodies are streamed.")
@click.option("--busy-timeout", envvar="SM_ENTRY_BUSY_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0.001), metavar="SECONDS",
              help="A ready model server whose /ping times out while it has requests in flight "
              "is busy, not dead (no restart), as long as it sent something back within this. "
              "[default: the request timeout, else 600]")
@click.option("--max-payload-mb", envvar="SM_ENTRY_MAX_PAYLOAD_MB", show_envvar=True,
              type=click.FloatRange(min=0, min_open=True), metavar="MB",
              help="A request body over this gets 413. [default: $SAGEMAKER_MAX_PAYLOAD_IN_MB "
              "(set by the platform for batch transform), else no limit: asynchronous "
              "inference sends up to 1 GB]")
@click.option("--tunnel-idle-timeout", envvar="SM_ENTRY_TUNNEL_IDLE_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="A WebSocket tunnel that moves no byte either way for this long is closed. "
              "[default: none; SageMaker's sidecar pings every 60 s]")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def serve(ctx: click.Context, /, command: tuple[str, ...], port: int | None, ready_path: str,
          ready_body: str | None, backend_exit: str, restart_grace: float,
          probe_interval: float, probe_failures: int, max_restarts: int,
          restart_window: float, request_timeout: float | None, listen_mode: str,
          client_timeout: float, request_buffer_mb: float, request_buffer_total_mb: float,
          busy_timeout: float | None, max_payload_mb: float | None,
          tunnel_idle_timeout: float | None, **_options: Any) -> Settings:
    """Serve a model: the front on port 8080, the model server behind it, supervised.

    \b
    The model server is COMMAND (after --), else SM_ENTRY_SERVE_COMMAND, else
    an executable named `serve` on PATH (not sm-entry itself). It must
    listen where sm-entry says: {port} (and SM_ENTRY_BACKEND_PORT,
    SAGEMAKER_BIND_TO_PORT) on 127.0.0.1, or {socket}, a unix socket path:
      sm-entry serve -- gunicorn -b 127.0.0.1:{port} app:app
      sm-entry serve -- gunicorn -b unix:{socket} app:app
      sm-entry serve -- uvicorn --uds {socket} app:app

    \b
    sm-entry answers /ping itself (GET, HEAD, POST): 503 until the model
    server is ready (its /ping, or --ready-path, answers 200), 200 after. It
    proxies every other request (bodies up to 8 MiB read whole first) and
    tunnels WebSocket upgrades (SageMaker's bidirectional streaming), follows
    a launcher that daemonizes (torchserve --start), restarts a model server
    that dies or stops answering (backoff 0.5 s doubling to 30 s), and on
    SIGTERM drains: /ping 503, no new connections, requests in flight finish
    within --stop-timeout, then the model server is stopped.
    """
    from supervisor.settings import ServeOptions

    options = ServeOptions(port=port, ready_body=ready_body, probe_interval=probe_interval,
                           probe_failures=probe_failures, max_restarts=max_restarts,
                           restart_window=restart_window, request_timeout=request_timeout,
                           listen_mode=listen_mode, client_timeout=client_timeout,
                           request_buffer_mb=request_buffer_mb,
                           request_buffer_total_mb=request_buffer_total_mb,
                           busy_timeout=busy_timeout, max_payload_mb=max_payload_mb,
                           tunnel_idle_timeout=tunnel_idle_timeout, ready_path=ready_path,
                           backend_exit=backend_exit, restart_grace=restart_grace)
    return _settings(ctx, Mode.SERVE, command, serve=options)


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"sm-entry: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def parse(args: Sequence[str], own_executable: str | None = None) -> Settings | int:
    """Settings for a command line, or the exit code when it only asked for --help/--version.

    Raises click.UsageError (and other click errors) for a bad command line.
    """
    result = cli.main(
        args=list(args),
        prog_name="sm-entry",
        standalone_mode=False,
        obj={"own_executable": own_executable},
    )
    return result if isinstance(result, Settings) else int(result or 0)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the binary, the console script and `python -m supervisor`."""
    hold_signals()  # the console script arrives here first (see core.signals)
    own_executable = frozen.own_executable(os.environ)
    frozen.restore_user_environment()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = parse(args, own_executable)
    except click.UsageError as exc:
        _fail(f"{exc.format_message()} (see sm-entry --help)", outcome.EXIT_USAGE)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        _fail("aborted", outcome.EXIT_INTERNAL_ERROR)
    if not isinstance(settings, Settings):
        sys.exit(settings)
    from supervisor import app

    try:
        code = app.run(settings, os.environ)
    except Exception as exc:  # a bug of ours: one line, a meaningful code, no traceback dump
        _fail(f"internal error: {type(exc).__name__}: {exc}", outcome.EXIT_INTERNAL_ERROR)
    # Everything we print went out with os.write; skip the interpreter's teardown of
    # every module (20-25 ms here), which only delays the container's exit.
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
