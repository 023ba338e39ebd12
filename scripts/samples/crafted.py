"""Crafted captures: transforms of a real loopback recording, done with scapy.

The source captures are classic pcap from ``tcpdump -i lo`` (DLT_EN10MB with
zeroed MAC addresses).  A light PDU walker labels which DICOM message starts or
ends in which frame so that each transform can say precisely what it changed;
the DICOM ground truth of the exchange itself still comes from the peers (the
source capture's manifest entry).
"""

from __future__ import annotations

import gzip
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.utils import RawPcapReader

from .capture import SampleError

SNAPLEN = 262144
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "EN10MB",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    276: "LINUX_SLL2",
}

_PDU_NAMES = {
    1: "A-ASSOCIATE-RQ",
    2: "A-ASSOCIATE-AC",
    3: "A-ASSOCIATE-RJ",
    4: "P-DATA-TF",
    5: "A-RELEASE-RQ",
    6: "A-RELEASE-RP",
    7: "A-ABORT",
}
_COMMANDS = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0FFF: "C-CANCEL-RQ",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
}


@dataclass
class Frame:
    index: int  # 0-based record number in the source file
    sec: int
    usec: int
    data: bytes  # link-layer frame as captured (Ethernet)
    ip_bytes: bytes = b""
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    seq: int = 0
    flags: str = ""
    payload: bytes = b""
    labels: list[str] = field(default_factory=list)

    @property
    def direction(self) -> tuple:
        return (self.src, self.sport, self.dst, self.dport)

    def describe(self) -> dict:
        return {
            "record": self.index,
            "from": f"{self.src}:{self.sport}",
            "to": f"{self.dst}:{self.dport}",
            "tcp_seq": self.seq,
            "payload_len": len(self.payload),
            "carries": list(self.labels),
        }


def load_frames(path: Path) -> tuple[int, list[Frame]]:
    """Read an Ethernet pcap and decode IP/TCP with scapy."""
    reader = RawPcapReader(str(path))
    try:
        linktype = reader.linktype
        if linktype != LINKTYPE_ETHERNET:
            raise SampleError(f"{path.name}: expected Ethernet source, got linktype {linktype}")
        frames = []
        for i, (data, meta) in enumerate(reader):
            frame = Frame(i, meta.sec, meta.usec, bytes(data))
            pkt = Ether(frame.data)
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is not None:
                frame.ip_bytes = frame.data[14:]  # untagged Ethernet from `tcpdump -i lo`
                frame.src, frame.dst = ip.src, ip.dst
            tcp = pkt.getlayer(TCP)
            if tcp is not None:
                frame.sport, frame.dport = tcp.sport, tcp.dport
                frame.seq, frame.flags = tcp.seq, str(tcp.flags)
                frame.payload = bytes(tcp.payload)
            frames.append(frame)
    finally:
        reader.close()
    label_frames(frames)
    return linktype, frames


def _command_summary(command: bytes) -> str:
    """Name (and status) of an Implicit VR LE command set."""
    pos, field_value, status, msg_id, rsp_to = 0, None, None, None, None
    while pos + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, pos)
        value = command[pos + 8 : pos + 8 + length]
        if group == 0 and length == 2:
            number = struct.unpack("<H", value)[0]
            if element == 0x0100:
                field_value = number
            elif element == 0x0900:
                status = number
            elif element == 0x0110:
                msg_id = number
            elif element == 0x0120:
                rsp_to = number
        pos += 8 + length
    name = _COMMANDS.get(field_value, f"command 0x{field_value or 0:04X}")
    if rsp_to is not None:
        name += f" (to msg {rsp_to})"
    elif msg_id is not None:
        name += f" (msg {msg_id})"
    if status is not None:
        name += f" status 0x{status:04X}"
    return name


