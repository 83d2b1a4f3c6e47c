"""The static binary in an image with nothing else in it (an empty chroot)."""

import os
import shutil
import subprocess

import pytest

from tests.support import STATIC_BINARY, require_binary, require_root, require_tool

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


@pytest.fixture
def image(tmp_path):
    """A root file system holding only busybox (static) and sm-entry."""
    require_root()
    static = require_binary(STATIC_BINARY)
    busybox = next((p for p in BUSYBOX_PATHS if os.path.exists(p)), None)
    if busybox is None:
        pytest.skip("needs busybox-static (make test-deps installs it)")
    root = tmp_path / "root"
    for directory in ("bin", "usr/local/bin", "proc"):
        (root / directory).mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "sh")
    shutil.copy(static, root / "usr" / "local" / "bin" / "sm-entry")
    return root


def in_chroot(root, setup, *argv, tmp="tmpfs"):
    """Run sm-entry in `root` inside new mount and PID namespaces (mounts vanish with them)."""
    unshare = require_tool("unshare")
    script = f"""
set -e
{setup}
mount -t proc proc {root}/proc
exec chroot {root} /usr/local/bin/sm-entry "$@"
"""
    return subprocess.run([unshare, "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script,
                           "sh", *argv], capture_output=True, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SM_ENTRY_LOG_FORMAT": "raw"})


def test_version_and_a_busybox_command_run_with_only_proc_and_tmp(image):
    (image / "tmp").mkdir(mode=0o1777)
    version = in_chroot(image, "", "--version")
    assert 0 == version.returncode, version.stderr
    assert b"sm-entry 0.1.0" == version.stdout.strip()
    echo = in_chroot(image, "", "/bin/busybox", "echo", "hello from scratch")
    assert 0 == echo.returncode, echo.stderr
    assert b"hello from scratch" == echo.stdout.strip()
    assert [] == os.listdir(image / "tmp")


def test_missing_tmp_is_created_world_writable(image):
    result = in_chroot(image, "", "/bin/busybox", "true")
    assert 0 == result.returncode, result.stderr
    assert 0o1777 == os.stat(image / "tmp").st_mode & 0o7777
    assert [] == os.listdir(image / "tmp")


def test_noexec_tmp_and_no_alternative_is_a_clear_error(image):
    (image / "tmp").mkdir()
    result = in_chroot(image, f"mount -t tmpfs -o noexec tmpfs {image}/tmp", "/bin/busybox", "true")
    assert 73 == result.returncode
    message = result.stderr.decode()
    assert "/tmp: mounted noexec" in message and "TMPDIR" in message, message
    assert 1 == len(message.strip().splitlines())


def test_read_only_root_without_tmp_is_a_clear_error(image):
    result = in_chroot(image, f"mount --bind {image} {image} && mount -o remount,bind,ro {image}",
                       "/bin/busybox", "true")
    assert 73 == result.returncode
    assert b"no directory to unpack into" in result.stderr, result.stderr


def test_exec_tmpfs_on_read_only_root_works(image):
    (image / "tmp").mkdir()
    setup = (f"mount --bind {image} {image} && mount -o remount,bind,ro {image} && "
             f"mount -t tmpfs -o exec tmpfs {image}/tmp")
    result = in_chroot(image, setup, "/bin/busybox", "echo", "ok")
    assert 0 == result.returncode, result.stderr
    assert b"ok" == result.stdout.strip()
