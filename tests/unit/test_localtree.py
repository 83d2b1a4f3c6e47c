"""Local runs fill the tree the way the platform writes it."""

import json

import pytest

from supervisor import errors
from supervisor.train.layout import Layout
from supervisor.train.localtree import fill


def test_hyperparameters_are_merged_as_strings(tmp_path):
    layout = Layout(str(tmp_path))
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text('{"epochs": "1", "keep": "yes"}')
    fill(layout, [("epochs", "3"), ("lr", "0.1")], [])
    assert {"epochs": "3", "keep": "yes", "lr": "0.1"} == json.loads(
        (config / "hyperparameters.json").read_text())


def test_channel_becomes_a_link_and_a_config_entry(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    layout = Layout(str(tmp_path / "ml"))
    fill(layout, [], [("train", str(data))])
    link = tmp_path / "ml" / "input" / "data" / "train"
    assert link.is_symlink() and str(data) == str(link.resolve())
    config = json.loads((tmp_path / "ml" / "input" / "config" / "inputdataconfig.json").read_text())
    assert "File" == config["train"]["TrainingInputMode"]


@pytest.mark.parametrize(("name", "path"), [("../x", "."), ("", "."), ("ok", "/no/such/dir")])
def test_bad_channels_are_usage_errors(tmp_path, name, path):
    with pytest.raises(errors.UsageError):
        fill(Layout(str(tmp_path)), [], [(name, path)])
