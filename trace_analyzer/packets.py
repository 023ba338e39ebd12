"""Link, IP and TCP header decoding.

Layer: packets. Fed the bytes of one captured frame and its link type, gives
back a :class:`TcpSegment` or the reason the frame carries no TCP payload we
can use. struct-based and minimal on purpose: this runs once per frame, and
scapy's full dissection costs tens of microseconds a packet (prior-art.md 3).
No I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from struct import Struct, unpack_from

# pcap link types (tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALT = (12, 14)  # DLT_RAW values used by some BSDs
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
_BSD_AF_INET6 = (24, 28, 30)
_IPV6_EXTENSIONS = (0, 43, 60, 51)

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond a packet
class TcpSegment:
    src: str  # "ip:port", IPv6 in brackets
    dst: str
    seq: int
    flags: int
    payload: bytes
    #: payload bytes the IP header announced; more than len(payload) when the
    #: frame was cut by the capture's snaplen.
    expected_length: int
    ack: int = 0  # acknowledgement number; meaningful when flags has TCP_ACK


class Skip(Exception):
    """The frame is not usable TCP; the message says why (counted, not fatal)."""


def _ip_payload(linktype: int, frame: bytes) -> tuple[int, int]:
    """Return (ip_version, offset of the IP header) or raise Skip."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            raise Skip("short Ethernet header")
        offset = 12
        ethertype = (frame[12] << 8) | frame[13]
        while ethertype in _VLAN_TYPES:
            offset += 4
            if len(frame) < offset + 2:
                raise Skip("short VLAN header")
            ethertype = (frame[offset] << 8) | frame[offset + 1]
        offset += 2
        return _version_for_ethertype(ethertype), offset
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise Skip("short Linux cooked header")
        return _version_for_ethertype((frame[14] << 8) | frame[15]), 16
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise Skip("short Linux cooked v2 header")
        return _version_for_ethertype((frame[0] << 8) | frame[1]), 20
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) or linktype in LINKTYPE_RAW_ALT:
        if not frame:
            raise Skip("empty frame")
        return frame[0] >> 4, 0
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            raise Skip("short loopback header")
        family = unpack_from(">I" if linktype == LINKTYPE_LOOP else "<I", frame)[0]
        if family > 0xFFFF:  # written on a host of the other byte order
            family = unpack_from("<I" if linktype == LINKTYPE_LOOP else ">I", frame)[0]
        if family == 2:
            return 4, 4
        if family in _BSD_AF_INET6:
            return 6, 4
        raise Skip(f"loopback address family {family}")
    raise Skip(f"link type {linktype} not supported")


def _version_for_ethertype(ethertype: int) -> int:
    if ethertype == 0x0800:
        return 4
    if ethertype == 0x86DD:
        return 6
    raise Skip(f"ethertype 0x{ethertype:04X}")


@lru_cache(maxsize=4096)
def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


_ENDPOINTS: dict[tuple[bytes, int], str] = {}
_FAST_ADDRESSES = Struct(">4s4sHH").unpack_from
_FAST_TCP = Struct(">IIBB").unpack_from
_PAIRS: dict[bytes, tuple[str, str]] = {}


def _endpoint(address: bytes, port: int) -> str:
    text = _ENDPOINTS.get((address, port))
    if text is None:
        if len(_ENDPOINTS) > 100_000:  # bound the cache on captures of port scans
            _ENDPOINTS.clear()
        text = _ENDPOINTS[(address, port)] = f"{_address(address)}:{port}"
    return text


def decode_tcp(linktype: int, frame: bytes) -> TcpSegment:
    """Decode one frame down to its TCP segment, or raise :class:`Skip`."""
    # Fast path for the common case: Ethernet, IPv4 without options or
    # fragmentation, TCP. Everything else takes the general path below.
    if (linktype == LINKTYPE_ETHERNET and frame[12:15] == b"\x08\x00\x45" and len(frame) >= 54
            and frame[23] == 6 and not (frame[20] & 0x3F or frame[21])):
        seq, ack, offset_byte, flags = _FAST_TCP(frame, 38)
        start = 34 + (offset_byte >> 4) * 4
        if start >= 54:
            key = frame[26:38]  # addresses and ports: one lookup for both endpoints
            pair = _PAIRS.get(key)
            if pair is None:
                src, dst, sport, dport = _FAST_ADDRESSES(key)
                if len(_PAIRS) > 100_000:  # bound the cache on captures of port scans
                    _PAIRS.clear()
                pair = _PAIRS[bytes(key)] = (_endpoint(src, sport), _endpoint(dst, dport))
            total_length = (frame[16] << 8) | frame[17]
            ip_end = 14 + total_length if total_length else len(frame)
            # A view, not a copy: bulk data is copied once, into the PDU buffer.
            return TcpSegment(pair[0], pair[1], seq, flags, memoryview(frame)[start:ip_end],
                              max(0, ip_end - start), ack)
    version, offset = _ip_payload(linktype, frame)
    if version == 4:
        if len(frame) < offset + 20:
            raise Skip("short IPv4 header")
        header_length = (frame[offset] & 0x0F) * 4
        if header_length < 20:  # garbage: the "TCP header" would be IP header bytes
            raise Skip("bad IPv4 header length")
        total_length = (frame[offset + 2] << 8) | frame[offset + 3]
        if frame[offset + 9] != 6:
            raise Skip("not TCP")
        fragment = unpack_from(">H", frame, offset + 6)[0]
        if fragment & 0x3FFF:
            raise Skip("IPv4 fragment")
        src = _address(frame[offset + 12:offset + 16])
        dst = _address(frame[offset + 16:offset + 20])
        tcp = offset + header_length
        # total_length 0 happens with TCP segmentation offload: trust the frame.
        ip_end = offset + total_length if total_length else len(frame)
        src_fmt, dst_fmt = src, dst
    elif version == 6:
        if len(frame) < offset + 40:
            raise Skip("short IPv6 header")
        payload_length = (frame[offset + 4] << 8) | frame[offset + 5]
        next_header = frame[offset + 6]
        src_fmt = f"[{_address(frame[offset + 8:offset + 24])}]"
        dst_fmt = f"[{_address(frame[offset + 24:offset + 40])}]"
        tcp = offset + 40
        ip_end = tcp + payload_length if payload_length else len(frame)
        while next_header in _IPV6_EXTENSIONS:
            if len(frame) < tcp + 8:
                raise Skip("short IPv6 extension header")
            current, next_header = next_header, frame[tcp]
            tcp += (frame[tcp + 1] + 2) * 4 if current == 51 else (frame[tcp + 1] + 1) * 8
        if next_header == 44:
            raise Skip("IPv6 fragment")
        if next_header != 6:
            raise Skip("not TCP")
    else:
        raise Skip(f"IP version {version}")
    if len(frame) < tcp + 20:
        raise Skip("short TCP header")
    sport, dport, seq, ack = unpack_from(">HHII", frame, tcp)
    data_offset = (frame[tcp + 12] >> 4) * 4
    if data_offset < 20:  # garbage: header bytes would be taken as payload
        raise Skip("bad TCP header length")
    flags = frame[tcp + 13]
    start = tcp + data_offset
    expected = max(0, ip_end - start)
    payload = frame[start:ip_end]
    return TcpSegment(f"{src_fmt}:{sport}", f"{dst_fmt}:{dport}", seq, flags, payload, expected, ack)
