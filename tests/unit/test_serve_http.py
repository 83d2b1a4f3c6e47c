"""HTTP pieces of the front: hop-by-hop headers, chunks, our own responses, execution parameters."""

import json

from supervisor.serve import http
from supervisor.serve.front import execution_parameters


def test_hop_by_hop_headers_and_those_connection_lists_are_not_forwarded():
    headers = [(b"Host", b"x"), (b"Connection", b"keep-alive, X-Private"), (b"X-Private", b"1"),
               (b"Keep-Alive", b"timeout=5"), (b"Transfer-Encoding", b"chunked"), (b"TE", b"trailers"),
               (b"Upgrade", b"h2c"), (b"X-Amzn-SageMaker-Custom-Attributes", b"a=b")]
    assert [b"Host: x\r\n", b"X-Amzn-SageMaker-Custom-Attributes: a=b\r\n"] == http.end_to_end(headers)
    assert [b"Host: x\r\n"] == http.end_to_end([(b"Host", b"x"), (b"Expect", b"100-continue")],
                                               frozenset({b"expect"}))


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
