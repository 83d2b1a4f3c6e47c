"""Make `import ssl` work in the frozen binary, only when something needs it.

Everything inside the PyInstaller program is written out at every start
(staticx unpacks the whole program, PyInstaller its libraries), and libcrypto
alone is 4.7 MB. So build.spec leaves `_ssl` and OpenSSL out of the program
and puts them, with botocore's CA bundle, in a zip that the Makefile appends
to both binaries, after everything a bootloader reads: it costs no start-up.
The S3 download calls `load` first, and so does the serve front (uvloop
imports `ssl` though the front never speaks TLS): the files are written to a
private directory, OpenSSL is loaded with RTLD_GLOBAL (so `_ssl`
finds it by soname, whatever the image holds or lacks), then `_ssl` itself;
the files are removed at once (the mappings stay valid).

Run from source, the interpreter's own `ssl` is used and nothing is done here.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile

from supervisor import errors
from supervisor.core import frozen

TLS_PREFIX = "tls/"
ORDER = "tls/ORDER"  # the files of tls/, one a line, in load order
CACERT = "cacert.pem"
SSL_EXTENSION = "_ssl"


def bundle_path(binary: str | None) -> str | None:
    """`binary` (the path we were run by) when it is frozen and carries the appended zip."""
    if not frozen.is_frozen() or not binary or not os.path.isfile(binary):
        return None
    import zipfile

    return binary if zipfile.is_zipfile(binary) else None


def load(binary: str | None) -> None:
    """`import ssl` works after this, or a SetupError says why it cannot.

    `binary` is the path we were run by (`frozen.own_executable`: the static
    binary, not the program staticx unpacked), which carries the bundle.
    """
    try:
        import ssl
        return
    except ImportError:
        pass
    path = bundle_path(binary)
    if path is None:
        raise errors.SetupError("TLS is not available: this build has no ssl module and no "
                                "bundle appended to it")
    import ctypes
    import zipfile

    directory = tempfile.mkdtemp(prefix="sm-entry-tls-")
    try:
        with zipfile.ZipFile(path) as bundle:
            for name in bundle.read(ORDER).decode().split():
                target = os.path.join(directory, name)
                with open(target, "wb") as out:
                    out.write(bundle.read(TLS_PREFIX + name))
                if name.startswith(SSL_EXTENSION + "."):
                    _load_extension(SSL_EXTENSION, target)
                else:
                    ctypes.CDLL(target, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        import ssl  # noqa: F401
    except (OSError, ImportError, KeyError, zipfile.BadZipFile) as exc:
        raise errors.SetupError(f"TLS is not available: cannot load the OpenSSL bundled in "
                                f"{path}: {exc}") from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _load_extension(name: str, path: str) -> None:
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)


def bundled_ca_certificates(binary: str | None) -> bytes | None:
    """The CA certificates shipped with the binary (botocore's), for images without any."""
    path = bundle_path(binary)
    if path is not None:
        import zipfile

        try:
            with zipfile.ZipFile(path) as bundle:
                return bundle.read(CACERT)
        except (OSError, KeyError, zipfile.BadZipFile):
            return None
    try:
        import botocore
    except ImportError:
        return None
    try:
        with open(os.path.join(os.path.dirname(botocore.__file__), CACERT), "rb") as source:
            return source.read()
    except OSError:
        return None
