"""Waiting for the other hosts: backoff, progress, deadline, stop."""

import pytest

from supervisor import errors
from supervisor.launch.hosts import wait_for_hosts


class Log:
    def __init__(self):
        self.events = []

    def info(self, event, **fields):
        self.events.append((event, fields))


class Clock:
    """A fake clock advanced by the fake sleep."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        return True


def test_resolvable_hosts_return_at_once():
    clock, log = Clock(), Log()
    wait_for_hosts(["localhost"], 60, log, clock, clock.sleep)
    assert [] == clock.sleeps and [] == log.events


def test_unresolvable_host_backs_off_exponentially_then_fails_at_the_deadline():
    clock, log = Clock(), Log()
    with pytest.raises(errors.SetupError) as info:
        wait_for_hosts(["localhost", "nope.invalid"], 30, log, clock, clock.sleep)
    assert [0.5, 1.0, 2.0, 4.0, 8.0, 10.0] == clock.sleeps[:6]
    assert 30 == pytest.approx(sum(clock.sleeps))
    assert "nope.invalid" in info.value.message and "30 s" in info.value.message
    assert all(event == "waiting for hosts to resolve" for event, _ in log.events)
    assert ["nope.invalid"] == log.events[0][1]["missing"]


def test_a_stop_ends_the_wait():
    clock, log = Clock(), Log()
    with pytest.raises(errors.SetupError) as info:
        wait_for_hosts(["nope.invalid"], 60, log, clock, lambda seconds: False)
    assert "stopped" in info.value.message
