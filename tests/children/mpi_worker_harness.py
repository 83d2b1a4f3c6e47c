"""An MPI worker's wait, with a stand-in for sshd: `mpi_worker_harness.py DIR MODE`.

MODE `never`: "sshd" runs and no MPI session ever comes (a master that died before
mpirun). MODE `silent`: "sshd" runs an `orted` (sleep under that name) that ends, and no report ever
comes. MODE `dies`: "sshd" exits at once, as with no host keys. MODE `reports`: "sshd" writes
the master's report to the file its `-o SetEnv=` names. Prints `report CODE REASON` or
`error MESSAGE`, then `sshd running N` and `exit`.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from supervisor.core.signals import hold_signals

hold_signals()

from supervisor import errors  # noqa: E402
from supervisor.app import run_until_complete  # noqa: E402
from supervisor.core.eventloop import EventLoop  # noqa: E402
from supervisor.core.process import Supervisor  # noqa: E402
from supervisor.launch import mpiworker  # noqa: E402

SCRIPTS = {
    "never": 'exec sleep 60',
    "silent": '"$(dirname "$0")/orted" 0.3; exec sleep 60',
    "dies": 'echo "sshd: no hostkeys available -- exiting." >&2; exit 1',
    # (written whole, then renamed, as the master's report_command does)
    "reports": ('path="${4#SetEnv=SM_ENTRY_MPI_REPORT=}"; '
                'printf \'{"exit_code":7,"reason":"ValueError: x","master":"algo-1"}\' '
                '> "$path.part" && mv "$path.part" "$path"; exec sleep 60'),
}


class Log:
    def _say(self, event, **fields):
        os.write(2, f"event: {event} {fields}\n".encode())

    debug = info = warning = error = _say


def main():
    directory, mode = sys.argv[1], sys.argv[2]
    mpiworker.REPORT_WAIT = 1.0
    mpiworker.POLL = 0.05
    os.symlink("/bin/sleep", os.path.join(directory, "orted"))
    sshd = os.path.join(directory, "sshd")
    with open(sshd, "w") as handle:
        handle.write(f"#!/bin/sh\n{SCRIPTS[mode]}\n")
    os.chmod(sshd, 0o755)
    loop = EventLoop()
    supervisor = Supervisor(loop, Log(), 5.0)
    worker = mpiworker.MpiWorker(supervisor, Log(), "algo-1", first_session_wait=1.0)

    async def job():
        try:
            report = await worker.run(sshd, dict(os.environ), directory, None)
            os.write(1, f"report {report.exit_code} {report.reason}\n".encode())
        except errors.EntryError as exc:
            os.write(1, f"error {exc.message}\n".encode())
        os.write(1, f"sshd running {len(supervisor.live_children())}\n".encode())

    run_until_complete(loop, job())
    os.write(1, b"exit\n")
    os._exit(0)


main()
