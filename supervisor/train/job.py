"""`sm-entry train`: the SageMaker training contract, end to end.

Prepare the /opt/ml tree and the environment exactly as the training
toolkit does, deliver the code, wait for the other hosts, install
requirements, run the program under the process core, and leave
`output/success` or a useful `output/failure`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supervisor import errors
from supervisor.core import memory, outcome
from supervisor.core.process import Child, ChildResult, ChildSpec, Supervisor
from supervisor.settings import Settings
from supervisor.train import failure
from supervisor.train.layout import Layout

if TYPE_CHECKING:
    from supervisor.launch.mpi import Mpi
    from supervisor.logs.ranktags import RankTags
    from supervisor.summary import JobClock
    from supervisor.train.config import TrainingConfig

OutputFactory = Callable[..., Any]  # (observers, tags=None) -> ChildOutput
REQUIREMENTS = "requirements.txt"
# The master's report to its MPI workers: never a prompt, never a long hang.
REPORT_SSH_OPTIONS = ("-n", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                      "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2")
REPORT_WAIT_TEXT = "when its ranks have ended (after a wait) or when the platform stops it"
SSH_CANNOT_CONNECT = 255  # ssh's own failure (no connection), not the remote command's
REPORT_FIRST_RETRY = 1.0
REPORT_MAX_RETRY = 10.0
DOWNLOAD_STOP_WAIT = 2.0  # seconds a stop waits for a download to notice it
MPI_LAUNCHERS = ("mpi", "smddp")  # mpirun from the master, sshd on the workers


class Training:
    """One training job: the steps in order, each a method; a coroutine on the core's loop."""

    def __init__(self, settings: Settings, environ: Mapping[str, str], supervisor: Supervisor,
                 log: Any, make_output: OutputFactory, fields: dict[str, Any],
                 watchdog: Any = None, clock: JobClock | None = None) -> None:
        self.settings = settings
        self.watchdog = watchdog  # its reason, when it stopped the job, leads output/failure
        self.environ = environ
        self.supervisor = supervisor
        self.log = log
        self.make_output = make_output
        self.fields = fields
        self.layout = Layout(settings.root)
        # Read at start (app.py): our cgroup's OOM-kill count then tells OOM for certain.
        self.clock = clock
        self.mpi_workers: list[str] = []  # an MPI master's workers, until told the outcome
        self.remote_shell: list[str] = ["ssh"]  # how the master reaches them (plm_rsh_agent)

    async def run(self) -> int:
        try:
            return await self._run()
        except errors.EntryError as exc:
            self.log.error(exc.message, exit_code=exc.exit_code)
            self._fail(exc.message)
            await self._report_to_workers(exc.exit_code)
            return exc.exit_code

    async def _run(self) -> int:
        from supervisor.launch import hosts
        from supervisor.train import localtree, program

        layout = self.layout
        self._prepare_tree()
        if self.settings.hyperparameters or self.settings.channels:
            localtree.fill(layout, self.settings.hyperparameters, self.settings.channels)
        cfg = read_config(layout)
        self.fields["host"] = str(cfg.resource_config.get("current_host") or self.fields["host"])
        self.mpi_workers = mpi_workers(self.settings, cfg)  # told how the job ends, come what may
        if self.mpi_workers:
            from supervisor.launch.mpi import CUSTOM_OPTIONS, SMDDP_CUSTOM_OPTIONS, remote_shell
            from supervisor.launch.torchrun import choose
            from supervisor.train import environment

            framework = environment.distribution(cfg).framework
            name = (SMDDP_CUSTOM_OPTIONS if choose(self.settings.launcher, framework) == "smddp"
                    else CUSTOM_OPTIONS)
            self.remote_shell = remote_shell(str(framework.get(name) or ""))
        submit = submit_directory(cfg, self.environ)
        if submit:
            done = await self._deliver(submit)
            from supervisor.train.sourcedir import IN_PLACE

            if done == IN_PLACE:  # the SDK's local mode mounts source_dir there, and names it
                self.log.info("code in place: the submit directory is the code directory",
                              code_dir=layout.code_dir)
            else:
                self.log.info("code delivered" if done else "code already in the image; "
                              "submit directory not used", source=submit,
                              code_dir=layout.code_dir, action=done)
        job = plan(self.settings, self.environ, cfg)
        for warning in job.warnings:
            self.log.warning(warning)
        env, argv = job.env, job.command()
        self.log.info("training job", hosts=job.hosts, current_host=job.current_host,
                      master=job.master, num_cpus=job.num_cpus, num_gpus=job.num_gpus,
                      program=argv[0], launcher=job.launcher)
        if not job.takes_part:
            self.log.info("this host is not in the distribution instance groups: nothing to "
                          "run here", distribution_hosts=job.distribution_hosts)
            self._succeed()
            return outcome.EXIT_OK
        if len(job.hosts) > 1:
            await hosts.wait_for_hosts(job.hosts, self.settings.host_wait, self.log,
                                       self.supervisor.loop.time, self._sleep,
                                       off_loop=self._off_loop)
        requirements = os.path.join(layout.code_dir, REQUIREMENTS)
        if os.path.isfile(requirements):
            await self._install(
                [program.python_command(env), "-m", "pip", "install", "-r", REQUIREMENTS],
                env, f"pip install -r {REQUIREMENTS}")
        if job.install_package:
            await self._install([program.python_command(env), "-m", "pip", "install", "."],
                                env, "pip install . (the code directory's package)")
        if job.mpi is not None and job.mpi_worker:
            return await self._mpi_worker(job)
        if job.mpi is not None and job.mpi.workers:
            await hosts.wait_for_ssh(job.mpi.workers, self.settings.host_wait, self.log,
                                     self.supervisor.loop.time, self._sleep,
                                     off_loop=self._off_loop)
        code = await self._run_program(argv, env, failure.program_label(job.program),
                                       mpi=job.mpi, tags=job.rank_tags)
        await self._report_to_workers(code)
        return code

    async def _mpi_worker(self, job: Plan) -> int:
        """An MPI worker: sshd for the master's mpirun, then the job's end as the master says."""
        from supervisor.launch.mpiworker import MpiWorker

        assert job.mpi is not None
        if self.watchdog is not None:
            # The ranks here write to the master's mpirun: this host sees only sshd's lines,
            # and the master's watchdog watches the job's output.
            self.log.info("MPI worker: the hang watchdog is left to the master")
            self.watchdog.close()
            self.watchdog = None
        tail = failure.StderrTail()
        worker = MpiWorker(self.supervisor, self.log, job.mpi.master, self.settings.host_wait)
        report = await worker.run(job.launched[0], job.env, self.layout.code_dir,
                                  self.make_output([tail]))
        if report is None:
            self._stopped("the MPI job")
        assert report is not None
        if report.exit_code == outcome.EXIT_OK:
            self._succeed()
            return outcome.EXIT_OK
        if report.ours:
            self._fail(str(report.reason))
        else:
            self._fail(f"The MPI job failed on the master host {report.master} (exit code "
                       f"{report.exit_code}): {report.reason or 'see its log'}")
        return report.exit_code

    async def _report_to_workers(self, code: int) -> None:
        """Tell each MPI worker how the job ended (over SSH), so that it exits too.

        A worker whose sshd does not answer yet (ssh's exit 255: it is still
        installing its requirements, say) is asked again, with backoff, until
        --host-wait; after a stop signal, only while the stop leaves time.
        """
        workers, self.mpi_workers = self.mpi_workers, []
        if not workers:
            return
        from supervisor.launch.mpiworker import Report, report_command

        reason = None
        if code != outcome.EXIT_OK:
            # Maybe the program's own file: any bytes, any size.
            with contextlib.suppress(OSError), open(self.layout.failure_file, encoding="utf-8",
                                                    errors="replace") as handle:
                reason = failure.truncate(handle.read(failure.MAX_REASON_CHARS + 1))
        command = report_command(Report(code, reason, str(self.fields["host"])))
        loop = self.supervisor.loop
        deadline = loop.time() + self.settings.host_wait
        shell = self.remote_shell
        options = list(REPORT_SSH_OPTIONS) if os.path.basename(shell[0]) == "ssh" else []
        pending = list(workers)
        delay = REPORT_FIRST_RETRY
        while pending:
            attempt = [(host, self._start_report([*shell, *options, host, command]))
                       for host in pending]
            pending = []
            for host, child in attempt:
                if child is None:
                    return
                result = await self._report_done(child, deadline)
                if result.exit_code == SSH_CANNOT_CONNECT and self._report_time_left(deadline):
                    pending.append(host)
                elif result.exit_code != 0:
                    self.log.warning("could not tell an MPI worker how the job ended; it stops "
                                     f"{REPORT_WAIT_TEXT}", host=host, exit_code=result.exit_code)
            if pending:
                self.log.info("MPI workers not reachable yet: asking again", hosts=pending,
                              in_s=delay)
                if not await self._pause(min(delay, self._report_time_left(deadline))):
                    return
                delay = min(delay * 2, REPORT_MAX_RETRY)

    def _start_report(self, argv: list[str]) -> Child | None:
        # Also after a stop signal: the workers end now rather than after a wait.
        spec = ChildSpec(argv=argv, env=dict(self.environ), name="mpi report",
                         output=self.make_output([]), part_of_stop=True)
        try:
            return self.supervisor.start(spec, stop_timeout=1.0)
        except errors.EntryError as exc:
            self.log.warning("cannot tell the MPI workers how the job ended", error=exc.message)
            return None

    def _report_time_left(self, deadline: float) -> float:
        """Seconds the report may still take: --host-wait, or what a stop leaves."""
        left = deadline - self.supervisor.loop.time()
        if self.supervisor.stop_signal is not None:
            left = min(left, self.supervisor.drain_wait())
        return max(0.0, left)

    async def _report_done(self, child: Child, deadline: float) -> ChildResult:
        """The report's ssh, stopped when its time is up (a connection that hangs)."""
        timer = self.supervisor.loop.call_later(
            max(0.1, self._report_time_left(deadline)), self.supervisor.stop_child, child)
        try:
            result: ChildResult = await child.done
        finally:
            timer.cancel()
        return result

    async def _pause(self, seconds: float) -> bool:
        """A wait between two reports; after a stop, not past what the stop leaves."""
        if seconds <= 0:
            return False
        if self.supervisor.stop_signal is None:
            return await self.supervisor.sleep(seconds)
        waiter = self.supervisor.loop.create_future()
        self.supervisor.loop.call_later(seconds, _settle_once, waiter, True)
        await waiter
        return True

    async def _deliver(self, submit: str) -> str | None:
        """The code into place; a download runs in a thread, so that a stop is seen meanwhile."""
        from supervisor.train import sourcedir

        code_dir = self.layout.code_dir
        if not submit.startswith("s3://"):
            return sourcedir.deliver(submit, code_dir)
        import threading

        loop = self.supervisor.loop
        done = loop.create_future()
        stop = threading.Event()

        def work() -> None:
            try:
                result = sourcedir.deliver(submit, code_dir, stop.is_set,
                                           self.settings.own_executable)
            except BaseException as exc:  # handed to the loop, raised there
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)

        thread = threading.Thread(target=work, name="code-download", daemon=True)
        thread.start()
        if not await self.supervisor.wait_for(done):
            stop.set()  # the download stops at its next chunk and removes its file
            # A read blocked on a silent network ends only at its timeout: not waited
            # for (its file has a staging name, removed at the next start).
            thread.join(DOWNLOAD_STOP_WAIT)
            self._stopped("the download of the code")
        result: str | None = done.result()
        return result

    def _prepare_tree(self) -> None:
        """The directories the program writes to; no outcome file left from an earlier run."""
        layout = self.layout
        for directory in (layout.model_dir, layout.output_data_dir,
                          layout.output_intermediate_dir, layout.code_dir):
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise errors.SetupError(f"cannot create {directory}: {exc.strerror}") from None
        for stale in (layout.failure_file, layout.success_file):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)

    async def _off_loop(self, check: Callable[[], list[str]], limit: float,
                        default: list[str]) -> list[str]:
        """`check()` in a thread, so that a resolver or connection that hangs holds nothing:
        its result within `limit` seconds, else `default`; a stop signal ends the job at once."""
        loop = self.supervisor.loop
        future = loop.create_future()

        def run() -> None:
            try:
                result = check()
            except Exception:  # a look that failed: as if nothing were found
                result = default
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle_once, future, result)

        threading.Thread(target=run, name="sm-entry host wait", daemon=True).start()
        timer = loop.call_later(limit, _settle_once, future, default)
        try:
            if not await self.supervisor.wait_for(future):
                self._stopped("the wait for the other hosts")
        finally:
            timer.cancel()
        result: list[str] = future.result()
        return result

    async def _sleep(self, seconds: float) -> None:
        """Wait on the loop; a stop signal ends the wait (and the job) at once."""
        if not await self.supervisor.sleep(seconds):
            self._stopped("the wait for the other hosts")

    def _stopped(self, during: str) -> None:
        assert self.supervisor.stop_signal is not None
        raise errors.Stopped(self.supervisor.stop_signal, during)

    async def _install(self, argv: list[str], env: dict[str, str], what: str) -> None:
        tail = failure.StderrTail()
        result = await self._child(argv, env, "requirements", tail)
        if result.exit_code == 0:
            return
        if not result.started or self.supervisor.stop_signal is not None:
            self._stopped(what)
        detail = "\n".join(tail.last_lines(6))
        raise errors.SetupError(f"{what} failed with exit code {result.exit_code}"
                                + (f":\n{detail}" if detail else ""))

    async def _child(self, argv: list[str], env: dict[str, str], name: str,
                     tail: failure.StderrTail, tags: RankTags | None = None) -> ChildResult:
        spec = ChildSpec(argv=argv, env=env, cwd=self.layout.code_dir, name=name,
                         output=self.make_output([tail], tags=tags))
        return await self.supervisor.run(spec)

    async def _run_program(self, argv: list[str], env: dict[str, str], label: str,
                           mpi: Mpi | None = None, tags: RankTags | None = None) -> int:
        tail = failure.StderrTail()
        result = await self._child(argv, env, "program", tail, tags)
        if not result.started:
            self._fail("the job was stopped before the training program started")
            return result.exit_code
        if result.exit_code == outcome.EXIT_OK:
            self._succeed()
            return outcome.EXIT_OK
        reason = failure.describe(
            program=label,
            exit_code=result.exit_code,
            died_of=result.signal,
            # A stop the watchdog asked for did not come from outside.
            stop_signal=None if self.watchdog and self.watchdog.reason else result.stop_signal,
            killed_by_us=result.killed_by_us,
            stop_timeout=self.settings.stop_timeout,
            tail=tail,
            oom=self._out_of_memory(result, argv),
            rank_host=mpi.rank_host if mpi is not None else None,
        )
        if self.watchdog is not None and self.watchdog.reason:
            reason = failure.truncate(f"{self.watchdog.reason}\n{reason}")
        if not self._fail(reason):
            self.log.info("the program wrote its own failure file; kept",
                          path=self.layout.failure_file)
        return result.exit_code

    def _out_of_memory(self, result: ChildResult, argv: list[str]) -> failure.OutOfMemory | None:
        """The OOM killer acted in our cgroup since the job started: who it killed, if we know."""
        cgroup = self.clock.cgroup if self.clock else None
        before = self.clock.before if self.clock else None
        if cgroup is None or before is None or before.oom_kills is None:
            return None
        after = cgroup.read()
        if after.oom_kills is None or after.oom_kills <= before.oom_kills:
            return None
        killed = None
        if result.signal == signal.SIGKILL and not result.killed_by_us:
            command = " ".join([os.path.basename(argv[0]), *argv[1:2]]) if argv else "?"
            killed = f"PID {result.pid} ({command})"
        self.log.error("the kernel's out-of-memory killer acted in this container",
                       oom_kills=after.oom_kills - before.oom_kills, limit_bytes=after.limit,
                       peak_bytes=after.peak)
        return failure.OutOfMemory(
            limit=memory.human_bytes(after.limit) if after.limit else None, killed=killed)

    def _succeed(self) -> None:
        with contextlib.suppress(OSError), open(self.layout.success_file, "w"):
            pass

    def _fail(self, reason: str) -> bool:
        try:
            return failure.write_failure(self.layout.failure_file, reason)
        except OSError as exc:
            self.log.error("cannot write the failure file", path=self.layout.failure_file,
                           error=exc.strerror)
            return False


