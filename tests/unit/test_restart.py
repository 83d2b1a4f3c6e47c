"""The restart policy of the model server: backoff, its reset, the budget."""

from supervisor.serve.restart import RestartPolicy


def test_backoff_doubles_from_half_a_second_up_to_thirty():
    policy = RestartPolicy(max_restarts=100, window=10_000)
    delays = [policy.next_restart(float(t)) for t in range(9)]
    assert [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0] == delays


def test_a_minute_healthy_resets_the_backoff():
    policy = RestartPolicy(max_restarts=100, window=10_000)
    assert 0.5 == policy.next_restart(0)
    assert 1.0 == policy.next_restart(1)
    policy.healthy(2)
    policy.healthy(30)  # still healthy since 2
    assert 0.5 == policy.next_restart(62)  # healthy for 60 s: back to the start
    policy.healthy(63)
    assert 1.0 == policy.next_restart(100)  # healthy only 37 s


def test_being_unhealthy_ends_a_healthy_stretch():
    policy = RestartPolicy(max_restarts=100, window=10_000)
    policy.next_restart(0)
    policy.healthy(1)
    policy.unhealthy()
    policy.healthy(50)
    assert 1.0 == policy.next_restart(70)  # healthy since 50 only


def test_the_budget_counts_restarts_within_the_window():
    policy = RestartPolicy(max_restarts=2, window=100)
    assert policy.next_restart(0) is not None
    assert policy.next_restart(10) is not None
    assert policy.next_restart(20) is None  # a third within 100 s
    assert 2 == policy.restarts
    assert policy.next_restart(100.5) is not None  # the first one left the window


def test_no_restarts_allowed():
    assert RestartPolicy(max_restarts=0).next_restart(0) is None


def test_busy_is_requests_in_flight_and_answered_within_the_busy_timeout():
    from supervisor.serve.backend import Liveness

    liveness = Liveness(busy_timeout=10, now=0)
    assert not liveness.busy(1, in_flight=0, progress=5)  # nothing in flight: not busy
    assert liveness.busy(2, in_flight=2, progress=5)  # in flight, quiet for 1 s
    assert liveness.busy(10.5, in_flight=2, progress=5)  # quiet since 1: still within 10 s
    assert not liveness.busy(11, in_flight=2, progress=5)  # quiet for 10 s: dead
    assert liveness.busy(12, in_flight=2, progress=6)  # it answered something: busy again
    assert liveness.busy(21.9, in_flight=1, progress=6)
    assert not liveness.busy(22, in_flight=1, progress=6)
    assert not liveness.busy(23, in_flight=0, progress=6)  # idle: the clock starts again
    assert liveness.busy(32, in_flight=1, progress=6)
