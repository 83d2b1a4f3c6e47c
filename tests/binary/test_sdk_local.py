"""dist/sm-entry under the real SageMaker Python SDK v2's local mode, end to end.

The SDK (build/venv-sagemaker-sdk, pinned in tests/sdk_local/requirements.txt)
runs as a user runs it: `Estimator(...).fit()`, `deploy()`/`predict()`/
`delete_endpoint()`, `Transformer.transform()` with instance_type="local". It
writes a docker-compose.yaml and runs `docker-compose up` (Debian's compose
v1: the Debian docker CLI has no compose plugin), which starts `IMAGE train`
or `IMAGE serve` with a terminal (tty: true) on the `sagemaker-local`
network. The engine is a dockerd of the test's own, in namespaces of its own
(tests/sdk_local/engine.py); the image is a debootstrap'd Debian 12 minbase
with python3, sm-entry as its ENTRYPOINT and `train` as its CMD
(tests/sdk_local/image/). Each scenario is one run of
tests/sdk_local/run_scenario.py with the SDK's python, inside the engine's
network namespace; it reports what it saw as JSON, and the test also looks at
the containers the scenario left (docker inspect, docker logs).

Needs root, Debian's docker.io, docker-compose and debootstrap (make
test-deps), the SDK venv (make test) and dist/sm-entry. Skipped where no
engine can run, never in CI (CI=true turns a skip into a failure).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sdk_local import engine as sdk_engine
from tests.support import REPO, STATIC_BINARY, require_binary

RUNNER = REPO / "tests" / "sdk_local" / "run_scenario.py"
SOURCE_DIR = REPO / "tests" / "sdk_local" / "source_dir"
ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"  # never used: local mode calls no AWS API
TRAIN_ROWS = [(x, 3 * x + 1) for x in range(10)]  # the model to learn: weight 3, bias 1
SCENARIO_TIMEOUT = 240
# The SDK's own defaults file: no telemetry (it would call STS and S3).
SDK_DEFAULTS = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run this test", pytrace=False)
    pytest.skip(reason)


@dataclass
class Outcome:
    """One scenario: the runner's report, the SDK's output, the containers it left."""

    result: dict
    output: str
    containers: list[dict]
    seconds: float
    work: Path

    def container(self, command: str) -> dict:
        found = [c for c in self.containers if c["Config"]["Cmd"] == [command]]
        assert len(found) == 1, f"expected one `{command}` container: {self.describe()}"
        return found[0]

    def describe(self) -> str:
        """For assertion messages: what the runner saw, the containers, the SDK's output."""
        result = {k: v for k, v in self.result.items() if k != "traceback"}
        containers = "".join(
            f"\n--- {c['Name']} {c['Config']['Cmd']} exit {c['State']['ExitCode']}:\n"
            f"{c['Logs'][-3000:]}" for c in self.containers)
        return (f"result: {json.dumps(result, indent=1)}\n"
                f"{self.result.get('traceback') or ''}containers:{containers}\n"
                f"SDK output (end):\n{self.output[-6000:]}")


