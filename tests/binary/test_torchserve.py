"""The real TorchServe behind the binary, started as images start it: `torchserve --start`.

The launcher forks the Java server and exits 0 at once; sm-entry follows the
server. Its /ping is 200 while the model loads, so readiness is asked of the
management API on the same port (`--ready-path /models/model --ready-body
READY`). The model is a tiny TorchScript module whose handler takes
LOAD_SECONDS to load.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serve_support import Server
from tests.support import REPO, descendants_of, wait_until

BIN = Path(sys.executable).parent
TOOLKIT = REPO / "build" / "venv-pytorch-inference" / "bin"  # make test builds it
TS_CONFIG = Path("/etc/sagemaker-ts.properties")  # where the toolkit writes its config, always
LOAD_SECONDS = 4
HANDLER = f'''
import time
import torch

model = None


def handle(data, context):
    """TorchServe's module handler: called with None once, to load."""
    global model
    if data is None:
        time.sleep({LOAD_SECONDS})
        directory = context.system_properties["model_dir"]
        model = torch.jit.load(directory + "/model.pt")
        return None
    return [str(float(model(torch.tensor([[2.0]]))[0][0])) for _ in data]
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("needs java (make test-deps installs openjdk-17-jre-headless)")
    torch = pytest.importorskip("torch", reason="needs torch (make test installs it)")
    if not (BIN / "torchserve").exists():
        pytest.skip("needs torchserve in the test venv (make test installs it)")
    work = tmp_path_factory.mktemp("torchserve")
    linear = torch.nn.Linear(1, 1)
    with torch.no_grad():
        linear.weight.fill_(3.0)
        linear.bias.fill_(1.0)
    torch.jit.script(linear).save(str(work / "model.pt"))
    (work / "handler.py").write_text(HANDLER)
    store = work / "store"
    store.mkdir()
    subprocess.run([str(BIN / "torch-model-archiver"), "--model-name", "model", "--version", "1",
                    "--serialized-file", str(work / "model.pt"), "--handler",
                    str(work / "handler.py"), "--export-path", str(store), "-f"],
                   check=True, timeout=120)
    (work / "config.properties").write_text(
        "enable_envvars_config=true\ndisable_token_authorization=true\n"
        "default_workers_per_model=1\n")
    return work


