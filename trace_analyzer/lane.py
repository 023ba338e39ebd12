"""The fast lane: bulk data counted straight from the capture records.

Layer: a shortcut across the packet, TCP and Upper Layer layers, for the one
case that makes up nearly all of a retrieve's bytes: the middle of a C-STORE
data set, sent as a run of P-DATA-TF PDUs of identical shape (one data PDV,
not the last fragment) in in-order TCP segments. Those bytes are only counted
(dimse.py keeps a data set's first 8 KiB), so there is nothing to decode in
them, yet the layer-by-layer path spends several microseconds a packet
getting there.

The pipeline arms a *flow* here when the association layer says one
direction is in such a run and the TCP layer says that direction is in
order. :meth:`BulkLane.skip` is then handed the capture reader's buffer and
walks the records itself (pcap records, or pcapng Enhanced Packet Blocks): a
record that continues an armed flow (next sequence number, no SYN/FIN/RST,
whole payload captured, and each PDU header in it identical to the last PDU
framed by the ordinary path) or is a bare ACK back is counted and passed
over; any other record stops the walk and goes down the ordinary path, after
what was counted has been handed to the layers (:meth:`_flush`). A PDU that
ends in a counted record is counted complete there, so frames stay exact.
Findings and tables come out the same either way (tests/test_lane.py compares
the two on samples, generated and fuzzed captures, and real peers' traffic).
Only IPv4 without options is taken; everything else takes the ordinary path.
No I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)
from .tcp import MAX_ACK_AHEAD


class LaneFlow:
    """One armed direction of a TCP connection, and what the lane counted for it."""

    __slots__ = ("key", "back_key", "seq", "left", "header", "size", "owner", "endpoints",
                 "count", "whole", "first_frame", "run_frame", "run_time", "frame", "at", "time",
                 "ack_frame", "ack_at", "ack_time")

    def __init__(self, key: bytes, back_key: bytes, seq: int, left: int, header: bytes, size: int,
                 owner: object, endpoints: tuple[str, str]) -> None:
        self.key = key  # IPv4 source, destination, source port, destination port as on the wire
        self.back_key = back_key
        self.seq = seq  # next sequence number wanted
        self.left = left  # bytes of the current PDU still to come (0: the next begins next)
        self.header = header  # the 12 bytes that open each PDU of the run
        self.size = size  # each PDU's whole size, header included (0: none may end here)
        self.owner = owner  # the pipeline's handle (which session)
        self.endpoints = endpoints  # (source, destination), as the packet layer names them
        self.clear()

    def clear(self) -> None:
        # The walk notes a record's position in the buffer (``*_at``); its time is read
        # from there only when the counts are flushed.
        self.count = 0  # payload bytes counted since the last flush
        self.whole = 0  # PDUs completed since the last flush
        self.first_frame = 0  # the frame where the current PDU began, if it began in the lane
        self.run_frame, self.run_time = 0, 0.0  # where the last completed PDU ended; the largest time
        self.frame, self.at, self.time = 0, 0, 0.0  # last record of this direction
        self.ack_frame, self.ack_at, self.ack_time = 0, 0, 0.0  # last bare ACK the other way


#: Per link type: where the bytes checked before the IPv4 header start, and the IP header offset.
_LINKS = {
    LINKTYPE_ETHERNET: (12, 14, b"\x08\x00"),
    LINKTYPE_LINUX_SLL: (14, 16, b"\x08\x00"),
    LINKTYPE_RAW: (0, 0, b""),
    LINKTYPE_IPV4: (0, 0, b""),
}


#: From the link bytes checked to the TCP flags: link bytes, IP version and header length,
#: total length, flags and fragment offset, protocol, addresses and ports (the flow key),
#: sequence number, TCP data offset, TCP flags.
_HEADERS = ">{}sBxHxxHxB2x12sIIBB"


def _ethernet_link(frame: bytes | memoryview) -> tuple[int, int, bytes] | None:
    """The link bytes of an Ethernet frame carrying IPv4: untagged, or with one VLAN tag."""
    if frame[12:14] == b"\x08\x00":
        return _LINKS[LINKTYPE_ETHERNET]
    if len(frame) > 18 and frame[12:14] in (b"\x81\x00", b"\x88\xa8") and frame[16:18] == b"\x08\x00":
        return 12, 18, bytes(frame[12:18])  # the tag's VLAN ID included: one VLAN at a time
    return None


class BulkLane:
    """Armed flows of one capture, and the record walk that counts them."""

    def __init__(self) -> None:
        self.flows: dict[bytes, LaneFlow] = {}
        self.acks: dict[bytes, LaneFlow] = {}  # the reverse key of each flow
        self._pairs: dict[tuple[str, str], LaneFlow] = {}  # both orders of each flow's endpoints
        #: on_flush(flow): hand what the lane counted for ``flow`` to the layers.
        self.on_flush: Callable[[LaneFlow], None] | None = None
        #: on_records(records, captured bytes, last time, file bytes): capture-level totals.
        self.on_records: Callable[[int, int, float, int], None] | None = None
        self._record = struct.Struct("<8xI").unpack_from  # a pcap record's captured length
        self._headers = struct.Struct(_HEADERS.format("2")).unpack_from
        self._stamp = struct.Struct("<II").unpack_from
        self._divisor = 1e6
        self._link: tuple[int, int, bytes] | None = None
        self._ethernet = False
        self._clock: Callable[[bytes, int], float] | None = None  # pcapng: see configure()
        self._pcapng = False
        self._interfaces = 0
        #: The time of the last record the latest :meth:`skip` counted.
        self.last_time = 0.0

    def configure(self, endian: str, nano: bool, linktype: int,
                  clock: Callable[[bytes, int], float] | None = None, interfaces: int = 0) -> bool:
        """The capture's record format; False if its link type is not one the lane walks.

        pcap by default. pcapng with ``clock``, the time of the Enhanced Packet Block at a
        position (its interface's timestamp units are the reader's business), and
        ``interfaces``, how many the section has declared: a block naming another is
        left to the ordinary path."""
        self._pcapng = clock is not None
        self._clock = clock
        if clock is None:
            self._record = struct.Struct(endian + "8xI").unpack_from
            self._stamp = struct.Struct(endian + "II").unpack_from
            self._divisor = 1e9 if nano else 1e6
        else:
            # Block type, total length, interface, and (past the timestamp) captured length.
            self._record = struct.Struct(endian + "III8xI").unpack_from
            self._interfaces = interfaces
        self._ethernet = linktype == LINKTYPE_ETHERNET
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # The 4-byte address family, in the byte order of the host that wrote it.
            family = (2).to_bytes(4, "big" if linktype == LINKTYPE_LOOP else "little")
            self._use_link((0, 4, family))
        else:
            self._use_link(_LINKS.get(linktype))
        return self._link is not None

    def _use_link(self, link: tuple[int, int, bytes] | None) -> None:
        """Where the link bytes checked begin, where IPv4 begins, and what those bytes are."""
        self._link = link
        if link is not None:
            self._headers = struct.Struct(_HEADERS.format(len(link[2]))).unpack_from

    @property
    def ready(self) -> bool:
        """Configured by a capture reader that hands it buffers (a live feed never does)."""
        return self._link is not None

    @property
    def active(self) -> bool:
        return bool(self.flows)

    def _key_at(self, frame: bytes | memoryview) -> tuple[bytes, int] | None:
        """The flow key of an IPv4 (no options) TCP frame, and its IP offset; else None."""
        if self._link is None:
            return None
        at, ip, signature = self._link
        if len(frame) < ip + 40 or frame[at:ip] != signature or frame[ip] != 0x45 or frame[ip + 9] != 6:
            return None
        return bytes(frame[ip + 12:ip + 24]), ip

    def arm(self, frame: bytes | memoryview, endpoints: tuple[str, str], seq: int, left: int,
            header: bytes | None, owner: object) -> None:
        """Arm the direction ``frame`` was sent in (``endpoints``: its source and destination as
        the packet layer names them): its next sequence number ``seq``, ``left`` bytes to the end
        of the current PDU, and ``header``, the 12 bytes that open each PDU the lane may count
        after it (None: the lane stops at the end of this one)."""
        found = self._key_at(frame)
        if found is None and self._ethernet and not self.flows:
            # Captures from a trunk or SPAN port carry 802.1Q tags: walk tagged frames (of
            # this VLAN) or untagged ones, whichever the flow armed first has.
            link = _ethernet_link(frame)
            if link is not None and link != self._link:
                self._use_link(link)
                found = self._key_at(frame)
        if found is None or left <= 0:
            return
        key = found[0]
        back = key[4:8] + key[0:4] + key[10:12] + key[8:10]
        if back in self.flows or key in self.acks:
            return  # data both ways: leave it to the ordinary path
        if header is None:
            header, size = b"-", 0  # no 12-byte slice equals it: no boundary is crossed
        else:
            header, size = bytes(header), 6 + int.from_bytes(header[2:6], "big")
        flow = LaneFlow(key, back, seq, left, header, size, owner, endpoints)
        self.flows[key] = flow
        self.acks[back] = flow
        self._pairs[endpoints] = self._pairs[endpoints[::-1]] = flow

    def forget(self, src: str, dst: str) -> None:
        """A record between these endpoints takes the ordinary path: disarm their flow.

        By endpoints, as the packet layer decoded them, not by the lane's own key: the
        record may differ in form from the flow's (the other direction VLAN-tagged, or
        with IP options), and the ordinary path may change the connection's state."""
        flow = self._pairs.get((src, dst))
        if flow is not None:
            del self.flows[flow.key], self.acks[flow.back_key]
            del self._pairs[flow.endpoints], self._pairs[flow.endpoints[::-1]]

    def clear(self) -> None:
        self.flows.clear()
        self.acks.clear()
        self._pairs.clear()

    def skip(self, buf: bytes, pos: int, frame: int, size: int) -> tuple[int, int, bool]:
        """Count the records from ``pos`` on, up to ``size``, that continue armed flows.

        ``frame`` is the number of the record before ``pos``. Returns the position and
        frame number after the last record counted, and whether the walk stopped at a
        record it will not take (False: it reached ``size`` first). Flushes before returning.
        """
        # The hot loop of a bulk capture: the flow being followed is kept in locals (written
        # back when another takes over, and at the end); times and totals are worked out
        # from record positions only at the end.
        flows, acks = self.flows, self.acks
        record, headers = self._record, self._headers
        at, ip, signature = self._link  # type: ignore[misc]
        reach = ip + 34  # bytes of the frame the checks read
        pcapng, interfaces = self._pcapng, self._interfaces
        time_at = self._time_at
        start = 28 if pcapng else 16  # where a record's frame begins
        first_pos, first_frame = pos, frame
        last_pos = -1
        refused = False
        flow: LaneFlow | None = None
        key_now = back_now = None
        seq_now = left = count = frame_now = at_now = 0
        captured = 0  # captured bytes of the records counted
        while pos + start <= size:
            if pcapng:
                kind, block, interface, caplen = record(buf, pos)
                # Only an Enhanced Packet Block of a declared interface, its frame inside it;
                # anything else the ordinary path reads (or reports as damage).
                if kind != 6 or interface >= interfaces or caplen + 32 > block or block & 3:
                    refused = True
                    break
                end = pos + block
            else:
                caplen = record(buf, pos)[0]
                end = pos + 16 + caplen
            if end > size:
                break
            if caplen < reach:
                refused = True
                break
            link, version, total, fragment, protocol, key, seq, ack, offset, flags = \
                headers(buf, pos + start + at)
            offset = (offset >> 4) * 4
            length = total - 20 - offset
            if (version != 0x45 or protocol != 6 or fragment & 0x3FFF or flags & 0x07 or link != signature
                    or offset < 20 or length < 0 or ip + total > caplen):
                refused = True
                break
            if key != key_now:
                if key == back_now:
                    other = flow
                else:
                    other = flows.get(key)
                    if other is not None:  # another armed flow takes over
                        if flow is not None:
                            flow.seq, flow.left, flow.count = seq_now, left, count
                            if frame_now:
                                flow.frame, flow.at = frame_now, at_now
                        flow, key_now, back_now = other, other.key, other.back_key
                        seq_now, left, count, frame_now = other.seq, other.left, other.count, 0
                        other = None
                    else:
                        other = acks.get(key)
                if other is not None:  # a bare ACK back
                    # It must not acknowledge bytes the lane has not counted: those were lost
                    # by the capture, which the ordinary path reports from this very ACK.
                    if length or (flags & 0x10 and 0 < (ack - (seq_now if other is flow else other.seq))
                                  & 0xFFFFFFFF <= MAX_ACK_AHEAD):
                        refused = True
                        break
                    frame += 1
                    other.ack_frame, other.ack_at = frame, pos
                    captured += caplen
                    last_pos = pos
                    pos = end
                    continue
                if flow is None or key != key_now:
                    refused = True
                    break
            if length:
                if seq != seq_now:
                    refused = True
                    break
                if length < left:
                    left -= length
                else:
                    # The current PDU ends ``left`` bytes in (0: it ended with the last segment);
                    # each PDU begun here must open with the run's header, whole in this segment,
                    # or the record goes the ordinary way. A PDU that ends is counted where its
                    # last byte is, so its frame is exact.
                    step = flow.size
                    if not step and left:
                        refused = True  # a PDU unlike the last one framed: the ordinary path ends it
                        break
                    payload = pos + start + ip + 20 + offset
                    header = flow.header
                    boundary = left
                    whole = 1 if left else 0
                    while boundary < length:
                        at_header = payload + boundary
                        if boundary + 12 > length or buf[at_header:at_header + 12] != header:
                            break
                        boundary += step
                        if boundary <= length:
                            whole += 1
                    if boundary < length:
                        refused = True  # a header cut by the segment's end, or not the run's
                        break
                    if boundary - step < length:  # a PDU began in this segment (and may go on)
                        flow.first_frame = frame + 1
                    left = boundary - length
                    if whole:
                        flow.whole += whole
                        flow.run_frame = frame + 1
                        # The largest time of the records that ended a PDU, as the ordinary path
                        # keeps (timestamps may go backwards): once per PDU, not per record.
                        stamp = time_at(buf, pos)
                        if stamp > flow.run_time or not flow.run_time:
                            flow.run_time = stamp
                seq_now = (seq_now + length) & 0xFFFFFFFF
                count += length
            frame += 1
            frame_now, at_now = frame, pos
            captured += caplen
            last_pos = pos
            pos = end
        if flow is not None:
            flow.seq, flow.left, flow.count = seq_now, left, count
            if frame_now:
                flow.frame, flow.at = frame_now, at_now
        if last_pos >= 0:
            self._flush(buf)
            self.last_time = self._time_at(buf, last_pos)
            if self.on_records is not None:
                self.on_records(frame - first_frame, captured, self.last_time, pos - first_pos)
        return pos, frame, refused

    def _time_at(self, buf: bytes, pos: int) -> float:
        if self._clock is not None:
            return self._clock(buf, pos)
        sec, fraction = self._stamp(buf, pos)
        return sec + fraction / self._divisor

    def _flush(self, buf: bytes) -> None:
        """Hand every flow's counts to the layers (before any record takes the ordinary path),
        the record positions noted in ``buf`` turned into times first."""
        time_at, on_flush = self._time_at, self.on_flush
        for flow in self.flows.values():
            if not (flow.frame or flow.ack_frame):
                continue
            if flow.frame:
                flow.time = time_at(buf, flow.at)
            if flow.ack_frame:
                flow.ack_time = time_at(buf, flow.ack_at)
            if on_flush is not None:
                on_flush(flow)
            flow.clear()
