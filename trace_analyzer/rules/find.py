"""FIND rules: C-FIND requests and responses (PS3.7 9.1.2, 9.3.2; PS3.4 C.4.1)."""

from __future__ import annotations

from ..commandset import NO_DATA_SET
from ..status import C_FIND_RANGES, C_FIND_STATUS, GENERAL_STATUS, status_hex
from .engine import Event, Reporter, rule
from .move_rq import level_problem, missing

PENDING = (0xFF00, 0xFF01)
_REQUEST_REQUIRED = (("AffectedSOPClassUID", "(0000,0002)"), ("MessageID", "(0000,0110)"),
                     ("Priority", "(0000,0700)"))
_RESPONSE_REQUIRED = (("MessageIDBeingRespondedTo", "(0000,0120)"), ("Status", "(0000,0900)"))


def _status(primitive) -> int | None:
    value = primitive.wire.get("Status")
    return value if isinstance(value, int) else None


def _has_data_set(primitive) -> bool:
    value = primitive.wire.get("CommandDataSetType")
    return isinstance(value, int) and value != NO_DATA_SET


@rule("FIND-001", "c_find_rq")
def request_elements(report: Reporter, event: Event) -> None:
    absent = missing(event.primitive.wire, _REQUEST_REQUIRED)
    if absent:
        report(f"C-FIND-RQ lacks {', '.join(absent)}; Table 9.3-3 requires them")
    if not _has_data_set(event.primitive):
        report("C-FIND-RQ announces no Identifier ((0000,0800) = 0x0101); its Identifier is required")


@rule("FIND-002", "c_find_rq")
def identifier_names_a_level(report: Reporter, event: Event) -> None:
    problem = level_problem(event.primitive)
    if problem:
        report(f"C-FIND-RQ {problem}")


@rule("FIND-003", "c_find_rsp")
def pending_has_a_match(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    if _status(primitive) in PENDING and not _has_data_set(primitive):
        report("Pending C-FIND-RSP without an Identifier: each Pending response carries one match")


@rule("FIND-004", "c_find_rsp")
def final_has_no_identifier(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    status = _status(primitive)
    if status in (0x0000, 0xFE00) and _has_data_set(primitive):
        report(f"final C-FIND-RSP {status_hex(status)} carries an Identifier; matches go only in "
               "Pending responses")


@rule("FIND-005", "c_find_rsp")
def status_defined(report: Reporter, event: Event) -> None:
    status = _status(event.primitive)
    if status is None:
        return
    if status in C_FIND_STATUS or status in GENERAL_STATUS \
            or any(first <= status <= last for first, last, _ in C_FIND_RANGES):
        return
    report(f"C-FIND-RSP status {status_hex(status)} is not a code C-FIND defines (PS3.4 C.4.1.1.4)")


@rule("FIND-006", "c_find_rsp")
def response_elements(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    wire = primitive.wire
    absent = missing(wire, _RESPONSE_REQUIRED)
    if absent:
        report(f"C-FIND-RSP lacks {', '.join(absent)}; Table 9.3-4 requires them")
    operation = event.operation
    if operation is not None and primitive in operation.late_responses:
        report(f"C-FIND-RSP after the final response (frame {operation.final.frame}) of the same C-FIND")
