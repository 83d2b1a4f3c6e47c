"""Launchers' rank tags: every rank's pieces sorted back into its own lines and records."""

import pytest

from supervisor.logs.framing import Lines, Record
from supervisor.logs.ranktags import RankTagFramer, RankTags

CARRY_LIMIT = 64 << 10  # a long unfinished line

MPIRUN = RankTags("mpirun", 2)


def texts(items):
    """The lines, sorted: each framer holds a read's last line a while, so ranks interleave."""
    out = []
    for item in items:
        out.extend(item.text.split("\n") if type(item) is Lines else [item.text])
    return sorted(out)


def frame(*reads, release=True, tags=MPIRUN):
    framer = RankTagFramer(tags)
    items = []
    for read in reads:
        items += framer.feed(read, 0.0)
    if release:
        items += framer.release_due(10.0)
    return items + framer.close(), framer


def test_pieces_of_a_line_split_by_other_ranks_are_joined_back():
    # As seen from mpirun 4.1: rank 0's line ends in a later piece of its own.
    items, _ = frame(b"[1,0]<stdout>:rank 0 up[1,3]<stdout>:rank 3 up\n"
                     b"[1,1]<stdout>:rank 1 up[1,0]<stdout>:, ready\n[1,1]<stdout>:\n")
    assert ["[rank0]: rank 0 up, ready", "[rank1]: rank 1 up", "[rank3]: rank 3 up"] == \
        texts(items)


def test_a_ranks_traceback_is_one_record_even_with_other_ranks_lines_between():
    items, _ = frame(b"[1,3]<stderr>:Traceback (most recent call last):\n"
                     b"[1,1]<stderr>:loss 0.5\n"
                     b'[1,3]<stderr>:  File "t.py", line 1, in <module>\n'
                     b"[1,3]<stderr>:ValueError: bad\n")
    records = [item for item in items if isinstance(item, Record)]
    assert [Record('[rank3]: Traceback (most recent call last):\n  File "t.py", line 1, in '
                   '<module>\nValueError: bad', "traceback")] == records
    assert "[rank1]: loss 0.5" in texts(items)


def test_mpiruns_own_lines_stay_untagged():
    items, _ = frame(b" Data for JOB [1,1]\n[1,0]<stdout>:hi\n"
                     b"mpirun noticed that process rank 3 with PID 1 on node a exited\n")
    assert [" Data for JOB [1,1]", "[rank0]: hi",
            "mpirun noticed that process rank 3 with PID 1 on node a exited"] == texts(items)


@pytest.mark.parametrize("cut", range(1, 40))
def test_a_read_may_end_anywhere_even_inside_a_tag(cut):
    data = b"[1,2]<stderr>:first\n[1,12]<stdout>:second [x]\nplain\n"
    items, _ = frame(data[:cut], data[cut:])
    assert ["[rank12]: second [x]", "[rank2]: first", "plain"] == texts(items)


def test_a_huge_unfinished_piece_is_passed_on_in_parts_without_losing_bytes():
    body = b"y" * (3 * CARRY_LIMIT)
    framer = RankTagFramer(MPIRUN, max_record_bytes=1 << 20)
    items = framer.feed(b"[1,5]<stdout>:" + body[:CARRY_LIMIT + 10], 0.0)
    items += framer.feed(body[CARRY_LIMIT + 10:], 0.0)
    assert len(framer._carry) < 100  # not held whole: handed to rank 5's framer
    items += framer.feed(b"[1,5]<stdout>:end\n", 0.0) + framer.close()
    assert ["[rank5]: " + "y" * len(body) + "end"] == texts(items)


def test_a_huge_untagged_line_is_not_held_whole_either():
    framer = RankTagFramer(MPIRUN, max_record_bytes=1 << 20)
    items = framer.feed(b"z" * (2 * CARRY_LIMIT), 0.0)
    assert len(framer._carry) < 100
    items += framer.feed(b"z\n", 0.0) + framer.close()
    assert ["z" * (2 * CARRY_LIMIT + 1)] == texts(items)


def test_at_the_end_unfinished_pieces_are_let_out():
    items, framer = frame(b"[1,0]<stdout>:no newline[1,1]<stdout>:nor here", release=False)
    assert ["[rank0]: no newline", "[rank1]: nor here"] == texts(items)
    assert framer.next_deadline() is None


def test_held_lines_of_every_rank_have_a_deadline_and_are_released():
    framer = RankTagFramer(MPIRUN)
    assert [] == framer.feed(b"[1,0]<stdout>:epoch 1\n[1,1]<stdout>:epoch 1\n", 1.0)
    assert framer.next_deadline() is not None
    assert ["[rank0]: epoch 1", "[rank1]: epoch 1"] == texts(framer.release_due(100.0))
    assert framer.next_deadline() is None