@dataclass(frozen=True)
class Plan:
    """What a training job will run, with which environment; computed without side effects."""

    hosts: list[str]
    current_host: str
    master: str
    num_cpus: int
    num_gpus: int
    env: dict[str, str]
    program: list[str]
    user_args: list[str]
    install_package: bool
    submit_directory: str | None
    config_sources: dict[str, str | None]
    launcher: str = "none"  # torchrun | mpi | none
    # The launcher's argv around the program (torchrun, mpirun); an MPI worker's sshd.
    launched: tuple[str, ...] = ()
    takes_part: bool = True  # False: outside the distribution instance groups, runs nothing
    distribution_hosts: tuple[str, ...] = ()
    mpi: Mpi | None = None  # an MPI job: this host's part (master or worker)
    rank_tags: RankTags | None = None  # the launcher tags its ranks' lines: how to read them
    warnings: tuple[str, ...] = ()  # said once as the job starts (a network interface missing)

    @property
    def mpi_worker(self) -> bool:
        return self.mpi is not None and not self.mpi.is_master

    def command(self) -> list[str]:
        return list(self.launched) if self.launched else [*self.program, *self.user_args]


def read_config(layout: Layout) -> TrainingConfig:
    from supervisor.train import config

    return config.load(layout)


def mpi_workers(settings: Settings, cfg: TrainingConfig) -> list[str]:
    """The hosts an MPI master must tell how the job ended; none on other hosts and jobs."""
    from supervisor.launch import torchrun
    from supervisor.train import environment

    distribution = environment.distribution(cfg)
    if (torchrun.choose(settings.launcher, distribution.framework) not in MPI_LAUNCHERS
            or distribution.current_host != distribution.master):
        return []
    return [host for host in distribution.hosts if host != distribution.master]


