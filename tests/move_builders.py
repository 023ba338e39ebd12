"""Build C-MOVE retrieves byte by byte: the C-MOVE association and the sub-operation one(s),
interleaved in time in one capture. Encodings come from builders.py (written from PS3.7/PS3.8)."""

from __future__ import annotations

from builders import CT, associate, command_set, identifier, message, release_rp, release_rq
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
#: The C-MOVE association (MOVESCU -> QRSCP) and the sub-operation one (QRSCP -> STORESCP).
MOVE_CONN = (("127.0.0.1", 40001), ("127.0.0.2", 11112))
STORE_CONN = (("127.0.0.2", 40100), ("127.0.0.3", 11113))


def _ae(text: str) -> bytes:
    """An AE title value: ASCII, padded with a space to an even length."""
    raw = text.encode()
    return raw + b" " if len(raw) % 2 else raw


def c_move_rq(message_id: int, destination: str | None = "STORESCP", priority: int | None = 0,
              context_id: int = 1, sop_class: str = STUDY_ROOT_MOVE, data: bytes | None = None) -> bytes:
    fields: dict[int, object] = {0x0002: sop_class, 0x0100: 0x0021, 0x0110: message_id, 0x0800: 0x0001}
    if priority is not None:
        fields[0x0700] = priority
    if destination is not None:
        fields[0x0600] = _ae(destination)
    if data is None:
        data = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")
    return message(context_id, command_set(fields), data)


def c_move_rsp(message_id: int, status: int, counters: tuple | None = None, context_id: int = 1) -> bytes:
    fields: dict[int, object] = {0x0002: STUDY_ROOT_MOVE, 0x0100: 0x8021, 0x0120: message_id,
                                 0x0800: 0x0101, 0x0900: status}
    for element, value in zip((0x1020, 0x1021, 0x1022, 0x1023), counters or (), strict=False):
        if value is not None:
            fields[element] = value
    return message(context_id, command_set(fields))


def sub_store_rq(message_id: int, instance: str, origin_ae: str | None = "MOVESCU", origin_id: int | None = 1,
                 priority: int = 0, context_id: int = 1) -> bytes:
    fields: dict[int, object] = {0x0002: CT, 0x0100: 0x0001, 0x0110: message_id, 0x0700: priority,
                                 0x0800: 0x0001, 0x1000: instance}
    if origin_ae is not None:
        fields[0x1030] = _ae(origin_ae)
    if origin_id is not None:
        fields[0x1031] = origin_id
    data = identifier(SOPClassUID=CT, SOPInstanceUID=instance) + bytes(200)
    return message(context_id, command_set(fields), data)


def sub_store_rsp(message_id: int, status: int, instance: str, context_id: int = 1) -> bytes:
    return message(context_id, command_set({0x0002: CT, 0x0100: 0x8001, 0x0120: message_id, 0x0800: 0x0101,
                                            0x0900: status, 0x1000: instance}))


def c_find_rq(message_id: int, data: bytes | None = None, context_id: int = 1) -> bytes:
    fields = {0x0002: STUDY_ROOT_FIND, 0x0100: 0x0020, 0x0110: message_id, 0x0700: 0, 0x0800: 0x0001}
    if data is None:
        data = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="")
    return message(context_id, command_set(fields), data)


def c_find_rsp(message_id: int, status: int, match: bytes | None = None, context_id: int = 1) -> bytes:
    fields = {0x0002: STUDY_ROOT_FIND, 0x0100: 0x8020, 0x0120: message_id,
              0x0800: 0x0101 if match is None else 0x0001, 0x0900: status}
    return message(context_id, command_set(fields), match)


def move_open(calling: str = "MOVESCU", called: str = "QRSCP") -> list[tuple[str, str, bytes]]:
    contexts = [(1, STUDY_ROOT_MOVE, 0)]
    return [("move", "c", associate(True, contexts, calling=calling, called=called)),
            ("move", "s", associate(False, contexts, calling=calling, called=called))]


def store_open(conn: str = "store", calling: str = "QRSCP", called: str = "STORESCP"):
    contexts = [(1, CT, 0)]
    return [(conn, "c", associate(True, contexts, calling=calling, called=called)),
            (conn, "s", associate(False, contexts, calling=calling, called=called))]


def close(conn: str) -> list[tuple[str, str, bytes]]:
    return [(conn, "c", release_rq()), (conn, "s", release_rp())]


def stores(count: int, origin_ae: str | None = "MOVESCU", origin_id: int | None = 1, conn: str = "store",
           first: int = 1, status: int = 0x0000, priority: int = 0) -> list[tuple[str, str, bytes]]:
    out = []
    for index in range(count):
        uid = f"1.2.3.9.{first + index}"
        out.append((conn, "c", sub_store_rq(first + index, uid, origin_ae, origin_id, priority)))
        out.append((conn, "s", sub_store_rsp(first + index, status, uid)))
    return out


def packets(steps: list[tuple[str, str, bytes]], conns: dict[str, tuple] | None = None,
            start: float = 1_700_000_000.0, step: float = 0.001, mss: int = 1460):
    """Scapy packets for several TCP conversations interleaved as ``steps`` say: (connection name,
    "c" or "s", bytes). A connection's handshake comes just before its first step."""
    conns = conns or {"move": MOVE_CONN, "store": STORE_CONN}
    seq: dict[tuple[str, str], int] = {}
    clock = [start]
    out = []

    def emit(name: str, side: str, flags: str, payload: bytes = b"") -> None:
        client, server = conns[name]
        (src, sport), (dst, dport) = (client, server) if side == "c" else (server, client)
        other = "s" if side == "c" else "c"
        packet = (Ether() / IP(src=src, dst=dst) /
                  TCP(sport=sport, dport=dport, flags=flags, seq=seq[(name, side)], ack=seq[(name, other)])
                  / payload)
        packet.time = clock[0]
        clock[0] += step
        out.append(packet)
        seq[(name, side)] += len(payload) + (1 if "S" in flags or "F" in flags else 0)

    for name, side, data in steps:
        if (name, "c") not in seq:
            seq[(name, "c")], seq[(name, "s")] = 1000, 5000
            emit(name, "c", "S")
            emit(name, "s", "SA")
            emit(name, "c", "A")
        for offset in range(0, len(data), mss):
            emit(name, side, "PA", data[offset:offset + mss])
    return out
