"""The child's output relayed as records: nothing lost, framed, valid JSON."""

import json
import os
import re
import subprocess
import time

import pytest

from tests.support import CHILDREN, SYSTEM_PYTHON, process_state


def run(sm_entry, *args, fmt="json", timeout=120, env_extra=None):
    env = {"PATH": "/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": fmt, **(env_extra or {})}
    return subprocess.run([*sm_entry, *args], capture_output=True, timeout=timeout, env=env)


def records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def child_records(data: bytes, stream: str) -> list[dict]:
    return [r for r in records(data) if r.get("stream") == stream]


def test_a_million_lines_each_appear_exactly_once_in_order(sm_entry):
    result = run(sm_entry, SYSTEM_PYTHON, str(CHILDREN / "interleaved.py"), "1000000", "100000")
    assert 0 == result.returncode, result.stderr[-2000:]
    out = [r["msg"] for r in child_records(result.stdout, "stdout")]
    err = [r["msg"] for r in child_records(result.stderr, "stderr")]
    assert [f"out {i:07d} the quick brown fox jumps over the lazy dog" for i in range(1000000)] == out
    assert [f"err {i:07d} something on stderr" for i in range(100000)] == err


def test_records_carry_the_schema(sm_entry):
    result = run(sm_entry, "sh", "-c", "echo hello; echo oops >&2")
    out = child_records(result.stdout, "stdout")
    assert 1 == len(out)
    record = out[0]
    assert {"ts", "level", "stream", "mode", "host", "pid", "msg"} <= set(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    assert ("info", "stdout", "run", "hello") == (record["level"], record["stream"], record["mode"], record["msg"])
    assert ["oops"] == [r["msg"] for r in child_records(result.stderr, "stderr")]
    ours = [r for r in records(result.stderr) if r.get("src") == "sm-entry"]
    assert {"sm-entry started", "child started", "child exited"} <= {r["msg"] for r in ours}


LEVELS = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG)
logging.warning("careful")
logging.error("broken")
logging.debug("detail")
print("plain")
print('{"event": "structured", "level": "debug", "step": 3}')
"""


def test_levels_come_from_the_line_and_json_lines_stay_structured(sm_entry):
    result = run(sm_entry, SYSTEM_PYTHON, "-c", LEVELS)
    out = child_records(result.stdout, "stdout")
    by_msg = {r.get("msg", r.get("event")): r for r in out}
    assert "warning" == by_msg["WARNING:root:careful"]["level"]
    assert "error" == by_msg["ERROR:root:broken"]["level"]
    assert "debug" == by_msg["DEBUG:root:detail"]["level"]
    assert "info" == by_msg["plain"]["level"]
    structured = by_msg["structured"]
    assert (3, "debug", "stdout") == (structured["step"], structured["level"], structured["stream"])
    assert "msg" not in structured


TRACEBACKS = """
import sys, time
print("before", flush=True)
try:
    {}["missing"]
except KeyError:
    try:
        raise RuntimeError("wrapped")
    except RuntimeError as exc:
        import traceback; traceback.print_exc()
for i in range(3):
    print(f"stdout between {i}", flush=True)
    time.sleep(0.01)