def submit_directory(cfg: TrainingConfig, environ: Mapping[str, str]) -> str | None:
    from supervisor.train import hyperparameters, sourcedir

    _, _, consumed = hyperparameters.split(hyperparameters.decode(cfg.hyperparameters))
    return sourcedir.submit_directory(consumed, dict(environ))


def plan(settings: Settings, environ: Mapping[str, str],
         cfg: TrainingConfig | None = None) -> Plan:
    """Read the tree and decide everything: the toolkit's environment, the program, its args."""
    from supervisor.launch import torchrun
    from supervisor.logs.ranktags import RankTags
    from supervisor.train import environment, program

    layout = Layout(settings.root)
    cfg = cfg or read_config(layout)
    resources = environment.detect_resources(
        str(cfg.resource_config.get("current_instance_type") or "local"))
    toolkit_env = environment.training_env(cfg, layout, environ, resources)
    env = {**environ, **toolkit_env}
    argv, install_package = program.training_command(
        settings.command, environment.user_entry_point(cfg, environ), layout.code_dir, env,
        settings.own_executable)
    user_args = environment.user_args(cfg)
    distribution = environment.distribution(cfg)
    launcher = torchrun.choose(settings.launcher, distribution.framework)
    notes: list[str] = []
    if launcher in ("torchrun", *MPI_LAUNCHERS):
        from supervisor.launch import network

        interface, note = network.usable_interface(distribution.interface)
        distribution = dataclasses.replace(distribution, interface=interface)
        notes += [note] if note else []
    launched: list[str] = []
    takes_part = True
    mpi = None
    rank_tags = None
    ranks_per_host = torchrun.processes_per_host(resources.num_gpus, resources.num_neurons,
                                                 distribution.framework)
    if launcher == "torchrun":
        from supervisor.launch import efa

        run = torchrun.Torchrun(
            hosts=distribution.hosts, current_host=distribution.current_host,
            master=distribution.master, interface=distribution.interface,
            nproc_per_node=ranks_per_host,
            instance_type=efa.instance_type(cfg.resource_config, distribution.framework))
        takes_part = run.takes_part
        if takes_part:
            env.update(run.environment(env))
            launched = run.command([*argv, *user_args], env)
            if run.tees(env):
                rank_tags = RankTags("torchrun", run.nproc_per_node, run.first_rank)
    elif launcher in MPI_LAUNCHERS:
        from supervisor.executables import find_on_path
        from supervisor.launch import efa
        from supervisor.launch import mpi as mpi_launch

        mpi = mpi_launch.Mpi(
            hosts=distribution.hosts, current_host=distribution.current_host,
            master=distribution.master, interface=distribution.interface,
            processes_per_host=ranks_per_host, framework=distribution.framework,
            flavor=launcher, instance_type=efa.instance_type(
                cfg.resource_config, distribution.framework, smddp=launcher == "smddp"))
        takes_part = mpi.takes_part
        if takes_part and mpi.is_master:
            # The toolkit passes on its SM_* variables and PYTHONPATH (not CURRENT_HOST &c.).
            exports = [name for name in sorted(toolkit_env) if name.startswith("SM_")]
            exports += ["PYTHONPATH"] if "PYTHONPATH" in toolkit_env else []
            launched = mpi.command([*argv, *user_args], env, exports,
                                   mpi4py=mpi_launch.has_mpi4py(argv[0], env))
            rank_tags = RankTags("mpirun", mpi.processes_per_host)
            if launcher == "smddp" and find_on_path("smddprun", env, None) is None:
                notes.append(mpi_launch.MISSING_SMDDPRUN)
        elif takes_part:
            from supervisor.launch.mpiworker import find_sshd

            launched = [find_sshd(env), "-D", "-e"]  # the ranks come from the master's mpirun
    return Plan(
        hosts=[str(host) for host in cfg.resource_config.get("hosts") or []],
        current_host=str(cfg.resource_config.get("current_host") or ""),
        master=environment.master_host(cfg),
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        env=env,
        program=argv,
        user_args=user_args,
        install_package=install_package,
        submit_directory=submit_directory(cfg, environ),
        config_sources=dict(cfg.sources),
        launcher=launcher,
        launched=tuple(launched),
        takes_part=takes_part,
        distribution_hosts=tuple(distribution.hosts),
        mpi=mpi,
        rank_tags=rank_tags,
        warnings=tuple(notes),
    )


async def run(settings: Settings, environ: Mapping[str, str], supervisor: Supervisor, log: Any,
              make_output: OutputFactory, fields: dict[str, Any], watchdog: Any = None,
              clock: JobClock | None = None) -> int:
    return await Training(settings, environ, supervisor, log, make_output, fields,
                          watchdog, clock).run()


def _settle_once(future: Any, result: object) -> None:
    """The first of a thread's answer and its time limit wins."""
    if not future.done():
        future.set_result(result)


def _settle(future: Any, result: object, exception: BaseException | None) -> None:
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
