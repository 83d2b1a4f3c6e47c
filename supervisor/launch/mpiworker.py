"""A worker host of an MPI job: an SSH daemon until the master says how the job ended.

mpirun on the master starts `orted` on each worker over SSH, and orted starts
the ranks. orted daemonizes, so it and the ranks end up ours (we are PID 1 or
a subreaper), beside sshd: a stop signal stops sshd and then them, and we
reap them. The job is
over for a worker when the master reports its outcome: after mpirun ended,
the master writes a small JSON report over SSH to the file our sshd names in
every session's environment (`SetEnv`). The worker then stops sshd and exits
with the master's exit code, and on failure writes the master's reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supervisor import errors
from supervisor.core import tree
from supervisor.core.process import Child, ChildSpec, Supervisor
from supervisor.executables import find_on_path

REPORT_VARIABLE = "SM_ENTRY_MPI_REPORT"
SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
PRIVILEGE_SEPARATION_DIRS = ("/run/sshd", "/var/run/sshd")
POLL = 0.5  # seconds between looks at the report file and the process tree
# After the last orted ended, how long the master's report may take to arrive.
REPORT_WAIT = 60.0
SESSIONS_WAIT = 5.0  # for the report's own SSH session to close before sshd is stopped
DAEMONS = ("orted", "prted")  # what mpirun starts on each worker (Open MPI 4, 5)
MISSING_SSHD = ("needed on MPI worker hosts, where mpirun starts the ranks over SSH: install "
                "an SSH server in the image (Debian/Ubuntu: apt-get install openssh-server) "
                "and give the hosts a key they accept from each other")


@dataclass(frozen=True)
class Report:
    """How the job ended, as the master tells its workers."""

    exit_code: int
    reason: str | None
    master: str
    ours: bool = False  # the worker's own conclusion (no report came), not the master's word

    def encode(self) -> str:
        return json.dumps({"exit_code": self.exit_code, "reason": self.reason,
                           "master": self.master}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str, master: str) -> Report:
        try:
            data = json.loads(text)
            code = int(data["exit_code"])
            reason = data.get("reason")
            return cls(code, reason if isinstance(reason, str) else None,
                       str(data.get("master") or master))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(1, f"the master's report could not be read: {text[:200]!r}", master)


def report_command(report: Report) -> str:
    """The shell command the master runs on a worker over SSH: write the report, atomically."""
    target = f'"${REPORT_VARIABLE}"'
    return (f'[ -n "${REPORT_VARIABLE}" ] && umask 077 && '
            f"printf '%s' {shlex.quote(report.encode())} > {target}.part && "
            f"mv -f {target}.part {target}")


def find_sshd(environ: Mapping[str, str]) -> str:
    for path in SSHD_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = find_on_path("sshd", environ, None)
    if found is None:
        raise errors.CommandNotFound("sshd", MISSING_SSHD)
    return found


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class MpiWorker:
    """Runs sshd as our main child and waits for the master's report (or a stop)."""

    def __init__(self, supervisor: Supervisor, log: Any, master: str,
                 first_session_wait: float = 15 * 60.0) -> None:
        self.supervisor = supervisor
        self.log = log
        self.master = master
        # The master may spend long on its code, its requirements, its other workers; but a
        # master that died before mpirun must not leave us waiting forever.
        self.first_session_wait = first_session_wait

    async def run(self, sshd: str, env: dict[str, str], cwd: str, output: Any) -> Report | None:
        """The master's report; None when we were stopped first. Raises when sshd fails."""
        for directory in PRIVILEGE_SEPARATION_DIRS:
            with contextlib.suppress(OSError):
                os.makedirs(directory, mode=0o755, exist_ok=True)
        private = tempfile.mkdtemp(prefix="sm-entry-mpi-")
        path = os.path.join(private, "report")
        argv = [sshd, "-D", "-e", "-o", f"SetEnv={REPORT_VARIABLE}={path}"]
        try:
            child = self.supervisor.start(ChildSpec(argv=argv, env=env, cwd=cwd, name="sshd",
                                                    output=output))
            self.log.info("MPI worker: waiting for the master to start the job over SSH",
                          master=self.master)
            try:
                report = await self._wait(child, path)
            finally:
                await self._stop(child)
            return report
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def _wait(self, child: Child, path: str) -> Report | None:
        seen: set[int] = set()
        quiet_since: float | None = None
        loop = self.supervisor.loop
        started = loop.time()
        while True:
            report = self._read(path)
            if report is not None:
                self.log.info("MPI worker: the master reported the job's end",
                              master=report.master, exit_code=report.exit_code)
                return report
            if child.done.done():
                result = child.done.result()
                raise errors.SetupError(
                    f"sshd exited with code {result.exit_code} before the MPI job ended "
                    f"(see its lines above): mpirun on {self.master} cannot start ranks here")
            # With plm_rsh_no_tree_spawn, orted daemonizes: its parent exits and it becomes
            # ours (we are PID 1 or a subreaper), not sshd's. So look in our whole tree.
            # (Open MPI 5's daemon is prted.)
            orteds = [pid for pid in tree.descendants(os.getpid()) if _comm(pid) in DAEMONS]
            for pid in orteds:
                if pid not in seen:
                    seen.add(pid)
                    ranks = tree.descendants(pid)
                    self.log.info("MPI worker: mpirun started its daemon here", orted_pid=pid,
                                  rank_pids=ranks)
            if not seen and loop.time() - started >= self.first_session_wait:
                return Report(1, f"the master ({self.master}) did not start the MPI job on this "
                                 f"host within {self.first_session_wait:g} s (--host-wait); "
                                 "see its log", self.master, ours=True)
            if orteds or not seen:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = loop.time()
                self.log.info("MPI worker: the ranks here ended; waiting for the master's "
                              "report", master=self.master, wait_s=REPORT_WAIT)
            elif loop.time() - quiet_since >= REPORT_WAIT:
                return Report(1, f"the MPI run on this host ended, but the master "
                                 f"({self.master}) did not report how the job ended within "
                                 f"{REPORT_WAIT:g} s; see its log", self.master, ours=True)
            if not await self.supervisor.sleep(POLL):
                return None  # a stop signal: the core is stopping sshd and its tree

    def _read(self, path: str) -> Report | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return Report.decode(handle.read(), self.master)
        except FileNotFoundError:
            return None

    async def _stop(self, child: Child) -> None:
        """Let the report's SSH session close, then stop sshd and whatever is left under it."""
        deadline = self.supervisor.loop.time() + SESSIONS_WAIT
        while (not child.done.done() and tree.children(child.pid)
               and self.supervisor.loop.time() < deadline
               and await self.supervisor.sleep(0.1)):
            pass
        if self.supervisor.stop_signal is None:
            self.supervisor.stop_child(child)
        await child.done
