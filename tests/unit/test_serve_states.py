"""The front's state tables: what each allows, what nothing may do, and who may move a state."""

import ast
from pathlib import Path

import pytest

from supervisor.serve import states
from supervisor.serve.states import (
    CONNECTION,
    REQUEST,
    RESPONSE,
    UPSTREAM,
    Impossible,
    advance,
    table,
)

SERVE = Path(states.__file__).parent
MACHINES = {
    "connection": (CONNECTION, states.OPEN, {states.CLOSED}),
    "request": (REQUEST, states.HEAD, {states.RECEIVED, states.REFUSED, states.CUT}),
    "response": (RESPONSE, states.QUEUED, {states.SENT, states.CUT, states.SWITCHED}),
    "upstream": (UPSTREAM, states.CONNECTING, {states.CLOSED}),
    "tunnel": (states.TUNNEL_STATES, states.RELAYING, {states.CLOSED}),
}


def reachable(transitions, start):
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for (source, _event), target in transitions.items():
            if source == state and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("name", MACHINES)
def test_every_state_is_reachable_and_every_path_ends(name):
    transitions, start, ends = MACHINES[name]
    mentioned = {s for key in transitions for s in (key[0], transitions[key])}
    assert mentioned == reachable(transitions, start)
    for state in mentioned - ends:  # from anywhere, an end can be reached
        assert ends & reachable(transitions, state), state


@pytest.mark.parametrize("name", MACHINES)
def test_an_end_is_never_left(name):
    transitions, _start, ends = MACHINES[name]
    for (source, event), target in transitions.items():
        if source in ends:
            assert target == source, (source, event, target)


def test_impossible_events_are_errors_that_name_the_machine_state_and_event():
    with pytest.raises(Impossible, match="response: event 'head' in state 'sent'"):
        advance("response", RESPONSE, states.SENT, "head")
    with pytest.raises(Impossible):
        advance("request", REQUEST, states.RECEIVED, "body")  # a body after the request ended
    with pytest.raises(Impossible):
        advance("client connection", CONNECTION, states.CLOSED, "data")
    with pytest.raises(Impossible):
        advance("backend connection", UPSTREAM, states.CLOSED, "acquire")
    assert states.SENDING == advance("response", RESPONSE, states.FORWARDED, "head")


def test_the_rules_that_matter():
    # A request is forwarded only from its turn, and sent again only while forwarded.
    assert {s for (s, e) in RESPONSE if e == "forward"} == {states.WAITING}
    assert {s for (s, e) in RESPONSE if e == "retry"} == {states.FORWARDED}
    # A body keeps arriving only while it is kept, streamed, or dropped after an early answer.
    assert {s for (s, e) in REQUEST if e == "body"} == {states.BUFFERING, states.STREAMING,
                                                       states.CUT}
    # Only an idle backend connection is handed out.
    assert {s for (s, e) in UPSTREAM if e == "acquire"} == {states.IDLE}


def test_a_table_with_two_rules_for_one_pair_is_refused():
    with pytest.raises(ValueError, match="two transitions"):
        table([("a", "go", "b"), (("a", "c"), "go", "d")])
    assert {("a", "stay"): "a"} == table([("a", "stay", states.SAME)])


# Each machine's state is written only with a lookup in its table (or through a helper that
# makes one); elsewhere only where it starts, and in the teardown after a bug, which must not
# depend on the state it found.
MACHINE_STATES = {
    ("front.py", "state"): ("CONNECTION", {"__init__", "_bug"}),
    ("exchange.py", "req"): ("REQUEST", {"__init__", "abandon"}),
    ("exchange.py", "resp"): ("RESPONSE", {"__init__", "abandon"}),
    ("upstream.py", "state"): ("UPSTREAM", {"__init__"}),
    ("tunnel.py", "state"): ("TUNNEL_STATES", {"__init__"}),
}
HELPERS = {"advance", "_to", "_req", "_resp"}


def _writes(tree, attribute):
    """(function, value) of each `self.<attribute> = value`."""
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (isinstance(target, ast.Attribute) and target.attr == attribute
                            and isinstance(target.value, ast.Name) and target.value.id == "self"):
                        yield function.name, node.value


def test_states_move_only_through_their_table():
    for (module, attribute), (table_name, allowed) in MACHINE_STATES.items():
        writes = list(_writes(ast.parse((SERVE / module).read_text()), attribute))
        assert writes, (module, attribute)
        for function, value in writes:
            looked_up = (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
                         and value.value.id == table_name)
            through_helper = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name | ast.Attribute)
                              and getattr(value.func, "id", getattr(value.func, "attr", None)) in HELPERS)
            assert looked_up or through_helper or function in allowed, (module, attribute, function)


def test_an_inline_lookup_that_fails_is_reported_as_an_impossible_event():
    try:
        RESPONSE[states.SENT, "head"]
    except KeyError as exc:
        reported = states.impossible(exc)
    assert isinstance(reported, Impossible)
    assert "response: event 'head' in state 'sent'" == str(reported)
    other = KeyError("something else")
    assert other is states.impossible(other)
