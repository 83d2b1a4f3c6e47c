"""Failure reasons: root cause first, within SageMaker's 1024 characters."""

import signal

import pytest

from supervisor.logs.framing import Lines, Record
from supervisor.train.failure import (
    OOM_HINT,
    OutOfMemory,
    StderrTail,
    describe,
    exception_summary,
    program_label,
    truncate,
)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 30, in <module>\n'
    "    main()\n"
    '  File "train.py", line 20, in main\n'
    "    fit(lr)\n"
    '  File "train.py", line 10, in fit\n'
    "    check(lr)\n"
    '  File "train.py", line 5, in check\n'
    '    raise ValueError(f"bad learning rate: {lr}")\n'
    "ValueError: bad learning rate: -1"
)


def tail_with(*items):
    tail = StderrTail()
    tail("stderr", list(items))
    return tail


def test_exception_summary_gives_the_last_line_and_last_frames():
    lines, frames = exception_summary(TRACEBACK)
    assert ["ValueError: bad learning rate: -1"] == lines
    assert '  File "train.py", line 5, in check' == frames[-2]
    assert 6 == len(frames)  # the last three frames, each with its code line


def test_python_failure_starts_with_the_exception_line():
    reason = describe("train.py", 1, None, None, None, 110, tail_with(Record(TRACEBACK, "traceback")))
    assert reason.startswith("ValueError: bad learning rate: -1\nLast frames:\n")
    assert "train.py exited with code 1." in reason


def test_stdout_is_not_a_traceback_source():
    tail = StderrTail()
    tail("stdout", [Record(TRACEBACK, "traceback")])
    assert tail.traceback is None


def test_sigkill_not_from_us_suggests_out_of_memory():
    reason = describe("train.sh", 137, signal.SIGKILL, None, None, 110, StderrTail())
    assert "SIGKILL (signal 9)" in reason and "out-of-memory" in reason


def test_kill_after_stop_timeout_says_who_and_why():
    reason = describe("train.py", 137, signal.SIGKILL, signal.SIGTERM, "stop timeout", 110, StderrTail())
    assert "SIGTERM (signal 15) came from outside" in reason and "110 s stop timeout" in reason


def test_forwarded_signal_death():
    reason = describe("train.py", 143, signal.SIGTERM, signal.SIGTERM, None, 110, StderrTail())
    assert "killed by SIGTERM (signal 15), which sm-entry forwarded from outside" in reason


def test_plain_exit_shows_the_last_stderr_lines():
    reason = describe("run.sh", 3, None, None, None, 110, tail_with(Lines("x\ncannot open data")))
    assert reason.startswith("run.sh exited with code 3.")
    assert reason.endswith("cannot open data")


def test_reason_is_at_most_1024_characters():
    huge = Record(TRACEBACK.replace("-1", "-1" * 2000), "traceback")
    assert len(describe("train.py", 1, None, None, None, 110, tail_with(huge))) <= 1024
    assert 1024 == len(truncate("x" * 5000))


def test_second_stop_signal_kill_is_not_blamed_on_the_timeout():
    reason = describe("train.py", 137, signal.SIGKILL, signal.SIGTERM, "second stop signal", 110,
                      StderrTail())
    assert "a second stop signal followed" in reason and "stop timeout" not in reason


@pytest.mark.parametrize(("argv", "label"), [
    (["/usr/bin/python3", "train.py", "--lr", "1"], "train.py"),
    (["python3", "-m", "pkg.train"], "pkg.train"),
    (["python3", "-c", "pass"], "python3 -c"),
    (["/bin/sh", "run.sh"], "run.sh"),
    (["./train"], "train"),
])
def test_program_label_names_the_script(argv, label):
    assert label == program_label(argv)


KILLED_WORKER = """\
Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/torch/utils/data/dataloader.py", line 1243, in _try_get_data
    data = self._data_queue.get(timeout=timeout)
  File "/usr/lib/python3.11/multiprocessing/queues.py", line 113, in get
    if not self._poll(timeout):
  File "/usr/lib/python3/dist-packages/torch/utils/data/_utils/signal_handling.py", line 73, in handler
    _error_if_any_worker_fails()
RuntimeError: DataLoader worker (pid 10) is killed by signal: Killed.

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "train.py", line 40, in <module>
    for batch in loader:
  File "/usr/lib/python3/dist-packages/torch/utils/data/dataloader.py", line 1256, in _try_get_data
    raise RuntimeError(f'DataLoader worker (pid(s) {pids_str}) exited unexpectedly') from e
RuntimeError: DataLoader worker (pid(s) 10) exited unexpectedly"""

