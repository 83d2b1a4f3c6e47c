"""`sm-entry train` end to end: the tree, the program, the outcome files."""

import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.support import (
    REPO,
    SOURCE_COMMAND,
    Pid1,
    Run,
    require_root,
    require_tool,
    signal_when_ready,
)

EXAMPLE = REPO / "examples"


def make_tree(root: Path, hyperparameters=None, resourceconfig=None, inputdataconfig=None,
              code=None, channels=None) -> Path:
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name, value in (("hyperparameters.json", hyperparameters),
                        ("resourceconfig.json", resourceconfig),
                        ("inputdataconfig.json", inputdataconfig)):
        if value is not None:
            (config / name).write_text(value if isinstance(value, str) else json.dumps(value))
    for name, text in (code or {}).items():
        path = root / "code" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)
    for name, files in (channels or {}).items():
        directory = root / "input" / "data" / name
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, text in files.items():
            (directory / file_name).write_text(text)
    return root


def env(**extra):
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "json", **extra}


def train(sm_entry, root, *args, timeout=120, **extra):
    return subprocess.run([*sm_entry, "--root", str(root), "train", *args], capture_output=True,
                          text=True, timeout=timeout, env=env(**extra))


def failure(root: Path) -> str:
    return (root / "output" / "failure").read_text()


def test_example_script_runs_with_toolkit_argv_and_environment(sm_entry, tmp_path):
    root = tmp_path / "ml"
    make_tree(root, hyperparameters={"epochs": "5", "learning-rate": "0.1"},
              inputdataconfig={"train": {"TrainingInputMode": "File"}},
              code={"train.py": (EXAMPLE / "train" / "train.py").read_text()},
              channels={"train": {"data.csv": "0,1\n1,3\n2,5\n"}})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 0 == result.returncode, result.stderr[-3000:]
    model = json.loads((root / "model" / "model.json").read_text())
    assert 5 == model["epochs"] and ["algo-1"] == model["hosts"]
    assert (root / "output" / "success").exists() and not (root / "output" / "failure").exists()
    assert "epoch 5 loss" in result.stdout


PROBE = """
import json, os, sys
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)},
          open(os.environ["SM_MODEL_DIR"] + "/probe.json", "w"))
"""


def probe(root: Path) -> dict:
    return json.loads((root / "model" / "probe.json").read_text())


def test_program_gets_toolkit_argv_cwd_and_pythonpath(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", hyperparameters={
        "epochs": "10", "lr": "1e-3", "k": "3", "use_cuda": "false", "layers": "[64, 32]",
        "opt": "{\"name\": \"adam\", \"beta\": 0.9}", "null_val": "null", "sagemaker_program": "\"probe.py\"",
    }, code={"probe.py": PROBE})
    result = train(sm_entry, root)
    assert 0 == result.returncode, result.stderr[-3000:]
    seen = probe(root)
    assert ["probe.py", "--epochs", "10", "-k", "3", "--layers", "[64, 32]", "--lr", "0.001",
            "--null_val", "", "--opt", "beta=0.9,name=adam", "--use_cuda", "False"] == seen["argv"]
    assert str(root / "code") == seen["cwd"]
    assert seen["env"]["PYTHONPATH"].split(":")[0] == str(root / "code")
    assert "false" == seen["env"]["SM_HP_USE_CUDA"]
    assert str(root / "model") == seen["env"]["SM_MODEL_DIR"]
    assert not any(k.startswith(("_PYI_", "STATICX_")) for k in seen["env"])


def test_sagemaker_program_env_wins_and_sh_runs_with_bin_sh(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_program": "\"probe.py\"", "n": "1"},
                     code={"probe.py": PROBE, "run.sh": 'echo "sh args: $*" > "$SM_MODEL_DIR/sh.txt"\n'})
    (root / "code" / "run.sh").chmod(0o644)  # not executable: /bin/sh runs it anyway
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="run.sh")
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "sh args: -n 1\n" == (root / "model" / "sh.txt").read_text()


def test_python_exception_failure_file_starts_with_the_exception_line(sm_entry, tmp_path):
    code = "def main():\n    raise ValueError('bad learning rate: -1')\n\nmain()\n"
    root = make_tree(tmp_path / "ml", code={"train.py": code})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 1 == result.returncode
    reason = failure(root)
    assert reason.startswith("ValueError: bad learning rate: -1\n"), reason
    assert "train.py\", line 2, in main" in reason and len(reason) <= 1024
    assert not (root / "output" / "success").exists()


def test_shell_program_nonzero_exit(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", code={"train.sh": "echo 'cannot open data' >&2\nexit 3\n"})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.sh")
    assert 3 == result.returncode
    reason = failure(root)
    assert "exited with code 3" in reason and "cannot open data" in reason


