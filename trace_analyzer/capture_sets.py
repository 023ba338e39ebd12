"""Capture sets: which files continue each other, in what order, and where one is missing.

Layer: capture sets (no I/O). Fed one :class:`FileFacts` per file (what a look at its first
and last records found: link type, snap length, time span, and per TCP direction where its
sequence numbers start and end), it gives :class:`CaptureSet` s: the files that are one capture cut
by rotation (tcpdump ``-C``/``-G``, dumpcap ``-b``, editcap ``-c``), ordered by their first
packet's time, never their names. A file continues a set when it has the same link type and
snap length, starts no earlier than the set's last file ends, and carries on TCP
connections that file had (not opened anew by a SYN). Files that share nothing stay
separate sets. A hole in the sequence numbers between two files of a set (a file of the set
missing) is reported as a :class:`SetGap`, not a reason to split it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Half the sequence space: a difference beyond it is a step back, not forward.
_HALF = 1 << 31


@dataclass(slots=True)
class FlowFacts:
    """One TCP direction at one end of a file. At its head: the lowest sequence number seen
    (where the file takes the direction up) and whether that segment opened the connection (a
    SYN without ACK: a SYN-ACK answers one, and may be the next file's first packet). At its
    tail: the highest sequence number reached (where the file leaves it)."""

    first_seq: int
    syn: bool
    end_seq: int


@dataclass(slots=True)
class FileFacts:
    path: str
    size: int = 0
    linktype: int | None = None  # the first record's; None when there is none
    snaplen: int = 0
    frames: int = 0
    first_time: float | None = None
    last_time: float | None = None
    #: (source, destination) endpoints as "ip:port" -> that direction in the file's first
    #: records (head) and in its last ones (tail); a small file's head and tail are all of it.
    head: dict[tuple[str, str], FlowFacts] = field(default_factory=dict)
    tail: dict[tuple[str, str], FlowFacts] = field(default_factory=dict)


@dataclass(slots=True)
class SetGap:
    """Bytes of a connection missing between two files of a set."""

    before: str  # the file that leaves off
    after: str  # the file that takes up
    src: str
    dst: str
    missing: int  # bytes of sequence space

    def text(self) -> str:
        return (f"{self.after} continues {self.before} (the same TCP connections), but {self.missing} "
                f"byte(s) of {self.src} -> {self.dst} are missing between them: a file of the capture "
                f"set is missing or was cut")


@dataclass(slots=True)
class CaptureSet:
    name: str
    files: list[str]
    gaps: list[SetGap] = field(default_factory=list)
    size: int = 0  # bytes of its files, for progress
    first_time: float | None = None


def after(a: int, b: int) -> int:
    """How far sequence number ``b`` is past ``a`` (negative: before), modulo 2**32."""
    step = (b - a) & 0xFFFFFFFF
    return step - (1 << 32) if step >= _HALF else step


def note_segment(flows: dict[tuple[str, str], FlowFacts], src: str, dst: str, seq: int, length: int,
                 flags: int) -> None:
    """Account one TCP segment of a file (the quick pass calls this for every one)."""
    syn, fin = flags & 0x02, flags & 0x01
    end = (seq + length + (1 if syn else 0) + (1 if fin else 0)) & 0xFFFFFFFF
    opens = bool(syn) and not flags & 0x10
    facts = flows.get((src, dst))
    if facts is None:
        flows[(src, dst)] = FlowFacts(seq, opens, end)
        return
    if after(facts.first_seq, seq) < 0:
        facts.first_seq, facts.syn = seq, opens
    if after(facts.end_seq, end) > 0:
        facts.end_seq = end


def _connection(flow: tuple[str, str]) -> tuple[str, str]:
    return min(flow, flow[::-1])


def _continued(before: FileFacts, later: FileFacts) -> list[tuple[str, str]]:
    """The directions that ``later`` takes up, at its head, from connections seen in ``before``
    (the same connection carried on, not a new one on the same ports). Those at its head count
    too: an association can stay silent through a file's last records, as a C-GET's control
    connection does while another one moves bulk data."""
    ours = {_connection(flow) for flow in before.tail} | {_connection(flow) for flow in before.head}
    shared = []
    for flow, facts in later.head.items():
        if facts.syn or _connection(flow) not in ours:
            continue
        # A connection re-opened later on the same ports starts with a SYN in one direction.
        back = later.head.get(flow[::-1])
        if back is not None and back.syn:
            continue
        shared.append(flow)
    return shared


def _follows(tail: FileFacts, facts: FileFacts) -> int:
    """How many directions ``facts`` carries on from ``tail``; 0 when it cannot be its successor."""
    if tail.linktype != facts.linktype or tail.snaplen != facts.snaplen:
        return 0
    if tail.last_time is None or facts.first_time is None or facts.first_time < tail.last_time:
        return 0  # time ranges overlap: two views of the same traffic, or unrelated
    return len(_continued(tail, facts))


def _name(files: list[str], taken: set[str]) -> str:
    if len(files) == 1:
        name = files[0]
    else:
        prefix = os.path.commonprefix(files)
        if not os.path.basename(prefix):  # nothing in common but the folder
            prefix = os.path.join(os.path.dirname(prefix) or ".", "")
        name = prefix + "*"
    unique, number = name, 2
    while unique in taken:
        unique = f"{name} ({number})"
        number += 1
    taken.add(unique)
    return unique


def group(files: list[FileFacts]) -> list[CaptureSet]:
    """The capture sets of these files, ordered by their first packet's time (then name)."""

    def when(facts: FileFacts) -> tuple:
        return (facts.first_time is None, facts.first_time or 0.0, facts.path)

    chains: list[list[FileFacts]] = []
    for facts in sorted(files, key=when):
        best, best_score = None, 0
        for chain in chains:
            score = _follows(chain[-1], facts)
            # The most directions carried on wins; among equals the chain that ended last.
            if score > best_score or (score and score == best_score and
                                      (chain[-1].last_time or 0.0) > (best[-1].last_time or 0.0)):
                best, best_score = chain, score
        if best is None:
            chains.append([facts])
        else:
            best.append(facts)
    taken: set[str] = set()
    sets = []
    for chain in chains:
        paths = [facts.path for facts in chain]
        found = CaptureSet(_name(paths, taken), paths, size=sum(facts.size for facts in chain),
                           first_time=chain[0].first_time)
        for before, later in zip(chain, chain[1:], strict=False):
            for flow in _continued(before, later):
                leaves = before.tail.get(flow)
                if leaves is None:
                    continue
                missing = after(leaves.end_seq, later.head[flow].first_seq)
                if missing > 0:
                    found.gaps.append(SetGap(before.path, later.path, flow[0], flow[1], missing))
        sets.append(found)
    return sets
