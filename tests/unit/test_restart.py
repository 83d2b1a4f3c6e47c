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
