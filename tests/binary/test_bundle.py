"""What the one-file bundle runs and holds at every start: only what sm-entry needs.

Every script in the bundle runs at each start, before our code; a package pulled in by
an optional import of a dependency (setuptools through urllib3's zstd support) brings
its runtime hook, which cost ~80 ms of every start until it was excluded.
"""

import pytest

from tests.support import DYNAMIC_BINARY, require_binary

# Imported only on paths that are not start-up, or never: their presence in the PYZ costs
# nothing, but none of them may be imported by a runtime hook.
NEVER_BUNDLED = ("setuptools", "pkg_resources", "_distutils_hack", "distutils", "cryptography",
                 "certifi", "awscrt", "moto", "pytest")


@pytest.fixture(scope="module")
def bundle():
    readers = pytest.importorskip("PyInstaller.archive.readers",
                                  reason="needs PyInstaller (make test installs it)")
    return readers.CArchiveReader(require_binary(DYNAMIC_BINARY))


def test_only_pyinstallers_bootstrap_and_our_main_run_at_start(bundle):
    scripts = [name for name, entry in bundle.toc.items() if entry[-1] == "s"]
    assert ["pyiboot01_bootstrap", "__main__"] == scripts


def test_no_build_tool_or_unused_optional_dependency_is_bundled(bundle):
    pyz = bundle.open_embedded_archive("PYZ.pyz")
    found = sorted({name.split(".")[0] for name in pyz.toc} & set(NEVER_BUNDLED))
    assert [] == found
    assert "botocore" in {name.split(".")[0] for name in pyz.toc}  # S3, read only then
