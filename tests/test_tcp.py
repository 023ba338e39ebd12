"""TcpReassembler: per-connection, per-direction stream reassembly."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trace_analyzer.packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpSegment
from trace_analyzer.tcp import (
    ConnectionClosed,
    ConnectionOpened,
    StreamData,
    StreamGap,
    TcpReassembler,
)

A, B = "10.0.0.1:40000", "10.0.0.2:104"
ISN_A, ISN_B = 1000, 900000
PSH_ACK = 0x08 | TCP_ACK


def seg(src: str, seq: int, payload: bytes = b"", flags: int = PSH_ACK,
        expected: int | None = None) -> TcpSegment:
    dst = B if src == A else A
    return TcpSegment(src, dst, seq & 0xFFFFFFFF, flags, payload,
                      len(payload) if expected is None else expected)


class Feeder:
    """Feed segments with increasing frame numbers; collect every event."""

    def __init__(self) -> None:
        self.tcp = TcpReassembler()
        self.frame = 0
        self.events: list = []

    def __call__(self, segment: TcpSegment) -> list:
        self.frame += 1
        out = self.tcp.feed(segment, self.frame, self.frame / 10)
        self.events.extend(out)
        return out

    def close(self) -> list:
        out = self.tcp.close(self.frame + 1, 99.0)
        self.events.extend(out)
        return out

    def data(self, src: str | None = None, conn: int | None = None) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, StreamData)
                        and (src is None or e.src == src) and (conn is None or e.conn == conn))

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def handshake(feed: Feeder) -> None:
    feed(seg(A, ISN_A, flags=TCP_SYN))
    feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))
    feed(seg(A, ISN_A + 1, flags=TCP_ACK))


def test_in_order():
    feed = Feeder()
    handshake(feed)
    opened = feed.of(ConnectionOpened)
    assert len(opened) == 1
    assert (opened[0].client, opened[0].server, opened[0].saw_syn, opened[0].frame) == (A, B, True, 1)
    out = feed(seg(A, ISN_A + 1, b"hello "))
    assert out == [StreamData(1, A, b"hello ", 4, 0.4)]
    feed(seg(A, ISN_A + 7, b"world"))
    feed(seg(B, ISN_B + 1, b"reply"))
    assert feed.data(A) == b"hello world"
    assert feed.data(B) == b"reply"
    assert not feed.of(StreamGap)
    assert feed.tcp.retransmitted_bytes == 0


def test_out_of_order_held_then_released():
    feed = Feeder()
    handshake(feed)
    assert feed(seg(A, ISN_A + 4, b"def")) == []  # from the future: held
    assert feed(seg(A, ISN_A + 7, b"ghi")) == []
    out = feed(seg(A, ISN_A + 1, b"abc"))
    assert b"".join(e.data for e in out) == b"abcdefghi"
    assert feed.tcp.out_of_order_segments == 2
    assert not feed.of(StreamGap)


def test_released_data_carries_the_frame_that_completed_it():
    # Bytes held out of order become usable only when the hole is filled:
    # they must not be reported at an earlier frame than the bytes before them.
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 4, b"def"))  # frame 4
    out = feed(seg(A, ISN_A + 1, b"abc"))  # frame 5
    assert [(e.data, e.frame) for e in out] == [(b"abc", 5), (b"def", 5)]


def test_retransmission_dropped():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"abcdef"))
    assert feed(seg(A, ISN_A + 1, b"abcdef")) == []
    assert feed.tcp.retransmitted_bytes == 6
    feed(seg(A, ISN_A + 7, b"gh"))
    assert feed.data(A) == b"abcdefgh"


def test_overlapping_segments_trimmed():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"abcd"))
    out = feed(seg(A, ISN_A + 3, b"cdefg"))  # overlaps by 2
    assert [e.data for e in out] == [b"efg"]
    # An overlapping out-of-order pair: both held, released without duplicates.
    feed(seg(A, ISN_A + 12, b"lmnop"))
    feed(seg(A, ISN_A + 10, b"jklm"))
    feed(seg(A, ISN_A + 8, b"hij"))
    assert feed.data(A) == b"abcdefghijklmnop"
    assert feed.tcp.retransmitted_bytes == 2 + 1 + 2


def test_mid_stream_without_syn():
    feed = Feeder()
    out = feed(seg(B, 777777, b"first bytes seen"))
    assert isinstance(out[0], ConnectionOpened)
    assert (out[0].client, out[0].server, out[0].saw_syn) == (B, A, False)
    assert out[1] == StreamData(1, B, b"first bytes seen", 1, 0.1)
    feed(seg(A, 5, b"other way"))
    feed(seg(B, 777777 + 16, b" and more"))
    assert feed.data(B) == b"first bytes seen and more"
    assert feed.data(A) == b"other way"


def test_pure_ack_without_connection_ignored():
    feed = Feeder()
    assert feed(seg(A, 5, flags=TCP_ACK)) == []
    assert feed(seg(A, 5, flags=TCP_FIN | TCP_ACK)) == []


def test_syn_ack_seen_first_makes_its_sender_the_server():
    feed = Feeder()
    out = feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))
    assert (out[0].client, out[0].server, out[0].saw_syn) == (A, B, True)
    feed(seg(A, ISN_A, flags=TCP_SYN))  # the SYN, captured late: same connection
    feed(seg(A, ISN_A + 1, b"x"))
    assert len(feed.of(ConnectionOpened)) == 1


def test_sequence_wrap():
    feed = Feeder()
    isn = 0xFFFFFFFF - 5
    feed(seg(A, isn, flags=TCP_SYN))
    feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))
    feed(seg(A, isn + 1, b"0123"))  # 0xFFFFFFFB..FE
    feed(seg(A, isn + 5, b"4567"))  # crosses 2**32
    feed(seg(A, isn + 13, b"CDEF"))  # held, after the wrap
    feed(seg(A, isn + 9, b"89AB"))
    feed(seg(A, isn + 1, b"0123"))  # an old retransmission from before the wrap
    assert feed.data(A) == b"0123456789ABCDEF"
    assert not feed.of(StreamGap)
    assert feed.tcp.retransmitted_bytes == 4


def test_mid_stream_sequence_wrap():
    feed = Feeder()
    feed(seg(A, 0xFFFFFFF0, b"x" * 16))
    feed(seg(A, 0, b"y" * 16))
    assert feed.data(A) == b"x" * 16 + b"y" * 16


def test_lost_segment_gap_then_data_resumes():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"a" * 100))
    feed(seg(A, ISN_A + 201, b"c" * 100))  # 100 bytes at +101 never captured
    feed(seg(A, ISN_A + 301, b"d" * 50))
    feed(seg(A, ISN_A + 351, flags=TCP_FIN | TCP_ACK))
    feed(seg(B, ISN_B + 1, flags=TCP_FIN | TCP_ACK))
    kinds = [type(e).__name__ for e in feed.events if not isinstance(e, ConnectionOpened)]
    assert kinds == ["StreamData", "StreamGap", "StreamData", "StreamData", "ConnectionClosed"]
    gap = feed.of(StreamGap)[0]
    assert gap.size == 100
    assert gap.src == A
    assert gap.frame == 5  # the first frame after the hole
    assert feed.data(A) == b"a" * 100 + b"c" * 100 + b"d" * 50
    assert feed.of(ConnectionClosed)[0].how == "fin"


def test_too_much_held_data_gives_the_hole_up(monkeypatch):
    import trace_analyzer.tcp as tcp

    monkeypatch.setattr(tcp, "MAX_OUT_OF_ORDER_SEGMENTS", 3)
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"a" * 10))
    for i in range(4):
        feed(seg(A, ISN_A + 21 + 10 * i, bytes([65 + i]) * 10))
    gaps = feed.of(StreamGap)
    assert [g.size for g in gaps] == [10]
    assert feed.data(A) == b"a" * 10 + b"A" * 10 + b"B" * 10 + b"C" * 10 + b"D" * 10
    feed(seg(A, ISN_A + 61, b"E" * 10))  # and data flows on
    assert feed.data(A).endswith(b"E" * 10)


def test_snaplen_cut_gives_gap():
    feed = Feeder()
    handshake(feed)
    out = feed(seg(A, ISN_A + 1, b"abcd", expected=10))
    assert [type(e) for e in out] == [StreamData, StreamGap]
    assert out[0].data == b"abcd"
    assert out[1].size == 6 and out[1].frame == 4
    out = feed(seg(A, ISN_A + 11, b"next"))
    assert out == [StreamData(1, A, b"next", 5, 0.5)]


def test_snaplen_cut_out_of_order():
    # A cut frame that arrives ahead of the segment before it: the earlier
    # segment still fits, the cut tail is a gap of its real size.
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 11, b"klmn", expected=10))  # 6 bytes cut off its tail
    feed(seg(A, ISN_A + 1, b"abcdefghij"))
    feed(seg(A, ISN_A + 21, b"uvw"))
    assert feed.data(A) == b"abcdefghij" + b"klmn" + b"uvw"
    assert [g.size for g in feed.of(StreamGap)] == [6]


def test_snaplen_cut_retransmission_after_full_copy_is_no_gap():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"abcdefghij"))
    feed(seg(A, ISN_A + 1, b"abcd", expected=10))
    assert not feed.of(StreamGap)
    assert feed.data(A) == b"abcdefghij"


def test_port_reuse_after_fin():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"one"))
    feed(seg(A, ISN_A + 4, flags=TCP_FIN | TCP_ACK))
    feed(seg(B, ISN_B + 1, flags=TCP_FIN | TCP_ACK))
    feed(seg(A, ISN_A + 5, flags=TCP_ACK))  # last ACK: after the close, ignored
    closed = feed.of(ConnectionClosed)
    assert [(c.conn, c.how) for c in closed] == [(1, "fin")]
    feed(seg(A, 5000, flags=TCP_SYN))
    feed(seg(A, 5001, b"two"))
    opened = feed.of(ConnectionOpened)
    assert [o.conn for o in opened] == [1, 2]
    assert feed.data(A, conn=1) == b"one"
    assert feed.data(A, conn=2) == b"two"


def test_port_reuse_after_rst():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"one"))
    out = feed(seg(B, ISN_B + 1, flags=TCP_RST))
    assert out == [ConnectionClosed(1, 5, 0.5, "rst", "10.0.0.2:104", 5, 0.5)]  # who reset it, where
    feed(seg(A, 7000, flags=TCP_SYN))
    assert feed.of(ConnectionOpened)[-1].conn == 2


def test_new_syn_without_close_reuses_port():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"one"))
    out = feed(seg(A, 555555, flags=TCP_SYN))  # FIN/RST never captured
    assert isinstance(out[0], ConnectionClosed) and out[0].how == "reused"
    assert isinstance(out[1], ConnectionOpened) and out[1].conn == 2


def test_new_syn_on_mid_stream_connection_without_client_data():
    # Capture began mid-stream and only the server's bytes were seen; a new
    # SYN from the client is a new connection, not part of the old one.
    feed = Feeder()
    feed(seg(B, 123, b"server data"))
    out = feed(seg(A, 555555, flags=TCP_SYN))
    assert [type(e) for e in out] == [ConnectionClosed, ConnectionOpened]
    assert out[1].conn == 2 and out[1].client == A


def test_syn_retransmission_is_not_a_new_connection():
    feed = Feeder()
    feed(seg(A, ISN_A, flags=TCP_SYN))
    feed(seg(A, ISN_A, flags=TCP_SYN))
    feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))
    feed(seg(A, ISN_A + 1, b"x"))
    assert len(feed.of(ConnectionOpened)) == 1
    assert not feed.of(ConnectionClosed)


def test_fin_needs_both_directions():
    feed = Feeder()
    handshake(feed)
    assert feed(seg(A, ISN_A + 1, b"bye", flags=TCP_FIN | TCP_ACK)) == [StreamData(1, A, b"bye", 4, 0.4)]
    feed(seg(B, ISN_B + 1, b"late reply"))  # half-closed: the other side may still send
    out = feed(seg(B, ISN_B + 11, flags=TCP_FIN | TCP_ACK))
    assert out == [ConnectionClosed(1, 6, 0.6, "fin", "10.0.0.1:40000", 4, 0.4)]  # the first FIN's sender
    assert feed.data(B) == b"late reply"


def test_close_at_end_flushes_held_segments_as_gap():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"abc"))
    feed(seg(A, ISN_A + 14, b"xyz"))  # 10 bytes missing before it
    feed(seg(B, ISN_B + 21, b"tail"))  # 20 bytes missing in the other direction
    assert not feed.of(StreamGap)
    out = feed.close()
    gaps = [e for e in out if isinstance(e, StreamGap)]
    assert sorted((g.src, g.size) for g in gaps) == [(A, 10), (B, 20)]
    assert feed.data(A) == b"abcxyz"
    assert feed.data(B) == b"tail"
    assert out[-1] == ConnectionClosed(1, feed.frame + 1, 99.0, "end of capture")
    assert feed.tcp.close(100, 100.0) == []  # nothing left


def test_connections_kept_apart():
    feed = Feeder()
    c = "10.0.0.3:50000"
    feed(TcpSegment(A, B, 1, PSH_ACK, b"AB", 2))
    feed(TcpSegment(c, B, 1, PSH_ACK, b"CB", 2))
    feed(TcpSegment(B, c, 1, PSH_ACK, b"BC", 2))
    assert [o.conn for o in feed.of(ConnectionOpened)] == [1, 2]
    assert feed.data(conn=1) == b"AB"
    assert feed.data(conn=2) == b"CBBC"


# -- property: reordering and duplication never change the stream -------------

@st.composite
def shuffled_stream(draw):
    data = draw(st.binary(min_size=1, max_size=3000))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data)), max_size=40))) | {0, len(data)})
    pieces = [(cuts[i], data[cuts[i]:cuts[i + 1]]) for i in range(len(cuts) - 1)]
    seed = draw(st.integers(0, 2**32))
    isn = draw(st.integers(0, 0xFFFFFFFF))
    with_syn = draw(st.booleans())
    return data, pieces, seed, isn, with_syn


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shuffled_stream())
def test_property_reorder_and_duplicates(example):
    data, pieces, seed, isn, with_syn = example
    rng = random.Random(seed)
    deliveries = list(pieces)
    deliveries += [rng.choice(pieces) for _ in range(rng.randint(0, len(pieces)))]
    # Overlapping retransmissions too: a segment covering two neighbours.
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(pieces))
        j = min(len(pieces) - 1, i + 1)
        deliveries.append((pieces[i][0], data[pieces[i][0]:pieces[j][0] + len(pieces[j][1])]))
    rng.shuffle(deliveries)
    if not with_syn:
        # Mid-stream, the first byte must be seen first or earlier bytes are history.
        first = next(p for p in deliveries if p[0] == 0)
        deliveries.remove(first)
        deliveries.insert(0, first)
    feed = Feeder()
    if with_syn:
        feed(seg(A, isn - 1, flags=TCP_SYN))
    for offset, piece in deliveries:
        feed(seg(A, isn + offset, piece))
    feed.close()
    assert feed.data(A) == data
    assert not feed.of(StreamGap)
    assert len(feed.of(ConnectionOpened)) == 1


def test_syn_with_data_then_syn_ack_is_one_connection():
    # TCP Fast Open: the SYN carries data; the SYN-ACK still belongs to it.
    feed = Feeder()
    feed(seg(A, ISN_A, b"early", flags=TCP_SYN))
    feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))
    feed(seg(A, ISN_A + 6, b" data"))
    assert len(feed.of(ConnectionOpened)) == 1
    assert feed.data(A) == b"early data"


def test_syn_ack_retransmitted_after_data_is_same_connection():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"request"))
    feed(seg(B, ISN_B + 1, b"ans"))
    feed(seg(B, ISN_B, flags=TCP_SYN | TCP_ACK))  # spurious retransmission
    feed(seg(B, ISN_B + 4, b"wer"))
    assert len(feed.of(ConnectionOpened)) == 1
    assert not feed.of(ConnectionClosed)
    assert feed.data(B) == b"answer"


def _ack(src: str, ack: int) -> TcpSegment:
    dst = B if src == A else A
    base = ISN_B if src == B else ISN_A
    return TcpSegment(src, dst, (base + 1) & 0xFFFFFFFF, TCP_ACK, b"", 0, ack & 0xFFFFFFFF)


def test_acknowledged_hole_is_given_up_without_waiting_for_the_end():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"a" * 100))
    feed(seg(A, ISN_A + 201, b"c" * 100))  # 100 bytes at +101 never captured
    feed(_ack(B, ISN_A + 301))  # ...but B received them
    for _ in range(10):
        feed(seg(B, ISN_B + 1 + 10 * _, b"x" * 10))
    gaps = feed.of(StreamGap)
    assert len(gaps) == 1 and gaps[0].size == 100
    # Given up while B kept talking, long before the connection ends.
    assert feed.data(A) == b"a" * 100 + b"c" * 100
    assert not feed.of(ConnectionClosed)


def test_acknowledged_hole_that_fills_soon_is_no_hole():
    feed = Feeder()
    handshake(feed)
    feed(seg(A, ISN_A + 1, b"a" * 100))
    feed(seg(A, ISN_A + 201, b"c" * 100))
    feed(_ack(B, ISN_A + 301))  # the capture saw the ACK before the data it covers
    feed(seg(A, ISN_A + 101, b"b" * 100))
    assert feed.of(StreamGap) == []
    assert feed.data(A) == b"a" * 100 + b"b" * 100 + b"c" * 100
