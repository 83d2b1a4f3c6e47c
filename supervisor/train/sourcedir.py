"""Code delivery: the submit directory (a local dir or .tar.gz) into <root>/code.

The SDK's script mode names the user's code with `sagemaker_submit_directory`
(S3 in the cloud, a local path in local mode). An archive comes from outside
the image, so extracting it must never write outside the code directory:
every member is checked before anything is written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile

from supervisor import errors

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def submit_directory(consumed_hyperparameters: dict[str, object],
                     environ: dict[str, str] | os._Environ[str]) -> str | None:
    """Where the code comes from: the hyperparameter (the SDK's), else the variable."""
    value = consumed_hyperparameters.get("sagemaker_submit_directory")
    if isinstance(value, str) and value:
        return value
    return environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or None


def deliver(source: str, code_dir: str) -> str | None:
    """Put the submit directory's files into `code_dir`; returns what was done, or None.

    Code already in `code_dir` (baked into the image) wins, as with the toolkit.
    """
    os.makedirs(code_dir, exist_ok=True)
    if os.listdir(code_dir):
        return None
    if source.startswith("s3://"):
        raise errors.SetupError(
            f"submit directory {source}: s3:// is not supported yet; bake the code into "
            f"the image under {code_dir} or give a local directory or .tar.gz"
        )
    path = source[len("file://"):] if source.startswith("file://") else source
    if "://" in path:
        raise errors.SetupError(f"submit directory {source}: unsupported URL scheme")
    if os.path.isdir(path):
        shutil.copytree(path, code_dir, symlinks=True, dirs_exist_ok=True)
        return f"copied {path}"
    if os.path.isfile(path) and path.endswith(ARCHIVE_SUFFIXES):
        extract_archive(path, code_dir)
        return f"extracted {path}"
    if not os.path.exists(path):
        raise errors.SetupError(f"submit directory {source}: no such file or directory")
    raise errors.SetupError(
        f"submit directory {source}: not a directory or a .tar.gz/.tgz/.tar archive"
    )


def _inside(base: str, path: str) -> bool:
    return os.path.commonpath([base, path]) == base


def check_member(member: tarfile.TarInfo, dest: str) -> str | None:
    """Why `member` must not be extracted into `dest` as it is now, or None when it is safe.

    Paths are resolved on the tree extracted so far, so a symbolic link made by
    an earlier member is followed: `a -> .`, `b -> a/..`, `b/x` is caught at `b`.
    """
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
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
    if member.issym():
        link = member.linkname
        if os.path.isabs(link):
            return f"symbolic link to absolute path {link}"
        if not _inside(dest, os.path.realpath(os.path.join(parent, link))):
            return f"symbolic link pointing outside the code directory ({link})"
        return None
    if not _inside(dest, os.path.realpath(os.path.join(dest, name))):
        return "path outside the code directory (through a link)"
    if member.islnk():
        linked = os.path.realpath(os.path.join(dest, member.linkname))
        if os.path.isabs(member.linkname) or not _inside(dest, linked):
            return f"hard link pointing outside the code directory ({member.linkname})"
    return None


def extract_archive(archive: str, dest: str) -> None:
    """Extract a tar archive into `dest`, refusing it whole if any member is unsafe.

    Members are extracted one by one into a staging directory beside `dest`,
    each checked against what is already there, and moved into `dest` only
    when all passed: a refused archive leaves nothing behind.
    """
    dest = os.path.realpath(dest)
    staging = tempfile.mkdtemp(prefix=".sm-entry-extract-", dir=os.path.dirname(dest))
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                problem = check_member(member, staging)
                if problem:
                    raise errors.SetupError(
                        f"{archive}: refused member {member.name!r}: {problem}; nothing extracted"
                    )
                # Never keep set-id bits, odd permissions or owners from an archive.
                member.mode = (member.mode & 0o777) & ~(stat.S_ISUID | stat.S_ISGID)
                member.uid = member.gid = 0
                tar.extract(member, staging, set_attrs=member.isfile() or member.isdir())
        for entry in os.listdir(staging):
            os.rename(os.path.join(staging, entry), os.path.join(dest, entry))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise errors.SetupError(f"{archive}: cannot extract: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
