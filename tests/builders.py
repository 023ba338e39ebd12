"""Build DICOM conversations byte by byte and write them as captures.

For tests that need faults or timings no real peer produces. Encodings are
written out here from PS3.8 9.3 and PS3.7 6.3.1 so that a test does not use
the code under test to make its input.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

CT = "1.2.840.10008.5.1.4.1.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
IMPLICIT = "1.2.840.10008.1.2"
CLIENT = ("127.0.0.1", 40001)
SERVER = ("127.0.0.2", 11112)


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def associate(request: bool, contexts: list[tuple[int, str, int]], roles=(),
              calling: str = "GETSCU", called: str = "QRSCP", max_pdu: int = 16384) -> bytes:
    """A-ASSOCIATE-RQ (request=True) or -AC; contexts are (id, abstract syntax, AC result)."""
    items = _item(0x10, b"1.2.840.10008.3.1.1.1")
    for context_id, abstract, result in contexts:
        if request:
            sub = _item(0x30, abstract.encode()) + _item(0x40, IMPLICIT.encode())
            items += _item(0x20, bytes([context_id, 0, 0, 0]) + sub)
        else:
            items += _item(0x21, bytes([context_id, 0, result, 0]) + _item(0x40, IMPLICIT.encode()))
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4.5")
    for uid, scu, scp in roles:
        user += _item(0x54, struct.pack(">H", len(uid)) + uid.encode() + bytes([scu, scp]))
    user += _item(0x55, b"BUILDER_1")
    items += _item(0x50, user)
    body = (struct.pack(">HH", 1, 0) + called.encode().ljust(16) + calling.encode().ljust(16)
            + bytes(32) + items)
    return _pdu(0x01 if request else 0x02, body)


def release_rq() -> bytes:
    return _pdu(0x05, bytes(4))


def release_rp() -> bytes:
    return _pdu(0x06, bytes(4))


def abort(source: int = 0, reason: int = 0) -> bytes:
    return _pdu(0x07, bytes([0, 0, source, reason]))


# -- command sets ---------------------------------------------------------------

_VR = {0x0002: "UI", 0x1000: "UI", 0x0902: "LO", 0x0901: "AT"}


def command_set(fields: dict[int, object]) -> bytes:
    """Encode group 0000 elements (Implicit VR LE), with a correct group length."""
    body = b""
    for element in sorted(fields):
        value = fields[element]
        vr = _VR.get(element, "US")
        if vr in ("UI", "LO"):
            raw = value.encode()
            if len(raw) % 2:
                raw += b"\x00" if vr == "UI" else b" "
        elif vr == "AT":
            raw = b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in value)
        elif isinstance(value, bytes):
            raw = value
        else:
            raw = struct.pack("<H", value)
        body += struct.pack("<HHI", 0, element, len(raw)) + raw
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def identifier(**keywords) -> bytes:
    ds = Dataset()
    for keyword, value in keywords.items():
        setattr(ds, keyword, value)
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = True
    buffer.is_little_endian = True
    write_dataset(buffer, ds)
    return buffer.getvalue()


def message(context_id: int, command: bytes, data: bytes | None = None, max_pdu: int = 16384) -> bytes:
    """P-DATA-TF PDUs for one message, fragmented to fit ``max_pdu``."""
    out = b""
    room = max_pdu - 6
    for payload, is_command in ((command, True), (data, False)):
        if payload is None:
            continue
        chunks = [payload[i:i + room] for i in range(0, len(payload), room)] or [b""]
        for index, chunk in enumerate(chunks):
            control = (1 if is_command else 0) | (2 if index == len(chunks) - 1 else 0)
            pdv = struct.pack(">IBB", len(chunk) + 2, context_id, control) + chunk
            out += _pdu(0x04, pdv)
    return out


def c_get_rq(message_id: int, context_id: int = 1, priority: int = 0, level: str = "STUDY",
             **keys) -> bytes:
    command = command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x0010, 0x0110: message_id,
                           0x0700: priority, 0x0800: 0x0001})
    keys = keys or {"PatientID": "PAT1", "StudyInstanceUID": "1.2.3"}
    return message(context_id, command, identifier(QueryRetrieveLevel=level, **keys))


def c_get_rsp(message_id: int, status: int, counters: tuple | None = None, context_id: int = 1,
              error_comment: str | None = None, offending: list[int] | None = None,
              failed_uids: list[str] | None = None) -> bytes:
    fields: dict[int, object] = {0x0002: PATIENT_ROOT_GET, 0x0100: 0x8010, 0x0120: message_id,
                                 0x0800: 0x0101 if failed_uids is None else 0x0001, 0x0900: status}
    if counters is not None:
        for element, value in zip((0x1020, 0x1021, 0x1022, 0x1023), counters, strict=True):
            if value is not None:
                fields[element] = value
    if error_comment is not None:
        fields[0x0902] = error_comment
    if offending is not None:
        fields[0x0901] = offending
    data = identifier(FailedSOPInstanceUIDList=failed_uids) if failed_uids is not None else None
    return message(context_id, command_set(fields), data)


def c_store_rq(message_id: int, instance: str, context_id: int = 3, priority: int = 0,
               size: int = 2000) -> bytes:
    command = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: message_id, 0x0700: priority,
                           0x0800: 0x0001, 0x1000: instance})
    data = identifier(SOPClassUID=CT, SOPInstanceUID=instance) + bytes(size)
    return message(context_id, command, data)


def c_store_rsp(message_id: int, status: int, instance: str, context_id: int = 3) -> bytes:
    return message(context_id, command_set({0x0002: CT, 0x0100: 0x8001, 0x0120: message_id,
                                            0x0800: 0x0101, 0x0900: status, 0x1000: instance}))


def c_cancel(message_id: int, context_id: int = 1) -> bytes:
    return message(context_id, command_set({0x0100: 0x0FFF, 0x0120: message_id, 0x0800: 0x0101}))


# -- captures ---------------------------------------------------------------------


def conversation_packets(exchanges: list[tuple[str, bytes]], client=CLIENT, server=SERVER,
                         handshake: bool = True, mss: int = 1460, start: float = 1_700_000_000.0):
    """Scapy packets for a TCP conversation; exchanges are ("c" or "s", bytes) in order."""
    seq = {"c": 1000, "s": 5000}
    addresses = {"c": (client, server), "s": (server, client)}
    packets = []
    clock = [start]

    def emit(side: str, flags: str, payload: bytes = b"") -> None:
        (src, sport), (dst, dport) = addresses[side]
        other = "s" if side == "c" else "c"
        packet = (Ether() / IP(src=src, dst=dst) /
                  TCP(sport=sport, dport=dport, flags=flags, seq=seq[side], ack=seq[other]) / payload)
        packet.time = clock[0]
        clock[0] += 0.001
        packets.append(packet)
        seq[side] = (seq[side] + len(payload) + (1 if "S" in flags or "F" in flags else 0)) & 0xFFFFFFFF

    if handshake:
        emit("c", "S")
        emit("s", "SA")
        emit("c", "A")
    for side, data in exchanges:
        for offset in range(0, len(data), mss):
            emit(side, "PA", data[offset:offset + mss])
    return packets


def write_conversation(path, exchanges, **options) -> None:
    wrpcap(str(path), conversation_packets(exchanges, **options))


def retrieve(get_id: int = 1, instances: int = 3, store_status=0x0000) -> list[tuple[str, bytes]]:
    """A whole conforming association: RQ/AC, one C-GET with sub-operations, release."""
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    out = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
           ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
           ("c", c_get_rq(get_id))]
    for index in range(instances):
        uid = f"1.2.3.4.{index + 1}"
        out.append(("s", c_store_rq(100 + index, uid)))
        out.append(("c", c_store_rsp(100 + index, store_status, uid)))
        remaining = instances - index - 1
        out.append(("s", c_get_rsp(get_id, 0xFF00, (remaining, index + 1, 0, 0))))
    out.append(("s", c_get_rsp(get_id, 0x0000, (None, instances, 0, 0))))
    out += [("c", release_rq()), ("s", release_rp())]
    return out
