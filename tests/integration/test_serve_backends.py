"""Model servers as they are really started: launchers that daemonize, readiness that means the
model is loaded, a crash named by what died.

tests/children/daemon_server.py stands in for `torchserve --start` (fork, exit 0)
and for a /ping that is 200 before the model is loaded; the real TorchServe
is in tests/binary/test_torchserve.py.
"""

import os
import signal
import sys
import time

from tests.serve_support import serve
from tests.support import CHILDREN, wait_until

__all__ = ["serve"]  # the fixture, used by name

DAEMON = [sys.executable, str(CHILDREN / "daemon_server.py")]


def followed_pid(server):
    event = server.event("main process exited 0 and left its server running: following it")
    description = event["processes"][0]
    return int(description.rsplit("(PID ", 1)[1].rstrip(")")), description


def test_a_launcher_that_daemonizes_is_followed(serve):
    server = serve(DAEMON, "--restart-grace", "2")
    server.wait_ready()
    assert (200, b"predicted") == server.request("POST", "/invocations", body=b"x")[::2]
    pid, description = followed_pid(server)
    assert "daemon_server.py" in description
    os.kill(pid, signal.SIGKILL)  # the server itself dies: not its launcher, long gone
    restarting = server.event("model server restarting")
    assert f"(PID {pid}) killed by SIGKILL" in restarting["reason"]
    assert "daemon_server.py" in restarting["reason"]
    server.wait_ready()
    wait_until(lambda: len([e for e in server.events()
                            if e["msg"].startswith("main process exited 0")]) == 2,
               what="the new server to be followed")
    assert (200, b"predicted") == server.request("POST", "/invocations", body=b"x")[::2]
    assert 0 == server.stop()
    summary = [e for e in server.events() if e["msg"] == "job summary"][-1]
    assert (1, True) == (summary["restarts"], "killed by SIGKILL" in summary["last_model_server_end"])
    assert not os.path.exists(f"/proc/{pid}")


def test_the_drain_stops_the_followed_server(serve):
    server = serve(DAEMON)
    server.wait_ready()
    pid, _ = followed_pid(server)
    started = time.monotonic()
    assert 0 == server.stop()
    assert time.monotonic() - started < 10
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=5,
               what="the followed server to be gone")


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_with_backend_exit_restart_a_launcher_that_exits_is_restarted(serve):
    server = serve(DAEMON, "--backend-exit", "restart", "--max-restarts", "1",
                   "--restart-grace", "1")
    assert 1 == server.run.proc.wait(60)  # it keeps "failing": the budget ends it
    messages = [e["msg"] for e in server.events()]
    assert "main process exited 0 and left its server running: following it" not in messages
    assert "model server gave up: it keeps failing" in messages


def test_ready_means_the_ready_path_says_so(serve):
    server = serve(DAEMON, "--ready-path", "/models/model", "--ready-body", "READY",
                   env={"LOAD_SECONDS": "3"})
    wait_until(lambda: server.ping() == 200, timeout=30, what="ready")
    started = time.monotonic()
    assert (200, b"predicted") == server.request("POST", "/invocations", body=b"x")[::2]
    assert time.monotonic() - started < 1  # the model was loaded when /ping said 200
    ready = server.event("model server ready")
    assert ready["after_s"] >= 2.5
    assert 0 == server.stop()


def test_a_server_whose_ping_is_200_while_loading_is_ready_too_early_without_it(serve):
    server = serve(DAEMON, env={"LOAD_SECONDS": "3"})
    wait_until(lambda: server.ping() == 200, timeout=30, what="ready")
    started = time.monotonic()
    server.request("POST", "/invocations", body=b"x")
    assert time.monotonic() - started > 1  # the first request waited for the model
    assert 0 == server.stop()
