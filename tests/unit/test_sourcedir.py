"""Archive members that would write outside the code directory are refused."""

import tarfile

import pytest

from supervisor.train.sourcedir import check_member


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


def _archive(path, members):
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                data = payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("members", [
    [("a", "sym", "."), ("b", "sym", "a/.."), ("b/pwned.txt", "file", "x")],
    [("a", "sym", "."), ("up", "sym", "a/.."), ("up2", "sym", "up/.."), ("up2/victim.txt", "file", "x")],
    [("d", "sym", "sub"), ("sub", "sym", ".."), ("d/pwned.txt", "file", "x")],
], ids=["link-through-link", "two-levels-up", "link-then-retarget"])
def test_link_chains_cannot_write_outside_and_nothing_is_left(tmp_path, members):
    from supervisor import errors
    from supervisor.train.sourcedir import extract_archive

    code = tmp_path / "code"
    code.mkdir()
    (tmp_path / "victim.txt").write_text("intact")
    _archive(tmp_path / "evil.tar.gz", [("train.py", "file", "print(1)"), *members])
    with pytest.raises(errors.SetupError, match="refused member"):
        extract_archive(str(tmp_path / "evil.tar.gz"), str(code))
    assert [] == sorted(p.name for p in code.iterdir())
    assert "intact" == (tmp_path / "victim.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code", "evil.tar.gz", "victim.txt"]


def test_safe_archive_with_inner_links_is_extracted(tmp_path):
    from supervisor.train.sourcedir import extract_archive

    code = tmp_path / "code"
    code.mkdir()
    _archive(tmp_path / "ok.tar.gz", [("pkg/mod.py", "file", "X = 1"), ("alias", "sym", "pkg"),
                                      ("train.py", "file", "import pkg")])
    extract_archive(str(tmp_path / "ok.tar.gz"), str(code))
    assert "X = 1" == (code / "alias" / "mod.py").read_text()
    assert ["alias", "pkg", "train.py"] == sorted(p.name for p in code.iterdir())
