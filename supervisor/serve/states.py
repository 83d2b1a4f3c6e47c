"""The front's state machines: every state, and every event allowed in each, in one table apiece.

Five machines, after h11's model of an HTTP/1.1 connection (a state per
side, events that move them, anything else an error):
- a client connection (`CONNECTION`): open, lingering after our last
  answer, a tunnel after a WebSocket upgrade, closed;
- the request side of an exchange (`REQUEST`): its head arriving, its body
  arriving (kept in memory, or streamed to the backend when too large to
  keep), all of it received, refused at its head, or cut short;
- the response side of an exchange (`RESPONSE`): queued behind the
  connection's earlier requests, its turn come (nothing sent yet), forwarded
  to the backend, its head sent and its body passing, all of it sent, or
  cut short;
- a backend connection (`UPSTREAM`): connecting, serving one exchange,
  idle in the pool, a tunnel's other end, closed;
- a WebSocket tunnel (`TUNNEL_STATES`): relaying both ways, one side done
  sending (half-closed), closed.

Each object moves only through `advance`, which looks the (state, event)
pair up in its table. A pair that is not there is an event that cannot
happen in that state: a bug of ours, raised as `Impossible`, which the front
logs and answers by closing that client's connection, and which the tests
fail on. Events that may legitimately arrive late (bytes already read when
a connection was given up) are listed as loops onto the same state, so that
"ignored" is written down, never assumed.

States and events are short strings: interned, so a lookup costs one hash of
a pair of cached hashes.
"""

from __future__ import annotations

from collections.abc import Iterable

Table = dict[tuple[str, str], str]
SAME = "="  # as a rule's target: the event leaves the state as it is (listed, so allowed)

# client connection
OPEN, LINGERING, TUNNEL, CLOSED = "open", "lingering", "tunnel", "closed"
# request side of an exchange
HEAD, BUFFERING, STREAMING, RECEIVED, REFUSED, CUT = (
    "head", "buffering", "streaming", "received", "refused", "cut")
# response side of an exchange (CUT as above)
QUEUED, WAITING, FORWARDED, SENDING, SENT = "queued", "waiting", "forwarded", "sending", "sent"
SWITCHED = "switched"  # a 101: the connection is a tunnel from here
# backend connection (CLOSED as above)
CONNECTING, ACTIVE, IDLE, TUNNELING = "connecting", "active", "idle", "tunneling"
# WebSocket tunnel (CLOSED as above)
RELAYING, CLIENT_DONE, BACKEND_DONE = "relaying", "client-done", "backend-done"


class Impossible(RuntimeError):
    """An event arrived in a state where it cannot happen."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: event {event!r} in state {state!r}")
        self.machine = machine
        self.state = state
        self.event = event


def table(rows: Iterable[tuple[str | tuple[str, ...], str, str]]) -> Table:
    """{(state, event): next state} from rows of (state or states, event, next state)."""
    result: Table = {}
    for states, event, target in rows:
        for state in (states,) if isinstance(states, str) else states:
            key = (state, event)
            if key in result:
                raise ValueError(f"two transitions for {key}")
            result[key] = state if target == SAME else target
    return result


def impossible(exc: BaseException) -> BaseException:
    """The KeyError of a table lookup written inline, as the Impossible it means."""
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        key = exc.args[0]
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
            for name, transitions in (("client connection", CONNECTION), ("request", REQUEST),
                                      ("response", RESPONSE), ("backend connection", UPSTREAM),
                                      ("tunnel", TUNNEL_STATES)):
                if any(state == key[0] for state, _event in transitions):
                    return Impossible(name, *key)
    return exc


def advance(machine: str, transitions: Table, state: str, event: str) -> str:
    """The state after `event`, or `Impossible`."""
    try:
        return transitions[state, event]
    except KeyError:
        raise Impossible(machine, state, event) from None


CONNECTION = table([
    (OPEN, "linger", LINGERING),  # our last answer is out; what the client still sends is dropped
    (OPEN, "upgrade", TUNNEL),
    ((OPEN, LINGERING, TUNNEL), "close", CLOSED),
    ((OPEN, LINGERING, TUNNEL, CLOSED), "lost", CLOSED),
    (CLOSED, "close", CLOSED),
])

REQUEST = table([
    (HEAD, "bodiless", RECEIVED),
    (HEAD, "buffer", BUFFERING),
    (HEAD, "stream", STREAMING),
    (HEAD, "refuse", REFUSED),
    (BUFFERING, "body", BUFFERING),
    (STREAMING, "body", STREAMING),
    (BUFFERING, "overflow", STREAMING),  # over the per-request limit or the shared budget
    ((BUFFERING, STREAMING), "complete", RECEIVED),
    ((HEAD, BUFFERING, STREAMING), "cut", CUT),
    # Once received, refused or cut, a request cannot be cut again; the call is harmless.
    ((RECEIVED, REFUSED, CUT), "cut", SAME),
    # An exchange answered before its body was all in: the rest is read and dropped.
    (CUT, "body", CUT),
    (CUT, "complete", CUT),
])

RESPONSE = table([
    (QUEUED, "turn", WAITING),
    (WAITING, "forward", FORWARDED),  # a backend connection asked for, the request sent on it
    (FORWARDED, "retry", FORWARDED),  # sent again on a new connection (never twice processed)
    (FORWARDED, "interim", FORWARDED),  # a 1xx from the backend: not forwarded
    (FORWARDED, "swallow", FORWARDED),  # the backend's 404 to /execution-parameters: ours instead
    (FORWARDED, "head", SENDING),
    (FORWARDED, "switch", SWITCHED),  # the backend's 101 to a WebSocket upgrade
    (SENDING, "body", SENDING),
    ((WAITING, FORWARDED, SENDING), "sent", SENT),  # WAITING, FORWARDED: an answer of ours
    ((QUEUED, WAITING, FORWARDED, SENDING), "cut", CUT),
    ((SENT, CUT, SWITCHED), "cut", SAME),
])

UPSTREAM = table([
    (CONNECTING, "connected", ACTIVE),
    (ACTIVE, "release", IDLE),
    (IDLE, "acquire", ACTIVE),
    (ACTIVE, "tunnel", TUNNELING),
    ((CONNECTING, ACTIVE, IDLE, TUNNELING), "close", CLOSED),
    ((CONNECTING, ACTIVE, IDLE, TUNNELING, CLOSED), "lost", CLOSED),
    (CLOSED, "close", CLOSED),
])

TUNNEL_STATES = table([
    ((RELAYING, BACKEND_DONE), "client data", SAME),
    ((RELAYING, CLIENT_DONE), "backend data", SAME),
    (RELAYING, "client eof", CLIENT_DONE),
    (RELAYING, "backend eof", BACKEND_DONE),
    (CLIENT_DONE, "backend eof", CLOSED),
    (BACKEND_DONE, "client eof", CLOSED),
    ((RELAYING, CLIENT_DONE, BACKEND_DONE), "close", CLOSED),
    (CLOSED, "close", CLOSED),
    # Bytes already read when the tunnel was closed (by us, or the other side's loss).
    (CLOSED, "client data", CLOSED),
    (CLOSED, "backend data", CLOSED),
])
