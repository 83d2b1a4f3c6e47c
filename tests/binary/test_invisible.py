"""What the child sees is what it would see without a frozen program above it."""

import os
import signal
import subprocess

import pytest

from tests.support import (
    DYNAMIC_BINARY,
    STATIC_BINARY,
    SYSTEM_PYTHON,
    ExactEnv,
    Run,
    require_binary,
    require_root,
    require_tool,
    signals_child,
)

BINARIES = {"static": STATIC_BINARY, "dynamic": DYNAMIC_BINARY}
RAW = {"PATH": "/usr/bin:/bin", "SM_ENTRY_LOG_FORMAT": "raw"}  # the child's bytes, unwrapped


@pytest.fixture(params=sorted(BINARIES))
def binary(request):
    return require_binary(BINARIES[request.param])


def run(argv, env, **kwargs):
    return subprocess.run(argv, env=env, capture_output=True, timeout=60, **kwargs)


def parse_env0(data: bytes) -> dict[str, str]:
    pairs = [item.decode() for item in data.split(b"\0") if item]
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.mark.parametrize("ld_library_path", [None, "/opt/user/lib:/usr/local/lib"])
@pytest.mark.parametrize("user_tmpdir", [False, True])
def test_child_environment_is_exactly_what_sm_entry_was_given(binary, tmp_path, ld_library_path,
                                                               user_tmpdir):
    env = ExactEnv({"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "FOO": "bar baz",
                    "SM_ENTRY_LOG_FORMAT": "raw"})
    if ld_library_path is not None:
        env["LD_LIBRARY_PATH"] = ld_library_path
    if user_tmpdir:
        env["TMPDIR"] = str(tmp_path)
    result = run([binary, "--", "env", "-0"], env)
    assert 0 == result.returncode, result.stderr
    assert env == parse_env0(result.stdout)
    if user_tmpdir:
        assert [] == os.listdir(tmp_path)  # everything unpacked there was removed


def test_system_python_child_loads_nothing_from_our_bundle(binary):
    code = "import ssl, sys; sys.stdout.write(open('/proc/self/maps').read())"
    result = run([binary, SYSTEM_PYTHON, "-c", code], RAW)
    assert 0 == result.returncode, result.stderr
    maps = result.stdout.decode()
    assert "libssl" in maps  # the child really loaded its own libssl
    ours = [line for line in maps.splitlines() if "_MEI" in line or "staticx-" in line]
    assert [] == ours


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines()
                                      if line.startswith(("SigBlk", "SigIgn")))}


def ignoring_int_and_quit():
    """What a shell does to a background job, and nohup to SIGHUP."""
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def default_dispositions():
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("parent", [default_dispositions, ignoring_int_and_quit],
                         ids=["default", "ignoring"])
def test_child_signal_mask_and_dispositions_are_as_without_us(binary, parent):
    probe = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]
    direct = run(probe, {"PATH": "/usr/bin:/bin"}, preexec_fn=parent)
    under_us = run([binary, *probe], RAW, preexec_fn=parent)
    assert 0 == under_us.returncode, under_us.stderr
    assert status_fields(direct.stdout.decode()) == status_fields(under_us.stdout.decode())


def test_non_root_user_runs_the_static_binary(tmp_path):
    static = require_binary(STATIC_BINARY)
    require_root()
    setpriv = require_tool("setpriv")
    os.chmod(tmp_path, 0o777)
    env = {**RAW, "TMPDIR": str(tmp_path)}
    result = run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                  static, "--", "id", "-u"], env)
    assert 0 == result.returncode, result.stderr
    assert b"65534" == result.stdout.strip()
    assert [] == os.listdir(tmp_path)
    assert 0o755 == os.stat(static).st_mode & 0o777


@pytest.mark.parametrize("as_pid1", [False, True])
def test_signals_in_order_and_private_tmpdir_empty_afterwards(tmp_path, as_pid1):
    from tests.support import Pid1

    static = require_binary(STATIC_BINARY)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "SM_ENTRY_LOG_FORMAT": "json"}
    argv = [static, *signals_child("0")]
    proc = Pid1(argv, env=env) if as_pid1 else Run(argv, env=env)
    try:
        proc.wait_for_line("ready")
        assert [] != os.listdir(tmp_path)  # it did unpack there
        for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGWINCH", "SIGTERM"):
            proc.kill(getattr(__import__("signal"), name))
            proc.wait_for_line(f"got {name}")
        assert 0 == proc.wait()
    finally:
        proc.close()
    assert [] == os.listdir(tmp_path)
