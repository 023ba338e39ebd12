"""Builders for the CMD, GET-RQ and GET-ID rule tests: raw command sets and negotiations.

tests/builders.py encodes only well-formed command sets and a fixed
negotiation; these write the faults by hand (PS3.5 7.1 element encoding,
PS3.7 D.3.3 sub-items) so that a test does not use the code under test.
"""

from __future__ import annotations

import glob
import struct
from functools import cache
from pathlib import Path

from builders import (
    CT,
    IMPLICIT,
    PATIENT_ROOT_GET,
    c_get_rsp,
    c_store_rq,
    c_store_rsp,
    message,
    release_rp,
    release_rq,
)
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

import trace_analyzer

EXPLICIT = "1.2.840.10008.1.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def associate(request: bool, contexts: list[tuple[int, str, int, str]], roles=(), extended=(),
              window: tuple[int, int] | None = None) -> bytes:
    """A-ASSOCIATE-RQ/AC; contexts are (id, abstract syntax, AC result, transfer syntax).

    ``extended`` holds (SOP class UID, application information bytes) for 0x56 sub-items,
    ``window`` (invoked, performed) a 0x53 sub-item.
    """
    items = _item(0x10, b"1.2.840.10008.3.1.1.1")
    for context_id, abstract, result, syntax in contexts:
        if request:
            sub = _item(0x30, abstract.encode()) + _item(0x40, syntax.encode())
            items += _item(0x20, bytes([context_id, 0, 0, 0]) + sub)
        else:
            items += _item(0x21, bytes([context_id, 0, result, 0]) + _item(0x40, syntax.encode()))
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.3.4.5")
    if window is not None:
        user += _item(0x53, struct.pack(">HH", *window))
    for uid, scu, scp in roles:
        user += _item(0x54, struct.pack(">H", len(uid)) + uid.encode() + bytes([scu, scp]))
    user += _item(0x55, b"BUILDER_1")
    for uid, info in extended:
        user += _item(0x56, struct.pack(">H", len(uid)) + uid.encode() + info)
    items += _item(0x50, user)
    body = struct.pack(">HH", 1, 0) + b"QRSCP".ljust(16) + b"GETSCU".ljust(16) + bytes(32) + items
    return _pdu(0x01 if request else 0x02, body)


def element(tag: int, value: bytes | int | str, vr: str = "US") -> bytes:
    """One Implicit VR Little Endian element; ints are US (or UL), strings padded to even length."""
    if isinstance(value, int):
        raw = struct.pack("<I" if vr == "UL" else "<H", value)
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) % 2:
            raw += b"\x00"
    else:
        raw = value
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(raw)) + raw


def raw_command(*elements: bytes, group_length: int | None = None, with_length: bool = True) -> bytes:
    """Elements in the order given, preceded by (0000,0000) (its value correct unless overridden)."""
    body = b"".join(elements)
    if not with_length:
        return body
    return element(0x00000000, len(body) if group_length is None else group_length, "UL") + body


def get_rq_elements(message_id: int = 1, sop_class: str = PATIENT_ROOT_GET, priority: int = 0,
                    data_set_type: int = 0x0001) -> dict[int, bytes]:
    """The elements of a conforming C-GET-RQ, by tag, for tests to drop, change or add to."""
    return {0x0002: element(0x0002, sop_class), 0x0100: element(0x0100, 0x0010),
            0x0110: element(0x0110, message_id), 0x0700: element(0x0700, priority),
            0x0800: element(0x0800, data_set_type)}


def get_rq_command(elements: dict[int, bytes]) -> bytes:
    return raw_command(*(elements[tag] for tag in sorted(elements)))


def dataset_bytes(explicit: bool = False, **keywords) -> bytes:
    ds = Dataset()
    for keyword, value in keywords.items():
        setattr(ds, keyword, value)
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = not explicit
    buffer.is_little_endian = True
    write_dataset(buffer, ds)
    return buffer.getvalue()


def get_exchange(command: bytes, data: bytes | None, sop_class: str = PATIENT_ROOT_GET,
                 syntax: str = IMPLICIT, message_id: int = 1, extended_rq=(), extended_ac=(),
                 roles=((CT, 0, 1),), final: int = 0x0000, window=None,
                 context_id: int = 1) -> list[tuple[str, bytes]]:
    """An association carrying one C-GET-RQ (given as bytes), a final response and a release."""
    contexts_rq = [(1, sop_class, 0, syntax), (3, CT, 0, IMPLICIT)]
    rq_window, ac_window = window if window is not None else (None, None)
    return [("c", associate(True, contexts_rq, roles, extended_rq, rq_window)),
            ("s", associate(False, contexts_rq, roles, extended_ac, ac_window)),
            ("c", message(context_id, command, data)),
            ("s", c_get_rsp(message_id, final, (None, 0, 0, 0))),
            ("c", release_rq()), ("s", release_rp())]


def identifier_exchange(sop_class: str = PATIENT_ROOT_GET, extended_ac=(), extended_rq=None,
                        syntax: str = IMPLICIT, **keys) -> list[tuple[str, bytes]]:
    """A C-GET whose identifier holds exactly ``keys`` (encoded in ``syntax``)."""
    data = dataset_bytes(explicit=syntax != IMPLICIT, **keys)
    command = get_rq_command(get_rq_elements(sop_class=sop_class))
    return get_exchange(command, data, sop_class=sop_class, syntax=syntax, extended_ac=extended_ac,
                        extended_rq=extended_ac if extended_rq is None else extended_rq)


def sub_operation(message_id: int, uid: str) -> list[tuple[str, bytes]]:
    return [("s", c_store_rq(message_id, uid)), ("c", c_store_rsp(message_id, 0x0000, uid))]


@cache
def sample_findings() -> dict[str, list]:
    """Every finding on every real sample capture, by file name (analysed once per test run)."""
    out = {}
    for path in sorted(glob.glob(str(SAMPLES / "*.pcap*"))):
        out[Path(path).name] = trace_analyzer.analyze(path).findings
    return out


def data_pdu(context_id: int, data: bytes, last: bool = True) -> bytes:
    """One P-DATA-TF holding one data set fragment (PS3.8 E.2: bit 0 clear, bit 1 = last)."""
    return _pdu(0x04, struct.pack(">IBB", len(data) + 2, context_id, 0x02 if last else 0x00) + data)
