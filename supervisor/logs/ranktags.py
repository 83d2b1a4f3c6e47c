"""A launcher's output: one stream holding every rank's lines, each tagged with its rank.

mpirun --tag-output passes on what each rank writes as it arrives, and
prefixes every piece with the rank's tag (`[1,3]<stderr>:`). A piece that
did not end its line is continued by a later piece with the same tag, often
after other ranks' pieces on the same output line. torchrun with `--tee`
(or PET_TEE) prefixes each whole line with the role and local rank
(`[default1]:`). Either way the pieces are sorted by rank and each rank's
bytes are framed on their own: a rank's traceback stays one record even
when the ranks write at once. Each rank's items come out with a "[rankN]: "
prefix, torch.distributed's own tag, which the renderers turn into `rank`
and `local_rank` fields and the failure text reads per rank.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from supervisor.logs.framing import Item, LineFramer, Lines, Record

_MPIRUN_TAG = re.compile(rb"\[\d+,(\d+)\]<(?:stdout|stderr|stddiag)>:")
# torchrun --tee: "[default0]:", a role then a local rank (torch's own "[rank3]: " is not one).
_TORCHRUN_TAG = re.compile(rb"\[(?!rank\d)[A-Za-z_][\w-]*?(\d+)\]:")
# The start of an mpirun tag, cut by the end of a read: kept for the next read.
_MPIRUN_TAG_START = re.compile(rb"\[\d*(?:,\d*(?:\](?:<[a-z]*>?)?)?)?")
# torch.distributed's own tag on a rank's traceback lines, inside a launcher's tag: said once.
_TORCH_TAG = re.compile(rb"\[rank\d+\]: ")


class RankTags(NamedTuple):
    """Which launcher tags the child's lines, and where its ranks sit."""

    launcher: str  # "mpirun" (tags anywhere in a line) | "torchrun" (at the start of a line)
    slots: int  # ranks per host: a rank's local rank is rank % slots
    first_rank: int = 0  # torchrun tags local ranks: this host's first global rank


TAG_MAX = 48  # bytes: a tag cut at the end of a read is kept whole for the next


def _without_torch_tag(piece: bytes) -> bytes:
    """A rank's piece less torch.distributed's own "[rankN]: " at its start."""
    match = _TORCH_TAG.match(piece)
    return piece[match.end():] if match else piece


def rank_prefix(rank: int) -> str:
    return f"[rank{rank}]: "


