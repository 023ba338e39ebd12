"""GET-RQ rules: the C-GET-RQ command, its context, its Message ID and window (catalog 5.3).

Most checks run on "c_get_rq", where ``view.correlation`` still shows the
operations outstanding before this request. Three need the DIMSE message
itself (whether its data set ended on a last-fragment bit, or with the
stream) or must see every request, and so run on "message":
GET-RQ-003, GET-RQ-009 and GET-RQ-011.
"""

from __future__ import annotations

from typing import Any

from ..commandset import C_CANCEL_RQ, C_GET_RQ, NO_DATA_SET
from ..status import FAILURE, status_category
from .engine import AssociationView, Event, Reporter, rule
from .get_id import MODELS, walk_identifier

#: C-GET SOP classes of catalog 3.4: the Q/R models and the other classes using C-GET.
C_GET_SOP_CLASSES: dict[str, str] = {
    **{uid: f"{model.name} GET" for uid, model in MODELS.items()},
    "1.2.840.10008.5.1.4.38.4": "Hanging Protocol Information Model - GET",
    "1.2.840.10008.5.1.4.39.4": "Color Palette Information Model - GET",
    "1.2.840.10008.5.1.4.43.4": "Generic Implant Template Information Model - GET",
    "1.2.840.10008.5.1.4.44.4": "Implant Assembly Template Information Model - GET",
    "1.2.840.10008.5.1.4.45.4": "Implant Template Group Information Model - GET",
    "1.2.840.10008.5.1.4.20.3": "Defined Procedure Protocol Information Model - GET",
    "1.2.840.10008.5.1.4.1.1.200.6": "Protocol Approval Information Model - GET",
    "1.2.840.10008.5.1.4.1.1.201.4": "Inventory - GET",
}

_REQUIRED = (("AffectedSOPClassUID", "(0000,0002)"), ("MessageID", "(0000,0110)"),
             ("Priority", "(0000,0700)"), ("CommandDataSetType", "(0000,0800)"))
#: Elements Table 9.3-6 does not list: response-only, C-MOVE-only and C-STORE-only fields (catalog 1.3).
_NOT_IN_REQUEST = (("MessageIDBeingRespondedTo", "(0000,0120)"), ("MoveDestination", "(0000,0600)"),
                   ("Status", "(0000,0900)"), ("OffendingElement", "(0000,0901)"),
                   ("ErrorComment", "(0000,0902)"), ("ErrorID", "(0000,0903)"),
                   ("AffectedSOPInstanceUID", "(0000,1000)"),
                   ("NumberOfRemainingSuboperations", "(0000,1020)"),
                   ("NumberOfCompletedSuboperations", "(0000,1021)"),
                   ("NumberOfFailedSuboperations", "(0000,1022)"),
                   ("NumberOfWarningSuboperations", "(0000,1023)"),
                   ("MoveOriginatorApplicationEntityTitle", "(0000,1030)"),
                   ("MoveOriginatorMessageID", "(0000,1031)"))
_PRIORITIES = {0: "MEDIUM", 1: "HIGH", 2: "LOW"}


def _is_get_request(event: Event) -> bool:
    return event.message.command.command_field == C_GET_RQ and event.primitive is not None


def _message_id(primitive: Any) -> int | None:
    value = primitive.wire.get("MessageID")
    return value if isinstance(value, int) else None


def _outstanding_requests(view: AssociationView, invoker: str) -> dict[int, str]:
    """Requests of ``invoker`` still awaiting their final response: Message ID -> what."""
    state = view.correlation
    if state is None:
        return {}
    out: dict[int, str] = {}
    for (sender, message_id), _ in state.stores.items():
        if sender == invoker:
            out[message_id] = "C-STORE-RQ"
    for (sender, message_id), _ in state.outstanding.items():
        if sender == invoker:
            out[message_id] = "C-GET-RQ"
    return out


