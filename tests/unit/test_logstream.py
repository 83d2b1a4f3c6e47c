"""Framing: bytes in, records out (no clock, no I/O)."""

import os

import orjson
import pytest

from supervisor.logs.framing import (
    DEFAULT_MAX_RECORD_BYTES,
    LineFramer,
    Lines,
    Record,
    complete_prefix_length,
    escaped_size,
    split_bytes,
)


def frame(chunks, framer=None, close=True, step=0.0):
    framer = framer or LineFramer()
    items, now = [], 0.0
    for chunk in chunks:
        items += framer.feed(chunk, now)
        now += step
    if close:
        items += framer.close()
    return items


def flat(items):
    """Items as (kind, text) pairs, ordinary lines one by one."""
    out = []
    for item in items:
        if isinstance(item, Lines):
            out += [("line", line) for line in item.text.split("\n")]
        else:
            out.append((item.kind, item.text))
    return out


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 9, in <module>\n'
    "    main()\n"
    '  File "train.py", line 5, in main\n'
    '    raise ValueError("bad learning rate: -1")\n'
    "ValueError: bad learning rate: -1"
)
CHAINED = (
    "Traceback (most recent call last):\n"
    '  File "a.py", line 2, in <module>\n'
    "    {}['k']\n"
    "KeyError: 'k'\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "a.py", line 4, in <module>\n'
    "    raise RuntimeError('wrapped')\n"
    "RuntimeError: wrapped"
)


def test_plain_lines_come_out_in_order_as_one_block():
    assert [("line", "a"), ("line", "b"), ("line", "c")] == flat(frame([b"a\nb\n", b"c\n"]))


def test_final_partial_line_is_emitted_at_close():
    assert [("line", "a"), ("line", "tail")] == flat(frame([b"a\ntail"]))


def test_empty_lines_are_kept():
    assert [("line", "a"), ("line", ""), ("line", "b")] == flat(frame([b"a\n\nb\n"]))


@pytest.mark.parametrize("text", [TRACEBACK, CHAINED], ids=["traceback", "chained"])
def test_traceback_becomes_one_record(text):
    data = f"before\n{text}\nafter\n".encode()
    assert [("line", "before"), ("traceback", text), ("line", "after")] == flat(frame([data]))


@pytest.mark.parametrize("text", [TRACEBACK, CHAINED], ids=["traceback", "chained"])
def test_traceback_written_line_by_line_becomes_one_record(text):
    chunks = [line.encode() + b"\n" for line in text.split("\n")] + [b"next\n"]
    assert [("traceback", text), ("line", "next")] == flat(frame(chunks))


def test_traceback_at_end_of_stream_is_closed_by_idle_time():
    framer = LineFramer(group_idle=0.2)
    items = framer.feed((TRACEBACK + "\n").encode(), now=10.0)
    assert [] == items
    assert 10.2 == pytest.approx(framer.next_deadline())
    assert [] == framer.release_due(10.1)
    assert [("traceback", TRACEBACK)] == flat(framer.release_due(10.25))


def test_two_unrelated_tracebacks_are_two_records():
    data = f"{TRACEBACK}\n{TRACEBACK}\n".encode()
    assert [("traceback", TRACEBACK), ("traceback", TRACEBACK)] == flat(frame([data]))


def test_blank_line_after_a_traceback_is_not_part_of_it():
    data = f"{TRACEBACK}\n\nok\n".encode()
    assert [("traceback", TRACEBACK), ("line", ""), ("line", "ok")] == flat(frame([data]))


def test_java_stack_trace_is_one_group():
    trace = "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:10)\n\tat a.B.main(B.java:3)"
    assert [("group", trace), ("line", "done")] == flat(frame([f"{trace}\ndone\n".encode()]))


def test_indented_continuation_arriving_in_a_later_read_joins_its_line():
    chunks = [b"header\n", b"  detail 1\n", b"  detail 2\nnext\n"]
    assert [("group", "header\n  detail 1\n  detail 2"), ("line", "next")] == flat(frame(chunks))


