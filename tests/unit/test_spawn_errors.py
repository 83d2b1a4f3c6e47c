"""What could not be started is named, with the shell's exit code: from real failed spawns."""

import subprocess

import pytest

from supervisor import errors
from supervisor.core.process import ChildSpec, _spawn_error


def spawn_error(argv, env, cwd=None):
    with pytest.raises(OSError) as info:
        subprocess.Popen(argv, env=env, cwd=cwd)
    return _spawn_error(ChildSpec(argv=argv, env=env, cwd=cwd), info.value)


def test_a_missing_working_directory_is_named(tmp_path):
    error = spawn_error(["true"], {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path / "gone"))
    assert f"cannot start true: working directory {tmp_path / 'gone'}: No such file or " \
           "directory" == error.message


def test_a_missing_command_on_path_is_127(tmp_path):
    error = spawn_error(["no-such-command"], {"PATH": str(tmp_path)})
    assert isinstance(error, errors.CommandNotFound)
    assert "no-such-command: command not found" == error.message


def test_a_missing_file_by_path_is_127_even_in_a_working_directory(tmp_path):
    error = spawn_error(["./missing"], {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert isinstance(error, errors.CommandNotFound)
    assert "./missing: no such file" == error.message


@pytest.mark.parametrize("by_path", [True, False])
def test_a_script_whose_interpreter_is_missing_is_126_and_says_so(tmp_path, by_path):
    script = tmp_path / "train"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    argv = ["./train"] if by_path else ["train"]
    error = spawn_error(argv, {"PATH": str(tmp_path)}, cwd=str(tmp_path))
    assert isinstance(error, errors.CommandNotExecutable)
    assert (f"{argv[0]}: bad interpreter: the program it names (#! line or loader) does not "
            "exist") == error.message


def test_a_file_that_may_not_be_executed_is_126_with_the_system_s_words(tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    error = spawn_error(["./train.sh"], {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert isinstance(error, errors.CommandNotExecutable)
    assert "./train.sh: Permission denied" == error.message