def label_frames(frames: list[Frame]) -> None:
    """Attach to each frame the DICOM PDUs / messages that *end* in it.

    Assumes the capture is in order with no loss (true for our loopback
    sources).  Messages are labelled on the frame holding their last byte.
    """
    streams: dict[tuple, dict] = {}
    for frame in frames:
        if not frame.payload:
            continue
        state = streams.setdefault(frame.direction, {"buf": b"", "next": None, "cmd": b"", "last": "?"})
        if state["next"] is not None and frame.seq != state["next"]:
            continue  # duplicate or out of order: ignore for labelling
        state["next"] = (frame.seq + len(frame.payload)) & 0xFFFFFFFF
        state["buf"] += frame.payload
        buf = state["buf"]
        while len(buf) >= 6:
            pdu_type = buf[0]
            length = struct.unpack_from(">I", buf, 2)[0]
            if len(buf) < 6 + length:
                break
            body = buf[6 : 6 + length]
            buf = buf[6 + length :]
            if pdu_type != 4:
                frame.labels.append(_PDU_NAMES.get(pdu_type, f"PDU 0x{pdu_type:02X}"))
                continue
            pos = 0
            while pos + 6 <= len(body):
                pdv_len = struct.unpack_from(">I", body, pos)[0]
                flags = body[pos + 5]
                fragment = body[pos + 6 : pos + 4 + pdv_len]
                pos += 4 + pdv_len
                if flags & 1:
                    state["cmd"] += fragment
                    if flags & 2:
                        state["last"] = _command_summary(state["cmd"])
                        frame.labels.append(state["last"])
                        state["cmd"] = b""
                elif flags & 2:
                    frame.labels.append(f"data set of {state['last']}")
        state["buf"] = buf


def find_frame(frames: list[Frame], startswith: str, occurrence: int = 1) -> Frame:
    seen = 0
    for frame in frames:
        for label in frame.labels:
            if label.startswith(startswith):
                seen += 1
                if seen == occurrence:
                    return frame
    raise SampleError(f"no frame #{occurrence} carrying {startswith!r}")