class LocalMode:
    """The SDK's local mode against the private engine, one scenario at a time."""

    def __init__(self, daemon: sdk_engine.Daemon, work: Path):
        self.daemon = daemon
        self.work = work
        self.image: str | None = None
        home = work / "sdk-home"
        (home / ".sagemaker").mkdir(parents=True)
        self.container_root = work / "sdk-root"
        self.container_root.mkdir()
        # The local-mode settings file the SDK reads from ~/.sagemaker/config.yaml: code and
        # outputs stay local (file://), and every directory it makes is under container_root.
        (home / ".sagemaker" / "config.yaml").write_text(
            f"local:\n  local_code: true\n  container_root: {self.container_root}\n")
        (work / "sdk-defaults.yaml").write_text(SDK_DEFAULTS)
        (work / "sdk-tmp").mkdir()
        self.env = {
            **daemon.env,
            "PATH": f"{sdk_engine.SDK_VENV / 'bin'}:{sdk_engine.SYSTEM_PATH}",
            "HOME": str(home),
            "TMPDIR": str(work / "sdk-tmp"),
            "DOCKER_CONFIG": str(home / ".docker"),
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(work / "sdk-defaults.yaml"),
            "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(work / "sdk-defaults.yaml"),
            "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
            # Dummy credentials (the SDK passes them into the containers); no instance metadata.
            "AWS_ACCESS_KEY_ID": "AKIDSMENTRYLOCALTEST",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        data = work / "train-data"
        data.mkdir()
        (data / "train.csv").write_text("".join(f"{x},{y}\n" for x, y in TRAIN_ROWS))
        self.data = data

    def use_binary(self, binary: str) -> None:
        """The test image, built once per run (the base imported, sm-entry and scripts added)."""
        if self.image is None:
            self.image = self.daemon.build_image(binary, "sm-entry-sdk-local:test")

    def run(self, scenario: str, **spec) -> Outcome:
        work = self.work / scenario
        work.mkdir()
        spec = {"image": self.image, "role": ROLE, "container_root": str(self.container_root),
                "data": str(self.data), "serving_port": 8080, **spec}
        (work / "spec.json").write_text(json.dumps(spec))
        before = set(self.daemon.container_ids())
        started = time.monotonic()
        argv = self.daemon.in_netns([str(sdk_engine.SDK_PYTHON), str(RUNNER), scenario,
                                     str(work / "spec.json"), str(work / "result.json")])
        # A session of its own: on a time-out, the runner and the docker-compose it started
        # are killed together (the containers go with the engine).
        proc = subprocess.Popen(argv, env=self.env, cwd=work, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=SCENARIO_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise AssertionError(f"{scenario}: no end within {SCENARIO_TIMEOUT} s:\n"
                                 f"{out.decode(errors='replace')[-6000:]}") from None
        output = out.decode(errors="replace")
        seconds = time.monotonic() - started
        (work / "sdk-output.log").write_text(output)
        if not (work / "result.json").exists():
            raise AssertionError(f"{scenario}: the runner wrote no result "
                                 f"(exit {proc.returncode}):\n{output[-6000:]}")
        result = json.loads((work / "result.json").read_text())
        new = [c for c in self.daemon.container_ids() if c not in before]
        containers = self.daemon.inspect(new)
        for container in containers:
            container["Logs"] = self.daemon.logs(container["Id"])
        return Outcome(result, output, containers, seconds, work)

    def artifacts(self, outcome: Outcome, name: str) -> dict[str, bytes]:
        """The members of model.tar.gz or output.tar.gz that the SDK made for the job."""
        new = outcome.result["new_container_root_dirs"]
        paths = [self.container_root / d / "compressed_artifacts" / name for d in new]
        paths = [p for p in paths if p.exists()]
        assert len(paths) == 1, f"one {name} expected in {new}: {outcome.describe()}"
        return read_tar(paths[0])


def requests_in(logs: str) -> list[tuple]:
    """sm-entry's access log in a serve container's logs: (method, path, status, bytes_in)."""
    records = [json.loads(line) for line in logs.splitlines() if line.strip().startswith("{")]
    return [(r["method"], r["path"], r["status"], r["bytes_in"])
            for r in records if r.get("msg") == "request"]


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "__pycache__"}


def host_of(container: dict) -> str:
    """The SageMaker host name of a container local mode started: its compose alias, which
    is also the end of its name (RANDOM-algo-1-SUFFIX)."""
    return container["Name"].lstrip("/").split("-", 1)[1]


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {member.name: tar.extractfile(member).read()
                for member in tar.getmembers() if member.isfile()}


def model_tar(outcome: Outcome) -> dict[str, bytes]:
    model_data = outcome.result["model_data"]
    assert model_data.startswith("file://") and model_data.endswith("/model.tar.gz"), model_data
    return read_tar(Path(model_data.removeprefix("file://")))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The private dockerd and the SDK's settings; everything undone at the end."""
    if os.geteuid() != 0:
        unavailable("needs root (a dockerd of its own)")
    require_binary(STATIC_BINARY)  # nothing heavy when the binary is not built
    if not sdk_engine.SDK_PYTHON.exists():
        unavailable(f"needs the SDK venv {sdk_engine.SDK_VENV} (make test makes it)")
    work = tmp_path_factory.mktemp("sdk-local")
    daemon = sdk_engine.Daemon(work)
    try:
        daemon.start()
    except sdk_engine.EngineUnavailable as error:
        problems = daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        unavailable(f"{error}{'; ' if problems else ''}{'; '.join(problems)}")
    except BaseException:
        daemon.stop()
        raise
    try:
        yield LocalMode(daemon, work)
    finally:
        problems = daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        assert [] == problems, daemon.log()[-3000:]


@pytest.fixture
def local_mode(engine, static_only):
    engine.use_binary(static_only)
    return engine


def test_training_with_the_script_in_the_image(local_mode):
    """(1) SAGEMAKER_PROGRAM names the script in the image; its model is in model.tar.gz."""
    outcome = local_mode.run("train-in-image")
    assert outcome.result["ok"], outcome.describe()
    assert outcome.result["sdk_version"].startswith("2.")
    container = outcome.container("train")
    host = host_of(container)
    assert (0, ["/usr/local/bin/sm-entry"], True, True) == (
        container["State"]["ExitCode"], container["Config"]["Entrypoint"],
        container["Config"]["Tty"], container["Config"]["OpenStdin"]), outcome.describe()
    model = json.loads(model_tar(outcome)["model.json"])
    assert {"weight": 3.0, "bias": 1.0, "argv": ["--epochs", "3", "--lr", "0.05"],
            "program": "/opt/ml/code/train.py", "cwd": "/opt/ml/code", "rows": len(TRAIN_ROWS),
            "channel": "/opt/ml/input/data/train", "current_host": host, "hosts": [host],
            # sm-entry gives the job terminals of its own, since it has one
            "stdout_isatty": True, "stderr_isatty": True} == {
                k: v for k, v in model.items() if k != "pid"}
    assert host.startswith("algo-1-")
    assert {"success": b""} == local_mode.artifacts(outcome, "output.tar.gz")
    # What the script printed reached the SDK's terminal, through the job's pty and compose.
    for line in ("epoch 3/3 rows=10 lr=0.05", "training done: weight and bias found",
                 "job summary: success (exit code 0)"):
        assert line in outcome.output, outcome.describe()
    assert "===== Job Complete =====" in outcome.output


def test_training_with_entry_point_and_source_dir(local_mode):
    """(2) entry_point + source_dir: the SDK mounts source_dir at /opt/ml/code and names it
    as the submit directory too; the code runs in place, with its neighbour importable."""
    source = local_mode.work / "source_dir"
    shutil.copytree(SOURCE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    before = files_of(source)
    outcome = local_mode.run("train-source-dir", source_dir=str(source))
    assert outcome.result["ok"], outcome.describe()
    hyperparameters = outcome.result["hyperparameters"]
    assert ('"entry.py"', f'"file://{source}"') == (
        hyperparameters["sagemaker_program"], hyperparameters["sagemaker_submit_directory"])
    model = json.loads(model_tar(outcome)["model.json"])
    assert {"program": "/opt/ml/code/entry.py", "cwd": "/opt/ml/code",
            "argv": ["--epochs", "2", "--tag", "from source_dir"], "epochs": 2,
            "tag": "from source_dir", "helper": "/opt/ml/code/helper.py",
            "sm_hps": {"epochs": 2, "tag": "from source_dir"},
            "sm_module_dir": "/opt/ml/code", "sm_user_entry_point": "entry.py",
            "code_files": ["entry.py", "helper.py"]} == {
                **model, "code_files": [f for f in model["code_files"] if f != "__pycache__"]}
    assert "entry point: 2 epochs, tag 'from source_dir'" in outcome.output
    assert 0 == outcome.container("train")["State"]["ExitCode"]
    # Nothing was copied onto the mounted directory (Python's own __pycache__ aside).
    assert before == files_of(source)


def test_a_failing_script_has_its_exception_in_the_failure_file(local_mode):
    """(3) The script raises: output.tar.gz's `failure` has the exception and its frames,
    read through the job's terminal (compose gives the container a tty)."""
    outcome = local_mode.run("train-failure")
    assert not outcome.result["ok"], outcome.describe()
    assert "exited with code: 1" in outcome.result["error"], outcome.describe()
    container = outcome.container("train")
    assert (1, True) == (container["State"]["ExitCode"], container["Config"]["Tty"])
    output = local_mode.artifacts(outcome, "output.tar.gz")
    assert "success" not in output
    failure = output["failure"].decode()
    first_line = failure.splitlines()[0]
    assert "ValueError: bad learning rate: -1.0" == first_line, failure
    assert 'fail.py", line' in failure and "in check" in failure, failure
    assert "exited with code" not in first_line
    for text in ("checking the hyperparameters", "Traceback (most recent call last)",
                 "ValueError: bad learning rate: -1.0"):
        assert text in container["Logs"], outcome.describe()
        assert text in outcome.output, outcome.describe()


def test_two_hosts_see_each_other(local_mode):
    """(4) instance_count=2: both hosts run, each has both in resourceconfig.json, resolves
    the other by name and talks to it (the master hears the worker from its address)."""
    outcome = local_mode.run("two-hosts")
    assert outcome.result["ok"], outcome.describe()
    containers = [c for c in outcome.containers if c["Config"]["Cmd"] == ["train"]]
    assert [0, 0] == [c["State"]["ExitCode"] for c in containers], outcome.describe()
    hosts = sorted(host_of(c) for c in containers)
    suffix = hosts[0].removeprefix("algo-1-")
    assert [f"algo-1-{suffix}", f"algo-2-{suffix}"] == hosts
    files = model_tar(outcome)
    assert {f"host-{h}.json" for h in hosts} == set(files), files
    records = {h: json.loads(files[f"host-{h}.json"]) for h in hosts}
    master, worker = hosts
    for host, record in records.items():
        assert (host, host, hosts, hosts) == (record["current_host"], record["sm_current_host"],
                                              record["hosts"], record["sm_hosts"])
        assert hosts == sorted(record["resolved"])
        assert len(set(record["resolved"].values())) == 2, record
    assert records[master]["resolved"] == records[worker]["resolved"]
    address = records[master]["resolved"][worker]
    assert [{"name": worker, "address": address}] == records[master]["heard"]
    assert f"hello from {master}" == records[worker]["reply"]
    assert {"success": b""} == local_mode.artifacts(outcome, "output.tar.gz")
    for container in containers:
        assert "job summary: success (exit code 0)" in container["Logs"], outcome.describe()


def test_deploy_predict_and_delete_endpoint(local_mode):
    """(5) fit, deploy, predict, delete_endpoint: the serve container drained and exited 0."""
    outcome = local_mode.run("deploy")
    assert outcome.result["ok"], outcome.describe()
    assert [4.0, 7.0, -3.5] == outcome.result["predictions"]  # 3x + 1, from the trained model
    assert (200, "InService") == (outcome.result["ping"][0], outcome.result["endpoint_status"])
    assert 0 == outcome.container("train")["State"]["ExitCode"]
    serve = outcome.container("serve")
    assert ("exited", 0, True) == (serve["State"]["Status"], serve["State"]["ExitCode"],
                                   serve["Config"]["Tty"]), outcome.describe()
    logs = serve["Logs"]
    assert [("POST", "/invocations", 200, len("1.0\n2.0\n-1.5"))] == requests_in(logs), logs
    # delete_endpoint stops compose, which stops the container (SIGTERM): sm-entry drained,
    # then stopped the model server (which says so on its way out).
    for text in ("model loaded: weight 3.0, bias 1.0", "SIGTERM", "drained",
                 "model server stopped"):
        assert text in logs, outcome.describe()


def test_batch_transform_multi_record(local_mode):
    """(6) Transformer(strategy="MultiRecord"): the records of the file go in one request."""
    model_dir = local_mode.work / "transform-model"
    model_dir.mkdir()
    member = json.dumps({"weight": 2.0, "bias": -1.0}).encode()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    inputs, outputs = local_mode.work / "transform-in", local_mode.work / "transform-out"
    inputs.mkdir()
    outputs.mkdir()
    values = [1, 2, 3, 4.5, -2]
    content = "".join(f"{v}\n" for v in values)
    (inputs / "values.csv").write_text(content)
    outcome = local_mode.run("transform", model_tar=str(model_dir / "model.tar.gz"),
                             input=str(inputs), output=str(outputs))
    assert outcome.result["ok"], outcome.describe()
    assert ("Completed", "MultiRecord") == (outcome.result["status"],
                                            outcome.result["batch_strategy"])
    produced = (outputs / "values.csv.out").read_text()
    assert [2.0 * v - 1.0 for v in values] == [float(x) for x in produced.split()], produced
    serve = outcome.container("serve")
    assert ("exited", 0) == (serve["State"]["Status"], serve["State"]["ExitCode"])
    env = dict(item.split("=", 1) for item in serve["Config"]["Env"])
    assert ("True", "MULTI_RECORD") == (env["SAGEMAKER_BATCH"], env["SAGEMAKER_BATCH_STRATEGY"])
    logs = serve["Logs"]
    # The SDK asked /execution-parameters (the model server has none: sm-entry answered),
    # then sent the whole file in one request: MultiRecord.
    assert [("GET", "/execution-parameters", 200, 0),
            ("POST", "/invocations", 200, len(content))] == requests_in(logs), logs
    for text in ("model loaded: weight 2.0, bias -1.0", "drained", "model server stopped"):
        assert text in logs, outcome.describe()