WORKER_ERROR = """\
Traceback (most recent call last):
  File "train.py", line 40, in <module>
    for batch in loader:
  File "/usr/lib/python3/dist-packages/torch/_utils.py", line 694, in reraise
    raise exception
ValueError: Caught ValueError in DataLoader worker process 1.
Original Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/torch/utils/data/_utils/worker.py", line 308, in _worker_loop
    data = fetcher.fetch(index)
  File "train.py", line 12, in __getitem__
    raise ValueError(f"corrupt record {idx}")
ValueError: corrupt record 1234"""

CONTEXT = """\
Traceback (most recent call last):
  File "train.py", line 5, in load
    return table[name]
KeyError: 'lr'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "train.py", line 9, in <module>
    load("lr")
  File "train.py", line 7, in load
    raise ValueError("hyperparameter lr is missing")
ValueError: hyperparameter lr is missing"""


def test_a_chained_exception_shows_its_cause_first_and_the_sigkilled_worker():
    reason = describe("train.py", 1, None, None, None, 110, tail_with(Record(KILLED_WORKER, "traceback")))
    lines = reason.split("\n")
    assert "RuntimeError: DataLoader worker (pid 10) is killed by signal: Killed." == lines[0]
    assert "Which caused: RuntimeError: DataLoader worker (pid(s) 10) exited unexpectedly" == lines[1]
    assert lines[2].startswith("A worker process was killed by SIGKILL") and "out-of-memory" in lines[2]
    assert '  File "/usr/lib/python3/dist-packages/torch/utils/data/_utils/signal_handling.py", line 73, in handler' in lines


def test_a_worker_traceback_inside_the_message_gives_the_original_exception():
    reason = describe("train.py", 1, None, None, None, 110, tail_with(Record(WORKER_ERROR, "traceback")))
    lines = reason.split("\n")
    assert "ValueError: corrupt record 1234" == lines[0]
    assert "Raised in a worker process, as: ValueError: Caught ValueError in DataLoader worker process 1." == lines[1]
    assert '    raise ValueError(f"corrupt record {idx}")' in lines  # the worker's frames


def test_an_exception_raised_while_handling_another_names_both_the_last_first():
    lines, frames = exception_summary(CONTEXT)
    assert ["ValueError: hyperparameter lr is missing", "While handling: KeyError: 'lr'"] == lines
    assert '  File "train.py", line 7, in load' == frames[-2]


def test_a_traceback_in_pieces_is_joined_whole():
    text = TRACEBACK
    pieces = [Record(text[:40], "traceback", 1), Record(text[40:90], "traceback", 2),
              Record(text[90:], "traceback", 3, 3)]
    tail = tail_with(*pieces)
    assert text == tail.traceback
    assert describe("train.py", 1, None, None, None, 110, tail).startswith("ValueError: bad learning rate: -1\n")


def test_a_huge_traceback_in_many_pieces_keeps_its_start_and_its_end():
    pieces = [Record(f"<{i}>", "traceback", i + 1) for i in range(9)] + [Record("<end>", "traceback", 10, 10)]
    assert "<0><7><8><end>" == tail_with(*pieces).traceback


def test_a_new_traceback_replaces_an_unfinished_one():
    tail = tail_with(Record("old piece", "traceback", 1), Record(TRACEBACK, "traceback"))
    assert TRACEBACK == tail.traceback


def framed(data: bytes) -> StderrTail:
    """stderr bytes through the real framer into the tail, as the relay does."""
    from supervisor.logs.framing import LineFramer

    framer, tail = LineFramer(), StderrTail()
    tail("stderr", framer.feed(data, 0.0))
    tail("stderr", framer.close())
    return tail


def test_a_50000_character_exception_message_keeps_its_exception_line():
    message = "bad shape " + "x" * 50_000
    data = (TRACEBACK.rsplit("\n", 1)[0] + f"\nValueError: {message}\nafter\n").encode()
    reason = describe("train.py", 1, None, None, None, 110, framed(data))
    assert reason.startswith("ValueError: bad shape xxx")
    assert len(reason) <= 1024


