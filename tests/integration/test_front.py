"""The serve front against hostile and slow clients and misbehaving backends, with its state read.

The front runs in this process (tests/front_harness.py) with a recording
backend, both on one uvloop loop, over real sockets; after each case the
front must be back to nothing in flight, no body kept, no backend connection
left holding half a request, and no impossible event met.
"""

import socket
import threading
import time

import pytest

from supervisor.serve.front import Limits
from tests.front_harness import Harness, closed_by_peer, read_responses

MIB = 1024 * 1024
FAST = Limits(client_timeout=0.5, keepalive_timeout=1.5, request_timeout=3.0)


@pytest.fixture
def front(request):
    limits = getattr(request, "param", FAST)
    harness = Harness(limits)
    yield harness
    try:
        state = harness.settled()
        assert {"in_flight": 0, "backend_in_flight": 0, "buffered": 0, "bugs": 0,
                "connections": 0, "open_partial": 0} == state
        assert [] == harness.bugs()
        assert [] == harness.open_sockets()  # every connection of the front closed
    finally:
        harness.close()


def post(body=b"", path=b"/invocations", headers=b"", method=b"POST"):
    return (b"%b %b HTTP/1.1\r\nHost: x\r\n%bContent-Length: %d\r\n\r\n%b"
            % (method, path, headers, len(body), body))


def exchange(front, data, count=1, timeout=5.0):
    with front.connect() as client:
        client.sendall(data)
        return read_responses(client, count, timeout)


def statuses(responses):
    return [status for status, _, _ in responses]


def requests_with(front, marker):
    return [r for r in front.requests() if any(v == marker for _, v in r.get("headers", []))]


# 1. a stalled body -----------------------------------------------------------
def test_a_stalled_body_never_reaches_the_backend_and_the_client_gets_408(front):
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                       + b"0123456789")
        time.sleep(0.2)
        assert 1 == front.state()["in_flight"]
        assert [] == front.requests()  # kept by the front: no backend connection taken
        with front.connect() as other:  # meanwhile, others are answered
            other.sendall(post(b"hello"))
            assert [(200, b"hello")] == [(s, b) for s, _, b in read_responses(other, 1)]
        responses = read_responses(client, 1, timeout=5)
        assert [408] == statuses(responses)
        assert b"sent nothing of the request body for 0.5 s" in responses[0][2]
        assert closed_by_peer(client)


@pytest.mark.parametrize("front", [Limits(client_timeout=0.5, buffer_request=1000)],
                         indirect=True)
