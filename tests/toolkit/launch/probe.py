#!/usr/bin/env python3
"""What the real SageMaker training toolkit would launch for an /opt/ml tree (no process runs).

Run with the interpreter of the toolkit venv (requirements.txt here: sagemaker-training
5.1.4 and the PyTorch DLC's framework toolkit, sagemaker-pytorch-training 3.0.0):

    build/venv-sagemaker-training/bin/python tests/toolkit/launch/probe.py OPT_ML_DIR \
        [--num-gpus N] [--num-neurons N] [--num-cpus N] [--instance-type T] \
        [--current-host H] [--framework pytorch|none] [--env NAME=VALUE ...] \
        [--env-file FILE.json] [--without-smddprun] [--with-smddpmprun] \
        [--torch-version V] [--exit-code N] [--inherit-env]

prints ONE JSON object: the command the toolkit would run (`argv`, `cwd`) and the
environment the child would get (`env`: only what differs from the starting
environment `base_env`; `env_removed`: what it would lack). See README.md here.

    .../python probe.py --cases [--check] [NAME ...]

(re)records cases/<name>/toolkit.json from cases/<name>/opt_ml + case.json
(`args`: the options above, `env`: extra environment, `description`); with
--check it compares instead of writing and exits 1 on a difference.

How it runs: the tree is copied to a temp dir $TMP/opt/ml (the toolkit writes
output/success, chmods the entry point, ...), and a fresh interpreter is started
with a fixed minimal environment (record_reference.BASE_ENV, HOME=$TMP/home,
SAGEMAKER_BASE_DIR=$TMP/opt/ml, the extra variables, and for --framework pytorch
SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main as the PyTorch
DLC images set it). That interpreter runs the toolkit's real `trainer.train()`:
with the PyTorch framework module it is the DLC's own path (the framework toolkit
picks the MPI / SMDataParallel / TorchDistributed / PyTorchXLA runner from the
hyperparameters); with `--framework none` it is sagemaker-training's own trainer
(MPI or a plain process). Every process launch is intercepted:

- process.run_async (asyncio.create_subprocess_exec, the capture_error=True path)
  and the `subprocess` module of every sagemaker_training module (Popen, run,
  check_output, call, check_call: the capture_error=False path, sshd, ssh) are
  recorders; nothing is executed.
- `nvidia-smi --list-gpus` answers N "GPU i: ..." lines (--num-gpus, default 0; 0 =
  not installed), `neuron-ls -j` answers devices with 2 cores each (--num-neurons,
  default 0; 0 = not installed; the toolkit itself answers 64 for *trn2.48xlarge*),
  `which smddprun` finds it unless --without-smddprun, `which smddpmprun` only with
  --with-smddpmprun. So environment.num_gpus / num_neurons / validate_smddprun /
  validate_smddpmprun run their real code on these answers.
- environment.num_cpus -> --num-cpus (default 4, as record_reference.py).
- Waits are skipped and recorded: entry_point._wait_hostname_resolution and the
  PyTorch toolkit's _dns_lookup (DNS of every host, up to 15 min), mpi/smdataparallel
  _can_connect (SSH to port 22 of the workers / master) -> True, time.sleep of the
  mpi and smdataparallel modules (30 s after mpirun), the worker's orted watch and
  status-file wait; _start_sshd_daemon records `/usr/sbin/sshd -D` without
  requiring the file; the worker's _write_env_vars_to_file records what it would
  append to /etc/environment instead of writing it.
- No network: intermediate_output.start_sync (sagemaker_s3_output) is skipped and
  recorded, files.s3_download raises (an s3:// sagemaker_submit_directory is not
  supported: put the program in opt_ml/code).
- --torch-version V puts a stub `torch` module (only __version__) in sys.modules,
  so the PyTorch toolkit sets SM_DLC_TORCH_VERSION as in a DLC; without it the
  toolkit logs "PyTorch cannot be found" and leaves it unset.

Placeholders in the output: $TMP, $BASE (= $TMP/opt/ml), $PYTHON (the toolkit's
interpreter), $VENV (its prefix), $GETHOSTNAME_SO (the toolkit's `gethostname` C
extension, which mpirun LD_PRELOADs), $SYS_PATH (the toolkit interpreter's
sys.path joined with ':', the tail of PYTHONPATH).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
TOOLKIT = "sagemaker-training==5.1.4"
FRAMEWORK = "sagemaker-pytorch-training==3.0.0"
PYTORCH_MODULE = "sagemaker_pytorch_container.training:main"
# Variables the Environment() constructor writes into os.environ (besides to_env_vars()).
ENVIRONMENT_WRITES = ("CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION")


def _recorder_module():
    spec = importlib.util.spec_from_file_location(
        "record_reference", os.path.join(os.path.dirname(HERE), "record_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ====================================================================== worker side
def worker(spec_path, raw_path):
    """In a fresh interpreter whose environment is the starting environment."""
    with open(spec_path) as f:
        spec = json.load(f)
    environ_start = dict(os.environ)
    # The `train` console script's sys.path[0] is its bin dir, not this file's dir.
    sys.path[0] = os.path.dirname(sys.executable)
    sys_path_start = list(sys.path)
    result = {"launches": [], "checks": [], "waits": [], "runners": [],
              "env_vars_written": [], "etc_environment": None}

    if spec.get("torch_version"):
        import types

        stub = types.ModuleType("torch")
        stub.__version__ = spec["torch_version"]
        sys.modules["torch"] = stub

    import gethostname
    import sagemaker_training
    from sagemaker_training import (
        entry_point,
        environment,
        mpi,
        process,
        runner,
        smdataparallel,
        trainer,
    )

    def launch(via, argv, env, cwd):
        result["launches"].append({
            "via": via, "argv": [str(a) for a in argv],
            "env": dict(os.environ if env is None else env), "cwd": cwd,
        })

    # ---- fake external commands -------------------------------------------------
    num_gpus = int(spec.get("num_gpus", 0))
    num_neurons = int(spec.get("num_neurons", 0))
    installed = set(spec.get("installed", []))
    exit_code = int(spec.get("exit_code", 0))  # what the intercepted program "returns"

    def answer(argv):
        """(returncode, stdout bytes) of a command the toolkit asks a question with, or None."""
        argv = [str(a) for a in argv]
        if argv[:2] == ["nvidia-smi", "--list-gpus"]:
            if num_gpus <= 0:
                raise FileNotFoundError(2, "No such file or directory", "nvidia-smi")
            return 0, "".join(f"GPU {i}: NVIDIA A100-SXM4-40GB (UUID: GPU-{i:08d})\n"
                              for i in range(num_gpus)).encode()
        if argv[:2] == ["neuron-ls", "-j"]:
            if num_neurons <= 0:
                raise FileNotFoundError(2, "No such file or directory", "neuron-ls")
            if num_neurons % 2 == 0:
                devices = [{"neuron_device": i, "nc_count": 2} for i in range(num_neurons // 2)]
            else:
                devices = [{"neuron_device": 0, "nc_count": num_neurons}]
            return 0, json.dumps(devices).encode()
        if argv[:1] == ["which"] and len(argv) == 2:
            if argv[1] in installed:
                return 0, (f"/usr/local/bin/{argv[1]}\n").encode()
            return 1, b""
        return None

    def check(via, args):
        """answer(), recorded once per distinct question and answer in result["checks"]."""
        try:
            known = answer(args)
        except OSError as e:
            entry = {"via": via, "argv": [str(a) for a in args],
                     "answer": f"{type(e).__name__} (not installed)"}
            if entry not in result["checks"]:
                result["checks"].append(entry)
            raise
        if known is not None:
            entry = {"via": via, "argv": [str(a) for a in args],
                     "answer": {"returncode": known[0], "stdout": known[1].decode()}}
            if entry not in result["checks"]:
                result["checks"].append(entry)
        return known

    class FakePopen:
        def __init__(self, args, *a, **kw):
            caller = sys._getframe(1)
            via = "{}.{}".format(caller.f_globals.get("__name__"), caller.f_code.co_name)
            launch("subprocess.Popen from " + via, list(args), kw.get("env"), kw.get("cwd"))
            self.args, self.pid = args, 0
            self.returncode = exit_code if via.startswith("sagemaker_training.process.") else 0
            self.stdin = self.stdout = self.stderr = None

        def wait(self, timeout=None):
            return self.returncode

        def poll(self):
            return self.returncode

        def communicate(self, input=None, timeout=None):
            return None, None

        def kill(self):
            pass

        terminate = kill

        def send_signal(self, sig):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_run(args, *a, **kw):
        caller = sys._getframe(1)
        via = "{}.{}".format(caller.f_globals.get("__name__"), caller.f_code.co_name)
        known = check(via, args)
        if known is None:
            launch("subprocess.run from " + via, list(args), kw.get("env"), kw.get("cwd"))
            rc, out = 0, b""
        else:
            rc, out = known
        if kw.get("text") or kw.get("universal_newlines"):
            out = out.decode()
        if kw.get("check") and rc:
            raise subprocess.CalledProcessError(rc, args, output=out, stderr=out[:0])
        return subprocess.CompletedProcess(args, rc, stdout=out, stderr=out[:0])

    def fake_check_output(args, *a, **kw):
        caller = sys._getframe(1)
        via = "{}.{}".format(caller.f_globals.get("__name__"), caller.f_code.co_name)
        known = check(via, args)
        if known is None:
            launch("subprocess.check_output from " + via, list(args), kw.get("env"),
                   kw.get("cwd"))
            return b""
        rc, out = known
        if rc:
            raise subprocess.CalledProcessError(rc, args, output=out)
        return out

    def fake_call(args, *a, **kw):
        caller = sys._getframe(1)
        via = "{}.{}".format(caller.f_globals.get("__name__"), caller.f_code.co_name)
        launch("subprocess.call from " + via, list(args), kw.get("env"), kw.get("cwd"))
        return 0

    import types

    shim = types.ModuleType("subprocess")
    shim.__dict__.update(subprocess.__dict__)
    shim.Popen, shim.run, shim.check_output = FakePopen, fake_run, fake_check_output
    shim.call = shim.check_call = fake_call
    for name, module in list(sys.modules.items()):
        if (name == "sagemaker_training" or name.startswith("sagemaker_training.")) and \
                getattr(module, "subprocess", None) is subprocess:
            module.subprocess = shim

    async def fake_run_async(cmd, processes_per_host, env, cwd, stderr, error_classes=None,
                             **kwargs):
        launch("process.run_async (asyncio.create_subprocess_exec)", list(cmd), env, cwd)
        result["launches"][-1]["processes_per_host"] = processes_per_host
        result["launches"][-1]["capture_stderr"] = stderr is not None

        class Proc:
            pid, returncode = 0, exit_code

        return exit_code, ["", ""], Proc()

    process.run_async = fake_run_async

    # ---- fixed values and skipped waits -----------------------------------------
    environment.num_cpus = lambda: int(spec.get("num_cpus", 4))

    def no_dns_wait():
        result["waits"].append("entry_point._wait_hostname_resolution (DNS of every host)")

    entry_point._wait_hostname_resolution = no_dns_wait

    def can_connect(module):
        def f(host, port=22):
            result["waits"].append(f"{module}._can_connect {host}:{port}")
            return True
        return f

    mpi._can_connect = can_connect("mpi")
    smdataparallel._can_connect = can_connect("smdataparallel")

    def sleeper(module):
        t = types.ModuleType("time")
        import time as real_time

        t.__dict__.update(real_time.__dict__)

        def sleep(seconds):
            result["waits"].append(f"{module} time.sleep({seconds})")
        t.sleep = sleep
        return t

    mpi.time = sleeper("mpi")
    smdataparallel.time = sleeper("smdataparallel")

    def start_sshd(module):
        def f():
            # the real one raises RuntimeError unless /usr/sbin/sshd exists
            result["waits"].append(f"{module}._start_sshd_daemon (needs /usr/sbin/sshd)")
            launch(f"subprocess.Popen from sagemaker_training.{module}._start_sshd_daemon",
                   ["/usr/sbin/sshd", "-D"], None, None)
        return f

    mpi._start_sshd_daemon = start_sshd("mpi")
    smdataparallel._start_sshd_daemon = start_sshd("smdataparallel")

    def write_etc_environment():
        result["etc_environment"] = dict(os.environ)

    mpi._write_env_vars_to_file = write_etc_environment

    def orted_done():
        result["waits"].append("mpi._wait_orted_process_to_finish")
        return [], []

    mpi._wait_orted_process_to_finish = orted_done

    def status_file_found(self, status_file):
        result["waits"].append(f"mpi.WorkerRunner._wait_for_status_file {status_file}")
        return True

    mpi.WorkerRunner._wait_for_status_file = status_file_found

    # No network: the intermediate-output sync to S3 (sagemaker_s3_output) is skipped and
    # recorded; an S3 submit directory is refused (give the tree a local code dir instead).
    from sagemaker_training import files, intermediate_output

    def no_sync(s3_output_location, region, endpoint_url=None):
        if s3_output_location:
            result["waits"].append(f"intermediate_output.start_sync {s3_output_location} (skipped)")
        return None

    intermediate_output.start_sync = no_sync
    trainer.intermediate_output.start_sync = no_sync

    def no_s3(url, dst):
        raise RuntimeError(f"probe: S3 download of {url} not supported; put the code in "
                           "opt_ml/code and drop sagemaker_submit_directory")

    files.s3_download = no_s3

    orig_write_env_vars = environment.write_env_vars

    def write_env_vars(env_vars=None):
        orig_write_env_vars(env_vars)
        result["env_vars_written"] = sorted((env_vars or {}).keys())

    environment.write_env_vars = write_env_vars

    orig_get_by_runner_type = runner._get_by_runner_type

    def get_by_runner_type(identifier, *a, **kw):
        got = orig_get_by_runner_type(identifier, *a, **kw)
        result["runners"].append({"runner_type": getattr(identifier, "value", str(identifier)),
                                  "class": type(got).__module__ + "." + type(got).__name__})
        return got

    runner._get_by_runner_type = get_by_runner_type

    if os.environ.get("SAGEMAKER_TRAINING_MODULE") == PYTORCH_MODULE:
        from sagemaker_pytorch_container import training as pt_training

        def dns_lookup(host):
            result["waits"].append(f"sagemaker_pytorch_container.training._dns_lookup {host}")
        pt_training._dns_lookup = dns_lookup

    # ---- run --------------------------------------------------------------------
    try:
        trainer.train()
        result["exit_code"] = "train() returned without sys.exit"
    except SystemExit as e:
        result["exit_code"] = e.code
    out = environment.output_dir
    for name in ("success", "failure"):
        p = os.path.join(out, name)
        result[name + "_file"] = Path(p).read_text() if os.path.exists(p) else None
    result["environ_start"] = environ_start
    result["sys_path_start"] = sys_path_start
    result["gethostname_so"] = __import__("inspect").getfile(gethostname)
    result["toolkit_dir"] = os.path.dirname(sagemaker_training.__file__)
    with open(raw_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)


# ====================================================================== driver side
def _placeholders(obj, subs):
    if isinstance(obj, str):
        for real, ph in subs:
            if real:
                obj = obj.replace(real, ph)
        return obj
    if isinstance(obj, list):
        return [_placeholders(x, subs) for x in obj]
    if isinstance(obj, dict):
        return {_placeholders(k, subs): _placeholders(v, subs) for k, v in obj.items()}
    return obj


def _diff(env, start):
    return ({k: v for k, v in env.items() if start.get(k) != v},
            sorted(k for k in start if k not in env))


def _is_main(launch):
    """The launch of the user program (or the worker's sshd): not a question, not ssh."""
    via = launch["via"]
    return via.startswith("process.run_async") or "sagemaker_training.process.check_error" in via


def probe(opt_ml, options, extra_env=None, description=""):
    """Run the toolkit on a copy of the tree; the JSON-able result."""
    recorder = _recorder_module()
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="smtk-launch-"))
    base = os.path.join(tmp, "opt", "ml")
    shutil.copytree(opt_ml, base, symlinks=True)
    os.makedirs(os.path.join(base, "model"), exist_ok=True)
    os.makedirs(os.path.join(base, "output", "data"), exist_ok=True)
    config = os.path.join(base, "input", "config")
    hp_file = os.path.join(config, "hyperparameters.json")
    if os.path.exists(hp_file):
        with open(hp_file) as f:
            text = f.read()
        with open(hp_file, "w") as f:
            f.write(text.replace("$BASE", base).replace("$TMP", tmp))
    rc_file = os.path.join(config, "resourceconfig.json")
    if options.instance_type or options.current_host:
        with open(rc_file) as f:
            rc = json.load(f)
        if options.current_host:
            rc["current_host"] = options.current_host
        if options.instance_type:
            rc["current_instance_type"] = options.instance_type
            for group in rc.get("instance_groups", []):
                if group.get("instance_group_name") == rc.get("current_group_name"):
                    group["instance_type"] = options.instance_type
        with open(rc_file, "w") as f:
            json.dump(rc, f, indent=2)

    if options.inherit_env:
        env = dict(os.environ)
    else:
        env = dict(recorder.BASE_ENV)
        env["HOME"] = os.path.join(tmp, "home")
        os.makedirs(env["HOME"])
    if options.framework == "pytorch":
        env["SAGEMAKER_TRAINING_MODULE"] = PYTORCH_MODULE
    else:
        env.pop("SAGEMAKER_TRAINING_MODULE", None)
    extra = dict(extra_env or {})
    if options.env_file:
        with open(options.env_file) as f:
            extra.update(json.load(f))
    for item in options.env or []:
        name, _, value = item.partition("=")
        extra[name] = value
    env.update({k: str(v).replace("$BASE", base).replace("$TMP", tmp)
                for k, v in extra.items()})
    env["SAGEMAKER_BASE_DIR"] = base

    installed = [] if options.without_smddprun else ["smddprun"]
    if options.with_smddpmprun:
        installed.append("smddpmprun")
    spec = {"num_gpus": options.num_gpus, "num_neurons": options.num_neurons,
            "num_cpus": options.num_cpus, "installed": installed,
            "torch_version": options.torch_version, "exit_code": options.exit_code}
    spec_path = os.path.join(tmp, "spec.json")
    raw_path = os.path.join(tmp, "raw.json")
    log_path = os.path.join(tmp, "worker.log")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    with open(log_path, "w") as log:
        rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--worker",
                              spec_path, raw_path],
                             env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                             timeout=300)
    if not os.path.exists(raw_path):  # keep $TMP for a look
        sys.stderr.write(Path(log_path).read_text())
        raise SystemExit(f"probe worker failed (rc={rc}); its tree and log: {tmp}")
    with open(raw_path) as f:
        raw = json.load(f)

    start = raw["environ_start"]
    launches = []
    for launch in raw["launches"]:
        added, removed = _diff(launch.pop("env"), start)
        launches.append(dict(launch, env=added, env_removed=removed))
    main = [launch for launch in launches if _is_main(launch)]
    # a worker host runs no program: its sshd, through which the master's mpirun starts the ranks
    main = main or [launch for launch in launches if "_start_sshd_daemon" in launch["via"]]
    top = dict(main[-1]) if main else None
    if top:  # its argv/env are the top level's
        launches[launches.index(top)] = {"via": top["via"], "main": True,
                                         **{k: v for k, v in top.items()
                                            if k not in ("via", "argv", "env", "env_removed",
                                                         "cwd")}}
    sm_written = set(raw["env_vars_written"]) | set(ENVIRONMENT_WRITES)
    result = {
        "toolkit": TOOLKIT,
        "framework": FRAMEWORK if options.framework == "pytorch" else None,
        "description": description,
        "options": {"num_gpus": options.num_gpus, "num_neurons": options.num_neurons,
                    "num_cpus": options.num_cpus, "installed": spec["installed"],
                    "torch_version": options.torch_version,
                    "program_exit_code": options.exit_code,
                    "instance_type_override": options.instance_type,
                    "current_host_override": options.current_host},
        "runner": raw["runners"][-1] if raw["runners"] else None,
        "argv": top["argv"] if top else None,
        "cwd": top["cwd"] if top else None,
        "env": top["env"] if top else None,
        "env_removed": top["env_removed"] if top else None,
        # the part of `env` that is not the SM_*/PYTHONPATH training environment
        "launch_env": ({k: v for k, v in top["env"].items() if k not in sm_written}
                       if top else None),
        "base_env": start,
        "launches": launches,
        "checks": raw["checks"],
        "waits": raw["waits"],
        "etc_environment": (_diff(raw["etc_environment"], start)[0]
                            if raw["etc_environment"] is not None else None),
        "exit_code": raw["exit_code"],
        "success_file": raw["success_file"],
        "failure_file": raw["failure_file"],
    }
    venv = sys.prefix
    subs = [
        (":".join(raw["sys_path_start"]), "$SYS_PATH"),
        (raw["gethostname_so"], "$GETHOSTNAME_SO"),
        (sys.executable, "$PYTHON"),
        (base, "$BASE"),
        (tmp, "$TMP"),
        (venv, "$VENV"),
        (os.path.realpath(venv), "$VENV"),
    ]
    result = _placeholders(result, subs)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", metavar="OPT_ML_DIR",
                   help="the /opt/ml tree to probe (with --cases: case names)")
    p.add_argument("--num-gpus", type=int, default=0)
    p.add_argument("--num-neurons", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=4)
    p.add_argument("--instance-type", help="override current_instance_type (and its group's)")
    p.add_argument("--current-host", help="override current_host in resourceconfig.json")
    p.add_argument("--framework", choices=("pytorch", "none"), default="pytorch",
                   help="pytorch: the PyTorch DLC path (default); none: sagemaker-training's "
                        "own trainer (MPI or a plain process)")
    p.add_argument("--env", action="append", metavar="NAME=VALUE")
    p.add_argument("--env-file", help="JSON object of extra environment variables")
    p.add_argument("--without-smddprun", action="store_true")
    p.add_argument("--with-smddpmprun", action="store_true")
    p.add_argument("--torch-version")
    p.add_argument("--exit-code", type=int, default=0,
                   help="the exit code the intercepted program launch returns (default 0)")
    p.add_argument("--inherit-env", action="store_true",
                   help="start from this environment instead of the fixed minimal one")
    p.add_argument("--cases", action="store_true", help="(re)record cases/<name>/toolkit.json")
    p.add_argument("--check", action="store_true", help="with --cases: compare, don't write")
    p.add_argument("--print", action="store_true",
                   help="with --cases: print {name: output} as one JSON object, write nothing")
    return p


