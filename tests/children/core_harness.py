"""The process core on a chosen loop: `core_harness.py ours|asyncio STOP_TIMEOUT CMD...`.

Prints our events as `event: ...` lines on stderr and `exit N` at the end,
so a test can drive the same core on our EventLoop and on asyncio's.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from supervisor.core.signals import hold_signals

hold_signals()

from supervisor.app import run_until_complete  # noqa: E402
from supervisor.core.process import ChildSpec, Supervisor  # noqa: E402


class Log:
    def _say(self, event, **fields):
        os.write(2, f"event: {event} {fields}\n".encode())

    debug = info = warning = error = _say


def main():
    kind, stop_timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    if kind == "asyncio":
        import asyncio

        loop = asyncio.new_event_loop()
    else:
        from supervisor.core.eventloop import EventLoop

        loop = EventLoop()
    supervisor = Supervisor(loop, Log(), stop_timeout,
                            merge_echoes=os.environ.get("HARNESS_MERGE_ECHOES") == "1")

    async def job():
        if os.environ.get("HARNESS_STOP_FIRST") == "1":  # a stop before anything runs
            supervisor.request_stop(15)
            os.write(1, f"slept {await supervisor.sleep(5)}\n".encode())
        first = await supervisor.run(ChildSpec(argv=argv, env=dict(os.environ)))
        os.write(1, (f"result code={first.exit_code} signal={first.signal} started={first.started} "
                     f"stop_signal={first.stop_signal} killed_by_us={first.killed_by_us}\n").encode())
        os.write(2, f"event: first child done {first.exit_code}\n".encode())
        if supervisor.stop_signal is not None:
            return first.exit_code
        # a second child on the same supervisor: per-child state
        second = await supervisor.run(ChildSpec(argv=["sh", "-c", "exit 3"], env=dict(os.environ)))
        return first.exit_code * 0 + second.exit_code

    code = run_until_complete(loop, job())
    os.write(1, f"exit {code} asyncio={'asyncio' in sys.modules} started={supervisor.started}\n"
             .encode())
    os._exit(0)


main()
