"""Code delivery: the submit directory (a local dir or .tar.gz) into <root>/code.

The SDK's script mode names the user's code with `sagemaker_submit_directory`
(S3 in the cloud, a local path in local mode). An archive comes from outside
the image, so extracting it must never write or point outside the code
directory, nor keep set-id bits or another user's ownership.

Delivery is staged: everything is written into a directory inside the code
directory (the same file system, also when code/ is a mount point), checked,
and only then moved into place, so a refused archive or a failed copy leaves
nothing behind. A staging directory found at start is what an interrupted
delivery left: the code directory is then emptied and the delivery redone,
never mistaken for code baked into the image.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from supervisor import errors

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
STAGING_PREFIX = ".sm-entry-staging-"
# Bounds on what an archive may unpack to: source code, not a disk-filling bomb.
MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 20 << 30
COPY_CHUNK = 1 << 20


class Refused(Exception):
    """An archive member or a file that must not be delivered, and why."""


def submit_directory(consumed_hyperparameters: dict[str, object],
                     environ: dict[str, str] | os._Environ[str]) -> str | None:
    """Where the code comes from: the hyperparameter (the SDK's), else the variable."""
    value = consumed_hyperparameters.get("sagemaker_submit_directory")
    if isinstance(value, str) and value:
        return value
    return environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or None


IN_PLACE = "in place: the submit directory is the code directory"


def deliver(source: str, code_dir: str, cancelled: Callable[[], bool] = lambda: False,
            binary: str | None = None) -> str | None:
    """Put the submit directory's files into `code_dir`; returns what was done, or None.

    Code already in `code_dir` (baked into the image) wins, as with the toolkit.
    `cancelled` is polled during a download (a stop asked meanwhile); `binary`
    is the frozen binary we run as, which carries what a download over TLS loads.
    """
    local = source[len("file://"):] if source.startswith("file://") else source
    try:
        os.makedirs(code_dir, exist_ok=True)
        _undo_interrupted_delivery(code_dir)
        if "://" not in local and os.path.isdir(local) and os.path.samefile(local, code_dir):
            return IN_PLACE  # mounted there (the SDK's local mode does, and names it too)
        if os.listdir(code_dir):
            return None
    except OSError as exc:
        raise errors.SetupError(f"code directory {code_dir}: {exc.strerror}") from None
    if source.startswith("s3://"):
        return _deliver_from_s3(source, code_dir, cancelled, binary)
    path = source[len("file://"):] if source.startswith("file://") else source
    if "://" in path:
        raise errors.SetupError(f"submit directory {source}: unsupported URL scheme")
    if os.path.isdir(path):
        copy_directory(path, code_dir)
        return f"copied {path}"
    if os.path.isfile(path) and path.endswith(ARCHIVE_SUFFIXES):
        extract_archive(path, code_dir)
        return f"extracted {path}"
    if not os.path.exists(path):
        raise errors.SetupError(f"submit directory {source}: no such file or directory")
    raise errors.SetupError(
        f"submit directory {source}: not a directory or a .tar.gz/.tgz/.tar archive"
    )


def _deliver_from_s3(source: str, code_dir: str, cancelled: Callable[[], bool],
                     binary: str | None) -> str:
    """Download the archive next to the code (a staging name: an interrupted download is
    removed at the next start), then extract it as a local archive."""
    from supervisor.train import s3code

    s3code.parse_url(source)  # a malformed URL fails before anything is written
    try:
        fd, archive = tempfile.mkstemp(prefix=STAGING_PREFIX + "download-", suffix=".tar.gz",
                                       dir=code_dir)
        os.close(fd)
    except OSError as exc:
        raise errors.SetupError(f"submit directory {source}: cannot download into "
                                f"{code_dir}: {exc.strerror}") from None
    try:
        size = s3code.Downloader(cancelled=cancelled, binary=binary).download(source, archive)
        extract_archive(archive, code_dir, name=f"submit directory {source}")
    finally:
        os.remove(archive)
    return f"downloaded {source} ({size:,} bytes) and extracted it"


def _undo_interrupted_delivery(code_dir: str) -> None:
    """A staging directory means we were delivering into an empty code dir and were stopped."""
    entries = os.listdir(code_dir)
    if not any(entry.startswith(STAGING_PREFIX) for entry in entries):
        return
    for entry in entries:
        path = os.path.join(code_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


@contextmanager
def _staged(dest: str, what: str) -> Iterator[str]:
    """A staging directory inside `dest`; its entries are moved into `dest` when all went well."""
    dest = os.path.realpath(dest)
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest)
    except OSError as exc:
        raise errors.SetupError(f"{what}: cannot stage into {dest}: {exc.strerror}") from None
    try:
        yield staging
        check_links(staging)
        for entry in os.listdir(staging):
            os.rename(os.path.join(staging, entry), os.path.join(dest, entry))
        os.rmdir(staging)
    except Refused as exc:
        raise errors.SetupError(f"{what}: refused {exc}; nothing delivered") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise errors.SetupError(f"{what}: cannot deliver it: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Local directories ----------------------------------------------------------
def copy_directory(source: str, dest: str) -> None:
    """Copy a local submit directory into `dest`: files, directories and links only."""
    with _staged(dest, f"submit directory {source}") as staging:
        _copy_tree(source, staging)


def _copy_tree(source: str, target: str) -> None:
    for entry in os.scandir(source):
        here, there = entry.path, os.path.join(target, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(here), there)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(there)
            _copy_tree(here, there)
            shutil.copystat(here, there)
        elif entry.is_file(follow_symlinks=False):
            shutil.copy2(here, there)
        else:
            raise Refused(f"{here}: {_kind(entry.stat(follow_symlinks=False).st_mode)}; only "
                          "files, directories and links are copied")


def _kind(mode: int) -> str:
    """What a file that is neither a regular file, a directory nor a link is."""
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


# Archives -------------------------------------------------------------------
def _inside(base: str, path: str) -> bool:
    return os.path.commonpath([base, path]) == base


def _climbs(path: str) -> bool:
    """Does a relative path, taken lexically, leave the directory it starts from?"""
    normal = os.path.normpath(path)
    return normal == ".." or normal.startswith("../")


def check_member(member: tarfile.TarInfo, dest: str) -> str | None:
    """Why `member` must not be extracted into `dest` as it is now, or None when it is safe.

    Each check stops its own kind of trick; a link whose target is harmless
    when it is made but not once later links exist is caught by
    `check_links` on the final tree.
    """
    name = member.name
    if os.path.isabs(name):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path with '..'"
    if member.isfifo():
        return "named pipe"
    if member.isdev():
        return "device file"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "unsupported member type"
    parent = os.path.realpath(os.path.join(dest, os.path.dirname(name)))
    if not _inside(dest, parent):
        return "path outside the code directory (through a link)"
    link = member.linkname
    if member.issym():
        if os.path.isabs(link):
            return f"symbolic link to absolute path {link}"
        if _climbs(os.path.join(os.path.dirname(name), link)):
            return f"symbolic link pointing outside the code directory ({link})"
    if member.islnk():
        if os.path.isabs(link) or _climbs(link):
            return f"hard link pointing outside the code directory ({link})"
        target = os.path.join(dest, link)
        if not _inside(dest, os.path.realpath(target)):
            return f"hard link pointing outside the code directory through a link ({link})"
        if not (os.path.isfile(target) and not os.path.islink(target)):
            return f"hard link to {link}, which is not a file extracted before it"
    return None


def check_links(root: str) -> None:
    """Every symbolic link of the final tree must resolve inside it (chains included)."""
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            if os.path.islink(path) and not _inside(root, os.path.realpath(path)):
                relative = os.path.relpath(path, root)
                raise Refused(f"member {relative!r}: symbolic link {os.readlink(path)!r} resolves "
                              "outside the code directory (through other links)")


def extract_archive(archive: str, dest: str, name: str | None = None) -> None:
    """Extract a tar archive into `dest`, refusing it whole if any member is unsafe.

    `name` is what errors call it (a downloaded archive: its URL, not its temporary path).
    """
    with _staged(dest, name or archive) as staging, tarfile.open(archive, "r:*") as tar:
        total = 0
        for members, member in enumerate(tar, 1):
            total += member.size if member.isfile() else 0
            if members > MAX_MEMBERS:
                raise Refused(f"the archive: more than {MAX_MEMBERS} members")
            if total > MAX_TOTAL_BYTES:
                raise Refused(f"the archive: more than {MAX_TOTAL_BYTES:,} bytes of files")
            problem = check_member(member, staging)
            if problem:
                raise Refused(f"member {member.name!r}: {problem}")
            _extract(tar, member, staging)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: str) -> None:
    """One member, as the user running us, with modes masked as tarfile's `data` filter does."""
    path = os.path.join(staging, member.name)
    if member.isdir():
        os.makedirs(path, exist_ok=True)
        os.chmod(path, (member.mode & 0o755) | 0o700)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):  # a later member of the same name wins; never write through a link
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    if member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        os.link(os.path.join(staging, member.linkname), path, follow_symlinks=False)
    else:
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)
        # No set-id, sticky or group/other write bits; the owner may always read and write.
        os.chmod(path, (member.mode & 0o755) | 0o600)
        os.utime(path, (member.mtime, member.mtime))