def write_pcap(path: Path, linktype: int, records: list[tuple[bytes, int, int]]) -> None:
    """Write (frame bytes, sec, usec) records as classic little-endian microsecond pcap.

    Written by hand rather than with scapy's RawPcapWriter, which treats link
    type 0 (DLT_NULL) as "unset" and silently writes Ethernet instead.
    """
    if not records:
        raise SampleError(f"{path.name}: nothing to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        for data, sec, usec in records:
            fh.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            fh.write(data)


def _records(frames: list[Frame]) -> list[tuple[bytes, int, int]]:
    return [(f.data, f.sec, f.usec) for f in frames]


def _ts_add(sec: int, usec: int, delta_usec: int) -> tuple[int, int]:
    total = sec * 1_000_000 + usec + delta_usec
    return total // 1_000_000, total % 1_000_000


# ------------------------------------------------------------------------------------------
# transforms; each returns the "crafted" section of the manifest entry
# ------------------------------------------------------------------------------------------


def midstream_start(source: Path, dest: Path) -> dict:
    """Drop everything before the frame that carries the first C-GET-RQ command."""
    linktype, frames = load_frames(source)
    first = find_frame(frames, "C-GET-RQ")
    kept = [f for f in frames if f.index >= first.index]
    write_pcap(dest, linktype, _records(kept))
    return {
        "transform": "removed every record before the one carrying the first C-GET-RQ command set "
        "(TCP handshake, A-ASSOCIATE-RQ/AC and their ACKs are gone)",
        "records_removed": first.index,
        "first_kept_record": first.describe(),
        "association_setup_visible": False,
    }


def reordered_retransmitted(source: Path, dest: Path) -> dict:
    """Split one big segment and send its halves in reverse, swap two data segments, duplicate three."""
    linktype, frames = load_frames(source)
    out: list[Frame] = list(frames)
    notes: list[dict] = []

    # 1. split the 2nd C-STORE data set segment in two and emit the halves in reverse order
    big = find_frame(frames, "data set of C-STORE-RQ", 2)
    half = len(big.payload) // 2
    pkt = Ether(big.data)
    ip, tcp = pkt[IP], pkt[TCP]
    parts = []
    for offset, chunk in ((0, big.payload[:half]), (half, big.payload[half:])):
        new_ip = ip.copy()
        new_tcp = new_ip[TCP]
        new_tcp.remove_payload()
        new_tcp.seq = (tcp.seq + offset) & 0xFFFFFFFF
        new_tcp.chksum = None
        new_ip.len = None
        new_ip.chksum = None
        new = Ether(src=pkt.src, dst=pkt.dst, type=pkt.type) / new_ip / chunk
        data = bytes(new)
        parts.append(Frame(big.index, big.sec, big.usec, data, payload=chunk, seq=new_tcp.seq))
    first_part, second_part = parts
    position = out.index(big)
    second_part.sec, second_part.usec = big.sec, big.usec
    first_part.sec, first_part.usec = _ts_add(big.sec, big.usec, 1)
    out[position : position + 1] = [second_part, first_part]
    notes.append(
        {
            "change": "split into two segments, second half sent first",
            "original": big.describe(),
            "split_at_payload_offset": half,
        }
    )

    # 2. swap the last Pending C-GET-RSP segment with the final C-GET-RSP segment
    final = [f for f in out if any(lbl.startswith("C-GET-RSP") and "FF00" not in lbl for lbl in f.labels)][-1]
    pending = [f for f in out if any(lbl.startswith("C-GET-RSP") and "FF00" in lbl for lbl in f.labels)][-1]
    i, j = out.index(pending), out.index(final)
    (ts_i, ts_j) = ((pending.sec, pending.usec), (final.sec, final.usec))
    swapped_final = Frame(final.index, *ts_i, final.data, labels=final.labels)
    swapped_pending = Frame(pending.index, *ts_j, pending.data, labels=pending.labels)
    out[i], out[j] = swapped_final, swapped_pending
    notes.append(
        {
            "change": "swapped: final C-GET-RSP now captured before the last Pending C-GET-RSP",
            "records": [pending.describe(), final.describe()],
        }
    )

    # 3. duplicate three data segments (retransmissions), each two records later
    for label, occurrence in (("C-GET-RQ", 1), ("C-STORE-RSP", 1), ("data set of C-STORE-RQ", 4)):
        original = find_frame(frames, label, occurrence)
        where = next(k for k, f in enumerate(out) if f.data == original.data)
        target = min(where + 3, len(out))
        before = out[target - 1]
        sec, usec = _ts_add(before.sec, before.usec, 1)
        out.insert(target, Frame(original.index, sec, usec, original.data))
        notes.append(
            {
                "change": "exact duplicate (retransmission) re-inserted after two other records",
                "original": original.describe(),
            }
        )

    write_pcap(dest, linktype, _records(out))
    return {
        "transform": "TCP segments reordered and retransmitted; the byte streams are unchanged",
        "changes": notes,
        "records_in_source": len(frames),
        "records_written": len(out),
    }


def truncated(source: Path, dest: Path) -> dict:
    """Copy the file and cut it in the middle of the record carrying the 3rd C-STORE data set."""
    _, frames = load_frames(source)
    victim = find_frame(frames, "data set of C-STORE-RQ", 3)
    raw = source.read_bytes()
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24  # classic pcap global header
    for frame in frames:
        caplen = struct.unpack_from(order + "I", raw, offset + 8)[0]
        if frame.index == victim.index:
            cut = offset + 16 + caplen // 2
            dest.write_bytes(raw[:cut])
            return {
                "transform": "file cut in the middle of a record: the last record header promises "
                f"{caplen} bytes but only {caplen // 2} follow",
                "complete_records": victim.index,
                "cut_record": victim.describe(),
                "cut_record_caplen": caplen,
                "cut_record_bytes_present": caplen // 2,
                "file_bytes_kept": cut,
                "source_bytes": len(raw),
            }
        offset += 16 + caplen
    raise SampleError("truncation point not found")


def gap_lost_segment(source: Path, dest: Path) -> dict:
    """Remove the record carrying the 3rd C-STORE data set (no retransmission follows)."""
    linktype, frames = load_frames(source)
    victim = find_frame(frames, "data set of C-STORE-RQ", 3)
    kept = [f for f in frames if f.index != victim.index]
    write_pcap(dest, linktype, _records(kept))
    return {
        "transform": "one data segment removed (lost, never retransmitted): a sequence-number gap",
        "removed_record": victim.describe(),
    }


def gzip_copy(source: Path, dest: Path) -> dict:
    with source.open("rb") as src, dest.open("wb") as raw:
        with gzip.GzipFile(filename=source.name, mode="wb", fileobj=raw, mtime=0) as gz:
            shutil.copyfileobj(src, gz)
    return {"transform": "gzip-compressed byte-for-byte copy", "compression": "gzip"}


_RELINK_DESCRIPTIONS = {
    "ethernet_vlan": "Ethernet II with an 802.1Q tag (VLAN 100, PCP 0), MACs 02:00:00:00:00:01/02",
    "linux_sll": "Linux cooked capture v1 (DLT_LINUX_SLL, ARPHRD_LOOPBACK, packet type 0 'to us')",
    "raw_ip": "raw IP, no link header (LINKTYPE_RAW 101)",
    "null_loopback": "BSD loopback (DLT_NULL): 4-byte host-order address family, AF_INET = 2, little endian",
}


def relink(source: Path, dest: Path, kind: str) -> dict:
    """Same IP packets under another link layer."""
    _, frames = load_frames(source)
    client = None
    records = []
    for frame in frames:
        if client is None:
            client = frame.src, frame.sport
        from_client = (frame.src, frame.sport) == client
        ethertype = 0x0800 if frame.ip_bytes[0] >> 4 == 4 else 0x86DD
        if kind == "ethernet_vlan":
            macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
            src, dst = macs if from_client else macs[::-1]
            header = bytes(Ether(src=src, dst=dst, type=0x8100) / Dot1Q(vlan=100, prio=0, type=ethertype))
            linktype = LINKTYPE_ETHERNET
        elif kind == "linux_sll":
            header = bytes(
                CookedLinux(pkttype=0, lladdrtype=772, lladdrlen=6, src=b"\x00" * 8, proto=ethertype)
            )
            linktype = LINKTYPE_LINUX_SLL
        elif kind == "raw_ip":
            header = b""
            linktype = LINKTYPE_RAW
        elif kind == "null_loopback":
            family = 2 if ethertype == 0x0800 else 10
            header = struct.pack("<I", family)
            linktype = LINKTYPE_NULL
        else:
            raise ValueError(kind)
        data = header + frame.ip_bytes
        records.append((data, frame.sec, frame.usec))
    write_pcap(dest, linktype, records)
    return {
        "transform": f"link layer rewritten: {_RELINK_DESCRIPTIONS[kind]}; IP packets byte-identical",
        "records": len(records),
    }


def to_ipv6(source: Path, dest: Path) -> dict:
    """Rewrite an IPv4 loopback capture to IPv6 ::1 (fallback when ::1 cannot be used)."""
    linktype, frames = load_frames(source)
    records = []
    for frame in frames:
        pkt = Ether(frame.data)
        if IP in pkt:
            tcp = pkt[TCP].copy()
            tcp.chksum = None
            new = Ether(src=pkt.src, dst=pkt.dst, type=0x86DD) / IPv6(src="::1", dst="::1", hlim=64) / tcp
            records.append((bytes(new), frame.sec, frame.usec))
        else:
            records.append((frame.data, frame.sec, frame.usec))
    write_pcap(dest, linktype, records)
    return {"transform": "IPv4 header replaced by IPv6 ::1 -> ::1, TCP checksums recomputed"}