def test_killed_by_sigkill_notes_out_of_memory(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml")
    result = train(sm_entry, root, "--", "sh", "-c", "kill -9 $$")
    assert 137 == result.returncode
    assert "SIGKILL" in failure(root) and "out-of-memory" in failure(root)


def test_missing_program_is_127_with_a_reason(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml")
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="nope.py")
    assert 127 == result.returncode
    assert "nope.py" in failure(root)


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("hyperparameters.json", "{\"epochs\": ", "hyperparameters.json"),
    ("hyperparameters.json", "[1, 2]", "JSON object"),
    ("resourceconfig.json", "{\"current_host\": \"algo-9\", \"hosts\": [\"algo-1\"]}", "algo-9"),
    ("inputdataconfig.json", "{\"../evil\": {}}", "../evil"),
])
def test_malformed_config_stops_the_job_naming_the_file(sm_entry, tmp_path, name, content, needle):
    root = make_tree(tmp_path / "ml")
    (root / "input" / "config" / name).write_text(content)
    result = train(sm_entry, root, "--", "true")
    assert 78 == result.returncode
    assert name in failure(root) and needle in failure(root)
    assert 1 == len([line for line in result.stderr.splitlines() if '"level":"error"' in line])


def test_requirements_failure_is_reported(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", code={"train.py": "print('never')\n",
                                             "requirements.txt": "this-package-does-not-exist-sm-entry==0.0.1\n"})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py", PIP_NO_INDEX="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_BREAK_SYSTEM_PACKAGES="1")
    assert 65 == result.returncode
    reason = failure(root)
    assert reason.startswith("pip install -r requirements.txt failed"), reason
    assert "this-package-does-not-exist-sm-entry" in reason
    assert "never" not in result.stdout


def test_program_writing_its_own_failure_file_keeps_it(sm_entry, tmp_path):
    code = "import os\nopen('/'.join([os.environ['SM_OUTPUT_DIR'], 'failure']), 'w').write('mine')\nraise SystemExit(4)\n"
    root = make_tree(tmp_path / "ml", code={"train.py": code})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 4 == result.returncode
    assert "mine" == failure(root)


def test_stop_timeout_kill_is_explained(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml")
    script = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
    proc = Run([*sm_entry, "--root", str(root), "--stop-timeout", "1", "train", "--", "sh", "-c", script],
               env=env())
    assert 137 == signal_when_ready(proc, signal.SIGTERM)
    reason = failure(root)
    assert "SIGTERM" in reason and "stop timeout" in reason and "killed it with SIGKILL" in reason


def test_local_run_fills_the_tree_from_options(sm_entry, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("1,2\n")
    root = tmp_path / "fresh"
    result = train(sm_entry, root, "--hp", "epochs=3", "--hp", "lr=0.1", "--channel", f"train={data}",
                   "--", "python3", "-c", PROBE)
    assert 0 == result.returncode, result.stderr[-3000:]
    seen = probe(root)
    assert ["-c", "--epochs", "3", "--lr", "0.1"] == seen["argv"]
    assert str(root / "input" / "data" / "train") == seen["env"]["SM_CHANNEL_TRAIN"]
    assert (root / "input" / "data" / "train" / "x.csv").exists()


def test_doctor_shows_command_and_redacts_secrets(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", hyperparameters={"api_key": "hunter2", "epochs": "2"},
                     code={"train.py": "pass\n"})
    result = subprocess.run([*sm_entry, "doctor", "--root", str(root)], capture_output=True, text=True,
                            timeout=60, env=env(SAGEMAKER_PROGRAM="train.py", MY_TOKEN="t0ps3cret",
                                                AWS_SECRET_ACCESS_KEY="abc123secret"))
    assert 0 == result.returncode, result.stderr
    out = result.stdout
    assert "command: " in out and "train.py --api_key '<redacted>' --epochs 2" in out
    assert "SM_HP_EPOCHS=2" in out
    for secret in ("hunter2", "t0ps3cret", "abc123secret"):
        assert secret not in out


def test_doctor_names_the_malformed_file(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", hyperparameters="{oops")
    result = subprocess.run([*sm_entry, "doctor", "--root", str(root)], capture_output=True, text=True,
                            timeout=60, env=env())
    assert 78 == result.returncode
    assert "hyperparameters.json" in result.stdout


def evil_archive(path: Path, kind: str, outside: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("train.py")
        good.size = 0
        tar.addfile(good)
        if kind == "dotdot":
            info = tarfile.TarInfo("../evil")
            info.size = 4
            tar.addfile(info, fileobj=__import__("io").BytesIO(b"evil"))
        elif kind == "absolute":
            info = tarfile.TarInfo(str(outside))
            info.size = 4
            tar.addfile(info, fileobj=__import__("io").BytesIO(b"evil"))
        elif kind == "symlink":
            info = tarfile.TarInfo("etc")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc"
            tar.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("null")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "device"])
def test_unsafe_archives_are_refused_and_nothing_is_written(sm_entry, tmp_path, kind):
    archive = tmp_path / "sourcedir.tar.gz"
    outside = tmp_path / "abs-evil"
    evil_archive(archive, kind, outside)
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(str(archive)),
                                                       "sagemaker_program": "\"train.py\""})
    result = train(sm_entry, root)
    assert 65 == result.returncode
    assert "refused member" in failure(root)
    assert [] == os.listdir(root / "code")
    assert not (tmp_path / "evil").exists() and not outside.exists()


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_submit_directory_archive_is_extracted_and_run(sm_entry, tmp_path, scheme):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("import helper\nhelper.run()\n")
    (source / "helper.py").write_text("def run():\n" + "".join(f"    {line}\n" for line in PROBE.strip().splitlines()))
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train.py", "helper.py"):
            tar.add(source / name, arcname=name)
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(scheme + str(archive))})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 0 == result.returncode, result.stderr[-3000:]
    assert ["train.py"] == probe(root)["argv"]


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "s3:///key.tar.gz"])
def test_s3_url_without_bucket_or_key_is_refused_before_any_download(sm_entry, tmp_path, url):
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(url)})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 65 == result.returncode
    assert failure(root).startswith(f"submit directory {url}: not an S3 object URL")
    assert [] == os.listdir(root / "code")


