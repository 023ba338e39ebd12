"""Shared by the fuzz, mutation and hostile-size tests.

* ``EXAMPLES``: how hard to try. ``TA_FUZZ_EXAMPLES`` (default 20) sets the
  hypothesis example count and the number of mutations per sample and kind;
  CI keeps the default, a long run sets it to a few thousand.
* Raw frames built with ``struct`` (Ethernet, IPv4, TCP), fast enough to
  stream hundreds of megabytes into a :class:`CaptureAnalyzer` without scapy.
* A minimal pcap / pcapng record splitter and writer, written from the file
  format descriptions, so that mutations do not go through the reader under test.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

EXAMPLES = max(1, int(os.environ.get("TA_FUZZ_EXAMPLES", "20")))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LINKTYPE_ETHERNET = 1
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
              payload: bytes = b"") -> bytes:
    """An Ethernet/IPv4/TCP frame (checksums left at zero: nobody checks them)."""
    ip_total = 20 + 20 + len(payload)
    if ip_total > 0xFFFF:
        raise ValueError("payload too large for one IPv4 packet")
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, ip_total, 0, 0x4000, 64, 6, 0,
                     bytes(int(x) for x in src[0].split(".")), bytes(int(x) for x in dst[0].split(".")))
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)
    return ether + ip + tcp + payload


class Conversation:
    """One TCP connection as frames, client 'c' and server 's', sequence numbers kept."""

    def __init__(self, client=("10.0.0.1", 40001), server=("10.0.0.2", 11112), mss: int = 1460,
                 handshake: bool = True) -> None:
        self.ends = {"c": client, "s": server}
        self.seq = {"c": 1000, "s": 90000}
        self.mss = mss
        if handshake:
            self.frames = [self._emit("c", TCP_SYN), self._emit("s", TCP_SYN | TCP_ACK),
                           self._emit("c", TCP_ACK)]
        else:
            self.frames = []

    def _emit(self, side: str, flags: int, payload: bytes = b"") -> bytes:
        other = "s" if side == "c" else "c"
        frame = tcp_frame(self.ends[side], self.ends[other], self.seq[side], self.seq[other], flags, payload)
        self.seq[side] += len(payload) + (1 if flags & (TCP_SYN | TCP_FIN) else 0)
        return frame

    def segments(self, side: str, data: bytes):
        """Yield the frames that carry ``data`` from ``side`` (not kept: for streaming)."""
        for offset in range(0, len(data), self.mss):
            yield self._emit(side, TCP_PSH | TCP_ACK, data[offset:offset + self.mss])

    def send(self, side: str, data: bytes) -> None:
        self.frames.extend(self.segments(side, data))

    def close(self) -> None:
        self.frames.append(self._emit("c", TCP_FIN | TCP_ACK))
        self.frames.append(self._emit("s", TCP_FIN | TCP_ACK))


def feed_frames(analyzer, frames, start_frame: int = 1, start_time: float = 1_700_000_000.0) -> int:
    """Feed frames to a CaptureAnalyzer; return the next frame number."""
    frame = start_frame
    for data in frames:
        analyzer.feed_frame(frame, start_time + frame * 1e-3, LINKTYPE_ETHERNET, data)
        frame += 1
    return frame


# -- capture files ------------------------------------------------------------


@dataclass(slots=True)
class Unit:
    """A piece of a capture file: a packet record, or anything else (pcapng SHB, IDB...)."""

    raw: bytes
    is_packet: bool
    data_offset: int = 0  # where the packet bytes begin inside ``raw``


@dataclass(slots=True)
class CaptureFile:
    kind: str  # "pcap" or "pcapng"
    head: bytes  # pcap global header; empty for pcapng
    units: list[Unit]
    little: bool = True

    @property
    def packets(self) -> list[int]:
        """Indices of the packet units, in file order (frame n is packets[n - 1])."""
        return [i for i, unit in enumerate(self.units) if unit.is_packet]

    def to_bytes(self) -> bytes:
        return self.head + b"".join(unit.raw for unit in self.units)

    def packet_offsets(self) -> list[tuple[int, int]]:
        """(start, end) file offsets of each packet unit, in frame order."""
        out, offset = [], len(self.head)
        for unit in self.units:
            if unit.is_packet:
                out.append((offset, offset + len(unit.raw)))
            offset += len(unit.raw)
        return out


def split_capture(raw: bytes) -> CaptureFile:
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        little = magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        endian = "<" if little else ">"
        units, offset = [], 24
        while offset + 16 <= len(raw):
            caplen = struct.unpack_from(endian + "I", raw, offset + 8)[0]
            units.append(Unit(raw[offset:offset + 16 + caplen], True, 16))
            offset += 16 + caplen
        return CaptureFile("pcap", raw[:24], units, little)
    if magic == b"\x0a\x0d\x0d\x0a":
        little = raw[8:12] == b"\x4d\x3c\x2b\x1a"
        endian = "<" if little else ">"
        units, offset = [], 0
        while offset + 12 <= len(raw):
            block_type, length = struct.unpack_from(endian + "II", raw, offset)
            units.append(Unit(raw[offset:offset + length], block_type == 6, 28))
            offset += length
        return CaptureFile("pcapng", b"", units, little)
    raise ValueError("not a pcap or pcapng file")


def cut_packet(capture: CaptureFile, unit: Unit, snaplen: int) -> Unit:
    """The packet record with its captured bytes cut to ``snaplen`` (original length kept)."""
    endian = "<" if capture.little else ">"
    if capture.kind == "pcap":
        sec, usec, caplen, wirelen = struct.unpack_from(endian + "IIII", unit.raw)
        if caplen <= snaplen:
            return unit
        data = unit.raw[16:16 + snaplen]
        return Unit(struct.pack(endian + "IIII", sec, usec, len(data), wirelen) + data, True, 16)
    _, length, interface, high, low, caplen, wirelen = struct.unpack_from(endian + "IIIIIII", unit.raw)
    if caplen <= snaplen:
        return unit
    data = unit.raw[28:28 + snaplen]
    padded = data + bytes(-len(data) % 4)
    total = 28 + len(padded) + 4  # options dropped
    body = struct.pack(endian + "IIIIIII", 6, total, interface, high, low, len(data), wirelen)
    return Unit(body + padded + struct.pack(endian + "I", total), True, 28)


def flip(unit: Unit, positions: list[int], masks: list[int]) -> Unit:
    """Flip bits in the packet bytes of a record (positions modulo its data length)."""
    raw = bytearray(unit.raw)
    size = len(raw) - unit.data_offset - (4 if unit.data_offset == 28 else 0)
    if size <= 0:
        return unit
    for position, mask in zip(positions, masks, strict=True):
        raw[unit.data_offset + position % size] ^= mask or 0x01
    return Unit(bytes(raw), True, unit.data_offset)
