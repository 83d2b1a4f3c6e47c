"""An MPI worker's wait for the master: the report, a master that never reports, a dead sshd."""

import subprocess
import sys

from tests.support import CHILDREN

HARNESS = CHILDREN / "mpi_worker_harness.py"


def worker(tmp_path, mode):
    done = subprocess.run([sys.executable, str(HARNESS), str(tmp_path), mode],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert 0 == done.returncode, done.stderr
    return done.stdout.splitlines(), done.stderr


def test_the_masters_report_ends_the_wait_and_sshd_is_stopped(tmp_path):
    out, _ = worker(tmp_path, "reports")
    assert ["report 7 ValueError: x", "sshd running 0", "exit"] == out


def test_a_master_that_never_reports_fails_the_worker_after_its_ranks_ended(tmp_path):
    out, events = worker(tmp_path, "silent")
    assert out[0].startswith("report 1 the MPI run on this host ended, but the master (algo-1) "
                             "did not report how the job ended within 1 s")
    assert ["sshd running 0", "exit"] == out[1:]
    assert "mpirun started its daemon here" in events  # the orted was seen, then its end


def test_a_master_that_never_starts_mpirun_fails_the_worker_after_the_host_wait(tmp_path):
    out, _ = worker(tmp_path, "never")
    assert out[0].startswith("report 1 the master (algo-1) did not start the MPI job on this "
                             "host within 1 s (--host-wait)")
    assert ["sshd running 0", "exit"] == out[1:]


def test_an_sshd_that_exits_is_an_error_naming_it(tmp_path):
    out, events = worker(tmp_path, "dies")
    assert out[0].startswith("error sshd exited with code 1 before the MPI job ended")
    assert "no hostkeys available" in events