def test_a_worker_traceback_through_the_framer_is_one_traceback():
    tail = framed((WORKER_ERROR + "\n").encode())
    assert WORKER_ERROR == tail.traceback
    assert describe("train.py", 1, None, None, None, 110, tail).startswith("ValueError: corrupt record 1234\n")


def test_a_chained_traceback_through_the_framer_is_one_traceback():
    tail = framed((KILLED_WORKER + "\n").encode())
    assert KILLED_WORKER == tail.traceback


def test_a_program_that_exits_with_an_error_after_a_forwarded_stop_says_so():
    reason = describe("train.py", 1, None, signal.SIGTERM, None, 110, StderrTail())
    # What happened, no guess at why (a StopTrainingJob, a spot interruption, compose stopping
    # the other hosts of a local job: sm-entry cannot tell).
    assert "train.py exited with code 1 after sm-entry forwarded SIGTERM (signal 15) from outside." == reason


# Exact texts: the failure reason is what a person reads in the console.
def test_exact_reason_for_a_kill_after_the_stop_timeout():
    assert ("train.py was stopped: SIGTERM (signal 15) came from outside sm-entry and it did not exit "
            "within the 110 s stop timeout, so sm-entry killed it "
            "with SIGKILL (exit code 137).") == describe("train.py", 137, signal.SIGKILL, signal.SIGTERM,
                                                         "stop timeout", 110, StderrTail())
    assert ("train.py was stopped: a stop signal came from outside sm-entry and a second stop signal "
            "followed, so sm-entry killed it with SIGKILL "
            "(exit code 137).") == describe("train.py", 137, signal.SIGKILL, None, "second stop signal", 110,
                                            StderrTail())


def test_exact_reasons_for_deaths_by_signal():
    assert ("train.py was killed by SIGTERM (signal 15), which sm-entry forwarded from outside "
            "(exit code 143).") == describe(
        "train.py", 143, signal.SIGTERM, signal.SIGTERM, None, 110, StderrTail())
    assert ("train.sh was killed by SIGKILL (signal 9), not sent by sm-entry: most likely the kernel's "
            "out-of-memory killer (the instance ran out of memory) (exit code 137).") == describe(
        "train.sh", 137, signal.SIGKILL, None, None, 110, StderrTail())
    assert "train.sh was killed by signal 35 (exit code 163)." == describe(
        "train.sh", 163, 35, None, None, 110, StderrTail())


def test_exact_reasons_for_exit_codes():
    assert ("run.sh exited with code 137 (137 = 128+SIGKILL: most likely killed for running out of "
            "memory).") == describe("run.sh", 137, None, None, None, 110, StderrTail())
    assert "run.sh exited with code 136." == describe("run.sh", 136, None, None, None, 110, StderrTail())
    tail = tail_with(Lines("a\n\n  \nb\nc\nd\ne\nf\ng"))
    assert ("run.sh exited with code 3.\nLast lines of its stderr:\nc\nd\ne\nf\ng"
            == describe("run.sh", 3, None, None, None, 110, tail))


def test_a_traceback_leaves_out_the_last_lines():
    tail = tail_with(Lines("noise"), Record(TRACEBACK, "traceback"))
    reason = describe("train.py", 1, None, None, None, 110, tail)
    assert reason.endswith("\ntrain.py exited with code 1.")
    assert "noise" not in reason


def test_the_tail_keeps_the_last_lines_of_long_records_and_blocks():
    tail = tail_with(Record("\n".join(f"r{i}" for i in range(30)), "group"))
    assert ["r27", "r28", "r29"] == tail.last_lines(3)
    tail = tail_with(Lines("\n".join(f"l{i}" for i in range(30))))
    assert ["l28", "l29"] == tail.last_lines(2)
    assert "l0" not in tail.lines


def test_a_piece_without_its_start_and_a_new_traceback_after_an_unfinished_one():
    tail = tail_with(Record("middle", "traceback", 2), Record("end", "traceback", 3, 3))
    assert "middleend" == tail.traceback
    tail = tail_with(Record("old", "traceback", 1), Record("new start ", "traceback", 1),
                     Record("new end", "traceback", 2, 2))
    assert "new start new end" == tail.traceback


