"""decode_tcp: link, IP and TCP header decoding for every link type we read."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Padding, Raw

from trace_analyzer.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    TCP_ACK,
    TCP_FIN,
    TCP_SYN,
    Skip,
    decode_tcp,
)

PAYLOAD = b"\x04\x00\x00\x00\x00\x0cDICOM-bytes!"


def tcp(payload: bytes = PAYLOAD, flags: str = "PA", seq: int = 123456789) -> TCP:
    return TCP(sport=40000, dport=104, seq=seq, flags=flags) / Raw(payload)


def eth() -> Ether:
    # Explicit addresses: without them scapy would try to resolve the MAC by ARP.
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def ip4() -> IP:
    return IP(src="192.0.2.1", dst="192.0.2.2")


def ip6() -> IPv6:
    return IPv6(src="2001:db8::1", dst="2001:db8::2")


def check_v4(segment) -> None:
    assert segment.src == "192.0.2.1:40000"
    assert segment.dst == "192.0.2.2:104"
    assert segment.seq == 123456789
    assert segment.payload == PAYLOAD
    assert segment.expected_length == len(PAYLOAD)


def check_v6(segment) -> None:
    assert segment.src == "[2001:db8::1]:40000"
    assert segment.dst == "[2001:db8::2]:104"
    assert segment.seq == 123456789
    assert segment.payload == PAYLOAD
    assert segment.expected_length == len(PAYLOAD)


# -- link types ----------------------------------------------------------------

def test_ethernet_ipv4():
    check_v4(decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ip4() / tcp())))


def test_ethernet_ipv6():
    check_v6(decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ip6() / tcp())))


def test_ethernet_padding_is_not_payload():
    # A short frame is padded to 60 bytes on the wire; IP total length says where TCP ends.
    frame = bytes(eth() / ip4() / tcp(b"ab") / Padding(b"\x00" * 6))
    segment = decode_tcp(LINKTYPE_ETHERNET, frame)
    assert segment.payload == b"ab"
    assert segment.expected_length == 2


def test_ethernet_802_1q():
    check_v4(decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / Dot1Q(vlan=12) / ip4() / tcp())))


def test_ethernet_qinq_802_1ad():
    frame = bytes(eth() / Dot1AD(vlan=100) / Dot1Q(vlan=12) / ip6() / tcp())
    assert frame[12:14] == b"\x88\xa8"
    check_v6(decode_tcp(LINKTYPE_ETHERNET, frame))


def test_linux_cooked_v1():
    check_v4(decode_tcp(LINKTYPE_LINUX_SLL, bytes(CookedLinux() / ip4() / tcp())))
    check_v6(decode_tcp(LINKTYPE_LINUX_SLL, bytes(CookedLinux() / ip6() / tcp())))


def test_linux_cooked_v2():
    check_v4(decode_tcp(LINKTYPE_LINUX_SLL2, bytes(CookedLinuxV2() / ip4() / tcp())))
    check_v6(decode_tcp(LINKTYPE_LINUX_SLL2, bytes(CookedLinuxV2() / ip6() / tcp())))


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_IPV4])
def test_raw_ipv4(linktype):
    check_v4(decode_tcp(linktype, bytes(ip4() / tcp())))


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_IPV6])
def test_raw_ipv6(linktype):
    check_v6(decode_tcp(linktype, bytes(ip6() / tcp())))


@pytest.mark.parametrize("order", ["<", ">"])
def test_bsd_null_both_byte_orders(order):
    # DLT_NULL carries the address family in the byte order of the capturing host.
    check_v4(decode_tcp(LINKTYPE_NULL, struct.pack(order + "I", 2) + bytes(ip4() / tcp())))
    for family in (24, 28, 30):  # AF_INET6 on NetBSD/OpenBSD, FreeBSD, macOS
        check_v6(decode_tcp(LINKTYPE_NULL, struct.pack(order + "I", family) + bytes(ip6() / tcp())))


def test_bsd_null_from_scapy_loopback():
    check_v4(decode_tcp(LINKTYPE_NULL, bytes(Loopback(type=2) / ip4() / tcp())))


def test_loop_network_byte_order():
    check_v4(decode_tcp(LINKTYPE_LOOP, struct.pack(">I", 2) + bytes(ip4() / tcp())))
    check_v6(decode_tcp(LINKTYPE_LOOP, struct.pack(">I", 30) + bytes(ip6() / tcp())))


def test_loopback_unknown_family_skipped():
    with pytest.raises(Skip, match="family"):
        decode_tcp(LINKTYPE_NULL, struct.pack("<I", 7) + bytes(ip4() / tcp()))


# -- IP and TCP details --------------------------------------------------------

def test_ipv6_extension_headers():
    frame = bytes(eth() / ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / tcp())
    check_v6(decode_tcp(LINKTYPE_ETHERNET, frame))


def test_ipv6_fragment_skipped():
    frame = bytes(ip6() / IPv6ExtHdrFragment(m=1) / tcp())
    with pytest.raises(Skip, match="fragment"):
        decode_tcp(LINKTYPE_RAW, frame)


def test_ipv4_fragment_skipped():
    with pytest.raises(Skip, match="fragment"):
        decode_tcp(LINKTYPE_RAW, bytes(IP(src="192.0.2.1", dst="192.0.2.2", flags="MF") / tcp()))
    # Don't Fragment is not a fragment.
    check_v4(decode_tcp(LINKTYPE_RAW, bytes(IP(src="192.0.2.1", dst="192.0.2.2", flags="DF") / tcp())))


def test_ipv4_options_and_tcp_options():
    frame = IP(src="192.0.2.1", dst="192.0.2.2", options=[b"\x01\x01\x01\x00"]) / TCP(
        sport=40000, dport=104, seq=123456789, flags="PA",
        options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("Timestamp", (1, 2))]) / Raw(PAYLOAD)
    raw = bytes(frame)
    assert raw[0] & 0x0F > 5
    check_v4(decode_tcp(LINKTYPE_RAW, raw))


def test_flags_decoded():
    segment = decode_tcp(LINKTYPE_RAW, bytes(ip4() / TCP(sport=1, dport=2, flags="SA")))
    assert segment.flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK
    assert not segment.flags & TCP_FIN
    assert segment.payload == b""
    assert segment.expected_length == 0


def test_snaplen_cut_frame():
    frame = bytes(eth() / ip4() / tcp(b"x" * 1000))
    cut = frame[:200]
    segment = decode_tcp(LINKTYPE_ETHERNET, cut)
    assert segment.expected_length == 1000
    assert segment.payload == b"x" * (200 - 14 - 20 - 20)
    assert len(segment.payload) < segment.expected_length


def test_snaplen_cut_ipv6():
    frame = bytes(ip6() / tcp(b"y" * 500))
    segment = decode_tcp(LINKTYPE_RAW, frame[:100])
    assert segment.expected_length == 500
    assert segment.payload == b"y" * 40


def test_snaplen_cut_inside_tcp_header_skipped():
    frame = bytes(eth() / ip4() / tcp())
    with pytest.raises(Skip, match="TCP header"):
        decode_tcp(LINKTYPE_ETHERNET, frame[:14 + 20 + 10])


# -- frames that are not TCP ---------------------------------------------------

def test_udp_skipped():
    with pytest.raises(Skip, match="not TCP"):
        decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ip4() / UDP(sport=1, dport=2) / Raw(b"x")))
    with pytest.raises(Skip, match="not TCP"):
        decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ip6() / UDP(sport=1, dport=2) / Raw(b"x")))


def test_arp_skipped():
    with pytest.raises(Skip, match="0x0806"):
        decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ARP()))


def test_unsupported_linktype_skipped():
    with pytest.raises(Skip, match="link type"):
        decode_tcp(147, bytes(ip4() / tcp()))


@pytest.mark.parametrize("linktype", [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
                                      LINKTYPE_RAW, LINKTYPE_NULL, LINKTYPE_LOOP])
def test_short_frames_skipped(linktype):
    for size in range(0, 12):
        with pytest.raises(Skip):
            decode_tcp(linktype, b"\x45" * size)


def test_bad_ipv4_header_length_skipped():
    raw = bytearray(bytes(ip4() / tcp()))
    raw[0] = 0x42  # IHL 2: 8 bytes, less than the 20-byte minimum
    with pytest.raises(Skip, match="IPv4 header"):
        decode_tcp(LINKTYPE_RAW, bytes(raw))


def test_bad_tcp_data_offset_skipped():
    raw = bytearray(bytes(ip4() / tcp()))
    raw[20 + 12] = 0x20  # data offset 2 words: inside the fixed TCP header
    with pytest.raises(Skip, match="TCP header"):
        decode_tcp(LINKTYPE_RAW, bytes(raw))