def test_progress_updates_become_a_few_records_ending_with_the_final_state():
    framer = LineFramer(progress_interval=5.0)
    items = []
    for i in range(10000):
        items += framer.feed(f"\r{i / 100:6.2f}% |{'#' * (i // 500)}".encode(), now=i * 0.0001)
    items += framer.feed(b"\n", now=1.0)
    texts = flat(items)
    assert 2 <= len(texts) <= 5
    assert ("progress", f"{9999 / 100:6.2f}% |{'#' * 19}") == texts[-1]
    assert all(kind == "progress" for kind, _ in texts)


def test_progress_state_is_released_after_the_interval_while_the_bar_runs():
    framer = LineFramer(progress_interval=5.0)
    assert [("progress", "1%")] == flat(framer.feed(b"\r1%", now=0.0))
    assert [] == framer.feed(b"\r2%", now=1.0)
    assert 5.0 == framer.next_deadline()
    assert [("progress", "2%")] == flat(framer.release_due(5.0))


def test_carriage_return_line_endings_are_stripped():
    assert [("line", "a"), ("line", "b")] == flat(frame([b"a\r\nb\r\n"]))


def test_invalid_utf8_is_replaced_not_fatal():
    items = frame([b"ok \xff\xfe end\n\xc3\n"])
    assert [("line", "ok \ufffd\ufffd end"), ("line", "\ufffd")] == flat(items)


def test_multibyte_character_split_across_reads_survives():
    data = "é✓😀\n".encode()
    assert [("line", "é✓😀")] == flat(frame([bytes([b]) for b in data]))


@pytest.mark.parametrize("line", [
    b"x" * (10 * 1024 * 1024),
    "é✓😀".encode() * 800_000,
    b"\x01\"\\" * 400_000,
    bytes(b for b in os.urandom(3 * 1024 * 1024) if b not in (10, 13)),
], ids=["ascii", "multibyte", "escapes", "random"])
def test_long_line_is_split_into_parts_that_fit_and_reassemble(line):
    framer = LineFramer()
    items = []
    for start in range(0, len(line), 65536):
        items += framer.feed(line[start:start + 65536], 0.0)
        assert len(framer._carry) < 2 * DEFAULT_MAX_RECORD_BYTES  # memory stays bounded
    items += framer.feed(b"\n", 0.0) + framer.close()
    assert all(isinstance(i, Record) and i.kind == "part" for i in items)
    assert list(range(1, len(items) + 1)) == [i.part for i in items]
    assert [0] * (len(items) - 1) + [len(items)] == [i.parts for i in items]
    assert all(len(orjson.dumps(i.text)) + 300 <= DEFAULT_MAX_RECORD_BYTES for i in items)
    assert line.decode("utf-8", "replace") == "".join(i.text for i in items)


@pytest.mark.parametrize("text", ["plain", 'q"b\\', "é✓"])
def test_escaped_size_counts_what_orjson_writes(text):
    assert len(orjson.dumps(text)) - 2 == escaped_size(text.encode())


def test_escaped_size_never_undercounts_control_characters():
    text = "".join(map(chr, range(32)))
    assert len(orjson.dumps(text)) - 2 <= escaped_size(text.encode())


def test_split_bytes_never_cuts_a_character():
    pieces = split_bytes(("é" * 1000).encode(), 101)
    assert all(piece.decode() for piece in pieces)
    assert "é" * 1000 == b"".join(pieces).decode()


@pytest.mark.parametrize(("data", "expected"), [
    (b"abc", 3), (b"ab\xc3", 2), (b"ab\xe2\x9c", 2), (b"ab\xe2\x9c\x93", 5), (b"\xf0\x9f\x98", 0),
])
def test_complete_prefix_length(data, expected):
    assert expected == complete_prefix_length(data)


def test_a_group_that_keeps_growing_is_let_out_regularly():
    framer = LineFramer(group_idle=0.2)
    out = []
    for i in range(30):  # an indented line every 0.1 s for 3 s: never idle
        out += framer.feed(f"  step {i} loss 0.{i}\n".encode(), now=i * 0.1)
    assert len(out) >= 2  # released while still running, not only at the end
    assert [f"  step {i} loss 0.{i}" for i in range(30)] == [
        line for _, text in flat(out + framer.close()) for line in text.split("\n")]


