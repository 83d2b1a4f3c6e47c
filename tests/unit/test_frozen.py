"""child_base_env gives children the user's environment, not the bootloaders'."""

import pytest

from supervisor.core.frozen import child_base_env

BOOTLOADER_VARS = {
    "_PYI_APPLICATION_HOME_DIR": "/tmp/_MEI1",
    "_PYI_ARCHIVE_FILE": "/tmp/staticx-1/sm-entry",
    "_PYI_LINUX_PROCESS_NAME": "sm-entry",
    "_PYI_PARENT_PROCESS_LEVEL": "1",
    "STATICX_BUNDLE_DIR": "/tmp/staticx-1",
    "STATICX_PROG_PATH": "/usr/local/bin/sm-entry",
}

CASES = [
    pytest.param(
        {**BOOTLOADER_VARS, "PATH": "/bin", "LD_LIBRARY_PATH": "/tmp/_MEI1", "STATICX_TMPDIR_UNSET": "1",
         "TMPDIR": "/tmp/staticx-1"},
        True,
        {"PATH": "/bin"},
        id="frozen, user had neither LD_LIBRARY_PATH nor TMPDIR",
    ),
    pytest.param(
        {**BOOTLOADER_VARS, "LD_LIBRARY_PATH": "/tmp/_MEI1:/opt/lib", "LD_LIBRARY_PATH_ORIG": "/opt/lib",
         "STATICX_ORIG_TMPDIR": "/scratch", "TMPDIR": "/tmp/staticx-1"},
        True,
        {"LD_LIBRARY_PATH": "/opt/lib", "TMPDIR": "/scratch"},
        id="frozen, user values restored",
    ),
    pytest.param(
        {"LD_LIBRARY_PATH_ORIG": "/opt/lib", "STATICX_ORIG_TMPDIR": "", "TMPDIR": "/x"},
        True,
        {"LD_LIBRARY_PATH": "/opt/lib", "TMPDIR": ""},
        id="frozen, empty TMPDIR kept empty",
    ),
    pytest.param(
        {"LD_LIBRARY_PATH": "/opt/lib", "TMPDIR": "/scratch", "HOME": "/root"},
        False,
        {"LD_LIBRARY_PATH": "/opt/lib", "TMPDIR": "/scratch", "HOME": "/root"},
        id="from source, nothing to undo",
    ),
]


@pytest.mark.parametrize(("environ", "frozen", "expected"), CASES)
def test_child_base_env(environ, frozen, expected):
    assert expected == child_base_env(environ, frozen=frozen)


def test_child_base_env_does_not_change_its_input():
    environ = {**BOOTLOADER_VARS, "A": "1"}
    before = dict(environ)
    child_base_env(environ, frozen=True)
    assert before == environ