def test_text_before_the_first_traceback_and_unrelated_tracebacks():
    lines, _ = exception_summary("a stray line\n" + TRACEBACK)
    assert ["ValueError: bad learning rate: -1"] == lines
    other = TRACEBACK.replace("bad learning rate: -1", "other")
    lines, _ = exception_summary(TRACEBACK + "\n" + other)
    assert ["ValueError: other"] == lines  # no chain line between them: only the last one


def test_an_exception_ending_in_x_and_a_multi_line_message_in_a_chain():
    assert ["ValueError: bad value X"] == exception_summary(TRACEBACK.replace("bad learning rate: -1",
                                                                              "bad value X"))[0]
    chained = KILLED_WORKER.replace("is killed by signal: Killed.", "is killed by signal: Killed.\nsecond line")
    lines, _ = exception_summary(chained)
    assert "Which caused: RuntimeError: DataLoader worker (pid(s) 10) exited unexpectedly" == lines[1]


@pytest.mark.parametrize(("argv", "label"), [
    (["dash", "run.sh"], "run.sh"),
    ([], "the program"),
    (["python3"], "python3"),
    (["python3", "-m"], "python3"),
    (["python3", "-u", "train.py"], "python3"),
    (["./train", "data.csv"], "train"),
])
def test_program_label_edge_cases(argv, label):
    assert label == program_label(argv)


def test_truncation_keeps_exactly_the_limit():
    assert "x" * 1024 == truncate("x" * 1024)
    assert "x" * 1021 + "..." == truncate("x" * 1025)


def test_the_failure_file_is_written_once_and_never_over_the_programs(tmp_path):
    from supervisor.train.failure import write_failure

    path = tmp_path / "output" / "failure"
    assert write_failure(str(path), "caf\udce9 failed")
    assert "caf\\xe9 failed" == path.read_text()  # a byte that is not UTF-8, shown escaped
    assert not write_failure(str(path), "second")
    assert "caf\\xe9 failed" == path.read_text()


def test_an_exception_line_longer_than_a_record_still_ends_its_traceback():
    message = "huge " + "y" * 300_000  # over the 256 KiB record limit on its own
    data = (TRACEBACK.rsplit("\n", 1)[0] + f"\nValueError: {message}\nafter\n").encode()
    tail = framed(data)
    assert tail.traceback is not None and tail.traceback.endswith(message[-1000:])
    assert describe("train.py", 1, None, None, None, 110, tail).startswith("ValueError: huge yyy")
    assert ["after"] == tail.last_lines(1)


def test_more_edges_of_the_tail_and_the_reason(tmp_path):
    tail = tail_with(Record("\n".join(f"r{i}" for i in range(30)), "group"))
    assert [f"r{i}" for i in range(15, 30)] == tail.last_lines(15)
    tail = tail_with(Record(TRACEBACK, "traceback"), Record("late piece", "traceback", 2))
    assert TRACEBACK == tail.traceback  # a piece whose start was lost does not break the tail
    assert "run.sh" == program_label(["bash", "run.sh"])
    assert "train.py was killed by SIGSEGV (signal 11) (exit code 139)." == describe(
        "train.py", 139, signal.SIGSEGV, signal.SIGTERM, None, 110, StderrTail())
    from supervisor.train.failure import write_failure

    (tmp_path / "output").mkdir()
    assert write_failure(str(tmp_path / "output" / "failure"), "x")


