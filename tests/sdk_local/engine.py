"""A private Docker engine for the SDK local-mode test, and the image it runs.

The engine is Debian's dockerd (docker.io) started by the test alone:

- in a network namespace of its own (unshare --net): the `sagemaker-local`
  bridge compose creates, the containers' veths, the userland proxy that
  publishes the endpoint's port 8080, and whatever dockerd sets in sysctls,
  all live and die there. The host's interfaces, iptables rules and
  ip_forward are never touched (and are compared before and after).
  iptables is off anyway (compose's DNS names and the port proxy need none);
  the SDK runs inside the same namespace (nsenter --net) so that its
  http://localhost:8080 is the proxy's;
- in a mount namespace of its own, with a tmpfs over /run (its exec-root,
  pidfile, containerd's state and the shims' sockets) and a private
  directory over /etc/docker (the key.json it writes): its overlay mounts
  and anything it leaves under /run vanish with it;
- with its own --data-root (images, build cache, containers, logs) in the
  test's work directory, removed at the end, and its own --cgroup-parent,
  whose directories are removed at the end;
- on its own socket, unix://WORK/docker.sock (DOCKER_HOST for the SDK).

Nothing can be pulled: the base image is a debootstrap --variant=minbase
Debian 12 with python3, cached as a tarball in build/sdk-local-cache/, and
imported into the fresh data root on each run (about 2 s).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = REPO / "build" / "sdk-local-cache"
SDK_VENV = REPO / "build" / "venv-sagemaker-sdk"
SDK_PYTHON = SDK_VENV / "bin" / "python"
# Debian's tools, never another docker earlier on PATH (/usr/local/bin may hold a newer CLI).
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("dockerd", "docker", "containerd", "runc", "docker-compose", "debootstrap", "unshare",
         "nsenter", "ip", "mount", "iptables-save")
PR_SET_PDEATHSIG = 1
PACKAGES = "docker.io docker-compose debootstrap"
MIRROR = os.environ.get("SM_ENTRY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
ROOTFS_INCLUDE = ("python3",)
# Left out of the image: apt's downloads and lists, documentation, /dev (docker provides it).
ROOTFS_EXCLUDE = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./usr/share/doc/*",
                  "./usr/share/man/*", "./usr/share/locale/*", "./dev/*")
DAEMON_SCRIPT = """
ip link set lo up
mount -t tmpfs -o mode=0755,size=64m sm-entry-sdk-run /run
mkdir -p "$1/etc-docker" /run/docker
if [ -d /etc/docker ]; then mount --bind "$1/etc-docker" /etc/docker; fi
shift
exec dockerd "$@"
"""


class EngineUnavailable(Exception):
    """No engine can run here (the test skips, except in CI)."""


def tool(name: str) -> str:
    path = shutil.which(name, path=SYSTEM_PATH)
    if path is None:
        raise EngineUnavailable(f"needs {name} (make test-deps installs {PACKAGES})")
    return path


def run(argv, *, timeout=120, check=True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_rootfs() -> Path:
    """The cached rootfs tarball: debootstrap --variant=minbase bookworm + python3."""
    key = hashlib.sha256(json.dumps(
        [SUITE, "minbase", ROOTFS_INCLUDE, ROOTFS_EXCLUDE, 1]).encode()).hexdigest()[:12]
    tarball = CACHE / f"debian12-minbase-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / ".lock"):  # another run may be building it
        if tarball.exists():
            return tarball
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE))
        try:
            # In a mount namespace of its own: the /proc and /sys debootstrap mounts in the
            # target go away with it, even if it is interrupted.
            result = run([tool("unshare"), "--mount", "--propagation", "slave", "--",
                          tool("debootstrap"), "--variant=minbase",
                          "--include=" + ",".join(ROOTFS_INCLUDE), SUITE, str(work / "root"),
                          MIRROR], timeout=1200, check=False, env={"PATH": SYSTEM_PATH})
            if result.returncode != 0:
                log = work / "root" / "debootstrap" / "debootstrap.log"
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise AssertionError(f"debootstrap failed ({result.returncode}): "
                                     f"{result.stdout[-2000:]}{result.stderr[-2000:]}{tail}")
            run(["tar", "-C", str(work / "root"), "--numeric-owner",
                 *(f"--exclude={pattern}" for pattern in ROOTFS_EXCLUDE),
                 "-cf", str(work / "rootfs.tar"), "."], timeout=300)
            for old in CACHE.glob("debian12-minbase-*.tar"):
                old.unlink()
            os.replace(work / "rootfs.tar", tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball


def _host_state() -> dict:
    """What dockerd could change on the host, had it not its own namespaces."""
    links = run([tool("ip"), "-o", "link", "show"]).stdout
    rules = "".join(run([path], check=False).stdout for path in (
        shutil.which(name, path=SYSTEM_PATH) for name in ("iptables-save", "ip6tables-save"))
        if path)
    return {
        "docker interfaces": sorted(re.findall(r"^\d+: ((?:docker0|br-[0-9a-f]{12})[@:])",
                                               links, re.M)),
        "docker iptables rules": sorted(line for line in rules.splitlines()
                                        if re.search(r"docker|DOCKER|br-[0-9a-f]{12}", line)),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
    }


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM (dockerd's orderly stop) if the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    """dockerd in namespaces of its own (see the module's docstring)."""

    def __init__(self, work: Path):
        self.work = work
        self.socket = work / "docker.sock"
        self.data_root = work / "docker-data"
        self.cgroup_parent = f"sm-entry-sdk-{uuid.uuid4().hex[:8]}"
        self.log_path = work / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        self.netns: str | None = None
        self.host_before: dict = {}
        self.env = {"PATH": SYSTEM_PATH, "HOME": str(work / "home"), "LANG": "C.UTF-8",
                    "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_CONFIG": str(work / "home" / ".docker")}

    def start(self) -> None:
        for name in TOOLS:
            tool(name)
        self.host_before = _host_state()
        self.data_root.mkdir(parents=True)
        (self.work / "home").mkdir(exist_ok=True)
        options = [f"--data-root={self.data_root}", "--exec-root=/run/docker",
                   "--pidfile=/run/docker/dockerd.pid", f"--host=unix://{self.socket}",
                   "--iptables=false", "--ip6tables=false", "--bridge=none",
                   "--storage-driver=overlay2", f"--cgroup-parent=/{self.cgroup_parent}",
                   "--log-level=warn"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [tool("unshare"), "--net", "--mount", "--propagation", "slave", "--",
                 "/bin/sh", "-ec", DAEMON_SCRIPT, "sh", str(self.work), *options],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": SYSTEM_PATH}, start_new_session=True, preexec_fn=_stop_with_parent)
        self.netns = f"/proc/{self.proc.pid}/ns/net"
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None:
                raise EngineUnavailable(f"dockerd could not start (exit {self.proc.returncode}): "
                                        f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not answer within 60 s: {self.log()[-3000:]}")
            time.sleep(0.2)
        self._netns_inode = os.stat(self.netns).st_ino  # dockerd is in it by now

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def docker(self, *args, check=True, timeout=120) -> subprocess.CompletedProcess:
        return run([tool("docker"), *args], env=self.env, check=check, timeout=timeout)

    def in_netns(self, argv: list[str]) -> list[str]:
        """argv run in the daemon's network namespace (where its published ports are)."""
        assert self.netns is not None
        return [tool("nsenter"), f"--net={self.netns}", "--", *argv]

    def container_ids(self) -> list[str]:
        return self.docker("ps", "-aq", "--no-trunc").stdout.split()

    def inspect(self, ids: list[str]) -> list[dict]:
        return json.loads(self.docker("inspect", *ids).stdout) if ids else []

    def logs(self, container: str) -> str:
        result = self.docker("logs", container, check=False)
        return result.stdout + result.stderr

    def build_image(self, binary: str, tag: str) -> str:
        """The test image: the cached base imported, then sm-entry and the scripts added."""
        base = f"{tag}-base"
        self.docker("import", str(base_rootfs()), base, timeout=300)
        context = self.work / "context"
        context.mkdir()
        shutil.copy(HERE / "image" / "Dockerfile", context / "Dockerfile")
        for name, mode in (("train.py", 0o644), ("fail.py", 0o644), ("hosts.py", 0o644),
                           ("serve", 0o755)):
            shutil.copy(HERE / "image" / name, context / name)
            os.chmod(context / name, mode)
        shutil.copy(binary, context / "sm-entry")
        os.chmod(context / "sm-entry", 0o755)
        self.docker("build", "-q", "--build-arg", f"BASE={base}", "-t", tag, str(context),
                    timeout=300)
        shutil.rmtree(context)
        return tag

    def stop(self) -> list[str]:
        """Stop everything; what could not be cleaned up or was left changed is returned."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False)
            self.docker("network", "prune", "-f", check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                problems.append("dockerd did not stop within 60 s of SIGTERM: killed")
                self.proc.kill()
                self.proc.wait()
        left = self._processes_in_netns()
        if left:
            problems.append(f"processes left in the daemon's network namespace: {left}")
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        problems += self._remove_cgroups()
        shutil.rmtree(self.data_root, ignore_errors=True)
        if self.data_root.exists():
            problems.append(f"the data root {self.data_root} could not be removed")
        after = _host_state()
        for what, before in self.host_before.items():
            if after[what] != before:
                problems.append(f"host {what} changed: {before} -> {after[what]}")
        return problems

    def _processes_in_netns(self) -> list[str]:
        """Processes still in the daemon's network namespace (containerd, shims, ...)."""
        inode = getattr(self, "_netns_inode", None)
        if inode is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def _remove_cgroups(self) -> list[str]:
        problems = []
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            parent = hierarchy / self.cgroup_parent
            if not parent.is_dir():
                continue
            directories = [parent, *(p for p in parent.rglob("*") if p.is_dir())]
            for directory in sorted(directories, key=lambda p: -len(p.parts)):
                try:
                    directory.rmdir()
                except OSError as error:
                    problems.append(f"cgroup {directory} left: {error}")
        return problems
