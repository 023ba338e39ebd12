"""pcapng read by trace_analyzer.capture's own block reader.

scapy's RawPcapNgReader serves as an independent oracle on the sample
captures and on pcaps converted here (both byte orders, micro- and
nanosecond and binary timestamp units). What scapy does not do (several
sections, interface time offsets, damage) is checked against what the pcapng
specification says the file holds. The writer below is also used by
tests/test_lane.py to run the fast lane over pcapng.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.utils import RawPcapNgReader

from trace_analyzer import capture
from trace_analyzer.analysis import analyze_capture
from trace_analyzer.capture import CaptureError, iter_records

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
NG_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.pcapng"))
PCAP_SAMPLES = ["dcmtk_to_dcmtk_success.pcap", "linux_sll.pcap", "null_loopback.pcap", "raw_ip.pcap",
                "ipv6_success.pcap", "ethernet_vlan.pcap"]

SHB, IDB, OPB, SPB, NRB, ISB, EPB, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 10


# -- a pcapng writer, from the specification ---------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(kind: int, body: bytes, endian: str = "<") -> bytes:
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack(endian + "II", kind, total) + body + struct.pack(endian + "I", total)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad(value)


def shb(endian: str = "<") -> bytes:
    return block(SHB, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                 + option(1, b"written by test_pcapng", endian) + option(0, b"", endian), endian)


def idb(linktype: int, endian: str = "<", snaplen: int = 0, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    options = option(2, b"eth0", endian)  # if_name, to be passed over
    if tsresol is not None:
        options += option(9, bytes([tsresol]), endian)
    if tsoffset is not None:
        options += option(14, struct.pack(endian + "q", tsoffset), endian)
    return block(IDB, struct.pack(endian + "HHI", linktype, 0, snaplen) + options + option(0, b"", endian),
                 endian)


def epb(interface: int, stamp: int, data: bytes, endian: str = "<", wirelen: int | None = None,
        options: bytes = b"") -> bytes:
    wirelen = len(data) if wirelen is None else wirelen
    head = struct.pack(endian + "IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(data), wirelen)
    return block(EPB, head + _pad(data) + options, endian)


def opb(interface: int, stamp: int, data: bytes, endian: str = "<") -> bytes:
    head = struct.pack(endian + "HHIIII", interface, 0, stamp >> 32, stamp & 0xFFFFFFFF, len(data), len(data))
    return block(OPB, head + data, endian)


def spb(data: bytes, endian: str = "<", wirelen: int | None = None) -> bytes:
    return block(SPB, struct.pack(endian + "I", len(data) if wirelen is None else wirelen) + data, endian)


def isb(endian: str = "<") -> bytes:
    return block(ISB, struct.pack(endian + "III", 0, 0, 0) + option(0, b"", endian), endian)


def nrb(endian: str = "<") -> bytes:
    record = struct.pack(endian + "HH", 1, 4 + 10) + bytes([192, 0, 2, 1]) + b"host.test\0"
    return block(NRB, _pad(record) + struct.pack(endian + "HH", 0, 0), endian)


def custom(endian: str = "<") -> bytes:
    return block(0x40000BAD, struct.pack(endian + "I", 32473) + b"opaque to readers", endian)


def pcap_records(raw: bytes) -> tuple[int, int, list[tuple[int, int, bytes, int]]]:
    """(linktype, units per second, [(seconds, fraction, data, wirelen)]) of a pcap."""
    endian = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    units = 10**9 if raw[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 10**6
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0x0FFFFFFF
    records, pos = [], 24
    while pos + 16 <= len(raw):
        sec, fraction, caplen, wirelen = struct.unpack_from(endian + "IIII", raw, pos)
        records.append((sec, fraction, raw[pos + 16:pos + 16 + caplen], wirelen))
        pos += 16 + caplen
    return linktype, units, records


def to_pcapng(raw: bytes, endian: str = "<", tsresol: int | None = None, tsoffset: int = 0,
              options: bool = False) -> bytes:
    """The pcap ``raw`` as a pcapng: one section, one interface, an EPB per record.

    ``tsresol``: the interface's if_tsresol (None: microseconds); ``tsoffset``: its
    if_tsoffset; ``options``: each EPB carries flags and a comment."""
    linktype, units, records = pcap_records(raw)
    to = 10**6 if tsresol is None else (1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol)
    out = [shb(endian), idb(linktype, endian, 262144, tsresol, tsoffset or None)]
    extra = option(2, struct.pack(endian + "I", 1), endian) + option(1, b"a comment", endian) \
        + option(0, b"", endian) if options else b""
    for sec, fraction, data, wirelen in records:
        stamp = (sec - tsoffset) * to + fraction * to // units
        out.append(epb(0, stamp, data, endian, wirelen, extra))
    return b"".join(out)


# -- reading ------------------------------------------------------------------------------------


def ours(path, problems: list | None = None) -> list[tuple]:
    def on_problem(frame: int, text: str) -> None:
        assert problems is not None, text
        problems.append((frame, text))

    return [(frame, time, linktype, bytes(data), wirelen)
            for frame, time, linktype, data, wirelen in iter_records(str(path), on_problem)]


def scapy_records(path) -> list[tuple]:
    out = []
    with RawPcapNgReader(str(path)) as reader:
        while True:
            try:
                data, meta = reader._read_packet(size=1 << 31)
            except EOFError:
                break
            time = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
            out.append((len(out) + 1, time, meta.linktype, data, meta.wirelen))
    return out


def assert_same(mine: list[tuple], theirs: list[tuple]) -> None:
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert (a[0], a[2], a[3], a[4]) == (b[0], b[2], b[3], b[4])
        assert a[1] == pytest.approx(b[1], abs=1e-6)


@pytest.fixture(params=["positional", "read"])
def mapping(request, monkeypatch):
    """Every reading test runs on windows read by position and on block reads."""
    if request.param == "read":
        monkeypatch.setattr(capture, "READ_BY_POSITION", False)
    return request.param


@pytest.mark.parametrize("name", NG_SAMPLES)
def test_samples_match_scapy(name, mapping):
    path = SAMPLES / name
    assert_same(ours(path), scapy_records(path))


VARIANTS = {"little": ("<", None), "big": (">", None), "nano": ("<", 9), "big-nano": (">", 9),
            "binary": ("<", 0x80 | 20)}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", PCAP_SAMPLES)
def test_converted_pcaps_match_scapy_and_the_pcap(name, variant, tmp_path, mapping):
    endian, tsresol = VARIANTS[variant]
    source = SAMPLES / name
    path = tmp_path / "converted.pcapng"
    path.write_bytes(to_pcapng(source.read_bytes(), endian, tsresol, options=variant == "big"))
    mine = ours(path)
    assert_same(mine, scapy_records(path))
    original = ours(source)
    if tsresol != 0x80 | 20:  # powers of ten: the very same times as the pcap's
        assert mine == original
    else:
        assert_same(mine, original)


def test_interface_time_offset(tmp_path, mapping):
    source = SAMPLES / "dcmtk_to_dcmtk_success.pcap"
    path = tmp_path / "offset.pcapng"
    path.write_bytes(to_pcapng(source.read_bytes(), tsresol=9, tsoffset=1_600_000_000))
    mine, original = ours(path), ours(source)
    assert [r[0:1] + r[2:] for r in mine] == [r[0:1] + r[2:] for r in original]
    assert [r[1] for r in mine] == pytest.approx([r[1] for r in original], abs=1e-6)
    assert mine[0][1] > 1_600_000_000  # the offset was applied


def test_sections_blocks_and_packet_kinds(tmp_path, mapping):
    """Two sections (the second big-endian, its interfaces numbered anew), blocks that are
    not packets between the packets, and every packet block kind."""
    a, b, c, d, e = (bytes([n]) * (20 + n) for n in range(5))
    raw = (shb("<") + nrb("<") + idb(1, "<") + idb(101, "<", tsresol=3)
           + epb(0, 1_700_000_000_250_000, a, "<") + isb("<") + custom("<")
           + epb(1, 1_700_000_001_500, b, "<", wirelen=1000)
           + block(DSB, b"secrets", "<")
           + shb(">") + idb(113, ">", snaplen=22, tsresol=9) + custom(">")
           + epb(0, 1_700_000_002_000_000_001, c, ">")
           + spb(d, ">", wirelen=30) + opb(0, 1_700_000_003_000_000_000, e, ">") + isb(">"))
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(raw)
    records = ours(path)
    assert [r[0] for r in records] == [1, 2, 3, 4, 5]
    assert [r[2] for r in records] == [1, 101, 113, 113, 113]
    assert [r[3] for r in records] == [a, b, c, d[:22], e]
    assert [r[4] for r in records] == [len(a), 1000, len(c), 30, len(e)]
    assert [r[1] for r in records] == pytest.approx(
        [1_700_000_000.25, 1_700_000_001.5, 1_700_000_002.000000001, 1_700_000_002.000000001,
         1_700_000_003.0], abs=1e-7)


def test_simple_packet_block_lengths(tmp_path, mapping):
    data = bytes(range(40))
    raw = shb() + idb(1, snaplen=0) + spb(data, wirelen=1500) + spb(data[:30], wirelen=20)
    path = tmp_path / "spb.pcapng"
    path.write_bytes(raw)
    first, second = ours(path)
    # No snaplen: the block's own length bounds the data (its padding is not data).
    assert (first[3], first[4], first[1]) == (data, 1500, 0.0)
    assert (second[3], second[4]) == (data[:20], 20)


def test_unknown_interface(tmp_path, mapping):
    source = SAMPLES / "dcmtk_to_dcmtk_success.pcap"
    linktype, units, records = pcap_records(source.read_bytes())
    blocks = [shb(), idb(linktype)]
    for index, (sec, fraction, data, wirelen) in enumerate(records):
        blocks.append(epb(7 if index == 3 else 0, sec * units + fraction, data, wirelen=wirelen))
    path = tmp_path / "unknown.pcapng"
    path.write_bytes(b"".join(blocks))
    mine = ours(path)
    assert len(mine) == len(records)
    assert mine[3][2] == -1 and mine[3][3] == records[3][2]
    assert {r[2] for i, r in enumerate(mine) if i != 3} == {linktype}
    summary = analyze_capture(str(path)).summary
    assert summary.frames == len(records) and sum(summary.skipped_frames.values()) == 1


def _two_packets() -> tuple[bytes, bytes, bytes]:
    head = shb() + idb(1)
    return head, epb(0, 10**6, b"a" * 60), epb(0, 2 * 10**6, b"b" * 60)


@pytest.mark.parametrize("damage", ["short", "odd", "huge", "caplen", "small-epb", "small-idb",
                                    "byte-order"])
def test_damaged_block_stops_with_a_report(damage, tmp_path, mapping):
    head, first, second = _two_packets()
    broken = bytearray(second)
    if damage == "short":
        struct.pack_into("<I", broken, 4, 8)
    elif damage == "odd":
        struct.pack_into("<I", broken, 4, len(second) + 2)
    elif damage == "huge":
        struct.pack_into("<I", broken, 4, 0xFFFFFFF0)
    elif damage == "caplen":
        struct.pack_into("<I", broken, 20, len(second) - 31)
    elif damage == "small-epb":
        broken = bytearray(block(EPB, b"\0" * 16))
    elif damage == "small-idb":
        broken = bytearray(block(IDB, b"\0" * 4))
    else:
        broken = bytearray(shb())
        broken[8:12] = b"\0\0\0\0"
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(head + first + bytes(broken) + first)
    problems: list = []
    records = ours(path, problems)
    assert [r[3] for r in records] == [b"a" * 60]
    assert len(problems) == 1
    assert problems[0][0] == 2
    assert "capture record 2 is unreadable" in problems[0][1] and "skipped" in problems[0][1]


def test_cut_anywhere_keeps_what_came_before(tmp_path, mapping):
    head, first, second = _two_packets()
    raw = head + first + isb() + second
    for cut in range(len(head + first) + 1, len(raw)):
        if cut == len(raw) - len(second):
            continue  # between two blocks: a clean end
        path = tmp_path / f"cut{cut}.pcapng"
        path.write_bytes(raw[:cut])
        problems: list = []
        records = ours(path, problems)
        assert [r[3] for r in records] == [b"a" * 60], cut
        assert problems == [(2, "capture ends inside record 2: the file is truncated")], cut


def test_big_frames_across_read_blocks(tmp_path, mapping):
    big = bytes(range(256)) * 12_000  # beyond the 1 MiB read block
    raw = shb() + idb(0) + epb(0, 5, b"\2\0\0\0" + big) + epb(0, 6, b"after")
    path = tmp_path / "big.pcapng"
    path.write_bytes(raw)
    records = ours(path)
    assert [r[3] for r in records] == [b"\2\0\0\0" + big, b"after"]


def test_gzip(tmp_path):
    plain = SAMPLES / NG_SAMPLES[0]
    path = tmp_path / "zipped.pcapng.gz"
    packed = gzip.compress(plain.read_bytes())
    path.write_bytes(packed)
    expected = ours(plain)
    assert ours(path) == expected
    # Cut short: the records inflated before the cut are kept and the cut is reported.
    path.write_bytes(packed[:len(packed) * 2 // 3])
    problems: list = []
    records = ours(path, problems)
    assert 0 < len(records) < len(expected)
    assert records == expected[:len(records)]
    assert problems[-1] == (len(records) + 1, f"the gzip-compressed capture is cut short after record "
                                              f"{len(records)}: the file is truncated")


@pytest.mark.parametrize("cut", [4, 11, 20, 40])
def test_section_header_cut_is_a_header_error(cut, tmp_path):
    path = tmp_path / "cut.pcapng"
    path.write_bytes((SAMPLES / NG_SAMPLES[0]).read_bytes()[:cut])
    with pytest.raises(CaptureError, match=r"cut\.pcapng: truncated or damaged pcapng header"):
        ours(path)


def test_bad_byte_order_magic_is_a_header_error(tmp_path):
    raw = bytearray((SAMPLES / NG_SAMPLES[0]).read_bytes())
    raw[8:12] = b"\x01\x02\x03\x04"
    path = tmp_path / "magic.pcapng"
    path.write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match="truncated or damaged pcapng header"):
        ours(path)


def test_scapy_is_not_imported():
    program = (
        "import sys\n"
        "from trace_analyzer.analysis import analyze_capture\n"
        f"analyze_capture({str(SAMPLES / NG_SAMPLES[0])!r})\n"
        f"analyze_capture({str(SAMPLES / 'retrieve.pcap.gz')!r})\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'scapy'))\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]"
