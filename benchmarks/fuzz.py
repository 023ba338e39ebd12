"""Mutation fuzzer for the whole pipeline: any capture gives a result, bounded in time and memory.

Run by hand, for minutes (not in CI; tests/test_fuzz_harness.py runs a few seconds of it):

    python benchmarks/fuzz.py --minutes 5                 # every sample capture as a seed
    python benchmarks/fuzz.py --cases 2000 --seed 7 --out /tmp/fuzz-failures
    python benchmarks/fuzz.py --seeds sample_pcaps/dcmtk_to_dcmtk_success.pcap --minutes 1

Each case is one mutant of a seed capture, analysed twice in this process (with and without the
fast lane). A case fails when the analysis raises, when any table cell does not have its column's
type, when the two analyses' tables differ, when it takes over ``--case-seconds`` (30), or when the
process's peak RSS passes ``--max-rss-mb`` (1024). Failing mutants are written to ``--out`` with
what was done to them; the run ends with figures (cases, cases/s, mutations by kind, slowest case,
peak RSS) and exits 1 if any case failed.

Mutations are of two sorts:

* **structure-aware**: the TCP streams of every Ethernet/IPv4 connection are rebuilt from the
  records, parsed into PDUs, PDV items, command and data set elements, and A-ASSOCIATE items and
  sub-items; one field is changed (a value set to a boundary or random number, a value resized
  with every enclosing length fixed, an element, PDV or PDU duplicated or dropped, a length field
  alone set wrong), and the streams are cut back into the original segments, sequence and
  acknowledgement numbers, IP lengths and record lengths fixed, so the damage reaches the layer
  it was aimed at;
* **blind**: bits flipped anywhere in the file, the file cut, bytes inserted or deleted, records
  dropped, duplicated, swapped or stamped back in time, the whole file gzip-wrapped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import trace_analyzer  # noqa: E402
from trace_analyzer.tables import COLUMNS, TABLES  # noqa: E402

SAMPLES = HERE.parent / "sample_pcaps"
INTERESTING_32 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000, 0xFFFF,
                  0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
RESIZES = (-1000, -100, -7, -4, -2, -1, 1, 2, 3, 4, 5, 6, 64, 1000, 65536)


# -- capture files ------------------------------------------------------------------------


@dataclass
class Record:
    time: tuple[int, int]  # seconds, fraction as in the file
    data: bytes
    wirelen: int


@dataclass
class Pcap:
    endian: str
    head: bytes
    records: list[Record]
    linktype: int

    def to_bytes(self) -> bytes:
        out = [self.head]
        for record in self.records:
            out.append(struct.pack(self.endian + "IIII", record.time[0], record.time[1], len(record.data),
                                   max(record.wirelen, len(record.data))) + record.data)
        return b"".join(out)


def read_pcap(raw: bytes) -> Pcap | None:
    magic = raw[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None or len(raw) < 24:
        return None
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0x0FFFFFFF
    records, offset = [], 24
    while offset + 16 <= len(raw):
        sec, frac, caplen, wirelen = struct.unpack_from(endian + "IIII", raw, offset)
        records.append(Record((sec, frac), raw[offset + 16:offset + 16 + caplen], wirelen))
        offset += 16 + caplen
    return Pcap(endian, raw[:24], records, linktype)


# -- TCP streams of Ethernet/IPv4 records ---------------------------------------------------


@dataclass
class Segment:
    record: int  # index in Pcap.records
    head: bytes  # Ethernet + IPv4 + TCP headers as captured
    ip: int  # offset of the IPv4 header in head
    tcp: int  # offset of the TCP header
    seq: int
    ack: int
    flags: int
    payload: bytes
    direction: tuple  # (src, dst) address and port bytes


@dataclass
class Direction:
    key: tuple
    segments: list[Segment] = field(default_factory=list)
    isn: int | None = None  # the first payload byte's sequence number
    stream: bytearray = field(default_factory=bytearray)
    offsets: list[int] = field(default_factory=list)  # stream offset of each segment's payload


def segments_of(pcap: Pcap) -> dict[tuple, Direction]:
    directions: dict[tuple, Direction] = {}
    if pcap.linktype != 1:
        return directions
    for index, record in enumerate(pcap.records):
        frame = record.data
        if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4 or frame[23] != 6:
            continue
        ip = 14
        ihl = (frame[ip] & 0x0F) * 4
        total = struct.unpack_from(">H", frame, ip + 2)[0]
        tcp = ip + ihl
        if len(frame) < tcp + 20 or total > len(frame) - ip:
            continue  # cut by a snaplen: left as it is
        offset = (frame[tcp + 12] >> 4) * 4
        seq, ack = struct.unpack_from(">II", frame, tcp + 4)
        payload = frame[tcp + offset:ip + total]
        key = (frame[ip + 12:ip + 16], frame[tcp:tcp + 2], frame[ip + 16:ip + 20], frame[tcp + 2:tcp + 4])
        direction = directions.setdefault(key, Direction(key))
        flags = frame[tcp + 13]
        if flags & 0x02:  # SYN: the stream starts after it
            direction.isn = (seq + 1) & 0xFFFFFFFF
        segment = Segment(index, frame[:tcp + offset], ip, tcp, seq, ack, flags, payload, key)
        direction.segments.append(segment)
    for direction in directions.values():
        if direction.isn is None:
            first = next((s for s in direction.segments if s.payload), None)
            direction.isn = first.seq if first else 0
        # Only in-order, non-overlapping payloads make a stream the mutator may rewrite.
        expected = direction.isn
        for segment in direction.segments:
            if not segment.payload:
                direction.offsets.append(len(direction.stream))
                continue
            if segment.seq != expected:
                direction.stream = bytearray()
                direction.offsets = []
                break
            direction.offsets.append(len(direction.stream))
            direction.stream += segment.payload
            expected = (expected + len(segment.payload)) & 0xFFFFFFFF
    return {k: d for k, d in directions.items() if d.stream}


# -- fields of the DICOM Upper Layer, by stream offset -------------------------------------


@dataclass
class Field:
    kind: str  # what it is, for the figures
    start: int  # stream offset of the value
    size: int
    lengths: list[tuple[int, int, str]]  # enclosing length fields: (offset, size, endian)
    own_length: tuple[int, int, str] | None = None  # the field's own length field


def _elements(stream: bytes, start: int, end: int, outer: list, kind: str, fields: list[Field],
              group_length: tuple | None) -> None:
    """Implicit VR Little Endian elements between start and end."""
    offset = start
    while offset + 8 <= end:
        length = struct.unpack_from("<I", stream, offset + 4)[0]
        if length == 0xFFFFFFFF or offset + 8 + length > end:
            return
        own = (offset + 4, 4, "<")
        enclosing = outer + ([group_length] if group_length and offset > start else [])
        fields.append(Field(f"{kind} element", offset + 8, length, enclosing, own))
        fields.append(Field(f"{kind} element header", offset, 8, enclosing))
        if kind == "command" and offset == start and length == 4:
            group_length = (offset + 8, 4, "<")
        offset += 8 + length


def _items(stream: bytes, start: int, end: int, outer: list, fields: list[Field], depth: int = 0) -> None:
    offset = start
    while offset + 4 <= end:
        item_type = stream[offset]
        length = struct.unpack_from(">H", stream, offset + 2)[0]
        if offset + 4 + length > end:
            return
        own = (offset + 2, 2, ">")
        fields.append(Field(f"item 0x{item_type:02X}", offset + 4, length, outer, own))
        inner = [*outer, own]
        if depth == 0 and item_type in (0x20, 0x21) and length >= 4:
            _items(stream, offset + 8, offset + 4 + length, inner, fields, 1)
        elif depth == 0 and item_type == 0x50:
            _items(stream, offset + 4, offset + 4 + length, inner, fields, 1)
        offset += 4 + length


def fields_of(stream: bytes) -> list[Field]:
    fields: list[Field] = []
    offset = 0
    while offset + 6 <= len(stream):
        pdu_type = stream[offset]
        length = struct.unpack_from(">I", stream, offset + 2)[0]
        end = offset + 6 + length
        if end > len(stream) or not 1 <= pdu_type <= 7:
            break
        pdu_length = (offset + 2, 4, ">")
        fields.append(Field(f"PDU 0x{pdu_type:02X}", offset + 6, length, [], pdu_length))
        fields.append(Field("PDU header", offset, 6, []))
        if pdu_type in (1, 2) and length >= 68:
            fields.append(Field("A-ASSOCIATE fixed fields", offset + 6, 68, [pdu_length]))
            _items(stream, offset + 74, end, [pdu_length], fields)
        elif pdu_type == 4:
            item = offset + 6
            while item + 6 <= end:
                item_length = struct.unpack_from(">I", stream, item)[0]
                if item_length < 2 or item + 4 + item_length > end:
                    break
                own = (item, 4, ">")
                fields.append(Field("PDV", item + 6, item_length - 2, [pdu_length], own))
                fields.append(Field("PDV header", item, 6, [pdu_length]))
                control = stream[item + 5]
                kind = "command" if control & 1 else "data set"
                _elements(stream, item + 6, item + 4 + item_length, [pdu_length, own], kind, fields, None)
                item += 4 + item_length
        offset = end
    return fields


# -- structure-aware mutations ----------------------------------------------------------------


def _put(stream: bytearray, where: tuple[int, int, str], value: int) -> None:
    offset, size, endian = where
    code = {1: "B", 2: "H", 4: "I"}[size]
    stream[offset:offset + size] = struct.pack(endian + code, value % (1 << (8 * size)))


def _get(stream: bytes, where: tuple[int, int, str]) -> int:
    offset, size, endian = where
    return struct.unpack_from(endian + {1: "B", 2: "H", 4: "I"}[size], stream, offset)[0]


def _resize(stream: bytearray, target: Field, at: int, delta: int, rng: random.Random,
            fix: bool = True) -> tuple[int, int]:
    """Insert (delta > 0) or delete bytes at ``at`` inside ``target``; fix its own and enclosing
    lengths. Returns (position, delta) for the sequence-number shift."""
    if delta < 0:
        delta = -min(-delta, target.start + target.size - at)
        del stream[at:at - delta]
    else:
        filler = bytes(rng.getrandbits(8) for _ in range(min(delta, 64)))
        stream[at:at] = (filler * (delta // max(len(filler), 1) + 1))[:delta]
    if fix:
        for length in ([target.own_length] if target.own_length else []) + target.lengths:
            if length[0] < at:  # a length field before the change (all of them, by construction)
                _put(stream, length, _get(stream, length) + delta)
    return at, delta


def mutate_structure(pcap: Pcap, rng: random.Random) -> tuple[Pcap, str, str] | None:
    directions = list(segments_of(pcap).values())
    if not directions:
        return None
    direction = rng.choice(directions)
    stream = direction.stream
    fields = fields_of(bytes(stream))
    if not fields:
        return None
    target = rng.choice(fields)
    choice = rng.random()
    shift: tuple[int, int] | None = None
    if choice < 0.35 and target.size:
        # A value set: a boundary number, or random bytes, in a 1/2/4-byte slot of it.
        size = rng.choice([s for s in (1, 2, 4) if s <= target.size])
        at = target.start + rng.randrange(0, target.size - size + 1)
        value = rng.choice(INTERESTING_32) if rng.random() < 0.7 else rng.getrandbits(32)
        _put(stream, (at, size, rng.choice("<>")), value)
        what = f"{target.kind}: {size} bytes at stream offset {at} set to {value:#x}"
        operation = "value set"
    elif choice < 0.65:
        delta = rng.choice(RESIZES)
        at = target.start + (rng.randrange(0, target.size + 1) if target.size else 0)
        shift = _resize(stream, target, at, delta, rng)
        what = f"{target.kind}: resized by {shift[1]} at stream offset {at}, lengths fixed"
        operation = "resized"
    elif choice < 0.8 and target.size:
        # Duplicated (a whole element, PDV or PDU with its header), enclosing lengths fixed.
        header = 8 if "element" in target.kind else 6 if target.kind in ("PDV",) or target.kind.startswith(
            "PDU 0x") else 4 if target.kind.startswith("item") else 0
        begin = target.start - header
        copy = bytes(stream[begin:target.start + target.size])
        if len(copy) > 200_000:
            return None
        stream[target.start + target.size:target.start + target.size] = copy
        for length in target.lengths:
            _put(stream, length, _get(stream, length) + len(copy))
        shift = (target.start + target.size, len(copy))
        what = f"{target.kind}: duplicated ({len(copy)} bytes) at stream offset {begin}"
        operation = "duplicated"
    elif target.own_length is not None:
        value = (rng.choice(INTERESTING_32) if rng.random() < 0.6
                 else _get(stream, target.own_length) + rng.choice((-3, -2, -1, 1, 2, 3)))
        _put(stream, target.own_length, value)
        what = f"{target.kind}: its length field alone set to {value % (1 << 32):#x}"
        operation = "length alone"
    else:
        return None
    return resegment(pcap, direction, shift), what, f"{operation}, {target.kind}"


def resegment(pcap: Pcap, direction: Direction, shift: tuple[int, int] | None) -> Pcap:
    """The capture with ``direction``'s stream put back into its segments (same sizes, the last
    one taking the difference), sequence numbers, the other way's acknowledgements and the IP and
    record lengths fixed."""
    records = list(pcap.records)
    stream = bytes(direction.stream)
    at, delta = shift if shift else (0, 0)
    payload_segments = [i for i, s in enumerate(direction.segments) if s.payload]
    last = payload_segments[-1]
    isn = direction.isn or 0

    def moved(offset: int) -> int:
        return offset + delta if offset > at else offset

    for index, segment in enumerate(direction.segments):
        start = direction.offsets[index]
        if not segment.payload:
            new_start, new_payload = moved(start), b""
        else:
            end = start + len(segment.payload)
            new_start = moved(start) if start != 0 else 0
            new_end = len(stream) if index == last else moved(end)
            new_start = min(new_start, len(stream))
            new_payload = stream[new_start:max(new_start, new_end)]
            if len(new_payload) > 65000:  # one IPv4 packet at most: the rest goes in the last segment
                new_payload = new_payload[:65000]
        records[segment.record] = _rebuilt(pcap.records[segment.record], segment, new_payload,
                                           (isn + new_start) & 0xFFFFFFFF, segment.ack)
    back = (direction.key[2], direction.key[3], direction.key[0], direction.key[1])
    other = segments_of(Pcap(pcap.endian, pcap.head, pcap.records, pcap.linktype)).get(back)
    if other is not None and delta:
        for segment in other.segments:
            if not segment.flags & 0x10:
                continue
            acked = (segment.ack - isn) & 0xFFFFFFFF
            if acked < 1 << 31:
                record = records[segment.record]
                segment_now = segments_of_record(record)
                if segment_now is not None:
                    records[segment.record] = _rebuilt(record, segment_now, segment_now.payload,
                                                       segment_now.seq, (isn + moved(acked)) & 0xFFFFFFFF)
    return Pcap(pcap.endian, pcap.head, records, pcap.linktype)


def segments_of_record(record: Record) -> Segment | None:
    frame = record.data
    if len(frame) < 54 or frame[12:14] != b"\x08\x00":
        return None
    ip = 14
    tcp = ip + (frame[ip] & 0x0F) * 4
    offset = (frame[tcp + 12] >> 4) * 4
    total = struct.unpack_from(">H", frame, ip + 2)[0]
    seq, ack = struct.unpack_from(">II", frame, tcp + 4)
    payload = frame[tcp + offset:ip + total]
    return Segment(0, frame[:tcp + offset], ip, tcp, seq, ack, frame[tcp + 13], payload, ())


def _rebuilt(record: Record, segment: Segment, payload: bytes, seq: int, ack: int) -> Record:
    head = bytearray(segment.head)
    struct.pack_into(">H", head, segment.ip + 2, len(head) - segment.ip + len(payload))
    struct.pack_into(">II", head, segment.tcp + 4, seq, ack)
    data = bytes(head) + payload
    return Record(record.time, data, len(data))


# -- blind mutations ------------------------------------------------------------------------


def mutate_blind(raw: bytes, pcap: Pcap | None, rng: random.Random) -> tuple[bytes, str, str]:
    kinds = ["flip", "cut", "insert", "delete", "gzip"]
    if pcap is not None and len(pcap.records) > 1:
        kinds += ["drop", "duplicate", "swap", "time"]
    kind = rng.choice(kinds)
    if kind == "flip":
        data = bytearray(raw)
        positions = [rng.randrange(24, len(data)) for _ in range(rng.randrange(1, 9))]
        for position in positions:
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data), f"bits flipped at {positions}", kind
    if kind == "cut":
        at = rng.randrange(1, len(raw))
        return raw[:at], f"cut at byte {at} of {len(raw)}", kind
    if kind == "insert":
        at, size = rng.randrange(24, len(raw)), rng.choice((1, 2, 3, 4, 16, 1000))
        inserted = bytes(rng.getrandbits(8) for _ in range(size))
        return raw[:at] + inserted + raw[at:], f"{size} bytes inserted at {at}", kind
    if kind == "delete":
        at, size = rng.randrange(24, len(raw)), rng.choice((1, 2, 3, 4, 16, 1000))
        return raw[:at] + raw[at + size:], f"{size} bytes deleted at {at}", kind
    if kind == "gzip":
        return gzip.compress(raw, 1), "gzip-wrapped", kind
    assert pcap is not None
    records = list(pcap.records)
    index = rng.randrange(len(records))
    if kind == "drop":
        del records[index]
        what = f"record {index + 1} dropped"
    elif kind == "duplicate":
        records.insert(index + rng.randrange(1, 4), records[index])
        what = f"record {index + 1} duplicated"
    elif kind == "swap":
        other = rng.randrange(len(records))
        records[index], records[other] = records[other], records[index]
        what = f"records {index + 1} and {other + 1} swapped"
    else:
        jump = rng.choice((-3600, -1, 1, 3600, 1 << 30))
        sec, frac = records[index].time
        records[index] = Record(((sec + jump) % (1 << 32), frac), records[index].data, records[index].wirelen)
        what = f"record {index + 1} stamped {jump:+} s"
    return Pcap(pcap.endian, pcap.head, records, pcap.linktype).to_bytes(), what, kind


# -- the checks -------------------------------------------------------------------------------

_KINDS = {"int": int, "float": (int, float), "str": str, "bool": bool}


class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout


def tables_of(path: str, fast_lane: bool) -> dict[str, list[dict]]:
    analysis = trace_analyzer.analyze(path, fast_lane=fast_lane)
    out = {}
    for name in TABLES:
        rows = analysis.rows(name)
        kinds = COLUMNS[name]
        for row in rows:
            for column, value in row.items():
                if value is None:
                    continue
                kind = kinds[column]
                if not isinstance(value, _KINDS[kind]) or (kind == "int" and isinstance(value, bool)):
                    raise TypeError(f"{name}.{column} holds {type(value).__name__} {value!r:.80}, not {kind}")
        out[name] = rows
    json.dumps(out)  # every value can be written as JSON
    return out


def check_case(raw: bytes, workdir: Path, case_seconds: int) -> tuple[str | None, float]:
    """None when the mutant passes, else what went wrong; and the seconds it took."""
    path = workdir / "case.pcap"
    path.write_bytes(raw)
    started = time.perf_counter()
    signal.alarm(case_seconds)
    try:
        with_lane = tables_of(str(path), True)
        without = tables_of(str(path), False)
    except CaseTimeout:
        return f"over {case_seconds} s", time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - any exception is the finding
        import traceback

        return f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", time.perf_counter() - started
    finally:
        signal.alarm(0)
    elapsed = time.perf_counter() - started
    for name in TABLES:
        if with_lane[name] != without[name]:
            first = next((i for i, (a, b) in enumerate(zip(with_lane[name], without[name], strict=False))
                          if a != b),
                         min(len(with_lane[name]), len(without[name])))
            return f"table {name} differs with and without the fast lane (row {first})", elapsed
    return None, elapsed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seeds_from(paths: list[str]) -> list[tuple[str, bytes]]:
    found = []
    for given in paths:
        path = Path(given)
        for item in sorted(path.iterdir()) if path.is_dir() else [path]:
            if item.suffix in (".pcap", ".pcapng") or item.name.endswith(".pcap.gz"):
                raw = item.read_bytes()
                if item.name.endswith(".gz"):
                    raw = gzip.decompress(raw)
                found.append((item.name, raw))
    return found


def hostile_seeds() -> list[tuple[str, bytes]]:
    """Small versions of issue 15's hostile captures (tests/hostile_inputs.py), and a retrieve
    whose data sets the fast lane takes: seeds that reach the limits and the lane."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import hostile_inputs as h

    return [("hostile: message id length 5", h.bad_message_id_length(5)),
            ("hostile: deflated identifier", h.deflate_bomb(256 * 1024)),
            ("hostile: empty commands", h.empty_command_flood(3000)),
            ("hostile: orphan data", h.orphan_data_flood(3000, reserved=True)),
            ("hostile: time backwards", h.backwards_time(3600.0, 0.5)),
            ("hostile: mathtext", h.mathtext_strings()),
            ("hostile: retrieve of 6 x 64 KiB", h.large_retrieve(6, 64 * 1024))]


