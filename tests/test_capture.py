"""read_capture: pcap, pcapng, gzip, big frames, damaged and unreadable files."""

from __future__ import annotations

import gzip
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, wrpcap

from trace_analyzer.capture import CaptureError, read_capture
from trace_analyzer.packets import decode_tcp


def frames(count: int = 3) -> list:
    out = []
    for i in range(count):
        packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src="192.0.2.1", dst="192.0.2.2")
                  / TCP(sport=40000, dport=104, seq=1000 + i, flags="PA") / Raw(bytes([i]) * (10 + i)))
        packet.time = 1700000000 + i + 0.25
        out.append(packet)
    return out


def pcap_bytes(records: list[tuple[int, int, bytes]], nano: bool = False, linktype: int = 1,
               wirelen: int | None = None) -> bytes:
    """A little-endian pcap written by hand: (sec, fraction, data) records."""
    out = struct.pack("<IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for sec, fraction, data in records:
        out += struct.pack("<IIII", sec, fraction, len(data), wirelen or len(data)) + data
    return out


def collect(path, problems: list | None = None) -> list:
    def on_problem(frame: int, text: str) -> None:
        assert problems is not None, text
        problems.append((frame, text))

    return list(read_capture(str(path), on_problem))


def test_pcap_written_by_scapy(tmp_path):
    path = tmp_path / "three.pcap"
    packets = frames()
    wrpcap(str(path), packets)
    records = collect(path)
    assert [r.frame for r in records] == [1, 2, 3]
    assert [r.data for r in records] == [bytes(p) for p in packets]
    assert all(r.linktype == 1 for r in records)
    assert [r.time for r in records] == pytest.approx([1700000000.25, 1700000001.25, 1700000002.25])
    assert [r.wirelen for r in records] == [len(bytes(p)) for p in packets]
    assert decode_tcp(records[2].linktype, records[2].data).payload == b"\x02" * 12


def test_pcapng(tmp_path):
    path = tmp_path / "three.pcapng"
    packets = frames()
    writer = PcapNgWriter(str(path))
    for packet in packets:
        writer.write(packet)
    writer.close()
    records = collect(path)
    assert [r.data for r in records] == [bytes(p) for p in packets]
    assert [r.linktype for r in records] == [1, 1, 1]
    assert [r.time for r in records] == pytest.approx([1700000000.25, 1700000001.25, 1700000002.25])


def test_gzip_pcap(tmp_path):
    plain = tmp_path / "plain.pcap"
    wrpcap(str(plain), frames())
    path = tmp_path / "zipped.pcap.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    assert [r.data for r in collect(path)] == [r.data for r in collect(plain)]


def test_nanosecond_timestamps(tmp_path):
    path = tmp_path / "nano.pcap"
    path.write_bytes(pcap_bytes([(1700000000, 123456789, b"\x00" * 20)], nano=True))
    record, = collect(path)
    assert record.time == pytest.approx(1700000000.123456789, abs=1e-7)
    micro = tmp_path / "micro.pcap"
    micro.write_bytes(pcap_bytes([(1700000000, 123456, b"\x00" * 20)]))
    assert collect(micro)[0].time == pytest.approx(1700000000.123456, abs=1e-7)


@pytest.mark.parametrize("size", [70000, 300000])
def test_big_loopback_frame_comes_back_whole(tmp_path, size):
    # Loopback with segmentation offload records frames beyond 65535 bytes.
    data = b"\x02\x00\x00\x00" + bytes(range(256)) * (size // 256) + b"\xab" * (size % 256)
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap_bytes([(1, 0, data), (2, 0, b"after")], linktype=0))
    records = collect(path)  # no problem reported
    assert [len(r.data) for r in records] == [len(data), 5]
    assert records[0].data == data
    ng = tmp_path / "big.pcapng"
    writer = PcapNgWriter(str(ng))
    writer.write(Raw(data))
    writer.close()
    assert collect(ng)[0].data == data


def test_truncated_inside_record(tmp_path):
    raw = pcap_bytes([(1, 0, b"a" * 40), (2, 0, b"b" * 40), (3, 0, b"c" * 40)])
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw[:-15])
    problems: list = []
    records = collect(path, problems)
    assert [r.data for r in records[:2]] == [b"a" * 40, b"b" * 40]
    assert len(problems) == 1
    assert problems[0][0] == 3
    assert "truncated" in problems[0][1]


def test_truncated_inside_record_header(tmp_path):
    raw = pcap_bytes([(1, 0, b"a" * 40), (2, 0, b"b" * 40)])
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw[:24 + 56 + 7])
    problems: list = []
    records = collect(path, problems)
    assert [r.data for r in records] == [b"a" * 40]
    assert [frame for frame, _ in problems] == [2]


def test_truncated_pcapng_block(tmp_path):
    path = tmp_path / "cut.pcapng"
    writer = PcapNgWriter(str(path))
    for packet in frames():
        writer.write(packet)
    writer.close()
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    problems: list = []
    records = collect(path, problems)
    assert len(records) == 2
    assert [frame for frame, _ in problems] == [3]


def test_clean_end_reports_nothing(tmp_path):
    path = tmp_path / "ok.pcap"
    path.write_bytes(pcap_bytes([(1, 0, b"x" * 30)]))
    assert len(collect(path)) == 1  # collect() fails on any problem


def test_pcapng_simple_packet_block(tmp_path):
    # A Simple Packet Block carries no timestamp.
    shb = (struct.pack("<II", 0x0A0D0D0A, 28) + struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
           + struct.pack("<I", 28))
    idb_body = struct.pack("<HHI", 1, 0, 65535)
    idb = struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body))
    data = bytes(range(16))
    spb_body = struct.pack("<I", len(data)) + data
    spb = struct.pack("<II", 3, 12 + len(spb_body)) + spb_body + struct.pack("<I", 12 + len(spb_body))
    path = tmp_path / "spb.pcapng"
    path.write_bytes(shb + idb + spb)
    record, = collect(path)
    assert record.data == data
    assert record.linktype == 1
    assert record.time == 0.0


def test_truncated_global_header(tmp_path):
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_bytes([])[:10])
    with pytest.raises(CaptureError, match="short.pcap") as info:
        collect(path)
    assert "truncated" in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureError, match=r"empty\.pcap: empty file"):
        collect(path)


def test_directory(tmp_path):
    with pytest.raises(CaptureError, match="is a directory"):
        collect(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match=r"nope\.pcap: no such file"):
        collect(tmp_path / "nope.pcap")


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("This is not a capture, just some notes.\n" * 4)
    with pytest.raises(CaptureError, match=r"notes\.txt: not a pcap or pcapng capture"):
        collect(path)


def test_error_raised_before_iteration(tmp_path):
    # read_capture is a generator: the file is opened on the first next().
    iterator = read_capture(str(tmp_path / "missing.pcap"))
    with pytest.raises(CaptureError):
        next(iterator)


def test_absurd_record_length_reported(tmp_path):
    raw = bytearray(pcap_bytes([(1, 0, b"a" * 40), (2, 0, b"b" * 40)]))
    struct.pack_into("<I", raw, 24 + 56 + 8, 0xFFFFFFF0)  # caplen of the second record
    path = tmp_path / "damaged.pcap"
    path.write_bytes(bytes(raw))
    problems: list = []
    records = collect(path, problems)
    assert [r.data for r in records] == [b"a" * 40]
    assert [frame for frame, _ in problems] == [2]
    assert "unreadable" in problems[0][1]
