"""Archive members that would write outside the code directory are refused."""

import tarfile

import pytest

from supervisor.sourcedir import check_member


def member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(("info", "problem"), [
    (member("../evil"), "path with '..'"),
    (member("a/../../evil"), "path with '..'"),
    (member("/etc/passwd"), "absolute path"),
    (member("etc", tarfile.SYMTYPE, "/etc"), "symbolic link to absolute path /etc"),
    (member("up", tarfile.SYMTYPE, "../.."), "symbolic link pointing outside the code directory (../..)"),
    (member("hard", tarfile.LNKTYPE, "../x"), "hard link pointing outside the code directory (../x)"),
    (member("null", tarfile.CHRTYPE), "device file"),
    (member("disk", tarfile.BLKTYPE), "device file"),
    (member("fifo", tarfile.FIFOTYPE), "named pipe"),
])
def test_unsafe_members(tmp_path, info, problem):
    assert problem == check_member(info, str(tmp_path))


@pytest.mark.parametrize("info", [
    member("train.py"), member("pkg/mod.py"), member("pkg", tarfile.DIRTYPE),
    member("latest", tarfile.SYMTYPE, "pkg/mod.py"), member("copy", tarfile.LNKTYPE, "train.py"),
])
def test_safe_members(tmp_path, info):
    assert check_member(info, str(tmp_path)) is None
