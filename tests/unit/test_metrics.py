"""Metric definitions and EMF records."""

import json

import pytest

from supervisor import errors
from supervisor.logs.framing import Lines, Record
from supervisor.logs.metrics import MetricScanner, emf_record, parse_definitions
from supervisor.logs.writer import OutputWriter


def test_options_and_metricdefinitions_json_combine():
    env = json.dumps([{"Name": "acc", "Regex": "acc=([0-9.]+)"}])
    assert (("loss", "loss: (.+)"), ("acc", "acc=([0-9.]+)")) == parse_definitions(
        [("loss", "loss: (.+)")], env)


@pytest.mark.parametrize("env", ["{", "{}", '[{"Name": "x"}]', '[{"Name": 1, "Regex": "(.)"}]'])
def test_bad_metricdefinitions_json(env):
    with pytest.raises(errors.UsageError):
        parse_definitions([], env)


def test_emf_record_structure():
    record = emf_record("loss", 0.25, {"host": "algo-1", "mode": "train"}, 1795000000.5)
    assert {"_aws": {"Timestamp": 1795000000500, "CloudWatchMetrics": [{
        "Namespace": "sm-entry", "Dimensions": [["host", "mode"]],
        "Metrics": [{"Name": "loss", "Unit": "None"}]}]},
        "host": "algo-1", "mode": "train", "loss": 0.25} == record


def test_scanner_matches_within_lines_only_and_keeps_the_last_value(tmp_path):
    out = tmp_path / "out"
    with open(out, "wb") as handle:
        writer = OutputWriter(handle.fileno(), "stdout")
        scanner = MetricScanner([("loss", r"^loss: ([0-9.]+)$"), ("lr", r"lr=(\S+)")], {"host": "h", "mode": "m"},
                                writer)
        scanner("stdout", [Lines("loss: 0.5\nnoise lr=abc\nloss: 0.25"), Record("lr=0.1 loss: 9", "part", 1)])
        assert writer.flush(10)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [0.5, 0.25, 0.1] == [r.get("loss", r.get("lr")) for r in records]
    assert {"metrics": {"loss": 0.25, "lr": 0.1}} == scanner.summary()