def _check_version():
    try:
        from importlib.metadata import version

        found = version("sagemaker-training")
    except Exception:
        found = None
    if found != TOOLKIT.split("==")[1]:
        sys.exit(f"needs {TOOLKIT} in this interpreter, found {found} (see tests/toolkit/launch/README.md)")


def run_cases(names, check, print_all=False):
    names = names or sorted(d for d in os.listdir(CASES)
                            if os.path.isfile(os.path.join(CASES, d, "case.json")))
    failed = 0
    everything = {}
    for name in names:
        case_dir = os.path.join(CASES, name)
        with open(os.path.join(case_dir, "case.json")) as f:
            case = json.load(f)
        options = _parser().parse_args(case.get("args", []))
        got = probe(os.path.join(case_dir, "opt_ml"), options, case.get("env"),
                    case.get("description", ""))
        text = json.dumps(got, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        path = os.path.join(case_dir, "toolkit.json")
        if print_all:
            everything[name] = got
        elif check:
            old = Path(path).read_text(encoding="utf-8") if os.path.exists(path) else None
            status = "ok" if old == text else "DIFFERS"
            failed += status != "ok"
            print(f"{name:<36} {status}")
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"{name:<36} exit={got['exit_code']} {' '.join((got['argv'] or [])[:3])}")
    if print_all:
        json.dump(everything, sys.stdout, sort_keys=True, ensure_ascii=False)
        sys.stdout.write("\n")
    return 1 if failed else 0


def main(argv):
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2])
        return 0
    _check_version()
    options = _parser().parse_args(argv)
    if options.cases:
        return run_cases(options.paths, options.check, options.print)
    if len(options.paths) != 1:
        _parser().error("exactly one OPT_ML_DIR is required")
    json.dump(probe(options.paths[0], options), sys.stdout, indent=2, sort_keys=True,
              ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
