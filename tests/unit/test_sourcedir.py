"""Code delivery: each archive check stops its own trick; nothing half-done is left or reused."""

import io
import os
import stat
import tarfile

import pytest

from supervisor import errors
from supervisor.train import sourcedir
from supervisor.train.sourcedir import check_member, copy_directory, deliver, extract_archive


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
    (member("sub/up", tarfile.SYMTYPE, "../../x"), "symbolic link pointing outside the code directory (../../x)"),
    (member("hard", tarfile.LNKTYPE, "../x"), "hard link pointing outside the code directory (../x)"),
    (member("hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link pointing outside the code directory (/etc/passwd)"),
    (member("hard", tarfile.LNKTYPE, "missing.py"), "hard link to missing.py, which is not a file extracted before it"),
    (member("null", tarfile.CHRTYPE), "device file"),
    (member("disk", tarfile.BLKTYPE), "device file"),
    (member("fifo", tarfile.FIFOTYPE), "named pipe"),
    (member("odd", b"Z"), "unsupported member type"),
])
def test_unsafe_members_are_named_by_the_check_meant_for_them(tmp_path, info, problem):
    assert problem == check_member(info, str(tmp_path))


@pytest.mark.parametrize("info", [
    member("train.py"), member("pkg/mod.py"), member("pkg", tarfile.DIRTYPE),
    member("latest", tarfile.SYMTYPE, "pkg/mod.py"), member("pkg/up", tarfile.SYMTYPE, "../train.py"),
    member("copy", tarfile.LNKTYPE, "train.py"),
])
def test_safe_members(tmp_path, info):
    (tmp_path / "train.py").write_text("print(1)")
    assert check_member(info, str(tmp_path)) is None


def test_a_path_through_a_link_made_by_an_earlier_member_is_refused(tmp_path):
    os.symlink("..", tmp_path / "l")
    assert "path outside the code directory (through a link)" == check_member(member("l/pwned.txt"), str(tmp_path))


def test_a_hard_link_through_a_link_made_by_an_earlier_member_is_refused(tmp_path):
    (tmp_path.parent / "victim.txt").write_text("x")
    os.symlink("..", tmp_path / "l")
    assert ("hard link pointing outside the code directory through a link (l/victim.txt)"
            == check_member(member("h", tarfile.LNKTYPE, "l/victim.txt"), str(tmp_path)))


def test_a_hard_link_to_a_link_is_refused(tmp_path):
    os.symlink("inside.py", tmp_path / "s")
    assert ("hard link to s, which is not a file extracted before it"
            == check_member(member("h", tarfile.LNKTYPE, "s"), str(tmp_path)))


