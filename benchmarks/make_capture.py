"""Write a large, realistic C-GET capture for benchmarks.

Each association: A-ASSOCIATE-RQ/AC with a role item for CT Image Storage,
one C-GET, N sub-operations of S bytes each (data set split into PDUs of the
negotiated maximum length, then into TCP segments of MSS bytes), a Pending
response after every sub-operation, the final response, release. Packets are
written straight to a pcap file with struct, so a 2 GB capture takes seconds
rather than the minutes scapy packet objects would.

    python benchmarks/make_capture.py OUT.pcap --instances 400 --size 524288 --mss 1448
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from builders import (  # noqa: E402  (the encoders live beside the tests)
    CT,
    PATIENT_ROOT_GET,
    associate,
    c_get_rq,
    c_get_rsp,
    c_store_rsp,
    command_set,
    identifier,
    message,
    release_rp,
    release_rq,
)

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


class PcapWriter:
    """Ethernet/IPv4/TCP segments of one or more conversations, written as they come."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.handle.write(_PCAP_HEADER)
        self.clock = 1_700_000_000.0
        self.packets = 0

    def segment(self, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
                payload: bytes | memoryview) -> None:
        ip_src = bytes(int(x) for x in src[0].split("."))
        ip_dst = bytes(int(x) for x in dst[0].split("."))
        tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                          65535, 0, 0)
        total = 20 + 20 + len(payload)
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, ip_src, ip_dst)
        ether = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
        length = 14 + total
        self.clock += 0.00001
        seconds = int(self.clock)
        self.handle.write(struct.pack("<IIII", seconds, int((self.clock - seconds) * 1e6), length, length))
        self.handle.write(ether + ip + tcp)
        self.handle.write(payload)
        self.packets += 1

    def close(self) -> None:
        self.handle.close()


class Conversation:
    def __init__(self, writer: PcapWriter, client: tuple[str, int], server: tuple[str, int],
                 mss: int, acks: bool = False) -> None:
        self.writer = writer
        self.ends = {"c": client, "s": server}
        self.seq = {"c": 1000, "s": 500000}
        self.mss = mss
        self.acks = acks  # the receiver acknowledges every second segment, as TCP's delayed ACK does
        self.send("c", b"", 0x02)
        self.send("s", b"", 0x12)
        self.send("c", b"", 0x10)

    def send(self, side: str, data: bytes, flags: int = 0x18) -> None:
        other = "s" if side == "c" else "c"
        view = memoryview(data)
        src, dst = self.ends[side], self.ends[other]
        if not data:
            self.writer.segment(src, dst, self.seq[side], self.seq[other], flags, b"")
            self.seq[side] += 1 if flags & 0x03 else 0
            return
        for number, offset in enumerate(range(0, len(data), self.mss), 1):
            chunk = view[offset:offset + self.mss]
            self.writer.segment(src, dst, self.seq[side], self.seq[other], flags, chunk)
            self.seq[side] += len(chunk)
            if self.acks and number % 2 == 0:
                self.writer.segment(dst, src, self.seq[other], self.seq[side], 0x10, b"")


def write_association(writer: PcapWriter, index: int, instances: int, size: int, mss: int,
                      max_pdu: int, acks: bool = False) -> None:
    client = ("127.0.0.1", 40000 + index)
    server = ("127.0.0.2", 11112)
    talk = Conversation(writer, client, server, mss, acks)
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    talk.send("c", associate(True, contexts, roles=[(CT, 0, 1)], max_pdu=max_pdu))
    talk.send("s", associate(False, contexts, roles=[(CT, 0, 1)], max_pdu=max_pdu))
    talk.send("c", c_get_rq(1))
    for number in range(instances):
        uid = f"1.2.826.0.1.3680043.8.498.{index}.{number + 1}"
        command = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: 100 + number, 0x0700: 0,
                               0x0800: 0x0001, 0x1000: uid})
        header = identifier(SOPClassUID=CT, SOPInstanceUID=uid)
        # Pixel Data (7FE0,0010) OW, implicit VR: tag + 4-byte length, then the bulk.
        bulk = max(0, size - len(header) - 8)
        bulk -= bulk % 2
        data = header + struct.pack("<HHI", 0x7FE0, 0x0010, bulk) + bytes(bulk)
        talk.send("s", message(3, command, data, max_pdu=max_pdu))
        talk.send("c", c_store_rsp(100 + number, 0x0000, uid))
        talk.send("s", c_get_rsp(1, 0xFF00, (instances - number - 1, number + 1, 0, 0)))
    talk.send("s", c_get_rsp(1, 0x0000, (None, instances, 0, 0)))
    talk.send("c", release_rq())
    talk.send("s", release_rp())


def make(path: str, instances: int, size: int, mss: int, max_pdu: int, associations: int,
         acks: bool = False) -> int:
    """Write the capture; returns the number of packets."""
    writer = PcapWriter(path)
    per_association = max(1, instances // associations)
    for index in range(associations):
        write_association(writer, index, per_association, size, mss, max_pdu, acks)
    writer.close()
    return writer.packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--size", type=int, default=512 * 1024, help="bytes per instance data set")
    parser.add_argument("--mss", type=int, default=1448, help="TCP payload per segment (65495 for loopback)")
    parser.add_argument("--max-pdu", type=int, default=16384)
    parser.add_argument("--associations", type=int, default=1)
    parser.add_argument("--acks", action="store_true", help="a bare ACK back after every second segment")
    args = parser.parse_args()
    packets = make(args.output, args.instances, args.size, args.mss, args.max_pdu, args.associations,
                   args.acks)
    print(f"{args.output}: {packets} packets, {Path(args.output).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