# -- command fields --------------------------------------------------------------------------


@rule("GET-RQ-001", "c_get_rq")
def required_fields(report: Reporter, event: Event) -> None:
    wire = event.primitive.wire
    missing = [f"{keyword} {tag}" for keyword, tag in _REQUIRED if keyword not in wire]
    empty = [f"{keyword} {tag}" for keyword, tag in _REQUIRED if wire.get(keyword) == ""]
    if missing or empty:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + \
                ([f"has an empty {', '.join(empty)}"] if empty else [])
        report(f"C-GET-RQ {' and '.join(parts)}; Table 9.3-6 requires (0000,0002), (0000,0110), (0000,0700) "
               "and (0000,0800)")


@rule("GET-RQ-002", "c_get_rq")
def priority_value(report: Reporter, event: Event) -> None:
    priority = event.primitive.wire.get("Priority")
    if isinstance(priority, int) and priority not in _PRIORITIES:
        report(f"C-GET-RQ Priority (0000,0700) is 0x{priority:04X}; it must be 0 (MEDIUM), 1 (HIGH) "
               "or 2 (LOW)")


@rule("GET-RQ-003", "message")
def identifier_follows(report: Reporter, event: Event) -> None:
    if not _is_get_request(event):
        return
    message = event.message
    data_set_type = message.command.get("CommandDataSetType")
    if data_set_type == NO_DATA_SET:
        report("C-GET-RQ Command Data Set Type (0000,0800) is 0x0101 (no data set); a C-GET-RQ must be "
               "followed by its Identifier")
    elif isinstance(data_set_type, int) and message.data_set_length == 0:
        if message.cut is not None:
            return  # the capture (or the connection) stopped, or lost bytes: the lower layers report it
        report(f"C-GET-RQ announces a data set ((0000,0800) = 0x{data_set_type:04X}) but no Identifier "
               "bytes follow it; a C-GET-RQ must carry its Identifier")


@rule("GET-RQ-004", "c_get_rq")
def no_foreign_fields(report: Reporter, event: Event) -> None:
    wire = event.primitive.wire
    found = [f"{keyword} {tag}" for keyword, tag in _NOT_IN_REQUEST if keyword in wire]
    if found:
        report(f"C-GET-RQ carries {', '.join(found)}, which Table 9.3-6 does not define for a C-GET-RQ")


# -- SOP class, context and role ------------------------------------------------------------