def test_a_stalled_streamed_body_closes_the_backend_connection_it_held(front):
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                       + b"x" * 5000)
        deadline = time.monotonic() + 5
        while front.state()["open_partial"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 1 == front.state()["open_partial"]  # streamed: the backend holds half of it
        assert [408] == statuses(read_responses(client, 1, timeout=5))
    assert 0 == front.settled()["open_partial"]


def test_a_slow_but_steady_body_is_not_timed_out(front):
    body = b"y" * 4000
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
        for start in range(0, len(body), 500):  # 2.4 s in all, never 0.5 s silent
            client.sendall(body[start:start + 500])
            time.sleep(0.3)
        assert [(200, body)] == [(s, b) for s, _, b in read_responses(client, 1)]


@pytest.mark.parametrize("front", [Limits(client_timeout=2, buffer_request=1 * MIB,
                                          buffer_total=int(1.5 * MIB))], indirect=True)
def test_bodies_past_the_shared_budget_are_streamed(front):
    first, second = front.connect(), front.connect()
    try:
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MIB
        first.sendall(head + b"a" * 1000)  # 1 MiB reserved
        time.sleep(0.2)
        second.sendall(head + b"b" * 1000)  # no room left: streamed at once
        deadline = time.monotonic() + 5
        while front.state()["open_partial"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (1, MIB) == (front.state()["open_partial"], front.state()["buffered"])
        first.sendall(b"a" * (MIB - 1000))
        second.sendall(b"b" * (MIB - 1000))
        assert [200] == statuses(read_responses(first, 1))
        assert [200] == statuses(read_responses(second, 1))
    finally:
        first.close()
        second.close()


# 3. and 4. retries -------------------------------------------------------------
def test_a_post_the_backend_may_have_processed_is_never_sent_again(front):
    with front.connect() as client:
        client.sendall(post(b"first"))  # a pooled backend connection now exists
        assert [200] == statuses(read_responses(client, 1))
        client.sendall(post(b"crash", headers=b"X-Behave: close\r\nX-Id: p1\r\n"))
        assert [502] == statuses(read_responses(client, 1))
    assert 1 == len(requests_with(front, "p1")), (front.requests(), front.log.events, front.recorder.partial_closes, front.recorder.connections)


def test_an_idempotent_request_is_sent_once_more_with_its_whole_body(front):
    body = b"z" * 30000
    with front.connect() as client:
        client.sendall(post(b"first"))
        assert [200] == statuses(read_responses(client, 1))
        head = (b"PUT /invocations HTTP/1.1\r\nHost: x\r\nX-Behave: closeonce\r\nX-Id: put1\r\n"
                b"Content-Length: 30000\r\n\r\n")
        client.sendall(head + body[:10000])
        time.sleep(0.2)
        client.sendall(body[10000:])
        assert [(200, body)] == [(s, b) for s, _, b in read_responses(client, 1)]
    seen = requests_with(front, "put1")
    assert [False, True] == [r["complete"] for r in seen]
    assert len(body) == seen[1]["body_len"]
    get = exchange(front, b"GET /x HTTP/1.1\r\nHost: x\r\nX-Behave: close\r\nX-Id: get1\r\n\r\n")
    assert [502] == statuses(get)
    assert 2 == len(requests_with(front, "get1"))  # once more, and no further


# 5. and 6. the head limit ---------------------------------------------------------
def test_a_head_over_the_limit_is_431_and_leaves_nothing_in_flight(front):
    big = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    assert [431] == statuses(exchange(front, big))
    assert 0 == front.settled()["in_flight"]


def test_a_huge_header_value_is_refused_before_it_is_all_read(front):
    with front.connect() as client:
        client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        client.setblocking(False)
        answer = b""
        while sent < 16 * MIB and not answer:
            try:
                sent += client.send(b"a" * 65536)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
            try:
                answer = client.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
        client.setblocking(True)
        answer += b"".join(iter(lambda: client.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert sent < 4 * MIB  # refused as the bytes came, not after 16 MiB


@pytest.mark.parametrize("split", [1, 7, 20, 33])
def test_a_head_split_anywhere_counts_its_bytes_once(front, split):
    head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (32 * 1024 - 60) + b"\r\n\r\n"
    with front.connect() as client:
        client.sendall(head[:split])
        time.sleep(0.05)
        client.sendall(head[split:])
        assert [200] == statuses(read_responses(client, 1))


# 7. over the body limit while streaming ------------------------------------------
@pytest.mark.parametrize("front", [Limits(client_timeout=2, max_body=2 * MIB,
                                          buffer_request=256 * 1024)], indirect=True)
def test_a_chunked_body_over_the_limit_is_413_and_the_backend_connection_closed(front):
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%b\r\n" % (65536, b"c" * 65536)
        answer = []
        try:
            for _ in range(48):  # 3 MiB
                client.sendall(piece)
        except OSError:
            pass
        answer = read_responses(client, 1)
        assert [413] == statuses(answer)
    assert 0 == front.settled()["open_partial"]


# 8. a half-close ---------------------------------------------------------------
def test_a_client_that_half_closes_gets_its_answer(front):
    with front.connect() as client:
        client.sendall(post(b"bye") + post(b"again"))
        client.shutdown(socket.SHUT_WR)
        assert [(200, b"bye"), (200, b"again")] == [(s, b) for s, _, b in
                                                   read_responses(client, 2)]
        assert closed_by_peer(client)


def test_a_half_close_in_the_middle_of_a_request_ends_it(front):
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        client.shutdown(socket.SHUT_WR)
        assert closed_by_peer(client)
    assert [] == front.requests()


# 9. pipelining ------------------------------------------------------------------
def test_a_pipelining_client_that_does_not_read_does_not_grow_our_memory(front):
    with front.connect() as client:
        client.sendall(b"".join(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Behave: big=1048576\r\n\r\n"
                                for _ in range(40)))
        time.sleep(1.0)
        unsent = front.call(lambda: sum(c.transport.get_write_buffer_size()
                                        for c in front.front.connections))
        assert unsent < 2 * MIB  # not 40 MiB
        total = 0
        responses = read_responses(client, 40, timeout=20)
        total = sum(len(body) for _, _, body in responses)
        assert (40, 40 * MIB) == (len(responses), total)


@pytest.mark.parametrize("front", [Limits(client_timeout=2, max_body=10)], indirect=True)
def test_pipelined_answers_keep_their_order(front):
    data = (post(b"slow", headers=b"X-Behave: slow=0.3\r\n") + post(b"too large for the limit"))
    assert [200, 413] == statuses(exchange(front, data, 2))


def test_a_valid_request_before_a_malformed_one_is_answered_then_the_error(front):
    data = post(b"valid", headers=b"X-Id: v1\r\n") + b"GARBAGE\r\n\r\n"
    responses = exchange(front, data, 2)
    assert [200, 400] == statuses(responses)
    assert 1 == len(requests_with(front, "v1"))


def test_pipelined_requests_are_each_forwarded_once_in_order(front):
    data = b"".join(post(b"%d" % i, headers=b"X-Id: q%d\r\n" % i) for i in range(20))
    responses = exchange(front, data, 20)
    assert [b"%d" % i for i in range(20)] == [body for _, _, body in responses]
    assert [f"q{i}" for i in range(20)] == [dict(r["headers"])["X-Id"]
                                             for r in front.requests()]


def test_after_a_request_that_closes_nothing_more_is_answered(front):
    data = (b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            + post(b"never", headers=b"X-Id: never\r\n"))
    assert [200] == statuses(exchange(front, data, 2))
    assert [] == requests_with(front, "never")


# 10. and 11. upgrades and odd heads ------------------------------------------------
def test_an_h2c_upgrade_is_ignored_and_answered_as_http_1_1(front):
    h2c = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n"
           b"\r\nhello")
    responses = exchange(front, h2c + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", 2)
    assert [(200, b"hello"), (200, b'{"status":"healthy"}')] == [(s, b) for s, _, b in responses]
    seen = front.requests()[0]
    assert not {"Upgrade", "HTTP2-Settings", "Connection"} & {k for k, _ in seen["headers"]}


def test_an_absolute_target_is_made_origin_form_and_ping_is_ours(front):
    assert [200] == statuses(exchange(front, b"GET http://other/ping HTTP/1.1\r\nHost: y\r\n\r\n"))
    assert [] == front.requests()
    assert [200] == statuses(exchange(front, b"GET http://other/x?q=1 HTTP/1.1\r\nHost: y\r\n\r\n"))
    seen = front.requests()[0]
    assert ("/x?q=1", "other") == (seen["target"], dict(seen["headers"])["Host"])


def test_a_keep_alive_connection_after_a_ping_waits_the_keep_alive_timeout(front):
    with front.connect() as client:
        client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [200] == statuses(read_responses(client, 1))
        assert not closed_by_peer(client, timeout=1.0)  # the client timeout is 0.5 s
        assert closed_by_peer(client, timeout=3.0)  # the keep-alive one, 1.5 s


# timeouts and the backend ---------------------------------------------------------
def test_a_request_timeout_is_504_and_closes_the_backend_connection(front):
    start = time.monotonic()
    assert [504] == statuses(exchange(front, post(b"x", headers=b"X-Behave: hold\r\n")))
    assert time.monotonic() - start < 10


def test_a_client_that_reads_nothing_of_a_large_answer_is_closed(front):
    client = front.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Behave: big=67108864\r\n\r\n")
    deadline = time.monotonic() + 10
    while front.state()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    while front.state()["connections"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 0 == front.state()["connections"]
    client.close()


def test_a_client_gone_mid_answer_closes_the_backend_connection(front):
    client = front.connect()
    client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Behave: big=67108864\r\n\r\n")
    client.recv(65536)
    client.close()


def test_an_early_answer_ends_the_exchange_and_the_rest_of_the_body_is_dropped(front):
    with front.connect() as client:
        client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Behave: early\r\n"
                       b"Content-Length: 50000000\r\n\r\n" + b"e" * 100000)
        responses = read_responses(client, 1)
        assert [(200, b"early")] == [(s, b) for s, _, b in responses]
        assert b"close" == responses[0][1].get(b"connection")


def test_a_backend_answer_without_length_reaches_both_kinds_of_client(front):
    nolength = b"X-Behave: nolength\r\n"
    responses = exchange(front, post(b"abc", headers=nolength))
    assert [(200, b"abc")] == [(s, b) for s, _, b in responses]
    assert b"chunked" == responses[0][1][b"transfer-encoding"]
    old = b"POST /x HTTP/1.0\r\nX-Behave: nolength\r\nContent-Length: 3\r\n\r\nabc"
    assert [(200, b"abc")] == [(s, b) for s, _, b in exchange(front, old)]


def test_while_not_ready_requests_get_503_at_once_and_keep_their_connection(front):
    front.set_ready(False, "the model server is starting")
    with front.connect() as client:
        client.sendall(post(b"a") + post(b"b"))
        responses = read_responses(client, 2)
        assert [503, 503] == statuses(responses)
        assert b"starting" in responses[0][2]
    front.set_ready(True)


# the property: whatever clients and backends do ------------------------------------
def test_whatever_clients_and_backends_do_the_front_settles(front):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    behaviours = st.sampled_from([b"", b"close", b"slow=0.05", b"chunked=3", b"nolength",
                                  b"early", b"status=500", b"reset"])
    request = st.tuples(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD"]), behaviours,
                        st.integers(0, 3000), st.booleans())
    client = st.sampled_from(["read", "half-close", "disconnect", "stall", "slow-read"])
    counter = iter(range(10**9))

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(request, min_size=1, max_size=4), client, st.integers(1, 200))
    def run(sequence, how, cut):
        data = b""
        for method, behave, size, chunked in sequence:
            ident = b"id%d" % next(counter)
            body = b"b" * size if method in (b"POST", b"PUT") else b""
            headers = b"X-Id: %b\r\n" % ident + (b"X-Behave: %b\r\n" % behave if behave else b"")
            if chunked and body:
                framed = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
                data += (b"%b /invocations HTTP/1.1\r\nHost: x\r\n%bTransfer-Encoding: chunked"
                         b"\r\n\r\n%b" % (method, headers, framed))
            else:
                data += post(body, headers=headers, method=method)
        started = time.monotonic()
        with front.connect(timeout=10) as sock:
            if how in ("disconnect", "stall"):
                sock.sendall(data[:cut])
                if how == "stall":
                    closed_by_peer(sock, timeout=5)
            else:
                sock.sendall(data)
                if how == "half-close":
                    sock.shutdown(socket.SHUT_WR)
                if how == "slow-read":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                    time.sleep(0.05)
                heads = [i for i, (method, *_rest) in enumerate(sequence) if method == b"HEAD"]
                read_responses(sock, len(sequence), timeout=8, head=heads)
        state = front.settled(timeout=8)
        assert time.monotonic() - started < 20  # no hang past the timeouts
        assert (0, 0, 0, 0) == (state["in_flight"], state["backend_in_flight"],
                                state["buffered"], state["bugs"]), state
        seen: dict[str, int] = {}
        for entry in front.requests():
            headers = dict(entry.get("headers", []))
            if "X-Id" in headers:
                seen[(entry["method"], headers["X-Id"])] = seen.get(
                    (entry["method"], headers["X-Id"]), 0) + 1
        for (method, _ident), times in seen.items():
            assert times <= (2 if method in ("GET", "PUT", "HEAD") else 1)

    run()


def test_many_clients_at_once(front):
    errors = []

    def one(n):
        try:
            with front.connect() as client:
                for i in range(20):
                    body = b"%d-%d" % (n, i)
                    client.sendall(post(body))
                    got = read_responses(client, 1)
                    if [(200, body)] != [(s, b) for s, _, b in got]:
                        errors.append((n, i, got))
        except OSError as exc:
            errors.append((n, exc))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == errors
