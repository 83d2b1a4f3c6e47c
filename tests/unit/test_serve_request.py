"""A request head judged by the front: refusals with their status, and what the backend gets."""

import pytest

from supervisor.serve.request import Head, Refusal, forward_head, judge

HOST = [(b"Host", b"example")]


def judged(headers, method=b"GET", url=b"/invocations", version="1.1", keep_alive=True):
    return judge(method, url, version, keep_alive, headers)


def head(headers, **kwargs) -> Head:
    result = judged(headers, **kwargs)
    assert isinstance(result, Head), result
    return result


@pytest.mark.parametrize(("headers", "version", "status", "says"), [
    ([], "1.1", 400, "no Host"),
    ([(b"Host", b"a"), (b"host", b"b")], "1.1", 400, "more than one Host"),
    ([(b"Host", b"a"), (b"Host", b"a")], "1.0", 400, "more than one Host"),
    ([*HOST, (b"Transfer-Encoding", b"gzip, chunked")], "1.1", 501, "'gzip, chunked'"),
    ([*HOST, (b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")], "1.1", 501,
     "'gzip, chunked'"),
    ([*HOST, (b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], "1.1", 501,
     "'chunked, chunked'"),
    ([*HOST, (b"Transfer-Encoding", b"identity")], "1.1", 501, "only chunked"),
    ([(b"Transfer-Encoding", b"chunked")], "1.0", 400, "HTTP/1.0"),
])
def test_refused_heads(headers, version, status, says):
    refusal = judged(headers, version=version)
    assert isinstance(refusal, Refusal)
    assert status == refusal.status
    assert says in refusal.reason


def test_connect_and_odd_targets_are_refused():
    assert Refusal(405, "CONNECT is not supported") == judged(HOST, method=b"CONNECT",
                                                              url=b"example:443")
    assert 400 == judged(HOST, url=b"example:443").status
    assert 400 == judged(HOST, url=b"ftp://example/x").status
    assert 400 == judged(HOST, url=b"http:///x").status


def test_chunked_any_case_and_spacing_is_chunked():
    assert head([*HOST, (b"transfer-encoding", b" Chunked ")]).chunked


def test_http_1_0_needs_no_host_and_gets_one_for_the_backend():
    result = head([], version="1.0")
    assert [b"Host: localhost\r\n"] == result.lines


def test_absolute_form_becomes_origin_form_with_its_host():
    result = head([(b"Host", b"ignored"), (b"X-A", b"1")], url=b"http://other:81/ping?x=1")
    assert (b"/ping?x=1", b"/ping") == (result.target, result.path)
    assert [b"Host: other:81\r\n", b"X-A: 1\r\n"] == result.lines
    assert b"/" == head([], url=b"HTTP://user:pw@h").target
    assert [b"Host: h\r\n"] == head([], url=b"HTTP://user:pw@h").lines
    assert b"/?q" == head([], url=b"http://h?q").target
    assert b"*" == head(HOST, method=b"OPTIONS", url=b"*").target


def test_repeated_headers_are_combined_in_order():
    result = head([*HOST, (b"X-Forwarded-For", b"1.1.1.1"), (b"Connection", b"keep-alive"),
                   (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3"), (b"Connection", b"X-Private"),
                   (b"X-Private", b"secret"), (b"X-Amzn-SageMaker-Custom-Attributes", b"a"),
                   (b"X-Amzn-SageMaker-Custom-Attributes", b"b")])
    assert b"1.1.1.1, 2.2.2.2, 3.3.3.3" == result.forwarded_for
    assert [b"Host: example\r\n", b"X-Amzn-SageMaker-Custom-Attributes: a\r\n",
            b"X-Amzn-SageMaker-Custom-Attributes: b\r\n"] == result.lines


def test_hop_by_hop_and_ours_are_dropped_and_the_rest_kept_as_sent():
    result = head([(b"hOsT", b"x"), (b"Keep-Alive", b"timeout=5"), (b"TE", b"trailers"),
                   (b"Trailer", b"X"), (b"Proxy-Connection", b"keep-alive"),
                   (b"X-Forwarded-Proto", b"https"), (b"Expect", b"100-continue"),
                   (b"Content-Length", b"3"), (b"X-Amzn-SageMaker-Inference-Id", b"id-1"),
                   (b"Upgrade", b"h2c"), (b"X-Custom", b"caf\xc3\xa9")], method=b"POST")
    assert [b"hOsT: x\r\n", b"X-Amzn-SageMaker-Inference-Id: id-1\r\n",
            b"X-Custom: caf\xc3\xa9\r\n"] == result.lines
    assert (3, False, True, b"id-1") == (result.content_length, result.chunked,
                                          result.expect_continue, result.inference_id)
    assert b"" == result.upgrade  # no Connection: upgrade, so no upgrade asked


def test_upgrade_only_when_connection_lists_it():
    result = head([*HOST, (b"Connection", b"Upgrade, HTTP2-Settings"), (b"Upgrade", b"h2c"),
                   (b"HTTP2-Settings", b"AAA")])
    assert b"h2c" == result.upgrade and not result.websocket
    assert [b"Host: example\r\n"] == result.lines  # HTTP2-Settings was listed: dropped
    socket = head([*HOST, (b"Connection", b"upgrade"), (b"Upgrade", b"WebSocket")])
    assert socket.websocket
    assert not head([*HOST, (b"Connection", b"upgrade"), (b"Upgrade", b"websocket")],
                    method=b"POST").websocket


def test_expectations_other_than_continue_are_not_kept():
    assert not head([*HOST, (b"Expect", b"something")]).expect_continue
    assert head([*HOST, (b"Expect", b"100-Continue")]).expect_continue


def test_idempotent_methods():
    assert head(HOST, method=b"PUT").idempotent and head(HOST, method=b"DELETE").idempotent
    assert not head(HOST, method=b"POST").idempotent
    assert not head(HOST, method=b"PATCH").idempotent


def test_what_the_backend_gets():
    result = head([*HOST, (b"X-Forwarded-For", b"10.0.0.1"), (b"Content-Length", b"5")],
                  method=b"POST", url=b"/invocations?a=1")
    assert (b"POST /invocations?a=1 HTTP/1.1\r\nHost: example\r\n"
            b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
            b"Content-Length: 5\r\n\r\n") == forward_head(result, b"127.0.0.1")
    chunked = head([*HOST, (b"Transfer-Encoding", b"chunked")], method=b"POST", version="1.1")
    assert forward_head(chunked, b"::1").endswith(
        b"X-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\nTransfer-Encoding: chunked\r\n\r\n")
    bodiless = forward_head(head(HOST), b"p")
    assert b"Content-Length" not in bodiless and b"Transfer-Encoding" not in bodiless
    assert bodiless.startswith(b"GET /invocations HTTP/1.1\r\n")
    assert forward_head(head(HOST, version="1.0"), b"p").startswith(b"GET /invocations HTTP/1.1")


def test_body_framing_flags():
    assert not head(HOST).has_body
    assert not head([*HOST, (b"Content-Length", b"0")]).has_body
    assert head([*HOST, (b"Content-Length", b"1")]).has_body
    assert head([*HOST, (b"Transfer-Encoding", b"chunked")]).has_body


def test_a_websocket_upgrade_is_asked_of_the_backend_as_the_client_asked_it():
    upgrade = head([*HOST, (b"Connection", b"keep-alive, Upgrade"), (b"Upgrade", b"WebSocket"),
                    (b"Sec-WebSocket-Key", b"k=="), (b"Sec-WebSocket-Version", b"13"),
                    (b"Sec-WebSocket-Protocol", b"chat"),
                    (b"Sec-WebSocket-Extensions", b"permessage-deflate")],
                   url=b"/v1/listen?model=a")
    assert upgrade.websocket
    forwarded = forward_head(upgrade, b"p")
    assert forwarded.startswith(b"GET /v1/listen?model=a HTTP/1.1\r\nHost: example\r\n"
                                b"Sec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n"
                                b"Sec-WebSocket-Protocol: chat\r\n"
                                b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert b"Connection: Upgrade\r\nUpgrade: WebSocket\r\n" in forwarded
    h2c = head([*HOST, (b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")])
    assert b"Upgrade" not in forward_head(h2c, b"p")  # an upgrade we ignore is not asked
    assert not head([*HOST, (b"Upgrade", b"websocket")]).websocket  # Connection must list it
