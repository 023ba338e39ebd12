"""Builders for the GET-SUB, GET-CAN and GET-ROLE tests: C-STOREs, cancels and PDVs with faults.

They write the bytes themselves (through tests/builders.py), so a test never
uses the code under test to make its input.
"""

from __future__ import annotations

import struct

from builders import (
    CT,
    PATIENT_ROOT_GET,
    associate,
    c_get_rsp,
    c_store_rsp,
    command_set,
    identifier,
    message,
    release_rp,
    release_rq,
)

MR = "1.2.840.10008.5.1.4.1.1.4"
WITHOUT_BULK_DATA_GET = "1.2.840.10008.5.1.4.1.2.5.3"
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
ROLES = [(CT, 0, 1)]


def open_association(contexts=None, rq_roles=None, ac_roles=None) -> list[tuple[str, bytes]]:
    contexts = CONTEXTS if contexts is None else contexts
    rq_roles = ROLES if rq_roles is None else rq_roles
    ac_roles = rq_roles if ac_roles is None else ac_roles
    return [("c", associate(True, contexts, roles=rq_roles)),
            ("s", associate(False, contexts, roles=ac_roles))]


def close_association() -> list[tuple[str, bytes]]:
    return [("c", release_rq()), ("s", release_rp())]


def get_rq(message_id: int = 1, priority: int = 0, sop_class: str = PATIENT_ROOT_GET,
           context_id: int = 1) -> bytes:
    command = command_set({0x0002: sop_class, 0x0100: 0x0010, 0x0110: message_id, 0x0700: priority,
                           0x0800: 0x0001})
    return message(context_id, command, identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3"))


def store_command(message_id: int, instance: str, priority: int = 0, sop_class: str = CT,
                  extra: dict | None = None, drop: tuple[int, ...] = ()) -> bytes:
    fields: dict[int, object] = {0x0002: sop_class, 0x0100: 0x0001, 0x0110: message_id,
                                 0x0700: priority, 0x0800: 0x0001, 0x1000: instance}
    fields.update(extra or {})
    for element in drop:
        fields.pop(element, None)
    return command_set(fields)


def store_data(instance: str, sop_class: str = CT, size: int = 2000) -> bytes:
    return identifier(SOPClassUID=sop_class, SOPInstanceUID=instance) + bytes(size)


def store_rq(message_id: int, instance: str, context_id: int = 3, priority: int = 0,
             data: bytes | None = b"", **options) -> bytes:
    """A C-STORE-RQ; ``data`` b"" means the usual data set, None means none at all."""
    payload = store_data(instance) if data == b"" else data
    return message(context_id, store_command(message_id, instance, priority, **options), payload)


def store_rsp(message_id: int, status: int = 0x0000, instance: str | None = None, context_id: int = 3,
              extra: dict | None = None, drop: tuple[int, ...] = (), data: bytes | None = None) -> bytes:
    fields: dict[int, object] = {0x0002: CT, 0x0100: 0x8001, 0x0120: message_id, 0x0800: 0x0101,
                                 0x0900: status}
    if instance is not None:
        fields[0x1000] = instance
    fields.update(extra or {})
    for element in drop:
        fields.pop(element, None)
    return message(context_id, command_set(fields), data)


def cancel(message_id: int | None = 1, context_id: int = 1, extra: dict | None = None,
           data: bytes | None = None) -> bytes:
    fields: dict[int, object] = {0x0100: 0x0FFF, 0x0800: 0x0101}
    if message_id is not None:
        fields[0x0120] = message_id
    fields.update(extra or {})
    return message(context_id, command_set(fields), data)


def sub_operations(get_id: int = 1, count: int = 2, first_store_id: int = 100,
                   status: int = 0x0000) -> list[tuple[str, bytes]]:
    """Conforming sub-operations, each followed by its Pending C-GET-RSP."""
    out = []
    for index in range(count):
        uid = f"1.2.3.4.{index + 1}"
        out.append(("s", store_rq(first_store_id + index, uid)))
        out.append(("c", c_store_rsp(first_store_id + index, status, uid)))
        out.append(("s", c_get_rsp(get_id, 0xFF00, (count - index - 1, index + 1, 0, 0))))
    return out


def retrieve_with(middle: list[tuple[str, bytes]], **association) -> list[tuple[str, bytes]]:
    return [*open_association(**association), *middle, *close_association()]


def split_pdus(blob: bytes) -> list[bytes]:
    """Cut the output of builders.message() back into its PDUs."""
    out, offset = [], 0
    while offset < len(blob):
        length = struct.unpack_from(">I", blob, offset + 2)[0]
        out.append(blob[offset:offset + 6 + length])
        offset += 6 + length
    return out


def pdv_pdu(context_id: int, control: int, payload: bytes) -> bytes:
    """One P-DATA-TF holding one PDV with the given message control header."""
    pdv = struct.pack(">IBB", len(payload) + 2, context_id, control) + payload
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv
