"""MOVE-RSP rules: each C-MOVE-RSP on the C-MOVE's own association (PS3.7 9.1.4, 9.3.4.2;
PS3.4 C.4.2.1.5 for the status codes)."""

from __future__ import annotations

from ..status import C_MOVE_RANGES, C_MOVE_STATUS, GENERAL_STATUS, status_hex
from .engine import Event, Reporter, rule
from .move_rq import missing

PENDING = (0xFF00, 0xFF01)
_COUNTERS = (("NumberOfRemainingSuboperations", "(0000,1020)"),
             ("NumberOfCompletedSuboperations", "(0000,1021)"),
             ("NumberOfFailedSuboperations", "(0000,1022)"),
             ("NumberOfWarningSuboperations", "(0000,1023)"))
_RESPONSE_REQUIRED = (("MessageIDBeingRespondedTo", "(0000,0120)"), ("Status", "(0000,0900)"))


def _status(primitive) -> int | None:
    value = primitive.wire.get("Status")
    return value if isinstance(value, int) else None


def defined_for_move(status: int) -> bool:
    """A code PS3.4 C.4.2.1.5 lists for C-MOVE, or a general one of PS3.7 Annex C."""
    if status in C_MOVE_STATUS or status in GENERAL_STATUS:
        return status != 0xFF01  # FF01 is C-FIND's
    return any(first <= status <= last for first, last, _ in C_MOVE_RANGES)


@rule("MOVE-RSP-001", "c_move_rsp")
def required_elements(report: Reporter, event: Event) -> None:
    absent = missing(event.primitive.wire, _RESPONSE_REQUIRED)
    if absent:
        report(f"C-MOVE-RSP lacks {', '.join(absent)}; Table 9.3-10 requires them")


@rule("MOVE-RSP-002", "c_move_rsp")
def pending_carries_counters(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    if _status(primitive) not in PENDING:
        return
    missing = [tag for keyword, tag in _COUNTERS if not isinstance(primitive.wire.get(keyword), int)]
    if missing:
        report(f"Pending C-MOVE-RSP lacks {', '.join(missing)}; a Pending response carries all four counters")


@rule("MOVE-RSP-003", "c_move_rsp")
def status_defined(report: Reporter, event: Event) -> None:
    status = _status(event.primitive)
    if status is not None and not defined_for_move(status):
        report(f"C-MOVE-RSP status {status_hex(status)} is not a code C-MOVE defines (PS3.4 C.4.2.1.5)")


@rule("MOVE-RSP-004", "c_move_rsp")
def destination_unknown(report: Reporter, event: Event) -> None:
    if _status(event.primitive) == 0xA801:
        request = event.operation.request if event.operation is not None else None
        named = f" {request.MoveDestination!r}" if request is not None and request.MoveDestination else ""
        report(f"C-MOVE refused with 0xA801: the SCP does not know the Move Destination{named} "
               "(its AE title is not configured there, or is misspelt in the request; some SCPs, "
               "pynetdicom's among them, also answer A801 when the destination does not answer)")


@rule("MOVE-RSP-005", "move_final")
def success_without_failures(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    if _status(primitive) != 0x0000:
        return
    failed = primitive.wire.get("NumberOfFailedSuboperations")
    warning = primitive.wire.get("NumberOfWarningSuboperations")
    if (isinstance(failed, int) and failed > 0) or (isinstance(warning, int) and warning > 0):
        report(f"final C-MOVE-RSP is Success but counts {failed} failed and {warning} warning "
               "sub-operations; that is Warning B000 (or a Failure)")


@rule("MOVE-RSP-006", "c_move_rsp")
def nothing_after_final(report: Reporter, event: Event) -> None:
    operation = event.operation
    if operation is not None and event.primitive in operation.late_responses:
        report(f"C-MOVE-RSP after the final response (frame {operation.final.frame}) of the same C-MOVE")