def test_endless_indented_output_stays_bounded_and_fast():
    framer = LineFramer()
    block = "".join(f"  indented line {i}\n" for i in range(10000)).encode()
    total = 0
    for _ in range(20):
        items = framer.feed(block, now=0.0)
        total += sum(len(t.split("\n")) for _, t in flat(items))
        assert framer._held_size <= framer.safe_line_chars + 100
    total += sum(len(t.split("\n")) for _, t in flat(framer.close()))
    assert 200000 == total


def test_a_giant_progress_state_is_bounded():
    framer = LineFramer()
    items = framer.feed(b"\r", 0.0)
    for _ in range(80):
        items += framer.feed(b"B" * 250_000, 0.0)
        assert len(framer._carry) <= framer.budget
    items += framer.feed(b"\n", 1.0) + framer.close()
    assert all(len(orjson.dumps(i.text)) <= DEFAULT_MAX_RECORD_BYTES for i in items)
    assert items[-1].text.endswith("B" * 1000)


def test_long_line_ending_in_crlf_keeps_its_part_numbering():
    framer = LineFramer()
    items = framer.feed(b"A" * 600_000 + b"\r\n", 0.0) + framer.feed(b"next\n", 0.0) + framer.close()
    parts = [i for i in items if isinstance(i, Record)]
    assert list(range(1, len(parts) + 1)) == [p.part for p in parts]
    assert len(parts) == parts[-1].parts
    assert "A" * 600_000 == "".join(p.text for p in parts)
    assert [("line", "next")] == [x for x in flat(items) if x[0] == "line"]


# Exact edges of the byte helpers, against brute force ---------------------------------
MIXED = "aé€😀b\"\\\x01 z".encode()


def test_escaped_size_is_orjsons_size_or_an_upper_bound_for_controls():
    for text in ["plain", 'quote " and \\ backslash', "é€😀", "a b", "\x01", "\x1f", "\n\t\r"]:
        data = text.encode()
        escaped = len(orjson.dumps(text)) - 2
        assert escaped <= escaped_size(data)
        if not any(ord(c) < 0x20 for c in text):
            assert escaped == escaped_size(data)
    assert 6 == escaped_size(b"\x01") == escaped_size(b"\x1f")  # \u0001: the worst case
    assert 1 == escaped_size(b" ")


