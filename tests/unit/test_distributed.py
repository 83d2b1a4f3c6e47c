"""Waiting for the other hosts (to resolve; MPI workers to listen): backoff, deadline, stop."""

import asyncio

import pytest

from supervisor import errors
from supervisor.launch.hosts import accepts, wait_for_hosts, wait_for_ssh

KNOWN = {"algo-1", "algo-2"}


class Log:
    def __init__(self):
        self.events = []

    def info(self, event, **fields):
        self.events.append((event, fields))


class Clock:
    """A fake clock advanced by the fake sleep."""

    def __init__(self, resolves_after=None):
        self.now = 0.0
        self.sleeps = []
        self.resolves_after = resolves_after

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def resolve(self, host):
        late = self.resolves_after is not None and self.now >= self.resolves_after
        return host in KNOWN or late


def wait(hosts, deadline, clock, log, sleep=None):
    asyncio.run(wait_for_hosts(hosts, deadline, log, clock, sleep or clock.sleep, clock.resolve))


def test_resolvable_hosts_return_at_once():
    clock, log = Clock(), Log()
    wait(["algo-1", "algo-2"], 60, clock, log)
    assert [] == clock.sleeps and [] == log.events


def test_unresolvable_host_backs_off_exponentially_then_fails_at_the_deadline():
    clock, log = Clock(), Log()
    with pytest.raises(errors.SetupError) as info:
        wait(["algo-1", "algo-3"], 30, clock, log)
    assert [0.5, 1.0, 2.0, 4.0, 8.0, 10.0] == clock.sleeps[:6]
    assert 30 == pytest.approx(sum(clock.sleeps))
    assert "algo-3" in info.value.message and "30 s" in info.value.message
    assert all(event == "waiting for hosts to resolve" for event, _ in log.events)
    assert ["algo-3"] == log.events[0][1]["missing"]


def test_hosts_resolving_late_end_the_wait_with_a_note():
    clock, log = Clock(resolves_after=3.0), Log()
    wait(["algo-1", "algo-3"], 60, clock, log)
    assert [0.5, 1.0, 2.0] == clock.sleeps
    assert ("all hosts resolve", {"hosts": ["algo-1", "algo-3"], "waited_s": 3.5}) == log.events[-1]


def test_a_stop_ends_the_wait():
    clock, log = Clock(), Log()

    async def stopped(seconds):
        raise errors.Stopped(15, "the wait for the other hosts")

    with pytest.raises(errors.Stopped) as info:
        wait(["algo-3"], 60, clock, log, stopped)
    assert 143 == info.value.exit_code


def wait_ssh(hosts, deadline, clock, log, listening):
    asyncio.run(wait_for_ssh(hosts, deadline, log, clock, clock.sleep,
                             accept=lambda host, port: port == 22 and listening(host)))


def test_mpi_workers_are_waited_for_until_their_ssh_daemons_listen():
    clock, log = Clock(), Log()
    wait_ssh(["algo-2", "algo-3"], 60, clock, log,
             lambda host: host == "algo-2" or clock.now >= 3.0)
    assert [0.5, 1.0, 2.0] == clock.sleeps
    assert ["algo-3"] == log.events[0][1]["missing"]
    assert ("MPI workers accept SSH connections", {"hosts": ["algo-2", "algo-3"],
                                                   "waited_s": 3.5}) == log.events[-1]


def test_an_mpi_worker_that_never_listens_fails_at_the_deadline_naming_it():
    clock, log = Clock(), Log()
    with pytest.raises(errors.SetupError) as info:
        wait_ssh(["algo-2", "algo-3"], 30, clock, log, lambda host: host == "algo-2")
    assert 30 == pytest.approx(sum(clock.sleeps))
    assert "port 22 within 30 s: algo-3;" in info.value.message


def test_accepts_tells_a_listening_port_from_a_closed_one():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert accepts("127.0.0.1", port)
    assert not accepts("127.0.0.1", port)