# torchrun 2.13's stderr when rank 3 (local rank 1) raised (times and pids trimmed).
TORCHRUN_STDERR = """\
[rank3]: Traceback (most recent call last):
[rank3]:   File "/opt/ml/code/allreduce.py", line 11, in <module>
[rank3]:     raise ValueError(f"corrupt shard on rank {{rank}}")
[rank3]: ValueError: corrupt shard on rank 3
W1130 16:57:30.126000 28476 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 28524 closing signal SIGTERM
E1130 16:57:30.129000 28476 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 1) local_rank: 1 (pid: 28525) of binary: /usr/bin/python3
Traceback (most recent call last):
  File "/usr/local/bin/torchrun", line 6, in <module>
    sys.exit(main())
  File "/usr/lib/python3/site-packages/torch/distributed/launcher/api.py", line 383, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\x20
============================================================
allreduce.py FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-30_16:57:30
  host      : algo-2
  rank      : 2 (local_rank: 0)
  exitcode  : -15 (pid: 28524)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 28524
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-30_16:57:30
  host      : algo-2
  rank      : 3 (local_rank: 1)
  exitcode  : {code} (pid: 28525)
  error_file: {error_file}
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_a_failed_torchrun_rank_gives_its_exception_and_which_rank_it_was():
    tail = framed(TORCHRUN_STDERR.format(code=1, error_file="<N/A>").encode())
    reason = describe("allreduce.py", 1, None, None, None, 110, tail)
    assert reason.split("\n")[:2] == [
        "ValueError: corrupt shard on rank 3",
        "Raised in rank 3 (local rank 1) on host algo-2, which exited with code 1; torchrun "
        "then stopped the other ranks (ChildFailedError).",
    ]
    assert 'File "/opt/ml/code/allreduce.py", line 11, in <module>' in reason
    assert "launch_agent" not in reason  # torchrun's own frames say nothing about the cause


def test_a_rank_error_file_is_the_best_source(tmp_path):
    error_file = tmp_path / "error.json"
    error_file.write_text(
        '{"message": {"message": "KeyError: 7", "extraInfo": {"py_callstack": '
        '"Traceback (most recent call last):\\n  File \\"t.py\\", line 3, in f\\n    x[7]\\n'
        'KeyError: 7\\n", "timestamp": "1"}}}')
    tail = framed(TORCHRUN_STDERR.format(code=1, error_file=error_file).encode())
    reason = describe("allreduce.py", 1, None, None, None, 110, tail)
    assert reason.startswith("KeyError: 7\nRaised in rank 3 (local rank 1) on host algo-2")


def test_a_rank_killed_by_sigkill_is_named_with_the_memory_hint():
    stderr = TORCHRUN_STDERR.format(code=-9, error_file="<N/A>").split("\n", 4)[4]  # no traceback
    reason = describe("allreduce.py", 1, None, None, None, 110, framed(stderr.encode()))
    assert reason.startswith("torchrun: rank 3 (local rank 1) on host algo-2 failed with exit "
                             "code -9; torchrun then stopped the other ranks")
    assert "out-of-memory" in reason.split("\n")[1]


def test_an_oom_kill_the_kernel_counted_is_said_for_certain_first():
    reason = describe("train.py", 137, signal.SIGKILL, None, None, 110, None,
                      oom=OutOfMemory(limit="15.2 GiB", killed="PID 42 (python3 train.py)"))
    assert reason.split("\n") == [
        "Out of memory: the container's memory limit (15.2 GiB) was reached; the kernel killed "
        "PID 42 (python3 train.py).",
        "train.py was killed by SIGKILL (signal 9) (exit code 137).",
    ]


def test_a_worker_oom_kill_without_a_limit_drops_the_guess():
    tail = framed((KILLED_WORKER + "\n").encode())
    reason = describe("train.py", 1, None, None, None, 110, tail,
                      oom=OutOfMemory(limit=None, killed=None))
    assert reason.startswith("Out of memory: the machine ran out of memory (the container has no "
                             "limit of its own); the kernel killed a process of the job.\n")
    assert "most likely" not in reason


def root_cause_block(**fields):
    lines = ["Root Cause (first observed failure):", "[0]:"]
    lines += [f"  {name:<10}: {value}" for name, value in fields.items()]
    return [*lines, "=" * 60]


def test_the_root_cause_block_is_read_field_by_field():
    from supervisor.train.failure import torchrun_root_cause

    lines = ["Failures:", "[1]:", "  rank      : 2 (local_rank: 0)", *root_cause_block(
        host="algo-2", rank="3 (local_rank: 1)", exitcode="1 (pid: 9)",
        traceback="To enable traceback see: https://pytorch.org")]
    assert {"host": "algo-2", "rank": "3 (local_rank: 1)", "exitcode": "1 (pid: 9)",
            "traceback": "To enable traceback see: https://pytorch.org"} == \
        torchrun_root_cause(lines).fields
    assert torchrun_root_cause(lines[:3]) is None


def torchrun_tail(*stderr_lines, rank_lines=()):
    child_failed = ["Traceback (most recent call last):", '  File "/usr/bin/torchrun", line 6',
                    "    sys.exit(main())",
                    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"]
    return framed("\n".join([*rank_lines, *child_failed, *stderr_lines, ""]).encode())


@pytest.mark.parametrize(("block", "expected"), [
    ([], "torchrun: a rank failed; torchrun then stopped the other ranks (ChildFailedError)."),
    (root_cause_block(rank="3 (local_rank: 1)"),
     "torchrun: rank 3 (local rank 1) failed; torchrun then stopped the other ranks "
     "(ChildFailedError)."),
    (root_cause_block(host="algo-2", exitcode="-9 (pid: 9)"),
     "torchrun: a rank on host algo-2 failed with exit code -9; torchrun then stopped the other "
     "ranks (ChildFailedError).\nThe rank was killed by SIGKILL: " + OOM_HINT + "."),
])
def test_what_is_said_of_a_failed_rank_without_its_traceback(block, expected):
    assert expected == describe("t.py", 1, None, None, None, 110, torchrun_tail(*block)).rsplit(
        "\n", 1)[0]


def test_a_rank_traceback_without_a_rank_tag_is_found_before_torchruns_own():
    # Ranks that never initialised torch.distributed print no "[rankN]: " tag.
    rank = ["Traceback (most recent call last):", '  File "t.py", line 2, in <module>',
            "    load()", "KeyError: 'shard'", "W1130 torch/distributed/... closing signal"]
    reason = describe("t.py", 1, None, None, None, 110, torchrun_tail(
        *root_cause_block(rank="1 (local_rank: 1)", exitcode="1"), rank_lines=rank))
    assert reason.split("\n")[:4] == [
        "KeyError: 'shard'",
        "Raised in rank 1 (local rank 1), which exited with code 1; torchrun then stopped the "
        "other ranks (ChildFailedError).",
        "Last frames:", '  File "t.py", line 2, in <module>']


def test_tags_that_are_not_ranks_are_not_taken_for_one():
    tail = framed(b"[rankfoo]: Traceback (most recent call last):\n[rank]: x\n[rank2]: ok\n")
    assert ["2"] == list(tail.rank_lines)


def test_an_error_file_whose_callstack_is_not_text_is_passed_over(tmp_path):
    error_file = tmp_path / "error.json"
    error_file.write_text('{"message": {"extraInfo": {"py_callstack": ["not", "text"]}}}')
    rank = ["[rank3]: Traceback (most recent call last):", '[rank3]:   File "t.py", line 5',
            "[rank3]: ValueError: v"]
    reason = describe("t.py", 1, None, None, None, 110, torchrun_tail(
        *root_cause_block(rank="3 (local_rank: 1)", error_file=str(error_file)),
        rank_lines=rank))
    assert reason.startswith("ValueError: v\n")


def test_a_rank_traceback_with_a_report_that_gives_no_exit_code():
    rank = ["[rank3]: Traceback (most recent call last):", '[rank3]:   File "t.py", line 5',
            "[rank3]: ValueError: v"]
    reason = describe("t.py", 1, None, None, None, 110, torchrun_tail(
        *root_cause_block(rank="3 (local_rank: 1)"), rank_lines=rank))
    assert reason.split("\n")[:2] == [
        "ValueError: v", "Raised in rank 3 (local rank 1); torchrun then stopped the other ranks "
        "(ChildFailedError)."]


# mpirun 4.1 (--tag-output) when rank 3, on the second host, raised; then when it was SIGKILLed.
MPIRUN_STDERR = """\
[1,3]<stderr>:Traceback (most recent call last):
[1,1]<stderr>:a warning from rank 1
[1,3]<stderr>:  File "/opt/ml/code/mpi_ranks.py", line 11, in <module>
[1,3]<stderr>:    raise ValueError(f"corrupt shard on rank {rank}")
[1,3]<stderr>:ValueError: corrupt shard on rank 3
--------------------------------------------------------------------------
Primary job  terminated normally, but 1 process returned
a non-zero exit code. Per user-direction, the job has been aborted.
--------------------------------------------------------------------------
--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[1206,1],3]
  Exit code:    1