@rule("GET-RQ-005", "c_get_rq")
def sop_class_matches_context(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    uid = primitive.wire.get("AffectedSOPClassUID")
    abstract = event.view.abstract_syntax(primitive.context_id)
    if isinstance(uid, str) and uid and abstract is not None and uid != abstract:
        report(f"C-GET-RQ Affected SOP Class UID {uid} differs from the abstract syntax {abstract} of "
               f"presentation context {primitive.context_id} that carries it")


@rule("GET-RQ-006", "c_get_rq")
def known_get_sop_class(report: Reporter, event: Event) -> None:
    uid = event.primitive.wire.get("AffectedSOPClassUID")
    if isinstance(uid, str) and uid and uid not in C_GET_SOP_CLASSES:
        report(f"C-GET-RQ Affected SOP Class UID {uid} is not a known C-GET SOP class "
               "(expected e.g. Patient Root 1.2.840.10008.5.1.4.1.2.1.3 or Study Root "
               "1.2.840.10008.5.1.4.1.2.2.3)")


@rule("GET-RQ-007", "c_get_rq")
def sender_has_scu_role(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    view = event.view
    abstract = view.abstract_syntax(primitive.context_id)
    if abstract is None or primitive.sender is None:
        return
    if view.may_act(primitive.sender, "SCU", abstract) is False:
        proposed, answered = view.roles(abstract)
        roles = "no role selection, so only the requestor is SCU" if proposed is None or answered is None \
            else f"role selection RQ (SCU, SCP) = {proposed}, AC = {answered}"
        report(f"C-GET-RQ sent by the {primitive.sender}, which lacks the SCU role for {abstract} "
               f"({roles}); only a party with the SCU role may invoke a C-GET")


# -- Message ID and window -------------------------------------------------------------------


@rule("GET-RQ-008", "c_get_rq")
def message_id_not_outstanding(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    message_id = _message_id(primitive)
    if message_id is None or primitive.sender is None:
        return
    other = _outstanding_requests(event.view, primitive.sender).get(message_id)
    if other is not None:
        report(f"C-GET-RQ Message ID {message_id} is already used by an outstanding {other} of the same "
               f"{primitive.sender}; outstanding operations must have distinct Message IDs")


@rule("GET-RQ-009", "message")
def message_id_not_reused(report: Reporter, event: Event) -> None:
    command = event.message.command
    field = command.command_field
    message_id = command.get("MessageID")
    sender = event.message.sender
    if field is None or field & 0x8000 or field == C_CANCEL_RQ or not isinstance(message_id, int):
        return
    # One bit per possible Message ID (US: 0..65535) and sender: 8 KiB at most, whatever the traffic.
    by_sender = event.view.memory("GET-RQ-009", dict)
    used = by_sender.get(sender)
    if used is None:
        used = by_sender[sender] = bytearray(8192)
    byte, bit = divmod(message_id & 0xFFFF, 8)
    seen = used[byte] & (1 << bit)
    used[byte] |= 1 << bit
    if not seen or field != C_GET_RQ or event.primitive is None:
        return
    if message_id in _outstanding_requests(event.view, sender):
        return  # GET-RQ-008 reports the clash with an outstanding request
    report(f"C-GET-RQ Message ID {message_id} was already used by an earlier request of the {sender} on this "
           "association; Message IDs should be unique for the whole association")


@rule("GET-RQ-010", "c_get_rq")
def within_async_window(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    view = event.view
    if view.accept is None or primitive.sender is None:
        return  # the negotiated window is not in the capture
    invoked, performed = view.async_window
    # The requestor's own operations count against "invoked", the acceptor's against "performed".
    limit = invoked if primitive.sender == "requestor" else performed
    if limit == 0:
        return
    state = view.correlation
    gets = sum(1 for op in state.outstanding.values() if op.invoker == primitive.sender) if state else 0
    # A C-STORE linked to a C-GET is a sub-operation, not an operation of its own.
    stores = sum(1 for (sender, _), sub in state.stores.items()
                 if sender == primitive.sender and not sub.candidates) if state else 0
    total = gets + stores + 1
    if total > limit:
        shown = "the default of 1 (no Asynchronous Operations Window item)" \
            if view.accept.async_window is None else f"the negotiated {limit}"
        report(f"C-GET-RQ makes {total} operations outstanding from the {primitive.sender} ({gets} C-GET, "
               f"{stores} C-STORE before it), more than {shown}")


@rule("GET-RQ-011", "message")
def identifier_not_cut_short(report: Reporter, event: Event) -> None:
    if not _is_get_request(event):
        return
    message = event.message
    if not message.data_set_complete or message.data_set is None:
        return  # no last fragment: the stream ended or a command broke in (lower layers report it)
    fault = walk_identifier(message.data_set, message.transfer_syntax)
    if fault is None or fault.kind != "truncated":
        return
    message_id = _message_id(event.primitive)
    state = event.view.correlation
    early = state.latest.get((message.sender, message_id)) if state is not None else None
    if early is not None and early.request is None and any(
            status_category(r.Status) == FAILURE for r in early.responses):
        return  # 9.3.3.4: cutting the identifier short is allowed after an early Failed/Refused response
    report(f"C-GET-RQ identifier ended on a last-fragment bit while incomplete ({fault.detail}) and no "
           "Failed or Refused response had come; only an early failure allows cutting it short",
           frame=message.data_frame)
