"""HTTP pieces of the front: chunks, our own responses, the response head sent on, execution parameters."""

import json

from supervisor.serve import http
from supervisor.serve.front import execution_parameters


def test_hop_by_hop_response_headers_are_not_forwarded():
    for name in (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
                 b"transfer-encoding"):
        assert http.RESPONSE_HEADERS[name] != http.FORWARD
    assert http.FORWARD == http.RESPONSE_HEADERS.get(b"x-amzn-sagemaker-custom-attributes", http.FORWARD)


def test_headers_a_connection_header_lists_are_dropped_too():
    lines = [b"Host: x\r\n", b"X-Private: 1\r\n", b"X-Public: 2\r\n"]
    assert [b"Host: x\r\n", b"X-Public: 2\r\n"] == http.without_listed(lines, b"keep-alive, X-PRIVATE")
    assert lines == http.without_listed(lines, b"close")


def test_chunks():
    assert b"5\r\nhello\r\n" == http.chunk(b"hello")
    assert b"10\r\n" + b"x" * 16 + b"\r\n" == http.chunk(b"x" * 16)
    assert b"0\r\n\r\n" == http.LAST_CHUNK


def test_our_responses():
    assert (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\n{}") == http.simple_response(503, b"{}", close=True)
    assert (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
            == http.simple_response(200, b"{}", head_only=True))
    assert b"HTTP/1.1 299 \r\n" == http.status_line(299)
    assert b"HTTP/1.1 431 Request Header Fields Too Large\r\n" == http.status_line(431)


SESSION = (b"X-Amzn-SageMaker-New-Session-Id: s1; Expires=2026-12-08T00:00:00Z\r\n"
           b"X-Amzn-SageMaker-Custom-Attributes: a\r\nX-Amzn-SageMaker-Custom-Attributes: b\r\n")


def raw(*lines, status=b"HTTP/1.1 200 OK"):
    return status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def test_a_response_with_a_length_goes_on_as_it_came():
    head = raw(b"Content-Length: 2", SESSION[:-2], b"Server: x", status=b"HTTP/1.1 299 My Own")
    framing = http.response_head(head, 299, False, "1.1", True)
    assert head == framing.data  # the backend's own reason phrase, its headers in order
    assert (False, False, False) == (framing.rechunk, framing.close_delimited, framing.close)


def test_connection_keep_alive_stays_when_the_client_connection_is_kept_too():
    for lines in ([b"Connection: keep-alive", b"Content-Length: 2"],
                  [b"content-length: 2", b"X-A: 1", b"connection: Keep-Alive"]):
        head = raw(*lines)
        framing = http.response_head(head, 200, False, "1.1", True)
        assert head == framing.data and not framing.close  # what we say of ours as well
        closing = http.response_head(head, 200, False, "1.1", False)
        assert b"eep-alive" not in closing.data.lower() and closing.close


def test_hop_by_hop_headers_and_those_connection_names_are_dropped():
    head = raw(b"Content-Length: 2", b"Keep-Alive: timeout=5", b"Connection: keep-alive, X-Private",
               b"X-Private: 1", b"X-Public: 2", b"Upgrade: h2c", b"Proxy-Connection: x", b"TE: x",
               b"Trailer: y")
    framing = http.response_head(head, 200, False, "1.1", True)
    assert raw(b"Content-Length: 2", b"X-Public: 2") == framing.data


def test_a_response_without_a_length_is_chunked_to_an_http_1_1_client():
    chunked = http.response_head(raw(b"Transfer-Encoding: chunked", b"X-A: 1"), 200, False,
                                 "1.1", True)
    assert raw(b"X-A: 1", b"Transfer-Encoding: chunked") == chunked.data
    assert (True, False, False) == (chunked.rechunk, chunked.close_delimited, chunked.close)
    until_close = http.response_head(raw(b"Connection: close"), 200, False, "1.1", True)
    assert (True, True, False) == (until_close.rechunk, until_close.close_delimited,
                                   until_close.close)


def test_an_http_1_0_client_gets_the_end_by_the_close_or_keeps_alive_with_a_length():
    by_close = http.response_head(raw(b"Transfer-Encoding: chunked"), 200, False, "1.0", True)
    assert (False, True) == (by_close.rechunk, by_close.close)
    assert by_close.data.endswith(b"Connection: close\r\n\r\n")
    kept = http.response_head(raw(b"Content-Length: 0"), 200, False, "1.0", True)
    assert kept.data.endswith(b"Connection: keep-alive\r\n\r\n") and not kept.close


def test_an_http_1_0_status_line_from_the_backend_is_made_http_1_1():
    framing = http.response_head(raw(b"Content-Length: 0", status=b"HTTP/1.0 404 Gone Away"), 404,
                                 False, "1.1", True)
    assert framing.data.startswith(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n")


def test_bodiless_responses_need_no_framing():
    for status, head_request in ((204, False), (304, False), (200, True)):
        framing = http.response_head(raw(status=b"HTTP/1.1 %d X" % status), status, head_request,
                                     "1.1", True)
        assert (False, False) == (framing.rechunk, framing.close_delimited)
        assert b"Transfer-Encoding" not in framing.data


def test_the_front_decides_the_connection_header():
    closing = http.response_head(raw(b"Content-Length: 0", b"Connection: X-Private",
                                     b"X-Private: 1"), 200, False, "1.1", False)
    assert closing.close
    assert raw(b"Content-Length: 0", b"Connection: close") == closing.data
    assert raw(b"Content-Length: 0", b"Connection: close") == http.response_head(
        raw(b"Content-Length: 0"), 200, False, "1.1", False).data


def test_execution_parameters_from_the_environment_and_their_defaults():
    assert {"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 20} == json.loads(
        execution_parameters({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4", "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
                              "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}))
    defaults = json.loads(execution_parameters({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "not a number"}))
    assert ("MULTI_RECORD", 6) == (defaults["BatchStrategy"], defaults["MaxPayloadInMB"])
    assert defaults["MaxConcurrentTransforms"] >= 1
