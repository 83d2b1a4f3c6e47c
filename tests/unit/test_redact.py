"""Secrets never printed: option values, variables, command lines, URL passwords."""

import pytest

from supervisor.redact import (
    REDACTED,
    redact_args,
    redact_command,
    redact_env,
    redact_url_passwords,
)


@pytest.mark.parametrize(("args", "shown"), [
    (["--hf-token=hf_abc", "--epochs", "3"], ["--hf-token=<redacted>", "--epochs", "3"]),
    (["--hf-token", "hf_abc", "--epochs", "3"], ["--hf-token", REDACTED, "--epochs", "3"]),
    (["--api_key=", "x"], ["--api_key=<redacted>", "x"]),
    (["-password", "hunter2"], ["-password", REDACTED]),
    (["--epochs", "3", "--secret"], ["--epochs", "3", "--secret"]),
    (["--index-url", "https://user:tok@pypi.example/simple"],
     ["--index-url", "https://user:<redacted>@pypi.example/simple"]),
    (["python3", "train.py"], ["python3", "train.py"]),
    # NAME=VALUE wherever it stands in an argv: mpirun's exports, env's assignments
    (["mpirun", "-x", "HF_TOKEN=hf_abc", "-x", "WANDB_API_KEY=xyz", "-x", "NCCL_DEBUG=INFO",
      "python3", "t.py"],
     ["mpirun", "-x", "HF_TOKEN=<redacted>", "-x", "WANDB_API_KEY=<redacted>", "-x",
      "NCCL_DEBUG=INFO", "python3", "t.py"]),
    (["env", "aws_secret_access_key=abc", "db.password=x", "lr=0.1", "x=TOKEN", "=TOKEN"],
     ["env", "aws_secret_access_key=<redacted>", "db.password=<redacted>", "lr=0.1", "x=TOKEN",
      "=TOKEN"]),
    (["train.py", "my_token=a=b"], ["train.py", "my_token=<redacted>"]),
])
def test_argv(args, shown):
    assert shown == redact_args(args)


def test_an_equals_form_does_not_hide_the_next_argument():
    assert ["--hf-token=<redacted>", "train.py"] == redact_args(["--hf-token=hf_abc", "train.py"])


@pytest.mark.parametrize(("text", "shown"), [
    ("https://user:tok@host/x", "https://user:<redacted>@host/x"),
    ("pip -i https://u:p@a/ --extra https://v:q@b/", "pip -i https://u:<redacted>@a/ --extra https://v:<redacted>@b/"),
    ("https://host/x?a=b", "https://host/x?a=b"),
    ("git+ssh://git@github.com/x", "git+ssh://git@github.com/x"),
])
def test_url_passwords(text, shown):
    assert shown == redact_url_passwords(text)


def test_environment():
    env = {
        "HF_TOKEN": "hf_abc",
        "AWS_ACCESS_KEY_ID": "AKIA",
        "PIP_INDEX_URL": "https://user:tok@pypi.example/simple",
        "SM_ENTRY_TRAIN_COMMAND": "python3 train.py --hf-token=hf_abc --wandb-key k --epochs 3",
        "SM_HPS": '{"api_key":"k","epochs":3,"url":"https://a:b@c/"}',
        "SM_USER_ARGS": '["--api_key","k","--epochs","3"]',
        "PATH": "/usr/bin",
    }
    assert {
        "HF_TOKEN": REDACTED,
        "AWS_ACCESS_KEY_ID": REDACTED,
        "PIP_INDEX_URL": "https://user:<redacted>@pypi.example/simple",
        "SM_ENTRY_TRAIN_COMMAND": "python3 train.py '--hf-token=<redacted>' --wandb-key '<redacted>' --epochs 3",
        "SM_HPS": '{"api_key":"<redacted>","epochs":3,"url":"https://a:<redacted>@c/"}',
        "SM_USER_ARGS": '["--api_key","<redacted>","--epochs","3"]',
        "PATH": "/usr/bin",
    } == redact_env(env)


def test_a_command_that_cannot_be_split_still_hides_url_passwords():
    assert "run 'https://u:<redacted>@h/" == redact_command("run 'https://u:p@h/")