raise ValueError("bad learning rate: -1")
"""


def test_tracebacks_become_single_error_records(sm_entry):
    result = run(sm_entry, SYSTEM_PYTHON, "-c", TRACEBACKS)
    assert 1 == result.returncode
    tracebacks = [r for r in child_records(result.stderr, "stderr") if r["msg"].startswith("Traceback")]
    assert 2 == len(tracebacks), tracebacks
    chained, final = tracebacks
    assert "KeyError: 'missing'" in chained["msg"] and chained["msg"].endswith("RuntimeError: wrapped")
    assert "During handling of the above exception" in chained["msg"]
    assert final["msg"].endswith("ValueError: bad learning rate: -1")
    assert {"error"} == {r["level"] for r in tracebacks}
    assert ["before", "stdout between 0", "stdout between 1", "stdout between 2"] == [
        r["msg"] for r in child_records(result.stdout, "stdout")]


def test_ten_megabyte_line_is_split_into_parts_that_reassemble(sm_entry):
    code = "import sys; sys.stdout.write('a' * 5_000_000 + 'é' * 2_500_000 + '\\n')"
    result = run(sm_entry, SYSTEM_PYTHON, "-c", code)
    assert 0 == result.returncode
    lines = [line for line in result.stdout.splitlines() if b'"stream":"stdout"' in line]
    assert all(len(line) <= 256 * 1024 for line in lines)
    parts = [json.loads(line) for line in lines]
    assert list(range(1, len(parts) + 1)) == [p["part"] for p in parts]
    assert len(parts) == parts[-1]["parts"] and all("parts" not in p for p in parts[:-1])
    assert "a" * 5_000_000 + "é" * 2_500_000 == "".join(p["msg"] for p in parts)


def test_invalid_utf8_is_replaced_in_json_and_untouched_in_raw(sm_entry):
    code = "import os; os.write(1, b'bad \\xff\\xfe bytes\\n')"
    json_run = run(sm_entry, SYSTEM_PYTHON, "-c", code)
    assert ["bad \ufffd\ufffd bytes"] == [r["msg"] for r in child_records(json_run.stdout, "stdout")]
    raw_run = run(sm_entry, SYSTEM_PYTHON, "-c", code, fmt="raw")
    assert b"bad \xff\xfe bytes\n" == raw_run.stdout


def test_progress_updates_become_a_handful_of_records(sm_entry):
    code = ("import sys\n"
            "for i in range(10000): sys.stderr.write(f'\\r{i / 100:.2f}%')\n"
            "sys.stderr.write('\\n')")
    result = run(sm_entry, SYSTEM_PYTHON, "-c", code)
    progress = [r["msg"] for r in child_records(result.stderr, "stderr")]
    assert 1 <= len(progress) <= 5, progress
    assert "99.99%" == progress[-1]


def test_raw_format_passes_bytes_through_unchanged(sm_entry):
    code = "import sys; sys.stdout.write('epoch 1\\r\\nloss: 0.5\\n  indented\\n\\x1b[31mred\\x1b[0m')"
    result = run(sm_entry, SYSTEM_PYTHON, "-c", code, fmt="raw")
    assert b"epoch 1\r\nloss: 0.5\n  indented\n\x1b[31mred\x1b[0m" == result.stdout


def test_setsid_grandchild_holding_stdout_is_stopped_when_the_child_exits(sm_entry):
    code = "setsid sh -c 'echo \"grandchild $$\"; exec sleep 1000' & sleep 0.3; echo parent done"
    started = time.monotonic()
    result = run(sm_entry, "--drain-timeout", "30", "sh", "-c", code, timeout=60)
    assert 0 == result.returncode
    assert time.monotonic() - started < 20  # not the drain timeout: the grandchild was stopped
    msgs = [r["msg"] for r in child_records(result.stdout, "stdout")]
    grandchild = int(next(m for m in msgs if m.startswith("grandchild")).split()[1])
    assert "parent done" in msgs
    assert process_state(grandchild) is None
    assert b"held open" not in result.stderr


EMF = "for i in 1 2 3; do echo \"epoch $i loss: 0.$i\"; done"


def test_metric_definitions_emit_valid_emf_and_the_last_value(sm_entry):
    definitions = json.dumps([{"Name": "loss", "Regex": r"^epoch \d+ loss: ([0-9.]+)$"}])
    result = run(sm_entry, "sh", "-c", EMF, env_extra={"SM_ENTRY_METRICS": definitions})
    assert 0 == result.returncode
    emf = [r for r in records(result.stdout) if "_aws" in r]
    assert [0.1, 0.2, 0.3] == [r["loss"] for r in emf]
    for record in emf:
        directive = record["_aws"]["CloudWatchMetrics"][0]
        assert isinstance(record["_aws"]["Timestamp"], int)
        assert [{"Name": "loss", "Unit": "None"}] == directive["Metrics"]
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(record[d], str) for d in dimension_set)
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
    exited = [r for r in records(result.stderr) if r.get("msg") == "child exited"]
    assert {"loss": 0.3} == exited[0]["metrics"]


@pytest.mark.parametrize("value", ["loss", "loss=(", "=x"])
def test_bad_metric_definitions_are_usage_errors(sm_entry, value):
    result = run(sm_entry, "--metric", value, "true")
    assert 2 == result.returncode
    assert 1 == len(result.stderr.strip().splitlines())


def test_full_disk_on_our_stdout_does_not_hurt_the_child(sm_entry):
    with open("/dev/full", "wb") as full:
        result = subprocess.run([*sm_entry, "sh", "-c", "echo one; echo two; exit 5"], stdout=full,
                                stderr=subprocess.PIPE, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json"})
    assert 5 == result.returncode
    lost = [r for r in records(result.stderr) if r.get("msg") == "output lost"]
    assert 1 == len(lost) and "No space left on device" in lost[0]["error"]


def test_closed_stdout_pipe_does_not_hurt_the_child(sm_entry):
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run([*sm_entry, "sh", "-c", "sleep 0.2; seq 1000; exit 6"], stdout=writer,
                                stderr=subprocess.PIPE, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json"})
    finally:
        os.close(writer)
    assert 6 == result.returncode
    assert any(r.get("msg") == "output lost" and "Broken pipe" in r["error"]
               for r in records(result.stderr))


def test_lines_with_backslashes_and_quoted_commas_stay_valid_json(sm_entry):
    text = 'C:\\\\data\\\\train.csv loaded\\n"id","label",\\n"1","cat",\\nrows: 2\\n'
    result = run(sm_entry, "printf", text)
    msgs = [r["msg"] for r in child_records(result.stdout, "stdout")]
    assert ['C:\\data\\train.csv loaded', '"id","label",', '"1","cat",', "rows: 2"] == msgs


def test_a_json_line_too_deep_to_rewrite_is_kept_as_text(sm_entry):
    code = "print('{\"a\":' + '[' * 300 + ']' * 300 + '}'); print('after'); raise SystemExit(4)"
    result = run(sm_entry, SYSTEM_PYTHON, "-c", code)
    assert 4 == result.returncode
    msgs = [r["msg"] for r in child_records(result.stdout, "stdout")]
    assert msgs[0].startswith('{"a":[[[') and "after" == msgs[1]


SLOW_READER = """
import os, sys, time
n = 0
while True:
    data = os.read(0, 65536)
    if not data:
        break
    n += data.count(b"\\n")
    time.sleep(0.01)
