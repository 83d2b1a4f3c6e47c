"""Make `import ssl` work in the frozen binary, only when something needs it.

The one-file binary unpacks every shared library it holds at every start, and
libcrypto alone is 4.7 MB, so build.spec leaves `_ssl` and OpenSSL out of the
bundle. Instead it stores `_ssl`'s extension and the two OpenSSL libraries as
bytes in a module of the PYZ (`supervisor._bundled_tls`, made at build time):
nothing of it is read at start. The S3 download (the only user of TLS) calls
`load` first: the files are written to a private directory, OpenSSL is loaded
with RTLD_GLOBAL (so `_ssl` finds it by soname, whatever the image holds), then
`_ssl` itself; the files are removed at once (the mappings stay valid).

Run from source, the interpreter's own `ssl` is used and nothing is done here.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile

from supervisor import errors

BUNDLED_TLS = "supervisor._bundled_tls"  # FILES: [(file name, bytes)], in load order
BUNDLED_CACERT = "supervisor._bundled_cacert"  # PEM: botocore's cacert.pem
SSL_EXTENSION = "_ssl"


def load() -> None:
    """`import ssl` works after this, or a SetupError says why it cannot."""
    try:
        import ssl
        return
    except ImportError:
        pass
    try:
        bundled = importlib.import_module(BUNDLED_TLS)
    except ImportError:
        raise errors.SetupError("TLS is not available: this build has no ssl module") from None
    import ctypes

    directory = tempfile.mkdtemp(prefix="sm-entry-tls-")
    try:
        for name, data in bundled.FILES:
            path = os.path.join(directory, name)
            with open(path, "wb") as out:
                out.write(data)
            if name.startswith(SSL_EXTENSION + "."):
                _load_extension(SSL_EXTENSION, path)
            else:
                ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
        import ssl  # noqa: F401
    except (OSError, ImportError) as exc:
        raise errors.SetupError(f"TLS is not available: cannot load the bundled OpenSSL: "
                                f"{exc}") from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _load_extension(name: str, path: str) -> None:
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)


def bundled_ca_certificates() -> bytes | None:
    """The CA certificates shipped with the binary (botocore's), for images without any."""
    try:
        return bytes(importlib.import_module(BUNDLED_CACERT).PEM)
    except ImportError:
        pass
    try:
        import botocore
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(botocore.__file__), "cacert.pem")
    try:
        with open(path, "rb") as source:
            return source.read()
    except OSError:
        return None