def torchserve(model_store, static_only, *options):
    """sm-entry serve in front of `torchserve --start` (not --foreground)."""
    logs = model_store / f"logs-{time.monotonic_ns()}"
    logs.mkdir()
    env = {"TMPDIR": str(logs), "LOG_LOCATION": str(logs), "METRICS_LOCATION": str(logs),
           "TS_METRICS_ADDRESS": f"http://127.0.0.1:{_free_port()}",
           "TS_GRPC_INFERENCE_PORT": str(_free_port()),
           "TS_GRPC_MANAGEMENT_PORT": str(_free_port()),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    command = ["env", "TS_INFERENCE_ADDRESS=http://127.0.0.1:{port}",
               "TS_MANAGEMENT_ADDRESS=http://127.0.0.1:{port}",
               str(BIN / "torchserve"), "--start", "--ncs", "--model-store",
               str(model_store / "store"), "--models", "model=model.mar", "--ts-config",
               str(model_store / "config.properties")]
    return Server([static_only], command, "--ready-path", "/models/model", "--ready-body",
                  "READY", *options, env=env)


def java_processes(server):
    found = []
    for pid in descendants_of(server.run.pid):
        try:
            if Path(f"/proc/{pid}/exe").resolve().name == "java":
                found.append(pid)
        except OSError:
            continue
    return found


def predict(server, timeout=30):
    return server.request("POST", "/predictions/model", body=b"x", timeout=timeout)


def test_torchserve_start_is_followed_ready_when_loaded_restarted_and_drained(model_store,
                                                                             static_only):
    server = torchserve(model_store, static_only, "--restart-grace", "8")
    try:
        server.event("main process exited 0 and left its server running: following it")
        wait_until(lambda: server.ping() == 200, timeout=120, what="TorchServe ready")
        started = time.monotonic()
        assert (200, b"7.0") == predict(server)[::2]  # 3 * 2 + 1
        assert time.monotonic() - started < 2  # its model was loaded when /ping said so
        ready = server.event("model server ready")
        assert ready["after_s"] >= LOAD_SECONDS
        java, = java_processes(server)
        os.kill(java, signal.SIGKILL)
        restarting = server.event("model server restarting")
        assert f"(PID {java}) killed by SIGKILL" in restarting["reason"]
        assert "java" in restarting["reason"]
        wait_until(lambda: server.ping() == 503, timeout=30, what="/ping 503 after the crash")
        wait_until(lambda: server.ping() == 200, timeout=120, what="TorchServe ready again")
        assert (200, b"7.0") == predict(server)[::2]
        assert 0 == server.stop(timeout=60)
        assert [] == java_processes(server)
        assert "drained" in [e["msg"] for e in server.events()]
    finally:
        server.run.close()


INFERENCE = f'''
import json
import time

import torch


def model_fn(model_dir):
    time.sleep({LOAD_SECONDS})
    return torch.jit.load(model_dir + "/model.pt")


def input_fn(body, content_type):
    return torch.tensor([[float(x)] for x in json.loads(body)])


def predict_fn(data, model):
    with torch.no_grad():
        return model(data)


def output_fn(prediction, accept):
    return json.dumps([round(float(x), 3) for x in prediction[:, 0]])
'''


@pytest.fixture
def toolkit_tree(model_store, tmp_path):
    if not (TOOLKIT / "serve").exists():
        pytest.skip(f"needs the PyTorch inference toolkit in {TOOLKIT.parent} (make test makes it)")
    if os.geteuid() != 0:
        pytest.skip(f"needs root: the toolkit writes {TS_CONFIG}")
    model = tmp_path / "opt" / "ml" / "model"
    (model / "code").mkdir(parents=True)
    shutil.copy(model_store / "model.pt", model / "model.pt")
    (model / "code" / "inference.py").write_text(INFERENCE)
    saved = TS_CONFIG.read_bytes() if TS_CONFIG.exists() else None
    yield tmp_path
    if saved is None:
        TS_CONFIG.unlink(missing_ok=True)
    else:
        TS_CONFIG.write_bytes(saved)


def test_the_pytorch_inference_toolkits_own_serve_behind_sm_entry(toolkit_tree, static_only):
    logs = toolkit_tree / "logs"
    logs.mkdir()
    env = {"SAGEMAKER_BASE_DIR": str(toolkit_tree / "opt" / "ml"),
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "TMPDIR": str(logs), "LOG_LOCATION": str(logs),
           "METRICS_LOCATION": str(logs),
           "TS_METRICS_ADDRESS": f"http://127.0.0.1:{_free_port()}",
           "TS_GRPC_INFERENCE_PORT": str(_free_port()),
           "TS_GRPC_MANAGEMENT_PORT": str(_free_port()),
           "PATH": f"{TOOLKIT}:{os.environ['PATH']}"}
    server = Server([static_only], [str(TOOLKIT / "serve")], "--ready-path", "/models/model",
                    "--ready-body", "READY", env=env)
    try:
        wait_until(lambda: server.ping() == 200, timeout=120, what="the toolkit's TorchServe")
        status, _, body = server.request("POST", "/invocations", body=b"[2.0, 0.5]",
                                         headers={"Content-Type": "application/json"})
        assert (200, b"[7.0, 2.5]") == (status, body)
        assert server.event("model server ready")["after_s"] >= LOAD_SECONDS
        assert 0 == server.stop(timeout=60)
        assert [] == java_processes(server)
        assert "drained" in [e["msg"] for e in server.events()]
    finally:
        server.run.close()