def run(seeds: list[tuple[str, bytes]], cases: int | None, seconds: float | None, seed: int,
        out: Path | None, case_seconds: int = 30, max_rss_mb: float = 1024, quiet: bool = False) -> dict:
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _on_alarm)
    parsed = [(name, raw, read_pcap(raw)) for name, raw in seeds]
    kinds: Counter = Counter()
    failures = []
    slowest = (0.0, "")
    started = time.perf_counter()
    done = 0
    with tempfile.TemporaryDirectory(prefix="ta-fuzz-") as tmp:
        workdir = Path(tmp)
        while (cases is None or done < cases) and (seconds is None
                                                    or time.perf_counter() - started < seconds):
            name, raw, pcap = parsed[rng.randrange(len(parsed))]
            mutant = None
            if pcap is not None and rng.random() < 0.7:
                made = mutate_structure(pcap, rng)
                if made is not None:
                    mutant = (made[0].to_bytes(), made[1], f"structure: {made[2]}")
            if mutant is None:
                data, what, kind = mutate_blind(raw, pcap, rng)
                mutant = (data, what, f"blind: {kind}")
            data, what, kind = mutant
            kinds[kind] += 1
            problem, elapsed = check_case(data, workdir, case_seconds)
            done += 1
            if elapsed > slowest[0]:
                slowest = (elapsed, f"{name}, {what}")
            rss = peak_rss_mb()
            if problem is None and rss > max_rss_mb:
                problem = f"peak RSS {rss:.0f} MB over {max_rss_mb:.0f} MB"
            if problem is not None:
                failures.append((name, what, problem))
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    stem = out / f"failure_{len(failures):04d}"
                    stem.with_suffix(".pcap").write_bytes(data)
                    stem.with_suffix(".txt").write_text(
                        f"seed capture: {name}\nmutation: {what}\n{problem}\n")
                if not quiet:
                    print(f"FAIL {name}: {what}: {problem.splitlines()[0]}", flush=True)
    wall = time.perf_counter() - started
    return {"cases": done, "seconds": wall, "cases_per_second": done / wall if wall else 0.0,
            "failures": failures, "kinds": kinds, "slowest": slowest, "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", default=[str(SAMPLES)], help="seed captures or folders of them")
    parser.add_argument("--no-hostile", action="store_false", dest="hostile",
                        help="leave out the seeds built by tests/hostile_inputs.py")
    parser.add_argument("--cases", type=int, help="stop after this many cases")
    parser.add_argument("--minutes", type=float,
                        help="stop after this long (default: 1 minute without --cases)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("TA_FUZZ_SEED", "15")))
    parser.add_argument("--out", type=Path, help="folder for the failing mutants")
    parser.add_argument("--case-seconds", type=int, default=30)
    parser.add_argument("--max-rss-mb", type=float, default=1024)
    args = parser.parse_args(argv)
    seconds = args.minutes * 60 if args.minutes else (None if args.cases else 60.0)
    seeds = seeds_from(args.seeds) + (hostile_seeds() if args.hostile else [])
    result = run(seeds, args.cases, seconds, args.seed, args.out, args.case_seconds,
                 args.max_rss_mb)
    print(f"{result['cases']} cases in {result['seconds']:.1f} s ({result['cases_per_second']:.1f}/s), "
          f"seed {args.seed}; {len(result['failures'])} failed; peak RSS {result['peak_rss_mb']:.0f} MB; "
          f"slowest case {result['slowest'][0]:.2f} s ({result['slowest'][1]})")
    for kind, count in sorted(result["kinds"].items(), key=lambda item: -item[1]):
        print(f"  {count:6d}  {kind}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
