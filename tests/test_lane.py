"""The fast lane (lane.py) changes how fast, never what comes out.

Every capture here is analysed twice, with the lane and without it (every
record down the layer-by-layer path), and every table must come out the same,
frame numbers included. The generated captures also check that the lane did
take the bulk of the records, so that the comparison is not vacuous.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import pytest
from fuzz_support import EXAMPLES, CaptureFile, Unit, flip, split_capture

from trace_analyzer.analysis import Analysis, analyze_capture

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.name for p in (ROOT / "sample_pcaps").iterdir() if p.name != "manifest.json"
                 and p.suffix in (".pcap", ".pcapng", ".gz"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from make_capture import make  # noqa: E402


def _both(path: Path) -> tuple[dict, dict, int, int]:
    """Tables with and without the lane, the records the lane took, and all records."""
    fast = analyze_capture(str(path))
    slow = analyze_capture(str(path), fast_lane=False)
    assert slow.lane_records == 0
    return (Analysis([fast], []).to_dict(), Analysis([slow], []).to_dict(), fast.lane_records,
            fast.summary.frames)


def _assert_same(path: Path) -> int:
    fast, slow, taken, frames = _both(path)
    for table in slow:
        assert fast[table] == slow[table], f"{path.name}: table {table} differs with the fast lane"
    assert frames == slow["captures"][0]["frames"]
    return taken


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_same_with_and_without_lane(name):
    _assert_same(ROOT / "sample_pcaps" / name)


# (instances, size, mss, max PDU, share of records the lane must take): Ethernet MTU,
# loopback segments holding several PDUs, small PDUs (the lane starts after the 8 KiB head),
# odd sizes, PDUs larger than segments. The lane never takes the records of a data set's
# first PDU (its head is kept), nor one that ends the run; with 1 KiB PDUs in 64 KiB
# segments every segment holds a data set's first or last PDU, so there it takes none.
SHAPES = [(6, 200_000, 1448, 16384, 0.8), (4, 300_000, 65495, 16384, 0.2),
          (5, 100_000, 1448, 4096, 0.7), (3, 150_001, 1000, 65536, 0.45),
          (3, 120_000, 65495, 1024, 0.0), (4, 70_000, 536, 16384, 0.65)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
def test_generated_bulk_goes_by_the_lane(shape, tmp_path):
    instances, size, mss, max_pdu, share = shape
    path = tmp_path / "bulk.pcap"
    packets = make(str(path), instances, size, mss, max_pdu, 2)
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    assert frames == packets
    assert taken >= share * packets, (taken, packets)
    # And the counting is right: every sub-operation's data set has the size written.
    stores = [row for row in fast["messages"] if row["command"] == "C-STORE-RQ"]
    assert len(stores) == instances // 2 * 2
    # make_capture pads the Pixel Data to even length: a data set of an odd size is one short.
    assert {row["dataset_bytes"] for row in stores} == {size - size % 2}


def _interleave(raw: bytes, rng: random.Random, acks: bool) -> bytes:
    """Two associations' records interleaved in random runs, each connection's order kept;
    with ``acks``, a bare ACK back after some data records."""
    capture = split_capture(raw)
    by_port: dict[bytes, list[Unit]] = {}
    for unit in capture.units:
        frame = unit.raw[16:]
        ports = tuple(sorted((frame[34:36], frame[36:38])))
        by_port.setdefault(b"".join(ports), []).append(unit)
        if acks and len(frame) > 54 and rng.random() < 0.2:
            by_port[b"".join(ports)].append(_ack_for(unit))
    queues = list(by_port.values())
    out: list[Unit] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        run = rng.randrange(1, 12)
        out.extend(queue[:run])
        del queue[:run]
    return CaptureFile("pcap", capture.head, out, True).to_bytes()


def _ack_for(unit: Unit) -> Unit:
    """A bare ACK from the receiver of this data record."""
    header, frame = unit.raw[:16], unit.raw[16:]
    seq, ack = struct.unpack_from(">II", frame, 38)
    payload = len(frame) - 54
    ip = bytearray(frame[14:34])
    ip[2:4] = (40).to_bytes(2, "big")
    ip[12:16], ip[16:20] = frame[30:34], frame[26:30]
    tcp = (frame[36:38] + frame[34:36] + struct.pack(">II", ack, seq + payload)
           + b"\x50\x10\xff\xff\x00\x00\x00\x00")
    data = frame[6:12] + frame[0:6] + frame[12:14] + bytes(ip) + tcp
    sec, usec = struct.unpack_from("<II", header)
    return Unit(struct.pack("<IIII", sec, usec, len(data), len(data)) + data, True, 16)


@pytest.mark.parametrize("acks", [False, True], ids=["data-only", "with-acks"])
def test_interleaved_associations(acks, tmp_path):
    source = tmp_path / "two.pcap"
    make(str(source), 8, 90_000, 1448, 16384, 2)
    rng = random.Random(f"interleave:{acks}")
    for round_ in range(3):
        path = tmp_path / f"mixed{round_}.pcap"
        path.write_bytes(_interleave(source.read_bytes(), rng, acks))
        taken = _assert_same(path)
        assert taken > 0, "the lane never ran on interleaved associations"


KINDS = ["drop", "duplicate", "reorder", "flip", "cut", "retransmit-into-run"]


@pytest.mark.parametrize("kind", KINDS)
def test_damage_inside_a_run(kind, tmp_path):
    """Damage where the lane runs: it must hand over to the ordinary path exactly."""
    source = tmp_path / "run.pcap"
    make(str(source), 3, 120_000, 1448, 16384, 1)
    raw = source.read_bytes()
    capture = split_capture(raw)
    rng = random.Random(f"lane:{kind}")
    count = len(capture.units)
    for example in range(max(4, EXAMPLES // 2)):
        units = list(capture.units)
        index = rng.randrange(10, count - 5)
        if kind == "drop":
            del units[index]
        elif kind == "duplicate":
            units.insert(index + rng.randrange(1, 4), units[index])
        elif kind == "reorder":
            units.insert(index + rng.randrange(2, 6), units.pop(index))
        elif kind == "flip":
            # In the TCP/IP headers or the first bytes of the payload, where PDU headers sit.
            units[index] = flip(units[index], [rng.randrange(14, 120)], [rng.randrange(1, 256)])
        elif kind == "retransmit-into-run":
            units.insert(index + 20, units[index - rng.randrange(0, 8)])
        else:
            cut = sum(len(u.raw) for u in units[:index]) + rng.randrange(1, len(units[index].raw))
            path = tmp_path / f"{kind}{example}.pcap"
            path.write_bytes((capture.head + b"".join(u.raw for u in units))[:cut])
            _assert_same(path)
            continue
        path = tmp_path / f"{kind}{example}.pcap"
        path.write_bytes(CaptureFile("pcap", capture.head, units, True).to_bytes())
        _assert_same(path)