CHECKPOINT = """
import os, signal, sys, time
def stop(*_):
    open(os.environ["SM_MODEL_DIR"] + "/checkpoint", "w").write("epoch 7")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def test_sigterm_as_pid1_reaches_the_script_which_checkpoints_and_succeeds(static_only, tmp_path):
    root = make_tree(tmp_path / "ml", code={"train.py": CHECKPOINT})
    proc = Pid1([static_only, "--root", str(root), "train"], env=env(SAGEMAKER_PROGRAM="train.py"))
    assert 0 == signal_when_ready(proc, signal.SIGTERM)
    assert "epoch 7" == (root / "model" / "checkpoint").read_text()
    assert (root / "output" / "success").exists() and not (root / "output" / "failure").exists()


def with_hosts(hosts: Path, argv) -> list[str]:
    """Run `argv` with `hosts` as /etc/hosts (a private mount namespace): no DNS is asked."""
    require_root()
    unshare = require_tool("unshare")
    return [unshare, "--mount", "sh", "-c", f"mount --bind {hosts} /etc/hosts && exec {shlex.join(map(str, argv))}"]


def test_hosts_that_never_resolve_fail_at_the_deadline(sm_entry, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost algo-1\n")
    root = make_tree(tmp_path / "ml", resourceconfig={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    started = time.monotonic()
    result = subprocess.run(with_hosts(hosts, [*sm_entry, "--root", root, "train", "--host-wait", "2", "--", "true"]),
                            capture_output=True, text=True, timeout=120, env=env())
    assert 65 == result.returncode, result.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert "hosts did not resolve within 2 s: algo-2" in failure(root)
    assert "waiting for hosts to resolve" in result.stderr


def test_hosts_resolving_late_are_waited_for(sm_entry, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    root = make_tree(tmp_path / "ml", resourceconfig={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    inner = shlex.join(map(str, [*sm_entry, "--root", root, "train", "--", "true"]))
    script = (f"mount --bind {hosts} /etc/hosts && "
              f"(sleep 1.5; echo '127.0.0.1 algo-1 algo-2' >> {hosts}) & "
              f"exec {inner}")
    require_root()
    result = subprocess.run([require_tool("unshare"), "--mount", "sh", "-c", script], capture_output=True,
                            text=True, timeout=120, env=env())
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "waiting for hosts to resolve" in result.stderr and "all hosts resolve" in result.stderr


def test_a_stop_while_waiting_for_hosts_is_a_stop_not_a_setup_failure(sm_entry, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost algo-1\n")
    root = make_tree(tmp_path / "ml", resourceconfig={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    proc = Run(with_hosts(hosts, [*sm_entry, "--root", root, "--log-format", "json", "train", "--", "true"]),
               env=env(), stderr=subprocess.STDOUT)
    assert 128 + signal.SIGTERM == signal_when_ready(proc, signal.SIGTERM, ready="waiting for hosts")
    assert "stopped by SIGTERM during the wait for the other hosts" == failure(root)


FAKE_PIP = """#!/bin/sh
echo "pip is installing $*"
exec sleep 60
"""


def test_a_stop_during_the_requirements_install_is_a_stop(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", code={"train.py": "print('never')\n", "requirements.txt": "numpy\n"})
    python = tmp_path / "python3"
    python.write_text(FAKE_PIP)
    python.chmod(0o755)
    proc = Run([*sm_entry, "--root", str(root), "train"],
               env=env(SAGEMAKER_PROGRAM="train.py", SM_ENTRY_PYTHON=str(python)))
    assert 128 + signal.SIGTERM == signal_when_ready(proc, signal.SIGTERM, ready="pip is installing")
    assert failure(root).startswith("stopped by SIGTERM during pip install -r requirements.txt")
    assert not any("never" in line for line in proc.lines)


def test_a_fifo_in_a_local_submit_directory_is_a_setup_error_with_a_reason(sm_entry, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('ran')\n")
    os.mkfifo(source / "queue")
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(str(source))})
    result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
    assert 65 == result.returncode
    assert f"{source / 'queue'}: named pipe" in failure(root)
    assert [] == os.listdir(root / "code")


def test_a_hard_link_to_a_missing_name_is_a_setup_error_and_nothing_is_reused(sm_entry, tmp_path):
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        data = b"print('ran')\n"
        info.size = len(data)
        tar.addfile(info, __import__("io").BytesIO(data))
        link = tarfile.TarInfo("other.py")
        link.type, link.linkname = tarfile.LNKTYPE, "missing.py"
        tar.addfile(link)
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(str(archive))})
    for _ in range(2):  # the second start does not take a half delivery for baked-in code
        result = train(sm_entry, root, SAGEMAKER_PROGRAM="train.py")
        assert 65 == result.returncode
        assert "hard link to missing.py" in failure(root)
        assert [] == os.listdir(root / "code")


def test_code_is_delivered_into_a_code_directory_that_is_a_mount_point(sm_entry, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('ran from the mount')\n")
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": json.dumps(str(source))})
    (root / "code").mkdir()
    require_root()
    inner = shlex.join(map(str, [*sm_entry, "--root", root, "train"]))
    result = subprocess.run([require_tool("unshare"), "--mount", "sh", "-c",
                             f"mount -t tmpfs tmpfs {root / 'code'} && exec {inner}"],
                            capture_output=True, text=True, timeout=120, env=env(SAGEMAKER_PROGRAM="train.py"))
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "ran from the mount" in result.stdout


def test_doctor_hides_secrets(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", hyperparameters={"hf_token": "\"hf_TOPS3CRET1\"", "epochs": "3"})
    command = "python3 train.py --hf-token=hf_TOPS3CRET2 --wandb-key TOPS3CRET3"
    result = subprocess.run([*sm_entry, "--root", str(root), "doctor"], capture_output=True, text=True, timeout=60,
                            env=env(SM_ENTRY_TRAIN_COMMAND=command, HF_TOKEN="TOPS3CRET4",
                                    PIP_INDEX_URL="https://user:TOPS3CRET5@pypi.example/simple"))
    assert 0 == result.returncode, result.stderr
    assert "TOPS3CRET" not in result.stdout, result.stdout
    assert "https://user:<redacted>@pypi.example/simple" in result.stdout
    assert "--epochs 3" in result.stdout


def test_bad_interpreter_in_the_code_dir_is_126(sm_entry, tmp_path):
    root = make_tree(tmp_path / "ml", code={"run": "#!/no/such/interpreter\necho hi\n"})
    (root / "code" / "run").chmod(0o755)
    result = subprocess.run([*sm_entry, "--root", str(root), "train"], capture_output=True, text=True,
                            timeout=60, cwd="/", env=env(SAGEMAKER_PROGRAM="run"))
    assert 126 == result.returncode
    assert "bad interpreter" in failure(root)


@pytest.mark.parametrize("mode", ["train", "command"])
def test_train_and_plain_commands_import_no_serve_or_s3_machinery(tmp_path, mode):
    # Their start-up must not pay for asyncio, uvloop, httptools or botocore.
    root = make_tree(tmp_path / "ml", hyperparameters={"sagemaker_program": '"train.py"'},
                     code={"train.py": "print('trained')"})
    args = ["--root", str(root), "train"] if mode == "train" else ["/bin/echo", "trained"]
    result = subprocess.run([sys.executable, "-X", "importtime", *SOURCE_COMMAND[1:], *args],
                            capture_output=True, text=True, timeout=120, env=env())
    assert 0 == result.returncode, result.stderr[-2000:]
    assert "trained" in result.stdout
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:")}
    assert "supervisor.cli" in modules  # -X importtime did list our imports
    assert set() == modules & {"asyncio", "uvloop", "httptools", "botocore", "urllib3", "ssl",
                               "supervisor.serve", "supervisor.train.s3code"}
