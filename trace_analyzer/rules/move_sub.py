"""MOVE-SUB rules: the C-STORE sub-operations of a C-MOVE, on the association from the C-MOVE
SCP to the Move Destination (PS3.7 9.1.1.1, 9.1.4.1; PS3.4 C.4.2.2).

Judged once linking.py has linked them to their C-MOVE (``retrieve_rule``): each sub-operation
should name its C-MOVE in Move Originator AE Title (0000,1030) and Message ID (0000,1031), go to
the Move Destination, at the C-MOVE's priority, while the C-MOVE is outstanding. The finding is
about the C-STORE-RQ, sent by the C-MOVE SCP as Storage SCU.
"""

from __future__ import annotations

from ..linking import COUNTERS, INFERRED, ORIGINATOR_ID
from .engine import RetrieveContext, RetrieveReporter, retrieve_rule

_ROLE = "Storage SCU (C-MOVE SCP)"


def _linked(retrieve):
    return retrieve.sub_operations if retrieve.move is not None else ()


@retrieve_rule("MOVE-SUB-001")
def names_its_c_move(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    for sub in _linked(retrieve):
        if sub.link in (INFERRED, COUNTERS):
            request = sub.request
            fields = (("(0000,1030)", request.MoveOriginatorApplicationEntityTitle),
                      ("(0000,1031)", request.MoveOriginatorMessageID))
            missing = [tag for tag, value in fields if value is None]
            report(f"C-STORE-RQ to Move Destination {retrieve.destination} lacks {', '.join(missing)}; "
                   f"linked to C-MOVE {retrieve.message_id} by destination and time only", request, _ROLE)


@retrieve_rule("MOVE-SUB-002")
def originator_is_the_requestor(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    for sub in _linked(retrieve):
        if sub.link == ORIGINATOR_ID:
            request = sub.request
            report(f"Move Originator AE Title is {request.MoveOriginatorApplicationEntityTitle!r}, not "
                   f"{retrieve.originator_ae!r}, the AE title of the C-MOVE {retrieve.message_id} requestor",
                   request, _ROLE)


@retrieve_rule("MOVE-SUB-003")
def sent_to_the_destination(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    if retrieve.move is None or retrieve.destination is None:
        return
    for sub in retrieve.sub_operations:
        record = context.records.get((sub.request.capture, sub.request.association))
        called = record.request.called_ae if record is not None and record.request is not None else None
        if called is not None and called != retrieve.destination:
            report(f"C-STORE-RQ naming C-MOVE {retrieve.message_id} sent to {called!r}, not to its Move "
                   f"Destination {retrieve.destination!r}", sub.request, _ROLE)


@retrieve_rule("MOVE-SUB-004")
def same_priority(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    move = retrieve.move
    priority = move.request.wire.get("Priority") if move is not None and move.request is not None else None
    if not isinstance(priority, int):
        return
    for sub in retrieve.sub_operations:
        value = sub.request.Priority
        if isinstance(value, int) and value != priority:
            report(f"sub-operation C-STORE-RQ Priority {value} differs from the C-MOVE-RQ's {priority}; "
                   "every sub-operation uses the C-MOVE's priority", sub.request, _ROLE)


@retrieve_rule("MOVE-SUB-005")
def before_the_final(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    move = retrieve.move
    final = move.final if move is not None else None
    if final is None or final.time is None:
        return
    for sub in retrieve.sub_operations:
        if sub.link not in (INFERRED, COUNTERS) and sub.request.time > final.time:
            report(f"sub-operation C-STORE-RQ sent {sub.request.time - final.time:.3f} s after the final "
                   f"C-MOVE-RSP (frame {final.frame}, association {move.association})", sub.request, _ROLE)
