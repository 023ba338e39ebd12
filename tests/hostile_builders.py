"""Captures whose every wire string is chosen by the test: AE titles, UIDs, implementation
class UIDs and version names, error comments, identifier values, user-identity usernames, with
the user-identity secrets (passcode, Kerberos ticket, SAML assertion, JWT, the AC's server
response) marked so a test can look for them in every output.

Encodings are written out here from PS3.8 9.3 / D.3.3.7 and PS3.7 6.3.1 and E.1 with
``struct``, not with the code under test, and the strings go on the wire as raw bytes (no
character set, no validation), so anything a hostile or broken peer could send can be built.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from fuzz_support import Conversation

PATIENT_ROOT_GET = b"1.2.840.10008.5.1.4.1.2.1.3"
CT = b"1.2.840.10008.5.1.4.1.1.2"
IMPLICIT = b"1.2.840.10008.1.2"
#: Identity types of PS3.7 D.3.3.7.1 and what their primary (and secondary) fields hold.
IDENTITY_KINDS = {1: "username", 2: "username and passcode", 3: "Kerberos", 4: "SAML", 5: "JWT"}
#: Ways a user-identity item can be malformed; None is a well-formed item.
MALFORMED = (None, "primary-too-long", "primary-too-short", "item-cut", "no-fields", "one-byte",
             "secondary-too-long", "type-unknown")


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload) & 0xFFFF) + payload


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def _even(raw: bytes, pad: bytes = b" ") -> bytes:
    return raw + pad if len(raw) % 2 else raw


@dataclass
class Identity:
    kind: int  # 1..5, or any byte for an unknown type
    username: bytes  # the primary field of types 1 and 2
    secret: bytes  # passcode (type 2) or the Kerberos ticket / SAML assertion / JWT (3-5)
    malformed: str | None = None

    def item(self) -> bytes:
        """The 0x58 sub-item of the A-ASSOCIATE-RQ (possibly malformed as ``malformed`` says)."""
        kind = self.kind if self.malformed != "type-unknown" else 0xEE
        primary = self.username if self.kind in (1, 2) else self.secret
        secondary = self.secret if self.kind == 2 else b""
        primary_length = len(primary)
        secondary_length = len(secondary)
        if self.malformed == "primary-too-long":
            primary_length += 40
        elif self.malformed == "primary-too-short":
            primary_length = max(0, primary_length - 3)
        elif self.malformed == "secondary-too-long":
            secondary_length += 99
        body = (bytes([kind & 0xFF, 1]) + struct.pack(">H", primary_length & 0xFFFF) + primary
                + struct.pack(">H", secondary_length & 0xFFFF) + secondary)
        if self.malformed == "no-fields":
            body = bytes([kind & 0xFF, 1])
        elif self.malformed == "one-byte":
            body = bytes([kind & 0xFF])
        item = _item(0x58, body)
        if self.malformed == "item-cut":  # the item says it is longer than what follows it
            item = struct.pack(">BBH", 0x58, 0, len(body) + 64) + body
        return item


@dataclass
class Strings:
    """Every wire string of one association, as raw bytes."""

    called_ae: bytes = b"QRSCP"
    app_context: bytes = b"1.2.840.10008.3.1.1.1"
    calling_ae: bytes = b"GETSCU"
    rq_class_uid: bytes = b"1.2.3.4.5"
    rq_version: bytes = b"HOSTILE_1"
    ac_class_uid: bytes = b"1.2.3.4.6"
    ac_version: bytes = b"HOSTILE_2"
    sop_class: bytes = PATIENT_ROOT_GET  # the C-GET's abstract syntax and Affected SOP Class
    instance_uid: bytes = b"1.2.3.4.1"  # the C-STORE's Affected SOP Instance UID
    level: bytes = b"STUDY"
    patient_id: bytes = b"PAT1"
    patient_name: bytes = b"Doe^John"
    study_uid: bytes = b"1.2.3"
    charset: bytes | None = None  # (0008,0005) in the identifier when set
    error_comment: bytes = b"out of resources"
    store_comment: bytes | None = None  # an Error Comment in the C-STORE-RSP
    final_status: int = 0xA702
    store_status: int = 0x0000
    identity: Identity | None = None
    server_response: bytes | None = None  # the AC's 0x59 item (a secret as well)
    extra: list[bytes] = field(default_factory=list)  # more PDUs from the client, as given


def _ae(raw: bytes) -> bytes:
    return raw[:16].ljust(16, b" ")


def associate(strings: Strings, request: bool) -> bytes:
    sop = strings.sop_class
    if request:
        items = _item(0x10, strings.app_context)
        items += _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, sop) + _item(0x40, IMPLICIT))
        items += _item(0x20, bytes([3, 0, 0, 0]) + _item(0x30, CT) + _item(0x40, IMPLICIT))
    else:
        items = _item(0x10, strings.app_context)
        items += _item(0x21, bytes([1, 0, 0, 0]) + _item(0x40, IMPLICIT))
        items += _item(0x21, bytes([3, 0, 0, 0]) + _item(0x40, IMPLICIT))
    user = _item(0x51, struct.pack(">I", 16384))
    user += _item(0x52, strings.rq_class_uid if request else strings.ac_class_uid)
    user += _item(0x54, struct.pack(">H", len(CT)) + CT + bytes([0, 1]))
    user += _item(0x55, strings.rq_version if request else strings.ac_version)
    if request and strings.identity is not None:
        user += strings.identity.item()
    if not request and strings.server_response is not None:
        user += _item(0x59, struct.pack(">H", len(strings.server_response)) + strings.server_response)
    items += _item(0x50, user)
    body = struct.pack(">HH", 1, 0) + _ae(strings.called_ae) + _ae(strings.calling_ae) + bytes(32) + items
    return _pdu(0x01 if request else 0x02, body)


def _element(group: int, element: int, raw: bytes) -> bytes:
    return struct.pack("<HHI", group, element, len(raw)) + raw


def command(fields: list[tuple[int, bytes]]) -> bytes:
    """Group 0000 elements (Implicit VR LE) given as (element, raw value), with the group length."""
    body = b"".join(_element(0, element, raw) for element, raw in sorted(fields))
    return _element(0, 0, struct.pack("<I", len(body))) + body


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def identifier(strings: Strings) -> bytes:
    elements = []
    if strings.charset is not None:
        elements.append(_element(0x0008, 0x0005, _even(strings.charset)))
    elements += [_element(0x0008, 0x0052, _even(strings.level)),
                 _element(0x0010, 0x0010, _even(strings.patient_name)),
                 _element(0x0010, 0x0020, _even(strings.patient_id)),
                 _element(0x0020, 0x000D, _even(strings.study_uid, b"\x00"))]
    return b"".join(elements)


def message(context_id: int, command_set: bytes, data: bytes | None = None) -> bytes:
    out = _pdu(0x04, struct.pack(">IBB", len(command_set) + 2, context_id, 3) + command_set)
    if data is not None:
        out += _pdu(0x04, struct.pack(">IBB", len(data) + 2, context_id, 2) + data)
    return out


def exchanges(strings: Strings) -> list[tuple[str, bytes]]:
    """A whole association: RQ/AC, one C-GET with one C-STORE sub-operation, a pending and a
    final response carrying the error comment, release."""
    sop = _even(strings.sop_class, b"\x00")
    instance = _even(strings.instance_uid, b"\x00")
    get_rq = command([(0x0002, sop), (0x0100, _us(0x0010)), (0x0110, _us(1)), (0x0700, _us(0)),
                      (0x0800, _us(0x0001))])
    store_rq = command([(0x0002, _even(CT, b"\x00")), (0x0100, _us(0x0001)), (0x0110, _us(100)),
                        (0x0700, _us(0)), (0x0800, _us(0x0001)), (0x1000, instance)])
    store_fields = [(0x0002, _even(CT, b"\x00")), (0x0100, _us(0x8001)), (0x0120, _us(100)),
                    (0x0800, _us(0x0101)), (0x0900, _us(strings.store_status)), (0x1000, instance)]
    if strings.store_comment is not None:
        store_fields.append((0x0902, _even(strings.store_comment)))
    pending = command([(0x0002, sop), (0x0100, _us(0x8010)), (0x0120, _us(1)), (0x0800, _us(0x0101)),
                       (0x0900, _us(0xFF00)), (0x1020, _us(0)), (0x1021, _us(1)), (0x1022, _us(0)),
                       (0x1023, _us(0))])
    final = command([(0x0002, sop), (0x0100, _us(0x8010)), (0x0120, _us(1)), (0x0800, _us(0x0101)),
                     (0x0900, _us(strings.final_status)), (0x0901, struct.pack("<HH", 0x0010, 0x0020)),
                     (0x0902, _even(strings.error_comment)), (0x1021, _us(1)), (0x1022, _us(0)),
                     (0x1023, _us(0))])
    dataset = _element(0x0008, 0x0016, _even(CT, b"\x00")) + _element(0x0008, 0x0018, instance)
    out = [("c", associate(strings, True)), ("s", associate(strings, False)),
           ("c", message(1, get_rq, identifier(strings))),
           ("s", message(3, store_rq, dataset + bytes(300))), ("c", message(3, command(store_fields))),
           ("s", message(1, pending)), ("s", message(1, final))]
    out += [("c", pdu) for pdu in strings.extra]
    out += [("c", _pdu(0x05, bytes(4))), ("s", _pdu(0x06, bytes(4)))]
    return out


def capture_bytes(strings: Strings) -> bytes:
    """A classic pcap (Ethernet) of the association, one frame per segment."""
    conversation = Conversation()
    for side, data in exchanges(strings):
        conversation.send(side, data)
    conversation.close()
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index, frame in enumerate(conversation.frames):
        out.append(struct.pack("<IIII", 1_700_000_000, index * 1000, len(frame), len(frame)) + frame)
    return b"".join(out)