print(n)
"""


def test_a_slow_reader_of_our_output_gets_everything_after_the_drain_timeout(sm_entry):
    writer = subprocess.Popen([*sm_entry, "--log-format", "raw", "--drain-timeout", "0.2", "seq", "200000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin"})
    reader = subprocess.run([SYSTEM_PYTHON, "-c", SLOW_READER], stdin=writer.stdout,
                            capture_output=True, text=True, timeout=120)
    writer.stdout.close()
    assert 0 == writer.wait(timeout=60)
    assert "200000" == reader.stdout.strip()
    assert b"held open" not in writer.stderr.read()


MID_LINE = """
import os, time
os.write(1, b"epoch 1 loss: 0.5\\nhalf a li")   # one read that ends mid-line
time.sleep(0.3)
os.write(1, b"ne, then the rest\\nepoch 2 loss: 0.25\\n")
"""


def test_raw_format_metrics_never_land_inside_a_line_of_the_child(sm_entry):
    result = run(sm_entry, "--metric", r"loss=loss: ([0-9.]+)", SYSTEM_PYTHON, "-c", MID_LINE, fmt="raw")
    assert 0 == result.returncode
    lines = result.stdout.decode().splitlines()
    child = [line for line in lines if not line.startswith("{")]
    assert ["epoch 1 loss: 0.5", "half a line, then the rest", "epoch 2 loss: 0.25"] == child
    assert [0.5, 0.25] == [json.loads(line)["loss"] for line in lines if line.startswith("{")]


PEAK_RSS = """
import resource, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
records = 0
while chunk := proc.stdout.read(1 << 20):
    records += chunk.count(b"\\n")
assert proc.wait() == 0
print(records, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_memory_stays_bounded_for_millions_of_empty_lines(sm_entry):
    # 4 MB of empty lines render to ~450 MB of JSON: rendered a batch at a time, never whole.
    argv = [*sm_entry, "--log-format", "json", "sh", "-c", "head -c 4000000 /dev/zero | tr '\\0' '\\n'"]
    result = subprocess.run([SYSTEM_PYTHON, "-c", PEAK_RSS, *argv], capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert 0 == result.returncode, result.stderr[-2000:]
    records, peak_kib = map(int, result.stdout.split())
    assert 4_000_000 == records
    assert peak_kib / 1024 < 48, f"peak RSS {peak_kib / 1024:.0f} MiB"