--------------------------------------------------------------------------
"""
MPIRUN_KILLED = """\
[1,3]<stderr>:loading shard 7
--------------------------------------------------------------------------
Primary job  terminated normally, but 1 process returned
a non-zero exit code. Per user-direction, the job has been aborted.
--------------------------------------------------------------------------
--------------------------------------------------------------------------
mpirun noticed that process rank 3 with PID 30467 on node algo-2 exited on signal 9 (Killed).
--------------------------------------------------------------------------
"""
SLOTS = {0: ("algo-1", 0), 1: ("algo-1", 1), 2: ("algo-2", 0), 3: ("algo-2", 1)}


def mpirun_tail(text: str) -> StderrTail:
    from supervisor.logs.ranktags import RankTagFramer, RankTags

    framer, tail = RankTagFramer(RankTags("mpirun", 2)), StderrTail()
    tail("stderr", framer.feed(text.encode(), 0.0) + framer.close())
    return tail


def test_a_failed_mpirun_rank_gives_its_exception_and_which_rank_where():
    reason = describe("mpi_ranks.py", 1, None, None, None, 110, mpirun_tail(MPIRUN_STDERR),
                      rank_host=SLOTS.get)
    assert reason.split("\n")[:4] == [
        "ValueError: corrupt shard on rank 3",
        "Raised in rank 3 (local rank 1) on host algo-2, which exited with code 1; mpirun then "
        "stopped the other ranks.",
        "Last frames:",
        '  File "/opt/ml/code/mpi_ranks.py", line 11, in <module>',
    ]


def test_an_mpirun_rank_killed_by_a_signal_is_named_with_its_last_lines_and_the_memory_hint():
    reason = describe("mpi_ranks.py", 137, None, None, None, 110, mpirun_tail(MPIRUN_KILLED),
                      rank_host=SLOTS.get)
    assert reason.split("\n")[:4] == [
        "mpirun: rank 3 (local rank 1) on host algo-2 failed, which was killed by SIGKILL "
        "(signal 9); mpirun then stopped the other ranks.",
        "Last lines of its stderr:",
        "loading shard 7",
        f"The rank was killed by SIGKILL: {OOM_HINT}.",
    ]


def test_a_rank_mpirun_does_not_place_is_named_alone_and_no_report_is_no_rank_text():
    reason = describe("x.py", 1, None, None, None, 110, mpirun_tail(MPIRUN_STDERR),
                      rank_host=lambda rank: None)
    assert reason.split("\n")[1].startswith("Raised in rank 3, which exited with code 1")
    plain = describe("x.py", 1, None, None, None, 110, mpirun_tail(MPIRUN_STDERR.split("-----")[0]),
                     rank_host=SLOTS.get)
    assert plain.startswith("ValueError: corrupt shard on rank 3\nLast frames:")


def test_a_rank_tagged_traceback_start_framed_alone_still_gives_the_ranks_traceback():
    # torch tags every line "[rank1]: "; a read may end right after the traceback's first line,
    # which the framer then lets out as a record of its own.
    tail = StderrTail()
    tail("stderr", [Record("[rank1]: Traceback (most recent call last):", "traceback")])
    tail("stderr", [Lines('[rank1]:   File "t.py", line 3, in <module>\n[rank1]:     f()\n'
                          "[rank1]: ValueError: corrupt shard on rank 1")])
    assert ('Traceback (most recent call last):\n  File "t.py", line 3, in <module>\n    f()\n'
            "ValueError: corrupt shard on rank 1") == tail.rank_traceback("1")


MPIRUN_ABORTED = """\
[1,1]<stderr>:Traceback (most recent call last):
[1,1]<stderr>:  File "/opt/ml/code/mpi_ranks.py", line 11, in <module>
[1,1]<stderr>:ValueError: corrupt shard on rank 1
--------------------------------------------------------------------------
MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD
with errorcode 1.
--------------------------------------------------------------------------
"""


def test_under_mpi4py_the_rank_that_called_mpi_abort_is_named():
    reason = describe("mpi_ranks.py", 1, None, None, None, 110, mpirun_tail(MPIRUN_ABORTED),
                      rank_host=SLOTS.get)
    assert reason.split("\n")[:2] == [
        "ValueError: corrupt shard on rank 1",
        "Raised in rank 1 (local rank 1) on host algo-1, which called MPI_Abort; mpirun then "
        "stopped the other ranks.",
    ]
