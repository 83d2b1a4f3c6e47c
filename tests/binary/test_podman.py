"""dist/sm-entry in a real container runtime (podman + runc), FROM scratch.

The image is the `minimal` stage of Dockerfile.example, built verbatim; only
its builder stage is replaced by an imported image holding what `make build`
produced (no image can be pulled here).
"""

import os
import re
import shutil
import subprocess
import tarfile
import time
import uuid

import pytest

from tests.support import (
    REPO,
    STATIC_BINARY,
    require_binary,
    require_root,
    require_tool,
    zombies_in_namespace_of,
)

BUSYBOX_TOOLS = ("sh", "ls", "cat", "sleep", "ps")  # as Dockerfile.example links them


def minimal_stage() -> str:
    text = (REPO / "Dockerfile.example").read_text()
    match = re.search(r"^FROM scratch AS minimal\n.*?(?=^# ---|\Z)", text, re.M | re.S)
    assert match, "Dockerfile.example has no `FROM scratch AS minimal` stage"
    return match.group(0)


class Podman:
    def __init__(self, workdir):
        self.podman = require_tool("podman")
        require_tool("runc")
        conf = workdir / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.prefix = f"smentry-test-{uuid.uuid4().hex[:8]}"
        self.containers: list[str] = []

    def __call__(self, *args, check=True, timeout=120):
        argv = [self.podman, "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--runtime", "runc", *args]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}): {result.stderr}")
        return result

    def run(self, *args, detach=False, name=None):
        name = name or f"{self.prefix}-{len(self.containers)}"
        self.containers.append(name)
        flags = ["-d"] if detach else []
        return name, self("run", *flags, "--name", name, "--network", "none", *args, check=False)

    def logs(self, name):
        result = self("logs", name, check=False)
        return result.stdout + result.stderr

    def wait_for_log(self, name, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.logs(name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the logs of {name}: {self.logs(name)}")
            time.sleep(0.1)

    def host_pid(self, name):
        return int(self("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())

    def exit_code(self, name):
        return int(self("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())

    def cleanup(self):
        for name in self.containers:
            self("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    require_root()
    static = require_binary(STATIC_BINARY)
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs busybox-static (make test-deps installs it)")
    work = tmp_path_factory.mktemp("podman")
    engine = Podman(work)
    out = work / "rootfs"
    (out / "out" / "usr" / "local" / "bin").mkdir(parents=True)
    (out / "out" / "bin").mkdir()
    shutil.copy(static, out / "out" / "usr" / "local" / "bin" / "sm-entry")
    shutil.copy(busybox, out / "out" / "bin" / "busybox")
    for tool in BUSYBOX_TOOLS:
        os.symlink("busybox", out / "out" / "bin" / tool)
    with tarfile.open(work / "builder.tar", "w") as tar:
        tar.add(out / "out", arcname="out")
    builder = f"localhost/{engine.prefix}-builder:latest"
    image = f"localhost/{engine.prefix}-minimal:latest"
    engine("import", str(work / "builder.tar"), builder)
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {builder} AS builder\n\n{minimal_stage()}")
    engine("build", "-q", "-t", image, str(context), timeout=300)
    engine.image = image
    yield engine
    engine.cleanup()
    engine("rmi", "-f", image, builder, check=False)


SIGNAL_SCRIPT = """
trap 'echo got HUP' HUP
trap 'echo got USR1' USR1
trap 'echo got TERM; exit 0' TERM
echo ready
while :; do sleep 0.1; done
"""


def test_run_works_in_scratch_image_without_tmp(podman):
    _, result = podman.run("--rm", podman.image, "--log-format", "raw", "sh", "-c",
                           "echo hello; ls -d /tmp")
    assert 0 == result.returncode, result.stderr
    assert ["hello", "/tmp"] == result.stdout.split()


def test_default_command_and_exit_code(podman):
    _, result = podman.run("--rm", podman.image, "sh", "-c", "exit 42")
    assert 42 == result.returncode


def test_kill_hup_and_usr1_reach_the_child(podman):
    name, result = podman.run(podman.image, "sh", "-c", SIGNAL_SCRIPT, detach=True)
    assert 0 == result.returncode, result.stderr
    podman.wait_for_log(name, "ready")
    for sig in ("HUP", "USR1"):
        podman("kill", "-s", sig, name)
        podman.wait_for_log(name, f"got {sig}")
    podman("kill", "-s", "TERM", name)
    podman("wait", name, timeout=60)
    assert 0 == podman.exit_code(name)


def test_exec_leftovers_leave_no_zombie(podman):
    name, result = podman.run(podman.image, "sh", "-c", "echo ready; exec sleep 300", detach=True)
    assert 0 == result.returncode, result.stderr
    podman.wait_for_log(name, "ready")
    for _ in range(20):
        podman("exec", name, "sh", "-c", "(sleep 0.2 &)")
    pid1 = podman.host_pid(name)
    deadline = time.monotonic() + 10
    time.sleep(0.5)
    while zombies_in_namespace_of(pid1):
        assert time.monotonic() < deadline, f"zombies: {zombies_in_namespace_of(pid1)}"
        time.sleep(0.1)


def test_stop_kills_a_child_ignoring_term_after_our_stop_timeout(podman):
    script = 'trap "" TERM; echo ready; while :; do sleep 0.1; done'
    name, result = podman.run(podman.image, "--stop-timeout", "3", "sh", "-c", script, detach=True)
    assert 0 == result.returncode, result.stderr
    podman.wait_for_log(name, "ready")
    started = time.monotonic()
    podman("stop", "-t", "30", name, timeout=60)
    elapsed = time.monotonic() - started
    assert 137 == podman.exit_code(name)
    assert 2.5 < elapsed < 20, elapsed  # sm-entry killed it after 3 s, not podman after 30 s
    assert "killing the process tree" in podman.logs(name)


def test_non_root_user_with_exec_tmpfs(podman):
    _, result = podman.run("--rm", "--user", "65534", "--tmpfs", "/tmp:rw,exec,mode=1777",
                           podman.image, "--log-format", "raw", "sh", "-c", "id -u")
    assert 0 == result.returncode, result.stderr
    assert "65534" == result.stdout.strip()


def test_non_root_user_without_any_tmp_gets_the_clear_error(podman):
    _, result = podman.run("--rm", "--user", "65534", podman.image, "sh", "-c", "id -u")
    assert 73 == result.returncode
    assert "no directory to unpack into" in result.stderr and "--tmpfs /tmp:exec" in result.stderr


def test_read_only_root_with_exec_tmpfs(podman):
    _, result = podman.run("--rm", "--read-only", podman.image, "--log-format", "raw", "sh", "-c",
                           "echo ok")
    assert 0 == result.returncode, result.stderr
    assert "ok" == result.stdout.strip()


def test_noexec_tmp_with_no_other_choice_is_a_clear_error(podman):
    _, result = podman.run("--rm", "--read-only", "--read-only-tmpfs=false",
                           "--tmpfs", "/tmp:rw,noexec", podman.image, "sh", "-c", "echo ok")
    assert 73 == result.returncode
    assert "/tmp: mounted noexec" in result.stderr, result.stderr


def test_running_out_of_the_containers_memory_limit_is_said_for_certain(podman, tmp_path):
    # busybox sh doubling a string until the kernel's OOM killer takes it, no swap to go to.
    ml = tmp_path / "ml"
    ml.mkdir()
    _, result = podman.run("--rm", "--memory", "64m", "--memory-swap", "64m",
                           "-v", f"{ml}:/opt/ml", podman.image, "train", "--",
                           "sh", "-c", 'a=x; while :; do a="$a$a"; done')
    assert 137 == result.returncode, result.stderr[-3000:]
    reason = (ml / "output" / "failure").read_text()
    assert re.match(r"Out of memory: the container's memory limit \(64\.0 MiB\) was reached; the "
                    r"kernel killed PID \d+ \(sh -c\)\.\n", reason), reason
    assert '"oom_kills":1' in result.stderr
