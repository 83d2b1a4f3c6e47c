#!/usr/bin/env python3
"""Record reference data from the real sagemaker-training toolkit (PyPI 5.1.4).

Run with the toolkit venv's interpreter (see README.md):

    /tmp/toolkit-venv/bin/python tests/toolkit/record_reference.py            # all cases
    /tmp/toolkit-venv/bin/python tests/toolkit/record_reference.py basic hetero
    /tmp/toolkit-venv/bin/python tests/toolkit/record_reference.py --check    # compare, don't write

For every cases/<name>/ this copies cases/<name>/opt_ml/ to a fresh temp tree
$TMP/opt/ml, sets SAGEMAKER_BASE_DIR to it and, in a fresh interpreter (the
toolkit computes its paths at import time):

1. builds ``sagemaker_training.environment.Environment()`` exactly as
   ``trainer.train()`` does and records ``to_cmd_args()`` ("argv"),
   ``to_env_vars()`` plus the variables the constructor writes into
   ``os.environ`` ("env");
2. unless the case says otherwise, runs the real ``trainer.train()`` with a
   probe program that dumps its argv, cwd and environment, and records the
   commands the toolkit ran, the child's view, the exit code and the
   success/failure files ("run").

Determinism: environment.num_cpus -> 4, environment.num_gpus -> 0,
environment.num_neurons -> 0, environment.validate_smddprun /
validate_smddpmprun -> False, entry_point._wait_hostname_resolution -> no-op
(it would resolve algo-N in DNS for up to 15 minutes). The worker runs with a
minimal fixed environment (no AWS_* variables, no AWS config file) plus the
case's env.json. Paths are replaced by placeholders: $BASE (the opt/ml root),
$TMP (the temp dir holding it, e.g. $TMP/submit), $PYTHON (the interpreter),
$VENV (its prefix), $STDLIB (the base interpreter's prefix).

Case files (all optional):
  opt_ml/...        the /opt/ml tree (input/config/*.json; code/ ...)
  env.json          extra environment variables; "$BASE"/"$TMP" are expanded
  case.json         {"probe": "train.py" | "train.sh" | "<other name>",
                     "probe_location": "code" (default) | "submit",
                     "probe_exit": 0, "probe_signal": 0, "probe_stderr": "...",
                     "requirements": "text of requirements.txt",
                     "run": true (default) | false,
                     "description": "..."}
hyperparameters.json and env.json values may contain "$BASE" / "$TMP".
Besides, model/ and output/data/ are created in the temp tree (the platform
always provides them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
TOOLKIT_VERSION = "5.1.4"

PATCHED = {
    "sagemaker_training.environment.num_cpus": 4,
    "sagemaker_training.environment.num_gpus": 0,
    "sagemaker_training.environment.num_neurons": 0,
    "sagemaker_training.environment.validate_smddprun": False,
    "sagemaker_training.environment.validate_smddpmprun": False,
    "sagemaker_training.entry_point._wait_hostname_resolution": None,
}

# The only variables the worker inherits (besides env.json and SAGEMAKER_BASE_DIR).
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

PROBE_PY = r'''# probe written by record_reference.py
import json, os, sys
EXIT = %(exit)d
SIGNAL = %(signal)d
STDERR = %(stderr)r
argv = sys.argv[1:] if os.environ.get("_PROBE_VIA_SH") else sys.argv
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "probe.json"), "w") as f:
    json.dump({"argv": argv, "cwd": os.getcwd(), "environ": dict(os.environ)}, f)
if STDERR:
    sys.stderr.write(STDERR)
    sys.stderr.flush()
if SIGNAL:
    os.kill(os.getpid(), SIGNAL)
sys.exit(EXIT)
'''

PROBE_SH = '''#!/bin/sh
# probe written by record_reference.py
_PROBE_VIA_SH=1 exec python3 "$(dirname "$0")/_probe.py" "$0" "$@"
'''


# ---------------------------------------------------------------- worker side
def worker(raw_out):
    """Runs inside a fresh interpreter with SAGEMAKER_BASE_DIR already set."""
    result = {}
    environ_before = dict(os.environ)
    try:
        from sagemaker_training import entry_point, environment, process
    except Exception as e:
        result["import_error"] = f"{type(e).__name__}: {e}"
        _dump(result, raw_out)
        return

    environment.num_cpus = lambda: 4
    environment.num_gpus = lambda: 0
    environment.num_neurons = lambda instance_type: 0
    environment.validate_smddprun = lambda: False
    environment.validate_smddpmprun = lambda: False
    entry_point._wait_hostname_resolution = lambda: None

    result["sys_path"] = list(sys.path)
    try:
        env = environment.Environment()
    except Exception as e:
        result["environment_error"] = f"{type(e).__name__}: {e}"
    else:
        result["argv"] = env.to_cmd_args()
        sm = env.to_env_vars()
        written = {
            k: v for k, v in os.environ.items() if environ_before.get(k) != v
        }
        result["env"] = dict(sm, **written)
        result["environ_written"] = sorted(written)
        result["framework_module"] = env.framework_module
        result["runner_would_be_mpi"] = bool(
            env.additional_framework_parameters.get("sagemaker_mpi_enabled")
            and env.current_instance_group in env.distribution_instance_groups
        )
        # restore, so that train() starts from the same os.environ as a real run
        for k in written:
            if k in environ_before:
                os.environ[k] = environ_before[k]
            else:
                del os.environ[k]

    if os.environ.get("_RECORD_RUN") == "1":
        result["run"] = _run_train(process)
    _dump(result, raw_out)


def _run_train(process):
    from sagemaker_training import environment, trainer

    commands = []
    orig_check_error = process.check_error

    def check_error(cmd, error_classes, processes_per_host, cwd=None, capture_error=True, **kw):
        commands.append({"cmd": list(cmd), "cwd": cwd, "capture_error": capture_error})
        return orig_check_error(
            cmd, error_classes, processes_per_host, cwd=cwd, capture_error=capture_error, **kw
        )

    process.check_error = check_error
    import sagemaker_training.modules as modules_mod

    modules_mod.process.check_error = check_error  # same module object, kept for clarity

    sys_path_before = list(sys.path)
    run = {}
    try:
        trainer.train()
        run["exit_code"] = "train() returned without sys.exit"
    except SystemExit as e:
        run["exit_code"] = e.code
    run["commands"] = commands
    out = environment.output_dir
    for name in ("success", "failure"):
        p = os.path.join(out, name)
        run[name + "_file"] = open(p).read() if os.path.exists(p) else None
    probe = os.path.join(environment.output_data_dir, "probe.json")
    if os.path.exists(probe):
        with open(probe) as f:
            child = json.load(f)
        run["child_argv"] = child["argv"]
        run["child_cwd"] = child["cwd"]
        run["child_environ"] = child["environ"]
    run["sys_path_before"] = sys_path_before
    run["code_dir_listing"] = sorted(os.listdir(environment.code_dir))
    return run


def _dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------- driver side
def _expand(value, tmp, base):
    if isinstance(value, str):
        return value.replace("$BASE", base).replace("$TMP", tmp)
    return value


def _write_probe(directory, name, case):
    os.makedirs(os.path.join(directory, os.path.dirname(name)), exist_ok=True)
    text = PROBE_PY % {
        "exit": case.get("probe_exit", 0),
        "signal": case.get("probe_signal", 0),
        "stderr": case.get("probe_stderr", ""),
    }
    if name.endswith(".py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    elif name.endswith(".sh"):
        with open(os.path.join(directory, "_probe.py"), "w") as f:
            f.write(text)
        with open(os.path.join(directory, name), "w") as f:
            f.write(PROBE_SH)
    else:  # a "command": an executable file run as ./name through /bin/sh -c
        with open(os.path.join(directory, name), "w") as f:
            f.write("#!/usr/bin/env python3\n" + text)
    if "requirements" in case:
        with open(os.path.join(directory, "requirements.txt"), "w") as f:
            f.write(case["requirements"])


def _placeholders(obj, subs):
    if isinstance(obj, str):
        for real, ph in subs:
            obj = obj.replace(real, ph)
        return obj
    if isinstance(obj, list):
        return [_placeholders(x, subs) for x in obj]
    if isinstance(obj, dict):
        return {_placeholders(k, subs): _placeholders(v, subs) for k, v in obj.items()}
    return obj


def record_case(name):
    case_dir = os.path.join(CASES, name)
    case = {}
    if os.path.exists(os.path.join(case_dir, "case.json")):
        with open(os.path.join(case_dir, "case.json")) as f:
            case = json.load(f)
    extra_env = {}
    if os.path.exists(os.path.join(case_dir, "env.json")):
        with open(os.path.join(case_dir, "env.json")) as f:
            extra_env = json.load(f)

    tmp = os.path.realpath(tempfile.mkdtemp(prefix="smtk-"))
    try:
        base = os.path.join(tmp, "opt", "ml")
        src = os.path.join(case_dir, "opt_ml")
        if os.path.isdir(src):
            shutil.copytree(src, base)
        os.makedirs(os.path.join(base, "model"), exist_ok=True)
        os.makedirs(os.path.join(base, "output", "data"), exist_ok=True)
        hp_file = os.path.join(base, "input", "config", "hyperparameters.json")
        if os.path.exists(hp_file):
            with open(hp_file) as f:
                text = f.read()
            with open(hp_file, "w") as f:
                f.write(text.replace("$BASE", base).replace("$TMP", tmp))

        if case.get("probe"):
            if case.get("probe_location", "code") == "submit":
                submit = os.path.join(tmp, "submit")
                _write_probe(submit, case["probe"], case)
                with tarfile.open(os.path.join(tmp, "submit.tar.gz"), "w:gz") as t:
                    for entry in sorted(os.listdir(submit)):
                        t.add(os.path.join(submit, entry), arcname=entry)
            else:
                _write_probe(os.path.join(base, "code"), case["probe"], case)

        env = dict(BASE_ENV)
        env["HOME"] = os.path.join(tmp, "home")
        os.makedirs(env["HOME"])
        env.update({k: _expand(v, tmp, base) for k, v in extra_env.items()})
        env["SAGEMAKER_BASE_DIR"] = base
        env["_RECORD_RUN"] = "1" if case.get("run", True) else "0"
        raw = os.path.join(tmp, "raw.json")
        log = os.path.join(tmp, "worker.log")
        with open(log, "w") as logf:
            rc = subprocess.call(
                [sys.executable, os.path.abspath(__file__), "--worker", raw],
                env=env, cwd=tmp, stdout=logf, stderr=subprocess.STDOUT, timeout=300,
            )
        if not os.path.exists(raw):
            sys.stderr.write(open(log).read())
            raise SystemExit(f"worker for {name} failed (rc={rc})")
        with open(raw) as f:
            data = json.load(f)
    finally:
        pass

    expected = {
        "toolkit": f"sagemaker-training=={TOOLKIT_VERSION}",
        "description": case.get("description", ""),
        "patched": PATCHED,
    }
    if "import_error" in data:
        expected["import_error"] = data["import_error"]
    if "environment_error" in data:
        expected["environment_error"] = data["environment_error"]
    if "argv" in data:
        expected["argv"] = data["argv"]
        expected["env"] = data["env"]
        expected["environ_written"] = data["environ_written"]
        expected["pythonpath"] = {
            "head": os.path.join(base, "code"),
            "rule": "PYTHONPATH = ':'.join(sys.path) of the toolkit process, with the code "
            "dir inserted first (entry_point.install); the rest is the toolkit "
            "interpreter's own sys.path and is not recorded",
        }
    run = data.get("run")
    if run is not None:
        r = {
            "exit_code": run["exit_code"],
            "commands": run["commands"],
            "success_file": run["success_file"],
            "failure_file": run["failure_file"],
            "code_dir_listing": run["code_dir_listing"],
        }
        if "child_argv" in run:
            r["child_argv"] = run["child_argv"]
            r["child_cwd"] = run["child_cwd"]
            cenv = run["child_environ"]
            pp = cenv.get("PYTHONPATH", "")
            tail = ":".join(run["sys_path_before"])
            head = pp[: -len(tail)].rstrip(":") if tail and pp.endswith(tail) else None
            r["child_pythonpath"] = {
                "head": head,
                "tail_is_toolkit_sys_path": head is not None,
                "raw_if_unexpected": None if head is not None else pp,
            }
            # variables the child sees that the worker did not have, other than
            # PYTHONPATH, the probe's own marker and those already in "env"
            r["child_env_extra"] = {
                k: v for k, v in sorted(cenv.items())
                if k not in ("PYTHONPATH", "_PROBE_VIA_SH") and env.get(k) != v
                and k not in expected.get("env", {})
            }
            if "env" in expected:
                exp = {k: v for k, v in expected["env"].items()}
                got = {k: cenv.get(k) for k in exp}
                r["child_env_equals_env"] = got == exp
                r["child_env_mismatches"] = {
                    k: [exp[k], got[k]] for k in exp if exp[k] != got[k]
                }
        expected["run"] = r
    elif case.get("run", True) is False:
        expected["run"] = {"skipped": case.get("skip_reason", "case.json run=false")}

    stdlib = os.path.realpath(getattr(sys, "base_prefix", sys.prefix))
    subs = [
        (sys.executable, "$PYTHON"),
        (base, "$BASE"),
        (tmp, "$TMP"),
        (sys.prefix, "$VENV"),
        (os.path.realpath(sys.prefix), "$VENV"),
        (stdlib + "/lib/", "$STDLIB/lib/"),
    ]
    expected = _placeholders(expected, subs)
    shutil.rmtree(tmp, ignore_errors=True)
    return expected


def main(argv):
    if argv[:1] == ["--worker"]:
        worker(argv[1])
        return 0
    try:
        from importlib.metadata import version

        found = version("sagemaker-training")
    except Exception:
        found = None
    if found != TOOLKIT_VERSION:
        sys.exit(f"needs sagemaker-training=={TOOLKIT_VERSION} in this interpreter, found {found} (see README.md)")
    check = "--check" in argv
    names = [a for a in argv if not a.startswith("--")] or sorted(
        d for d in os.listdir(CASES) if os.path.isdir(os.path.join(CASES, d))
    )
    failed = 0
    for name in names:
        expected = record_case(name)
        text = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        path = os.path.join(CASES, name, "expected.json")
        if check:
            old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            status = "ok" if old == text else "DIFFERS"
            failed += status != "ok"
            print("%-24s %s" % (name, status))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            run = expected.get("run", {})
            print("%-24s argv=%-3s env=%-3s run.exit=%s %s" % (
                name,
                len(expected.get("argv", [])) if "argv" in expected else "-",
                len(expected.get("env", {})) if "env" in expected else "-",
                run.get("exit_code", run.get("skipped", "-")),
                expected.get("environment_error", ""),
            ))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
