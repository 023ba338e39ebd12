"""Builders for the GET-RSP and GET-CNT tests: C-GET-RSPs with any field, split requests.

Bytes are written through tests/builders.py, never by the code under test.
"""

from __future__ import annotations

import struct

from builders import (
    CT,
    PATIENT_ROOT_GET,
    associate,
    c_store_rq,
    c_store_rsp,
    command_set,
    identifier,
    message,
    release_rp,
    release_rq,
)

STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
COMPOSITE_INSTANCE_ROOT_GET = "1.2.840.10008.5.1.4.1.2.4.3"
SCP = "QRSCP @ 127.0.0.2:11112"
SCU = "GETSCU @ 127.0.0.1:40001"

#: (id, abstract syntax, AC result): the GET model on 1, CT storage on 3, a second GET context on 5.
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0), (5, PATIENT_ROOT_GET, 0)]


def rq_command(message_id: int = 1, sop_class: str = PATIENT_ROOT_GET, priority: int = 0) -> bytes:
    return command_set({0x0002: sop_class, 0x0100: 0x0010, 0x0110: message_id, 0x0700: priority,
                        0x0800: 0x0001})


def rq_keys() -> bytes:
    return identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")


def rq(message_id: int = 1, sop_class: str = PATIENT_ROOT_GET, context_id: int = 1) -> bytes:
    """A whole C-GET-RQ (command and identifier)."""
    return message(context_id, rq_command(message_id, sop_class), rq_keys())


def data_pdu(context_id: int, data: bytes) -> bytes:
    """One P-DATA-TF with a single last data fragment."""
    pdv = struct.pack(">IBB", len(data) + 2, context_id, 0x02) + data
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def rsp(message_id: int = 1, status: int = 0x0000, counters: tuple | None = (None, 1, 0, 0), *,
        context_id: int = 1, sop_class: str | None = PATIENT_ROOT_GET, extra: dict | None = None,
        omit: tuple[int, ...] = (), failed_uids: list[str] | None = None, data: bytes | None = None) -> bytes:
    """A C-GET-RSP. ``counters`` are (Remaining, Completed, Failed, Warning), None = absent;
    ``extra`` adds command elements by element number; ``omit`` drops some."""
    if failed_uids is not None:
        data = identifier(FailedSOPInstanceUIDList=failed_uids)
    fields: dict[int, object] = {0x0100: 0x8010, 0x0120: message_id, 0x0900: status,
                                 0x0800: 0x0101 if data is None else 0x0001}
    if sop_class is not None:
        fields[0x0002] = sop_class
    for element, value in zip((0x1020, 0x1021, 0x1022, 0x1023), counters or (None,) * 4, strict=True):
        if value is not None:
            fields[element] = value
    fields.update(extra or {})
    for element in omit:
        fields.pop(element, None)
    return message(context_id, command_set(fields), data)


def store(message_id: int, status: int = 0x0000, index: int | None = None) -> list[tuple[str, bytes]]:
    """One sub-operation: C-STORE-RQ from the SCP and its C-STORE-RSP."""
    uid = f"1.2.3.4.{index if index is not None else message_id}"
    return [("s", c_store_rq(message_id, uid, size=64)), ("c", c_store_rsp(message_id, status, uid))]


def session(body: list[tuple[str, bytes]], contexts=None, with_request: bool = True,
            sop_class: str = PATIENT_ROOT_GET) -> list[tuple[str, bytes]]:
    """Association set-up, C-GET-RQ 1 (unless told not to), ``body``, release."""
    contexts = contexts or CONTEXTS
    out = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
           ("s", associate(False, contexts, roles=[(CT, 0, 1)]))]
    if with_request:
        out.append(("c", rq(1, sop_class)))
    return out + body + [("c", release_rq()), ("s", release_rp())]


def conformant_body(instances: int = 2, statuses: tuple[int, ...] | None = None) -> list[tuple[str, bytes]]:
    """Sub-operations each followed by a Pending, then the final response DCMTK would send."""
    statuses = statuses or (0x0000,) * instances
    body: list[tuple[str, bytes]] = []
    done = {"c": 0, "f": 0, "w": 0}
    for index, status in enumerate(statuses):
        body += store(100 + index, status)
        kind = "c" if status == 0 else "w" if status >> 12 == 0xB else "f"
        done[kind] += 1
        body.append(("s", rsp(1, 0xFF00, (len(statuses) - index - 1, done["c"], done["f"], done["w"]))))
    final = 0x0000 if done["f"] == done["w"] == 0 else 0xB000
    uids = [f"1.2.3.4.{100 + i}" for i, s in enumerate(statuses) if s >> 12 in (0xA, 0xC)] or None
    body.append(("s", rsp(1, final, (None, done["c"], done["f"], done["w"]), failed_uids=uids)))
    return body