def _decodes(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_utf8_boundary_is_the_largest_cut_not_inside_a_character():
    from supervisor.logs.framing import _utf8_boundary

    for cut in range(1, len(MIXED) + 1):
        expected = max(b for b in range(1, cut + 1) if _decodes(MIXED[:b]))
        assert expected == _utf8_boundary(MIXED, cut), cut
    assert 3 == _utf8_boundary(b"\x80\x80\x80", 3)  # nothing valid before: the cut stays


def test_complete_prefix_length_against_brute_force():
    for end in range(len(MIXED) + 1):
        prefix = MIXED[:end]
        expected = max(n for n in range(end + 1) if _decodes(prefix[:n]))
        assert expected == complete_prefix_length(prefix), end


def test_split_bytes_keeps_each_piece_in_budget_whole_characters_and_nothing_lost():
    data = ("é€😀 ascii \"quotes\" \x01\x02 " * 50).encode()
    for budget in (8, 9, 10, 13, 64, 100, 1000):
        pieces = split_bytes(data, budget)
        assert data == b"".join(pieces)
        assert all(escaped_size(p) <= budget and _decodes(p) and p for p in pieces)
        assert len(pieces) <= 2 * escaped_size(data) // budget + 2
    assert [b"x" * 64] == split_bytes(b"x" * 64, 64)  # exactly the budget: one piece
    assert [b"x" * 64, b"x"] == split_bytes(b"x" * 65, 64)


# Exact edges of the framer --------------------------------------------------------
def test_an_empty_line_first_and_an_unfinished_line_ended_by_a_lone_newline():
    assert [("line", ""), ("line", "abc")] == flat(frame([b"\nabc\n"]))
    assert [("line", "half"), ("line", "next")] == flat(frame([b"half", b"\nnext\n"]))
    assert [("progress", "50%"), ("line", "next")] == flat(frame([b"10%\r50%", b"\nnext\n"]))


def test_held_lines_are_released_exactly_at_the_idle_time():
    framer = LineFramer(group_idle=0.25)
    assert [] == framer.feed(b"held\n", 1.0)
    assert 1.25 == framer.next_deadline()
    assert [] == framer.release_due(1.2499)
    assert [Lines("held")] == framer.release_due(1.25)


def test_progress_is_shown_exactly_at_the_interval():
    framer = LineFramer(progress_interval=2.0)
    items = framer.feed(b"1%\r", 10.0)  # the first state goes out at once
    assert [Record("1%", "progress")] == items
    assert [] == framer.feed(b"2%\r", 11.0)
    assert 12.0 == framer.next_deadline()
    assert [] == framer.release_due(11.99)
    assert [Record("2%", "progress")] == framer.release_due(12.0)
    assert framer.next_deadline() is None  # nothing new to show


def test_a_group_grows_up_to_its_age_then_a_new_one_begins():
    framer = LineFramer(group_idle=0.1)  # groups may grow for 5 idle times: 0.5 s
    items = framer.feed(b"head\n", 0.0)
    for t in (0.1, 0.2, 0.3, 0.4):
        items += framer.feed(b"  more\n", t)
    items += framer.feed(b"  late\n", 0.5)  # past the age: let out, and a new group starts
    items += framer.close()
    assert [("group", "head\n  more\n  more\n  more\n  more"), ("line", "  late")] == flat(items)


def test_a_group_of_exactly_the_safe_size_stays_one_record():
    framer = LineFramer(max_record_bytes=4096 + 2048)  # budget 4096: safe lines of 682 chars
    safe = framer.safe_line_chars
    head, tail = "h" * (safe // 2 - 2), "  " + "t" * (safe - safe // 2 - 4)
    items = framer.feed(f"{head}\n{tail}\n".encode(), 0.0) + framer.close()
    assert [("group", f"{head}\n{tail}")] == flat(items)


def test_traceback_trailing_blank_and_chain_lines_are_not_part_of_it():
    text = (b"Traceback (most recent call last):\n  File \"x\", line 1\nValueError: v\n\n"
            b"During handling of the above exception, another exception occurred:\n\nnext\n")
    items = flat(frame([text]))
    assert ("traceback", 'Traceback (most recent call last):\n  File "x", line 1\nValueError: v') == items[0]
    assert [("line", ""), ("line", "During handling of the above exception, another exception occurred:"),
            ("line", ""), ("line", "next")] == items[1:]


def test_a_line_longer_than_the_budget_comes_in_numbered_parts():
    framer = LineFramer(max_record_bytes=4096 + 2048)
    line = "x" * 10000
    items = framer.feed(line.encode() + b"\n", 0.0) + framer.close()
    parts = [i for i in items if isinstance(i, Record)]
    assert ["part"] * len(parts) == [p.kind for p in parts]
    assert list(range(1, len(parts) + 1)) == [p.part for p in parts]
    assert [0] * (len(parts) - 1) + [len(parts)] == [p.parts for p in parts]
    assert line == "".join(p.text for p in parts)


def test_reads_that_begin_with_a_newline():
    assert [("line", ""), ("line", "abc")] == flat(frame([b"\nabc"]))
    assert [("progress", "10%"), ("line", "next")] == flat(frame([b"10%\r", b"\nnext\n"]))
    held = [b'Traceback (most recent call last):\n  File "x", line 1\n', b"ValueError: v\n\nplain\n"]
    assert [("traceback", 'Traceback (most recent call last):\n  File "x", line 1\nValueError: v'),
            ("line", ""), ("line", "plain")] == flat(frame(held))


def group_sizes(framer, sizes):
    """Feed a group of lines of these lengths (the first unindented); the records it makes."""
    lines = ["h" * sizes[0]] + ["  " + "t" * (n - 2) for n in sizes[1:]]
    items = framer.feed(("\n".join(lines) + "\nend\n").encode(), 0.0) + framer.close()
    return [item for item in flat(items) if item != ("line", "end")]


def test_a_group_grows_while_it_stays_under_the_safe_size():
    framer = LineFramer(max_record_bytes=4096 + 2048)
    safe = framer.safe_line_chars
    # held size counts each line and its newline: a + 1, then + b + 1 ...
    assert 1 == len(group_sizes(LineFramer(max_record_bytes=4096 + 2048), [100, safe - 102]))
    assert 2 == len(group_sizes(LineFramer(max_record_bytes=4096 + 2048), [100, safe - 101]))
    assert 1 == len(group_sizes(LineFramer(max_record_bytes=4096 + 2048), [100, 50, safe - 153]))
    assert 2 == len(group_sizes(LineFramer(max_record_bytes=4096 + 2048), [100, 50, safe - 152]))


def test_a_line_of_exactly_the_budget_is_one_record_and_one_more_byte_splits_it():
    framer = LineFramer(max_record_bytes=4096 + 2048)
    budget = framer.budget
    assert [("line", "x" * budget)] == flat(framer.feed(b"x" * budget + b"\n", 0.0) + framer.close())
    framer = LineFramer(max_record_bytes=4096 + 2048)
    parts = flat(framer.feed(b"x" * (budget + 1) + b"\n", 0.0) + framer.close())
    assert ["part", "part"] == [kind for kind, _ in parts]
    framer = LineFramer(max_record_bytes=4096 + 2048)
    plain = "x" * (framer.safe_line_chars + 1)  # longer than "safe", still under the budget
    assert [("line", plain)] == flat(framer.feed(plain.encode() + b"\n", 0.0) + framer.close())


def test_a_group_too_long_for_one_record_comes_in_numbered_pieces_of_its_kind():
    framer = LineFramer(max_record_bytes=4096 + 2048, group_idle=10.0)
    text = "Traceback (most recent call last):\n" + "".join(f"  frame {i} " + "z" * 60 + "\n" for i in range(3))
    items = framer.feed((text + "ValueError: " + "v" * 5000 + "\n").encode(), 0.0) + framer.close()
    pieces = [i for i in items if isinstance(i, Record) and i.kind == "traceback"]
    assert len(pieces) >= 2
    assert list(range(1, len(pieces) + 1)) == [p.part for p in pieces]
    assert len(pieces) == pieces[-1].parts and all(p.parts == 0 for p in pieces[:-1])


# ------------------------------------------------------------ edges found by make mutation
SMALL = 2048 + 600  # max_record_bytes: a budget of 600 escaped bytes, 100 safe characters


def test_a_three_byte_character_cut_short_after_its_second_byte_is_held():
    assert 1 == complete_prefix_length(b"a\xe0\xa4")  # U+0900.. starts with 0xE0


def test_a_read_that_begins_with_a_newline_ends_the_line_before_it_at_once():
    framer = LineFramer()
    assert [] == framer.feed(b"line one\n", 0.0)  # held: an indented line may follow
    assert [("line", "line one")] == flat(framer.feed(b"\nrest", 0.0))


def test_a_blank_line_first_in_a_read_after_a_traceback_loses_nothing():
    items = frame([(TRACEBACK + "\n").encode(), b"\nnext line\nother line\n"])
    assert [("traceback", TRACEBACK), ("line", ""), ("line", "next line"),
            ("line", "other line")] == flat(items)


def test_a_growing_group_is_due_when_its_last_line_goes_idle():
    framer = LineFramer(group_idle=0.2)
    framer.feed(b"head\n", 10.0)
    assert [] == framer.feed(b"  more\n", 10.1)  # within the idle time: the group grows
    assert 10.3 == pytest.approx(framer.next_deadline())


def test_an_over_long_source_line_in_a_traceback_is_not_taken_for_its_exception():
    framer = LineFramer(max_record_bytes=SMALL)
    long_source = "    x = '" + "y" * 700 + "'"  # over the budget: it cannot be held
    items = frame([f"Traceback (most recent call last):\n  File \"t.py\", line 1\n{long_source}\n"
                   "ValueError: v\n".encode()], framer)
    pieces = [text for kind, text in flat(items) if kind == "part"]
    assert long_source == "".join(pieces)  # the source line, in pieces, not held as the exception


def test_a_blank_line_inside_a_traceback_does_not_join_the_next_unrelated_one():
    first = ("Traceback (most recent call last):\n  File \"a.py\", line 1\n\n"
             "ValueError: a")
    second = "Traceback (most recent call last):\n  File \"b.py\", line 1\nKeyError: 'b'"
    items = frame([f"{first}\n{second}\n".encode()])
    assert [("traceback", first), ("traceback", second)] == flat(items)


def test_a_lone_traceback_start_gone_idle_keeps_its_blank_line_out():
    framer = LineFramer(group_idle=0.2)
    framer.feed(b"Traceback (most recent call last):\n\n", 0.0)
    framer.feed(b"", 0.0)
    items = framer.release_due(1.0)
    assert [("traceback", "Traceback (most recent call last):"), ("line", "")] == flat(items)


# the cut (100 bytes from the end) falls on a lead byte, an even and an odd continuation byte
@pytest.mark.parametrize("state", ["é" * 400, "€" * 400, "é" * 400 + "x"])
def test_an_over_long_progress_state_keeps_its_newest_whole_characters(state):
    framer = LineFramer(max_record_bytes=SMALL)
    items = framer.feed(b"0%\r" + state.encode() + b"\r", 0.0)
    progress = [text for kind, text in flat(items) if kind == "progress"]
    assert progress and "\ufffd" not in progress[-1]
    assert state.endswith(progress[-1]) and 0 < len(progress[-1].encode()) <= 100


def test_an_unfinished_line_of_many_budgets_loses_no_piece():
    framer = LineFramer(max_record_bytes=SMALL)
    line = "".join(f"{i:04d}" for i in range(500))  # 2000 characters: several pieces
    items = frame([line.encode(), b"\n"], framer)
    pieces = [text for kind, text in flat(items) if kind == "part"]
    assert len(pieces) >= 4 and line == "".join(pieces)


def test_an_unfinished_long_line_ending_in_crlf_loses_only_the_carriage_return():
    framer = LineFramer(max_record_bytes=SMALL)
    line = "".join(f"{i:04d}" for i in range(300))
    items = frame([line.encode(), b"\r\n"], framer)
    pieces = [text for kind, text in flat(items) if kind == "part"]
    assert line == "".join(pieces)


def test_invalid_utf8_ending_a_progress_bar_or_a_last_line_is_replaced():
    framer = LineFramer()
    framer.feed(b"10%\r", 0.0)
    assert [("progress", "caf\ufffd done")] == flat(framer.feed(b"caf\xe9 done\n", 0.0))
    framer = LineFramer()
    assert [("line", "caf\ufffd")] == flat(frame([b"caf\xe9"], framer))


def test_a_progress_state_of_exactly_the_budget_is_kept_whole():
    framer = LineFramer(max_record_bytes=SMALL)
    items = framer.feed(b"0%\r" + b"a" * 600 + b"\r", 0.0)
    assert ["a" * 600] == [text for kind, text in flat(items) if kind == "progress"][-1:]


def test_a_long_progress_state_of_stray_continuation_bytes_is_survived():
    framer = LineFramer(max_record_bytes=SMALL)
    framer.feed(b"0%\r" + b"\x80" * 700 + b"\r", 0.0)
    assert all(kind == "progress" for kind, _ in flat(framer.close()))


def test_output_of_only_carriage_returns_shows_nothing():
    assert all(text == "" for _, text in flat(frame([b"\r\r"])))


def test_invalid_utf8_in_a_progress_state_is_replaced():
    items = LineFramer().feed(b"0%\r\xff ok\r", 0.0)
    assert ("progress", "\ufffd ok") == flat(items)[-1]


def test_a_blank_line_after_a_traceback_does_not_chain_the_next_one_to_it():
    second = "Traceback (most recent call last):\n  File \"b.py\", line 1\nKeyError: 1"
    items = frame([f"{TRACEBACK}\n\n{second}\n".encode()])
    assert [("traceback", TRACEBACK), ("line", ""), ("traceback", second)] == flat(items)
