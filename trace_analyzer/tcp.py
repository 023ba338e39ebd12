"""TCP stream reassembly, per connection and direction.

Layer: TCP. Fed :class:`~trace_analyzer.packets.TcpSegment` items in capture
order, gives back events: a connection opened, in-order stream bytes for one
direction, a hole (bytes that were never captured), a connection closed.
Out-of-order segments wait in a bounded buffer; retransmissions and overlaps
are trimmed; a connection whose SYN was not captured starts at its first
seen byte. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpSegment

#: Out-of-order bytes held per direction before the missing ones are given up
#: as lost: beyond any sane TCP window, and a bound on memory.
MAX_OUT_OF_ORDER_BYTES = 16 * 1024 * 1024
MAX_OUT_OF_ORDER_SEGMENTS = 4096
#: Packets of a connection to wait, after the peer acknowledged bytes past a
#: hole, before the hole is declared lost.
ACKED_HOLE_GRACE = 8
#: An acknowledgement further ahead of the bytes seen than this is not believed (a
#: zero or random ACK field in a crafted or damaged segment), rather than taken as loss.
MAX_ACK_AHEAD = MAX_OUT_OF_ORDER_BYTES


@dataclass(slots=True)
class ConnectionOpened:
    conn: int
    client: str  # the SYN sender if the SYN was seen, else the first sender
    server: str
    frame: int
    time: float
    saw_syn: bool


@dataclass(slots=True)
class StreamData:
    conn: int
    src: str
    data: bytes
    frame: int
    time: float


@dataclass(slots=True)
class StreamGap:
    conn: int
    src: str
    size: int  # bytes missing; 0 when unknown
    frame: int  # first frame after the hole (or the cut frame)
    time: float
    detail: str
    #: Known from the other direction's ACK in ``frame``: it precedes that frame's own data.
    acked: bool = False


@dataclass(slots=True)
class ConnectionClosed:
    conn: int
    frame: int
    time: float
    how: str  # "fin", "rst", "end of capture", "reused"
    #: The endpoint that closed first (its FIN or RST), the frame and time it did; None if
    #: neither side closed (the capture ended, or the connection was reused).
    closer: str | None = None
    closer_frame: int = 0
    closer_time: float = 0.0


TcpEvent = ConnectionOpened | StreamData | StreamGap | ConnectionClosed


@dataclass(slots=True)
class _Direction:
    src: str
    next: int | None = None  # absolute stream position of the next byte wanted
    base_seq: int = 0  # sequence number that maps to absolute position 0
    #: held out-of-order segments: start -> (captured payload, stream length, frame, time)
    pending: dict[int, tuple[bytes, int, int, float]] = field(default_factory=dict)
    pending_bytes: int = 0
    fin: bool = False
    last_frame: int = 0
    last_time: float = 0.0
    acked_hole: int | None = None  # the peer acknowledged up to here, past a hole
    acked_grace: int = 0
    acked_frame: int = 0  # the frame of that acknowledgement, and its time
    acked_time: float = 0.0
    #: A later ACK acknowledged as far again: with nothing held, one ACK alone (corrupted, or
    #: crafted) is not taken as proof that bytes were lost.
    acked_confirmed: bool = False

    def absolute(self, seq: int) -> int:
        # Choose the absolute position nearest to what we expect next, so
        # that sequence numbers wrapping past 2**32 keep counting up.
        expected = self.next if self.next is not None else 0
        delta = ((seq - self.base_seq - expected + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        return expected + delta


@dataclass(slots=True)
class _Connection:
    conn: int
    client: str
    server: str
    directions: dict[str, _Direction]
    had_data: bool = False
    #: Stream events of one direction held while the other waits behind a hole: the two are
    #: handed on in capture order once it is filled or given up (see TcpReassembler._order).
    parked: list[StreamData | StreamGap] = field(default_factory=list)
    parked_bytes: int = 0
    closer: tuple[str, int, float] | None = None  # the first FIN or RST: (src, frame, time)

    @property
    def blocked(self) -> bool:
        """A direction waits behind a hole: bytes held out of order, or acknowledged by the
        peer but not (yet) seen."""
        return any(d.pending or d.acked_hole is not None for d in self.directions.values())


class TcpReassembler:
    """Reassemble every TCP connection of a capture."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str], _Connection] = {}
        self._next_id = 1
        self.retransmitted_bytes = 0
        self.out_of_order_segments = 0
        #: If set, in-order data on the fast path goes straight here,
        #: on_data(conn, src, data, frame, time), instead of as a StreamData event.
        self.on_data: Callable[[int, str, bytes, int, float], None] | None = None

    def feed(self, seg: TcpSegment, frame: int, time: float) -> list[TcpEvent]:
        key = (seg.src, seg.dst) if seg.src < seg.dst else (seg.dst, seg.src)
        connection = self._connections.get(key)
        if connection is not None and not seg.flags & 0x07:  # no SYN, FIN or RST
            # Fast path, nearly every packet of a healthy capture: the next
            # in-order bytes, nothing held in either direction.
            direction = connection.directions[seg.src]
            payload = seg.payload
            if (direction.next is not None and not direction.pending and direction.acked_hole is None
                    and len(payload) == seg.expected_length
                    and (seg.seq - direction.base_seq - direction.next) & 0xFFFFFFFF == 0):
                other = connection.directions[seg.dst]
                if not other.pending and other.acked_hole is None and (
                        other.next is None or not seg.flags & TCP_ACK
                        or not 0 < (seg.ack - other.base_seq - other.next) & 0xFFFFFFFF <= MAX_ACK_AHEAD):
                    # (an ACK past the other direction's last byte seen takes the slow path: loss)
                    direction.last_frame, direction.last_time = frame, time
                    if not payload:
                        return []
                    connection.had_data = True
                    direction.next += len(payload)
                    if self.on_data is not None:
                        self.on_data(connection.conn, seg.src, payload, frame, time)
                        return []
                    return [StreamData(connection.conn, seg.src, payload, frame, time)]
        events: list[TcpEvent] = []
        is_syn = bool(seg.flags & TCP_SYN)
        if connection is not None and is_syn and self._is_new_connection(connection, seg):
            events.extend(self._close(key, frame, time, "reused"))
            connection = None
        if connection is None:
            if not is_syn and not seg.payload:
                return events  # an ACK or FIN after the connection was closed
            connection = self._open(key, seg, frame, time, is_syn, events)
        direction = connection.directions[seg.src]
        direction.last_frame, direction.last_time = frame, time
        if is_syn and direction.next is None:  # a retransmitted SYN must not rewind the stream
            direction.base_seq = (seg.seq + 1) & 0xFFFFFFFF
            direction.next = 0
        if seg.payload or seg.expected_length:
            connection.had_data = True
            self._data(connection, direction, seg, frame, time, events)
        if seg.flags & TCP_ACK:
            self._acknowledged(connection.directions[seg.dst], seg.ack, frame, time)
        for held in connection.directions.values():
            if held.acked_hole is not None:
                self._wait_for_acked_hole(connection, held, events)
        if connection.parked or connection.blocked:
            events = self._order(connection, events)
        if seg.flags & (TCP_RST | TCP_FIN) and connection.closer is None:
            connection.closer = (seg.src, frame, time)
        if seg.flags & TCP_RST:
            events.extend(self._close(key, frame, time, "rst"))
        elif seg.flags & TCP_FIN:
            direction.fin = True
            if all(d.fin for d in connection.directions.values()):
                events.extend(self._close(key, frame, time, "fin"))
        return events

    def _order(self, connection: _Connection, events: list[TcpEvent]) -> list[TcpEvent]:
        """While a direction waits behind a hole, the other direction's stream events wait too:
        what is judged across directions (a response before its request is complete, a release
        before the final response) must not be judged on one direction alone. Once nothing
        waits, both go on together in capture order. Bounded: past the out-of-order limits
        the holes are given up."""
        stream = [e for e in events if isinstance(e, (StreamData, StreamGap))]
        other = [e for e in events if not isinstance(e, (StreamData, StreamGap))]
        connection.parked.extend(stream)
        connection.parked_bytes += sum(len(e.data) for e in stream if isinstance(e, StreamData))
        if connection.blocked and (connection.parked_bytes > MAX_OUT_OF_ORDER_BYTES
                                   or len(connection.parked) > MAX_OUT_OF_ORDER_SEGMENTS):
            self._give_up_all(connection, connection.parked)
        if connection.blocked:
            return other
        released = sorted(connection.parked, key=_capture_order)
        connection.parked, connection.parked_bytes = [], 0
        return other + released

    def holding(self, client: str, server: str) -> bool:
        """Is data of that connection held back behind a hole not yet given up (out-of-order
        segments waiting, or bytes the peer acknowledged that were never captured)?"""
        connection = self._connections.get((client, server) if client < server else (server, client))
        return connection is not None and any(
            d.pending or d.acked_hole is not None for d in connection.directions.values())

    # -- the fast lane (see lane.py) ----------------------------------------------

    def next_sequence(self, src: str, dst: str) -> int | None:
        """The sequence number of the next byte wanted from ``src``, if the connection is
        on the fast path (nothing held out of order either way, no hole in question)."""
        connection = self._connections.get((src, dst) if src < dst else (dst, src))
        if connection is None:
            return None
        direction, other = connection.directions[src], connection.directions[dst]
        if (direction.next is None or direction.pending or other.pending
                or direction.acked_hole is not None or other.acked_hole is not None):
            return None
        return (direction.base_seq + direction.next) & 0xFFFFFFFF

    def advance(self, src: str, dst: str, count: int, frame: int, time: float,
                ack_frame: int, ack_time: float) -> None:
        """``count`` in-order bytes from ``src`` (last in ``frame``) and bare ACKs from ``dst``
        (last in ``ack_frame``; 0 if none) went by in the fast lane, which counted them."""
        connection = self._connections[(src, dst) if src < dst else (dst, src)]
        direction = connection.directions[src]
        if frame:
            direction.last_frame, direction.last_time = frame, time
        if count:
            direction.next += count
            connection.had_data = True
        if ack_frame:
            other = connection.directions[dst]
            other.last_frame, other.last_time = ack_frame, ack_time

    def close(self, frame: int, time: float) -> list[TcpEvent]:
        """End of capture: flush every connection, reporting unfilled holes."""
        events: list[TcpEvent] = []
        for key in list(self._connections):
            events.extend(self._close(key, frame, time, "end of capture"))
        return events

    def _is_new_connection(self, connection: _Connection, seg: TcpSegment) -> bool:
        direction = connection.directions[seg.src]
        if direction.next is None:
            # This side's first SYN. A plain SYN (not a SYN-ACK, which may
            # answer a SYN carrying data) opens a new connection if the old one,
            # caught mid-stream with this side silent, already carried data.
            return connection.had_data and not seg.flags & TCP_ACK
        # A SYN retransmission carries the same ISN; a new SYN does not. A
        # SYN-ACK retransmitted after data flowed (its ACK was lost) is still
        # the same connection; a client's SYN after data is not.
        if (seg.seq + 1) & 0xFFFFFFFF != direction.base_seq:
            return True
        return connection.had_data and not seg.flags & TCP_ACK

    def _open(self, key, seg: TcpSegment, frame: int, time: float, is_syn: bool,
              events: list[TcpEvent]) -> _Connection:
        if is_syn and seg.flags & TCP_ACK:  # SYN-ACK seen first: its sender is the server
            client, server = seg.dst, seg.src
        else:
            client, server = seg.src, seg.dst
        connection = _Connection(self._next_id, client, server,
                                 {seg.src: _Direction(seg.src), seg.dst: _Direction(seg.dst)})
        self._next_id += 1
        self._connections[key] = connection
        events.append(ConnectionOpened(connection.conn, client, server, frame, time, is_syn))
        return connection

    def _data(self, connection: _Connection, direction: _Direction, seg: TcpSegment,
              frame: int, time: float, events: list[TcpEvent]) -> None:
        payload = seg.payload
        seq = seg.seq + (1 if seg.flags & TCP_SYN else 0)
        if direction.next is None:  # first byte seen of a connection caught mid-stream
            direction.base_seq = seq & 0xFFFFFFFF
            direction.next = 0
        start = direction.absolute(seq)
        # A frame cut by the snaplen still fills its whole length of the stream;
        # the part not captured becomes a gap when the stream reaches it (also
        # when the cut frame arrives out of order and waits).
        length = max(len(payload), seg.expected_length)
        if start + length <= direction.next:
            self.retransmitted_bytes += len(payload)
            return
        if start <= direction.next:
            self._deliver(connection, direction, start, payload, length, frame, time, frame, events)
            if direction.pending:
                self._drain(connection, direction, frame, time, events)
            return
        # A segment from the future: hold it until the bytes before it come.
        self.out_of_order_segments += 1
        held = direction.pending.get(start)
        if held is None or (len(payload), length) > (len(held[0]), held[1]):
            direction.pending_bytes += len(payload) - (len(held[0]) if held else 0)
            direction.pending[start] = (payload, length, frame, time)
        if (direction.pending_bytes > MAX_OUT_OF_ORDER_BYTES
                or len(direction.pending) > MAX_OUT_OF_ORDER_SEGMENTS):
            self._give_up_hole(connection, direction, events)

    def _deliver(self, connection: _Connection, direction: _Direction, start: int, payload: bytes,
                 length: int, frame: int, time: float, captured_in: int, events: list[TcpEvent]) -> None:
        """Emit a segment with start <= next < start + length, trimming what was already given."""
        assert direction.next is not None
        overlap = direction.next - start
        if overlap:
            self.retransmitted_bytes += min(overlap, len(payload))
        if overlap < len(payload):
            events.append(StreamData(connection.conn, direction.src, payload[overlap:], frame, time))
        end = start + length
        hole = end - max(start + len(payload), direction.next)
        if hole > 0:
            # The snaplen cut this frame: what is missing is a hole we know of.
            events.append(StreamGap(connection.conn, direction.src, hole, frame, time,
                                    f"frame {captured_in} was cut by the capture's snaplen: "
                                    f"{hole} TCP payload bytes not captured"))
        direction.next = end

    def _drain(self, connection: _Connection, direction: _Direction, frame: int, time: float,
               events: list[TcpEvent]) -> None:
        """Release held segments that have become contiguous.

        They are reported at ``frame`` (the frame that filled the hole) or at
        their own frame if later, so a direction's frames never go backwards:
        bytes held out of order are usable only once the bytes before them are.
        """
        pending = direction.pending
        while pending:
            start = min(pending)
            if start > direction.next:
                return
            payload, length, held_frame, held_time = pending.pop(start)
            direction.pending_bytes -= len(payload)
            if start + length <= direction.next:
                self.retransmitted_bytes += len(payload)
                continue
            if held_frame > frame:
                frame, time = held_frame, held_time
            self._deliver(connection, direction, start, payload, length, frame, time, held_frame, events)

    def _acknowledged(self, direction: _Direction, ack: int, frame: int, time: float) -> None:
        """The peer acknowledged bytes past what was seen of this direction: note it; they
        may yet show up.

        Either past a hole before held segments, or past the last byte seen with nothing
        held: bytes the peer received that the capture missed (a lost A-ASSOCIATE-AC, a lost
        C-GET-RQ). A capture point can see an ACK a little before the data it covers, so the
        hole is given up only if it stays unfilled for a few more packets (see
        _wait_for_acked_hole); meanwhile the other direction waits (_order), so nothing it
        sends is judged as if those bytes had never been sent.
        """
        if direction.next is None:
            return
        acknowledged = direction.absolute(ack)
        if direction.acked_hole is not None:
            if acknowledged >= direction.acked_hole:
                direction.acked_confirmed = True  # cumulative ACKs: the peer did get those bytes
            return
        ahead = acknowledged - direction.next
        if ahead <= 0 or ahead > MAX_ACK_AHEAD or (direction.fin and ahead == 1 and not direction.pending):
            return  # nothing missing (a FIN takes one sequence number), or an ACK not believed
        direction.acked_hole = acknowledged
        direction.acked_grace = ACKED_HOLE_GRACE
        direction.acked_frame, direction.acked_time = frame, time
        direction.acked_confirmed = False

    def _wait_for_acked_hole(self, connection: _Connection, direction: _Direction,
                             events: list[TcpEvent]) -> None:
        missing = direction.acked_hole - direction.next
        if missing <= 0 or (direction.fin and missing == 1 and not direction.pending):
            direction.acked_hole = None  # filled after all
            return
        direction.acked_grace -= 1
        if direction.acked_grace > 0:
            return
        if not direction.pending and not direction.acked_confirmed:
            direction.acked_hole = None  # one ACK ahead, never repeated: not believed
            return
        self._give_up_acked(connection, direction, events)

    def _give_up_acked(self, connection: _Connection, direction: _Direction,
                       events: list[TcpEvent]) -> None:
        acknowledged, direction.acked_hole = direction.acked_hole, None
        evidence = (direction.acked_frame, direction.acked_time)
        while direction.pending and direction.next < acknowledged and min(direction.pending) <= acknowledged:
            # The first hole was known from the ACK, before the held segments came: it is
            # ordered there, ahead of what the other direction sent after that ACK.
            self._give_up_hole(connection, direction, events, evidence)
            evidence = None
        missing = acknowledged - direction.next
        if missing > 0 and not direction.pending:
            # Nothing held: the acknowledged bytes were never captured at all.
            events.append(StreamGap(connection.conn, direction.src, missing, direction.acked_frame,
                                    direction.acked_time,
                                    f"{missing} bytes acknowledged by the peer in frame "
                                    f"{direction.acked_frame} were never captured", acked=True))
            direction.next = acknowledged

    def _give_up_hole(self, connection: _Connection, direction: _Direction,
                      events: list[TcpEvent], evidence: tuple[int, float] | None = None) -> None:
        start = min(direction.pending)
        frame, time = direction.pending[start][2:]
        size = start - direction.next
        if evidence is not None and evidence[0] < frame:
            events.append(StreamGap(connection.conn, direction.src, size, evidence[0], evidence[1],
                                    f"{size} bytes never captured before frame {frame} (acknowledged by "
                                    f"the peer in frame {evidence[0]})", acked=True))
        else:
            events.append(StreamGap(connection.conn, direction.src, size, frame, time,
                                    f"{size} bytes never captured before frame {frame}"))
        direction.next = start
        self._drain(connection, direction, frame, time, events)

    def _give_up_all(self, connection: _Connection, events: list) -> None:
        for direction in connection.directions.values():
            if direction.acked_hole is not None:
                if direction.pending or direction.acked_confirmed:
                    self._give_up_acked(connection, direction, events)
                else:
                    direction.acked_hole = None
            while direction.pending:
                self._give_up_hole(connection, direction, events)

    def _close(self, key, frame: int, time: float, how: str) -> list[TcpEvent]:
        connection = self._connections.pop(key)
        events: list[TcpEvent] = list(connection.parked)
        self._give_up_all(connection, events)
        events.sort(key=_capture_order)  # the parked and the given-up, in capture order
        closer = connection.closer if how != "reused" else None
        events.append(ConnectionClosed(connection.conn, frame, time, how,
                                       *(closer if closer is not None else (None, 0, 0.0))))
        return events


def _capture_order(event: StreamData | StreamGap) -> tuple[int, int]:
    """Sort key for stream events of both directions: by frame (sorting is stable, so a
    direction keeps its own order); a hole known from an ACK goes before that frame's data."""
    return event.frame, 0 if getattr(event, "acked", False) else 1