def archive(path, members):
    """members: (name, kind, payload, extra TarInfo attributes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload, *attrs in members:
            info = tarfile.TarInfo(name)
            for key, value in (attrs[0] if attrs else {}).items():
                setattr(info, key, value)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def refused(tmp_path, members):
    code = tmp_path / "code"
    code.mkdir()
    (tmp_path / "victim.txt").write_text("intact")
    path = archive(tmp_path / "evil.tar.gz", [("train.py", "file", "print(1)"), *members])
    with pytest.raises(errors.SetupError) as info:
        extract_archive(path, str(code))
    assert [] == sorted(p.name for p in code.iterdir())
    assert "intact" == (tmp_path / "victim.txt").read_text()
    assert ["code", "evil.tar.gz", "victim.txt"] == sorted(p.name for p in tmp_path.iterdir())
    assert "nothing delivered" in info.value.message
    return info.value.message


def test_links_harmless_when_made_but_not_on_the_final_tree_are_refused(tmp_path):
    # l -> x/.. is inside while x does not exist; x -> . then makes l the parent directory.
    message = refused(tmp_path, [("l", "sym", "x/.."), ("x", "sym", ".")])
    assert "member 'l': symbolic link 'x/..' resolves outside the code directory" in message


def test_writing_through_such_a_link_is_refused_before_anything_is_written(tmp_path):
    message = refused(tmp_path, [("l", "sym", "x/.."), ("x", "sym", "."), ("l/victim.txt", "file", "pwned")])
    assert "member 'l/victim.txt': path outside the code directory (through a link)" in message


@pytest.mark.parametrize("members", [
    [("a", "sym", "."), ("b", "sym", "a/.."), ("b/pwned.txt", "file", "x")],
    [("a", "sym", "."), ("up", "sym", "a/.."), ("up2", "sym", "up/.."), ("up2/victim.txt", "file", "x")],
    [("d", "sym", "sub"), ("sub", "sym", ".."), ("d/pwned.txt", "file", "x")],
], ids=["link-through-link", "two-levels-up", "link-then-retarget"])
def test_link_chains_cannot_write_outside_and_nothing_is_left(tmp_path, members):
    assert "refused member" in refused(tmp_path, members)


def test_a_later_file_of_the_same_name_replaces_a_link_instead_of_writing_through_it(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code.parent / "target.txt").write_text("intact")
    path = archive(tmp_path / "a.tar.gz", [("t", "sym", "pkg/t.txt"), ("pkg/t.txt", "file", "in"),
                                           ("t", "file", "replaced")])
    extract_archive(path, str(code))
    assert not (code / "t").is_symlink()
    assert "replaced" == (code / "t").read_text()


def test_set_id_bits_write_bits_and_owners_of_members_are_not_kept(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    owner = {"mode": 0o6777, "uid": 4242, "gid": 4242, "uname": "nobody", "gname": "nogroup"}
    path = archive(tmp_path / "a.tar.gz", [("run.sh", "file", "echo", owner),
                                           ("data.txt", "file", "x", {**owner, "mode": 0o4640}),
                                           ("dir", "dir", "", {**owner, "mode": 0o7777})])
    extract_archive(path, str(code))
    run, data, directory = (os.stat(code / name) for name in ("run.sh", "data.txt", "dir"))
    assert 0o755 == stat.S_IMODE(run.st_mode)
    assert 0o640 == stat.S_IMODE(data.st_mode)
    assert 0o755 == stat.S_IMODE(directory.st_mode)
    assert {(os.getuid(), os.getgid())} == {(s.st_uid, s.st_gid) for s in (run, data, directory)}


def test_hard_links_to_extracted_files_are_kept(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    path = archive(tmp_path / "a.tar.gz", [("a.py", "file", "A = 1"), ("b.py", "hard", "a.py")])
    extract_archive(path, str(code))
    assert os.path.samefile(code / "a.py", code / "b.py")


def test_member_and_size_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(sourcedir, "MAX_MEMBERS", 3)
    message = refused(tmp_path, [("a", "file", "1"), ("b", "file", "2"), ("c", "file", "3")])
    assert "more than 3 members" in message
    monkeypatch.setattr(sourcedir, "MAX_MEMBERS", 100)
    monkeypatch.setattr(sourcedir, "MAX_TOTAL_BYTES", 10)
    code = tmp_path / "code2"
    code.mkdir()
    with pytest.raises(errors.SetupError, match="bytes of files"):
        extract_archive(archive(tmp_path / "big.tar.gz", [("big", "file", "x" * 11)]), str(code))
    assert [] == list(code.iterdir())


def test_safe_archive_with_inner_links_is_extracted(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    path = archive(tmp_path / "ok.tar.gz", [("pkg/mod.py", "file", "X = 1"), ("alias", "sym", "pkg"),
                                            ("train.py", "file", "import pkg")])
    extract_archive(path, str(code))
    assert "X = 1" == (code / "alias" / "mod.py").read_text()
    assert ["alias", "pkg", "train.py"] == sorted(p.name for p in code.iterdir())


def test_a_corrupt_archive_is_a_setup_error_naming_it(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    bad = tmp_path / "src.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(errors.SetupError, match=r"src\.tar\.gz: cannot deliver it"):
        extract_archive(str(bad), str(code))
    assert [] == list(code.iterdir())


def test_a_fifo_in_a_local_submit_directory_is_named_and_nothing_is_copied(tmp_path):
    source, code = tmp_path / "src", tmp_path / "code"
    source.mkdir()
    code.mkdir()
    (source / "train.py").write_text("print(1)")
    os.mkfifo(source / "queue")
    with pytest.raises(errors.SetupError) as info:
        copy_directory(str(source), str(code))
    assert f"{source / 'queue'}: named pipe" in info.value.message
    assert [] == list(code.iterdir())


def test_a_local_directory_is_copied_with_its_links(tmp_path):
    source, code = tmp_path / "src", tmp_path / "code"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("X = 1")
    os.symlink("pkg/mod.py", source / "alias.py")
    copy_directory(str(source), str(code.mkdir() or code))
    assert "X = 1" == (code / "alias.py").read_text()
    assert (code / "alias.py").is_symlink()


def test_an_interrupted_delivery_is_redone_not_taken_for_baked_in_code(tmp_path):
    source, code = tmp_path / "src", tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text("print('complete')")
    code.mkdir()
    (code / "half.py").write_text("# half copied")
    (code / ".sm-entry-staging-abc").mkdir()
    assert deliver(str(source), str(code)) == f"copied {source}"
    assert ["train.py"] == sorted(p.name for p in code.iterdir())


def test_code_baked_into_the_image_wins(tmp_path):
    source, code = tmp_path / "src", tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text("new")
    code.mkdir()
    (code / "train.py").write_text("baked")
    assert deliver(str(source), str(code)) is None
    assert "baked" == (code / "train.py").read_text()


def test_where_the_code_comes_from():
    from supervisor.train.sourcedir import submit_directory

    assert "/src" == submit_directory({"sagemaker_submit_directory": "/src"}, {"SAGEMAKER_SUBMIT_DIRECTORY": "/env"})
    assert "/env" == submit_directory({"sagemaker_submit_directory": 12}, {"SAGEMAKER_SUBMIT_DIRECTORY": "/env"})
    assert "/env" == submit_directory({"sagemaker_submit_directory": ""}, {"SAGEMAKER_SUBMIT_DIRECTORY": "/env"})
    assert submit_directory({}, {"SAGEMAKER_SUBMIT_DIRECTORY": ""}) is None
    assert submit_directory({}, {}) is None


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar"])
def test_every_archive_suffix_is_delivered(tmp_path, suffix):
    path = tmp_path / f"src{suffix}"
    with tarfile.open(path, "w:gz" if "gz" in suffix else "w") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    code = tmp_path / "code"
    assert f"extracted {path}" == deliver(str(path), str(code))
    assert "ok" == (code / "train.py").read_text()


@pytest.mark.parametrize(("source", "message"), [
    ("http://example.com/src.tar.gz", "submit directory http://example.com/src.tar.gz: unsupported URL scheme"),
    ("file:///no/such/src.tar.gz", "submit directory file:///no/such/src.tar.gz: no such file or directory"),
    ("/no/such/dir", "submit directory /no/such/dir: no such file or directory"),
    ("s3://bucket", "submit directory s3://bucket: not an S3 object URL; expected s3://BUCKET/KEY (the .tar.gz "
                    "the SDK uploaded)"),
])
def test_sources_that_cannot_be_delivered_are_named(tmp_path, source, message):
    code = tmp_path / "code"
    with pytest.raises(errors.SetupError) as info:
        deliver(source, str(code))
    assert message.format(code=code) == info.value.message


def test_a_file_that_is_not_an_archive_is_named(tmp_path):
    path = tmp_path / "src.zip"
    path.write_text("PK")
    with pytest.raises(errors.SetupError) as info:
        deliver(str(path), str(tmp_path / "code"))
    assert f"submit directory {path}: not a directory or a .tar.gz/.tgz/.tar archive" == info.value.message


def test_refusals_name_the_archive_the_member_and_the_check(tmp_path):
    message = refused(tmp_path, [("../evil", "file", "x")])
    assert f"{tmp_path / 'evil.tar.gz'}: refused member '../evil': path with '..'; nothing delivered" == message


def test_a_copy_refusal_names_the_file_and_what_is_copied(tmp_path):
    import socket

    source, code = tmp_path / "src", tmp_path / "code"
    source.mkdir()
    code.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(source / "sock"))
    try:
        with pytest.raises(errors.SetupError) as info:
            copy_directory(str(source), str(code))
    finally:
        listener.close()
    assert (f"submit directory {source}: refused {source / 'sock'}: socket; only files, directories "
            "and links are copied; nothing delivered") == info.value.message


def test_a_device_in_a_local_submit_directory_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (mknod)")
    source, code = tmp_path / "src", tmp_path / "code"
    source.mkdir()
    code.mkdir()
    os.mknod(source / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(errors.SetupError, match="null: device file; only"):
        copy_directory(str(source), str(code))


def test_a_link_to_a_directory_in_a_local_submit_directory_stays_a_link(tmp_path):
    source, code = tmp_path / "src", tmp_path / "code"
    (source / "pkg").mkdir(parents=True)
    os.symlink("pkg", source / "alias")
    code.mkdir()
    copy_directory(str(source), str(code))
    assert (code / "alias").is_symlink() and (code / "pkg").is_dir()


def test_a_link_to_the_parent_itself_is_refused(tmp_path):
    assert ("symbolic link pointing outside the code directory (..)"
            == check_member(member("up", tarfile.SYMTYPE, ".."), str(tmp_path)))


def test_windows_separators_do_not_hide_a_climb(tmp_path):
    assert "path with '..'" == check_member(member("a\\..\\..\\evil"), str(tmp_path))


def test_member_caps_are_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(sourcedir, "MAX_MEMBERS", 3)
    monkeypatch.setattr(sourcedir, "MAX_TOTAL_BYTES", 6)

    def extract(name, members):
        code = tmp_path / name
        code.mkdir()
        extract_archive(archive(tmp_path / f"{name}.tar.gz", members), str(code))
        return sorted(p.name for p in code.iterdir())

    # exactly 3 members and 6 bytes of files (directories and links count no bytes)
    assert ["b", "d"] == extract("a", [("d", "dir", ""), ("d/a", "file", "abc"), ("b", "file", "def")])
    assert ["a", "d", "l"] == extract("b", [("a", "file", "abcdef"), ("l", "sym", "a"), ("d", "dir", "")])
    with pytest.raises(errors.SetupError) as info:
        extract("c", [("a", "file", "abcdefg")])
    assert info.value.message.endswith(": refused the archive: more than 6 bytes of files; nothing delivered")
    with pytest.raises(errors.SetupError) as info:
        extract("d", [("a", "file", ""), ("b", "file", ""), ("c", "file", ""), ("d", "file", "")])
    assert info.value.message.endswith(": refused the archive: more than 3 members; nothing delivered")


def test_directories_get_their_mode_masked_and_always_owner_access(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    path = archive(tmp_path / "a.tar.gz", [("pkg/mod.py", "file", "X = 1"), ("pkg", "dir", "", {"mode": 0o000}),
                                           ("open", "dir", "", {"mode": 0o777})])
    extract_archive(path, str(code))  # a directory member after a file in it
    assert 0o700 == stat.S_IMODE(os.stat(code / "pkg").st_mode)
    assert 0o755 == stat.S_IMODE(os.stat(code / "open").st_mode)
    assert "X = 1" == (code / "pkg" / "mod.py").read_text()


def test_later_members_replace_earlier_ones_of_the_same_name(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    path = archive(tmp_path / "a.tar.gz", [("a", "file", "first"), ("a", "file", "second"),
                                           ("d/x", "file", "in d"), ("d", "file", "now a file")])
    extract_archive(path, str(code))
    assert "second" == (code / "a").read_text()
    assert "now a file" == (code / "d").read_text()


def test_files_keep_their_mtime(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    extract_archive(archive(tmp_path / "a.tar.gz", [("a", "file", "x", {"mtime": 1_600_000_000})]), str(code))
    assert 1_600_000_000 == os.stat(code / "a").st_mtime


def test_the_size_cap_counts_every_file_not_only_the_largest(tmp_path, monkeypatch):
    monkeypatch.setattr(sourcedir, "MAX_TOTAL_BYTES", 10)
    message = refused(tmp_path, [("a", "file", "x" * 6), ("b", "file", "y" * 6)])
    assert "more than 10 bytes of files" in message


def test_a_code_directory_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "code"
    blocker.write_text("a file where the code directory should be")
    with pytest.raises(errors.SetupError) as info:
        deliver(str(tmp_path / "src"), str(blocker))
    assert str(info.value).startswith(f"code directory {blocker}: ")


def test_a_staging_directory_that_cannot_be_made_is_named(tmp_path, monkeypatch):
    # a full disk cannot be made here; the error tempfile raises on one is
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    code = tmp_path / "code"
    code.mkdir()
    path = archive(tmp_path / "a.tar.gz", [("a.py", "file", "A = 1")])
    monkeypatch.setattr(sourcedir.tempfile, "mkdtemp", no_space)
    with pytest.raises(errors.SetupError) as info:
        extract_archive(path, str(code))
    assert str(info.value) == f"{path}: cannot stage into {code}: No space left on device"


def test_a_submit_directory_that_is_the_code_directory_is_in_place(tmp_path):
    from supervisor.train.sourcedir import IN_PLACE, deliver

    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print(1)\n")
    assert IN_PLACE == deliver(str(code), str(code))  # the SDK mounts it there, and names it
    assert IN_PLACE == deliver(f"file://{code}", str(code))
    assert deliver(str(tmp_path / "other"), str(code)) is None  # code already there: not used