TORCHRUN = RankTags("torchrun", 2, first_rank=2)  # the second host of two, two ranks each


def test_torchrun_tee_tags_give_global_ranks_and_a_traceback_stays_whole():
    items, _ = frame(b"[default0]:epoch 1\n"
                     b"[default1]:[rank3]: Traceback (most recent call last):\n"
                     b"[default0]:epoch 2\n"
                     b'[default1]:[rank3]:   File "t.py", line 1, in <module>\n'
                     b"[default1]:[rank3]: ValueError: bad\n", tags=TORCHRUN)
    assert ["[rank2]: epoch 1", "[rank2]: epoch 2"] == [
        line for line in texts(items) if "epoch" in line]
    records = [item.text for item in items if isinstance(item, Record)]
    assert ['[rank3]: Traceback (most recent call last):\n  File "t.py", line 1, in <module>\n'
            "ValueError: bad"] == records


def test_torchrun_tags_count_only_at_the_start_of_a_line_and_torchs_own_tag_is_left_alone():
    items, _ = frame(b"loss [x1]: 0.5\n[rank3]: from the excepthook\n[default1]:a [default0]:b\n",
                     tags=TORCHRUN)
    assert ["[rank3]: a [default0]:b", "[rank3]: from the excepthook", "loss [x1]: 0.5"] == \
        texts(items)


def test_lines_no_launcher_tagged_take_the_plain_path_whole():
    framer = RankTagFramer(TORCHRUN)
    items = framer.feed(b"W1130 torchrun warning\npartial", 0.0) + framer.feed(b" end\n", 0.0)
    assert ["W1130 torchrun warning", "partial end"] == texts(items + framer.close())


def test_an_empty_line_at_the_start_of_a_read_is_kept():
    items, _ = frame(b"a\n", b"\n[1,0]<stdout>:x", b"\n")
    assert ["", "[rank0]: x", "a"] == texts(items)


def test_three_pieces_on_one_line_each_go_to_their_rank_also_at_the_end():
    items, _ = frame(b"[1,0]<stdout>:a[1,1]<stdout>:b[1,2]<stdout>:c\n"
                     b"mpirun: [1,0]<stdout>:d[1,1]<stdout>:e[1,2]<stdout>:f")
    assert ["[rank0]: ad", "[rank1]: be", "[rank2]: c", "[rank2]: f", "mpirun: "] == texts(items)


def test_at_the_end_an_unfinished_torchrun_line_keeps_its_rank():
    items, _ = frame(b"[default1]:last words", tags=TORCHRUN)
    assert ["[rank3]: last words"] == texts(items)


def test_a_huge_unfinished_line_of_the_launchers_own_is_passed_on_whole_in_the_end():
    framer = RankTagFramer(MPIRUN, max_record_bytes=1 << 20)
    body = b"[z]" * CARRY_LIMIT  # brackets: not the plain path
    items = framer.feed(body, 0.0)
    assert len(framer._carry) < 100
    items += framer.feed(b"!\n", 0.0) + framer.close()
    assert [body.decode() + "!"] == texts(items)


def test_an_unfinished_line_of_a_rank_goes_on_at_once_a_progress_bar_included():
    framer = RankTagFramer(MPIRUN, progress_interval=5.0)
    items = framer.feed(b"[1,0]<stderr>:\r 10%|#         |[1,1]<stdout>:loading", 0.0)
    items += framer.feed(b"[1,0]<stderr>:\r 50%|#####     |", 6.0) + framer.release_due(12.0)
    assert any("50%" in line for line in texts(items))  # not held until the line ends
    assert len(framer._carry) < 100


def test_a_progress_state_ending_in_brackets_goes_on_whole():
    # tqdm ends its state with "[elapsed<remaining, rate]": a bracket, but no tag's start.
    framer = RankTagFramer(MPIRUN, progress_interval=5.0)
    state = b"\r 50%|#####     | 5/10 [00:05<00:05, 1.00it/s]"
    items = framer.feed(b"[1,0]<stderr>:" + state, 6.0) + framer.release_due(12.0)
    assert any(line.endswith("[00:05<00:05, 1.00it/s]") for line in texts(items))
    assert b"" == framer._carry[len(b"[1,0]<stderr>:"):]


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_torchrun_read_may_end_inside_a_tag(cut):
    data = b"[default1]:x\n"
    items, _ = frame(data[:cut], data[cut:], tags=TORCHRUN)
    assert ["[rank3]: x"] == texts(items)