class RankTagFramer:
    """Frames a launcher's tagged output: a LineFramer per rank, one for its own lines."""

    def __init__(self, tags: RankTags, **options: Any) -> None:
        self._tags = tags
        self._options = options
        self._untagged = LineFramer(**options)
        self._ranks: dict[int, LineFramer] = {}
        self._carry = b""  # mpirun's unfinished output line

    def _framer(self, rank: int) -> LineFramer:
        framer = self._ranks.get(rank)
        if framer is None:
            framer = self._ranks[rank] = LineFramer(**self._options)
        return framer

    def feed(self, data: bytes, now: float) -> list[Item]:
        if not self._carry and not self._may_be_tagged(data):
            return self._untagged.feed(data, now)  # the launcher's own lines: no split needed
        out: list[Item] = []
        data = self._carry + data if self._carry else data
        end = data.rfind(b"\n")
        self._carry = data[end + 1:]
        if end >= 0:
            for line in data[:end].split(b"\n"):
                self._route(line, True, now, out)
        if self._carry:  # an unfinished line: its pieces go on now (a progress bar's states)
            self._carry = self._route(self._carry, False, now, out)
        return out

    def _tags_in(self, line: bytes) -> list[re.Match[bytes]]:
        """The launcher's tags in one output line: mpirun's anywhere, torchrun's at its start."""
        if self._tags.launcher == "torchrun":
            match = _TORCHRUN_TAG.match(line)
            return [match] if match else []
        return list(_MPIRUN_TAG.finditer(line))

    def _may_be_tagged(self, data: bytes) -> bool:
        """False when no tag can be in `data`, not even the start of one cut by the read."""
        if self._tags.launcher == "torchrun":
            return data.startswith(b"[") or b"\n[" in data
        return b"[" in data

    def _route(self, line: bytes, ended: bool, now: float, out: list[Item]) -> bytes:
        """Each piece of one output line to its rank's framer; returns what must wait.

        `ended`: the line had its newline (the last piece ends a line of its
        rank). Otherwise the last piece may be cut anywhere, its tag included:
        its tail is kept, behind its tag, for the next read.
        """
        tags = self._tags_in(line)
        first = tags[0].start() if tags else len(line)
        if first or not tags:  # an empty line of the launcher's own is a line too
            head = line[:first]
            if not ended and not tags:
                cut = self._hold_from(head)
                head, kept = head[:cut], head[cut:]
                self._take(None, self._untagged.feed(head, now), out)
                return kept
            # Ended, or cut short by a rank's piece: mpirun's own line is whole.
            self._take(None, self._untagged.feed(head + b"\n", now), out)
        for index, tag in enumerate(tags):
            rank = self._rank(tag)
            stop = tags[index + 1].start() if index + 1 < len(tags) else len(line)
            piece = _without_torch_tag(line[tag.end():stop])
            last = index + 1 == len(tags)
            if last and ended:
                piece += b"\n"
            elif last:
                cut = self._hold_from(piece)
                piece, kept = piece[:cut], piece[cut:]
                self._take(rank, self._framer(rank).feed(piece, now), out)
                return tag[0] + kept
            self._take(rank, self._framer(rank).feed(piece, now), out)
        return b""

    def _hold_from(self, data: bytes) -> int:
        """Where the part of an unfinished line that must wait for the next read begins.

        mpirun: only a tag cut by the read waits, so a progress bar's state goes
        on at once. torchrun tags whole lines only (what it tails from its
        files): the last TAG_MAX bytes wait, as for a line start.
        """
        if self._tags.launcher == "torchrun":
            return max(0, len(data) - TAG_MAX)
        cut = data.rfind(b"[", max(0, len(data) - TAG_MAX))
        if cut >= 0 and _MPIRUN_TAG_START.fullmatch(data, cut):
            return cut
        return len(data)

    def _rank(self, tag: re.Match[bytes]) -> int:
        return int(tag[1]) + self._tags.first_rank

    @staticmethod
    def _take(rank: int | None, items: list[Item], out: list[Item]) -> None:
        if rank is None:
            out.extend(items)
            return
        prefix = rank_prefix(rank)
        for item in items:
            text = item.text
            if type(item) is Lines:
                out.append(Lines(prefix + text.replace("\n", "\n" + prefix)))
            else:
                assert isinstance(item, Record)
                out.append(item._replace(text=prefix + text))

    def next_deadline(self) -> float | None:
        deadlines = [framer.next_deadline() for framer in (self._untagged, *self._ranks.values())]
        due = [deadline for deadline in deadlines if deadline is not None]
        return min(due) if due else None

    def release_due(self, now: float) -> list[Item]:
        out: list[Item] = []
        self._take(None, self._untagged.release_due(now), out)
        for rank, framer in self._ranks.items():
            self._take(rank, framer.release_due(now), out)
        return out

    def close(self) -> list[Item]:
        out: list[Item] = []
        if self._carry:
            carry, self._carry = self._carry, b""
            self._route_final(carry, out)
        self._take(None, self._untagged.close(), out)
        for rank, framer in self._ranks.items():
            self._take(rank, framer.close(), out)
        return out

    def _route_final(self, carry: bytes, out: list[Item]) -> None:
        """The end of the stream: the unfinished line's pieces, none of them ending a line."""
        tags = self._tags_in(carry)
        first = tags[0].start() if tags else len(carry)
        if first:
            self._take(None, self._untagged.feed(carry[:first], 0.0), out)
        for index, tag in enumerate(tags):
            stop = tags[index + 1].start() if index + 1 < len(tags) else len(carry)
            rank = self._rank(tag)
            piece = _without_torch_tag(carry[tag.end():stop])
            self._take(rank, self._framer(rank).feed(piece, 0.0), out)
