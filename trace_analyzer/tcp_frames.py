"""Ethernet/IP/TCP frames made up for a relayed conversation (what a capture of it would hold).

Layer: packets, the other way round (no I/O). :class:`TcpConversation` is told what a relay
saw happen on one client-server conversation (the handshake, bytes each way, a FIN or a RST)
and gives the frames a capture between the two would show: the real addresses and ports,
consistent sequence and acknowledgement numbers, IPv4 or IPv6 (an IPv4 address beside an
IPv6 one is written IPv4-mapped), checksums computed. Pure ACKs are written only where the
handshake and the close need them: the decoding layers and Wireshark need no more.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable

from .packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN

TCP_PSH = 0x08
#: Payload per frame: an IPv4 datagram's 65535 bytes less its headers.
MAX_SEGMENT = 65535 - 20 - 20
_MACS = {"client": bytes.fromhex("020000000001"), "server": bytes.fromhex("020000000002")}


def _ones_sum(data: bytes) -> int:
    """The ones-complement sum of 16-bit words, mod 0xFFFF: 0x10000 is 1 modulo 0xFFFF, so the
    whole buffer read as one big number gives it in one C loop instead of one per word (an odd
    length: the last byte is the high half of a word padded with zero, i.e. times 256)."""
    total = int.from_bytes(data, "big") % 0xFFFF
    return total * 256 % 0xFFFF if len(data) % 2 else total


def _checksum(*parts: bytes) -> int:
    """The Internet checksum of the parts together (each of even length but the last)."""
    return 0xFFFF - sum(_ones_sum(part) for part in parts) % 0xFFFF


class TcpConversation:
    """One relayed connection as frames, handed to ``emit(time, frame, comments)`` as they are made
    (comments: the pcapng packet comments the frame should carry, if any).

    ``client`` and ``server`` are (host, port) as the sockets give them."""

    def __init__(self, client: tuple, server: tuple, emit: Callable[[float, bytes, list[str]], None],
                 rng: random.Random | None = None, checksums: bool = True) -> None:
        rng = rng or random.Random()
        #: False: TCP checksums left 0 (frames only analysed, never written: a quarter of the cost).
        self.checksums = checksums
        addresses = [ipaddress.ip_address(host.split("%")[0]) for host in (client[0], server[0])]
        self.version = 4 if all(a.version == 4 for a in addresses) else 6
        if self.version == 6:
            addresses = [ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in addresses]
        self._address = {"client": addresses[0].packed, "server": addresses[1].packed}
        self._port = {"client": int(client[1]), "server": int(server[1])}
        self._next = {"client": rng.getrandbits(32), "server": rng.getrandbits(32)}  # next seq to send
        self._ip_id = {"client": rng.getrandbits(16), "server": rng.getrandbits(16)}
        self._fin = {"client": False, "server": False}
        self.emit = emit
        self.closed = False

    @staticmethod
    def other(side: str) -> str:
        return "server" if side == "client" else "client"

    # -- what happened ----------------------------------------------------------------------

    def handshake(self, time: float) -> None:
        self._segment("client", TCP_SYN, b"", time, ack=False)
        self._segment("server", TCP_SYN | TCP_ACK, b"", time)
        self._segment("client", TCP_ACK, b"", time)

    def refused(self, time: float, comments: list[str] = ()) -> None:
        """The server refused the connection: the client's SYN answered by a RST."""
        self._segment("client", TCP_SYN, b"", time, ack=False)
        self._next["server"] = 0
        self._segment("server", TCP_RST | TCP_ACK, b"", time, comments=comments)
        self.closed = True

    def data(self, side: str, payload: bytes, time: float) -> None:
        view = memoryview(payload)
        for start in range(0, len(view), MAX_SEGMENT):
            self._segment(side, TCP_PSH | TCP_ACK, view[start:start + MAX_SEGMENT], time)

    def fin(self, side: str, time: float) -> None:
        if self._fin[side] or self.closed:
            return
        self._segment(side, TCP_FIN | TCP_ACK, b"", time)
        self._fin[side] = True
        if self._fin[self.other(side)]:
            self._segment(self.other(side), TCP_ACK, b"", time)  # the last FIN acknowledged
            self.closed = True

    def reset(self, side: str, time: float, comments: list[str] = ()) -> None:
        if self.closed:
            return
        self._segment(side, TCP_RST | TCP_ACK, b"", time, comments=comments)
        self.closed = True

    # -- frames -----------------------------------------------------------------------------

    def _segment(self, side: str, flags: int, payload, time: float, ack: bool = True,
                 comments: list[str] = ()) -> None:
        other = self.other(side)
        seq = self._next[side]
        ack_number = self._next[other] if ack else 0
        tcp = struct.pack(">HHIIBBHHH", self._port[side], self._port[other], seq, ack_number, 5 << 4, flags,
                          65535, 0, 0)
        # (a view of the bytes read: copied once, into the frame)
        length = len(tcp) + len(payload)
        src, dst = self._address[side], self._address[other]
        if self.version == 4:
            pseudo = src + dst + struct.pack(">BBH", 0, 6, length)
        else:
            pseudo = src + dst + struct.pack(">IxxxB", length, 6)
        if self.checksums:
            tcp = tcp[:16] + struct.pack(">H", _checksum(pseudo, tcp, payload)) + tcp[18:]
        if self.version == 4:
            self._ip_id[side] = (self._ip_id[side] + 1) & 0xFFFF
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + length, self._ip_id[side], 0x4000, 64, 6, 0,
                             src, dst)
            ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
            ethertype = b"\x08\x00"
        else:
            ip = struct.pack(">IHBB16s16s", 6 << 28, length, 6, 64, src, dst)
            ethertype = b"\x86\xdd"
        self.emit(time, b"".join((_MACS[other], _MACS[side], ethertype, ip, tcp, payload)), comments)
        self._next[side] = (seq + len(payload) + (1 if flags & (TCP_SYN | TCP_FIN) else 0)) & 0xFFFFFFFF
