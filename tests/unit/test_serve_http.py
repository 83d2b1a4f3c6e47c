"""HTTP pieces of the front: hop-by-hop headers, chunks, our own responses, execution parameters."""

import json

from supervisor.serve import http
from supervisor.serve.front import execution_parameters


def test_hop_by_hop_headers_are_not_forwarded_either_way():
    for name in (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
                 b"transfer-encoding"):
        assert http.REQUEST_HEADERS[name] != http.FORWARD and http.RESPONSE_HEADERS[name] != http.FORWARD
    assert http.DROP == http.REQUEST_HEADERS[b"x-forwarded-proto"]  # ours replaces it
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


def test_execution_parameters_from_the_environment_and_their_defaults():
    assert {"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 20} == json.loads(
        execution_parameters({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4", "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
                              "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}))
    defaults = json.loads(execution_parameters({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "not a number"}))
    assert ("MULTI_RECORD", 6) == (defaults["BatchStrategy"], defaults["MaxPayloadInMB"])
    assert defaults["MaxConcurrentTransforms"] >= 1
