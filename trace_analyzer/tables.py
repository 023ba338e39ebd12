"""Tables: the analysis as rows and pandas DataFrames.

Layer: tables. Reads an :class:`~trace_analyzer.analysis.Analysis` and gives
rows (plain dicts: ints stay ints, absent values are None) or DataFrames
(nullable integer columns, so "absent" stays null and never becomes 0 or
NaN-as-float). pandas is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydicom import config as pydicom_config
from pydicom.datadict import keyword_for_tag
from pydicom.uid import UID

from .commandset import COMMAND_NAMES
from .limits import DEFAULT as DEFAULT_LIMITS
from .operations import Operation, SubOperation
from .pdu_items import USER_IDENTITY_TYPES
from .primitives import C_ECHO, C_FIND, C_GET, C_MOVE
from .safe_text import clean_row
from .status import status_category, status_hex, status_meaning

if TYPE_CHECKING:
    import pandas

    from .analysis import Analysis

# Column name -> kind ("int", "float", "str", "bool"), in display order.
COLUMNS: dict[str, dict[str, str]] = {
    "associations": {
        "capture": "str", "association": "int", "client": "str", "server": "str",
        "calling_ae": "str", "called_ae": "str",
        "requestor_implementation_class_uid": "str", "requestor_implementation_version": "str",
        "acceptor_implementation_class_uid": "str", "acceptor_implementation_version": "str",
        "requestor_max_pdu": "int", "acceptor_max_pdu": "int", "outcome": "str",
        "start_time": "float", "end_time": "float", "first_frame": "int", "last_frame": "int",
        "application_context": "str", "contexts_proposed": "int", "contexts_accepted": "int",
        "async_window": "str", "user_identity": "str", "reject": "str", "abort": "str",
        "abort_frame": "int",
        "release_requested": "bool", "mid_stream": "bool", "pdus": "int", "messages": "int",
    },
    "contexts": {
        "capture": "str", "association": "int", "context_id": "int", "abstract_syntax": "str",
        "abstract_syntax_name": "str", "proposed_transfer_syntaxes": "str", "result": "int",
        "result_text": "str", "transfer_syntax": "str", "transfer_syntax_name": "str",
        "requestor_scu_role": "int", "requestor_scp_role": "int",
        "acceptor_scu_role": "int", "acceptor_scp_role": "int",
        "requestor_may": "str", "acceptor_may": "str",
    },
    "operations": {
        "capture": "str", "association": "int", "operation": "int", "service": "str", "message_id": "int",
        "affected_sop_class_uid": "str", "sop_class_name": "str", "priority": "int",
        "query_retrieve_level": "str", "identifier": "str", "request_frame": "int", "request_time": "float",
        "final_status": "int", "status_hex": "str", "status_category": "str", "status_meaning": "str",
        "remaining": "int", "completed": "int", "failed": "int", "warning": "int",
        "pending_responses": "int", "sub_operations": "int", "sub_operations_completed": "int",
        "sub_operations_warning": "int", "sub_operations_failed": "int",
        "sub_operations_unanswered": "int", "sub_operations_ambiguous": "int", "linking": "str",
        "linking_detail": "str", "misnumbered_responses": "int",
        "cancel_requested": "bool", "cancel_frame": "int", "complete": "bool", "final_frame": "int",
        "final_time": "float", "duration_s": "float", "error_comment": "str", "offending_element": "str",
        "failed_sop_instances": "int", "invoker": "str", "performer": "str", "errors": "int",
        "warnings": "int", "move_destination": "str", "sub_operation_associations": "str", "link": "str",
        "matches": "int",
    },
    "progress": {
        "capture": "str", "association": "int", "operation": "int", "service": "str", "message_id": "int",
        "frame": "int",
        "time": "float",
        "elapsed_s": "float", "status": "int", "status_hex": "str", "status_category": "str",
        "remaining": "int", "completed": "int", "failed": "int", "warning": "int", "final": "bool",
    },
    "sub_operations": {
        "capture": "str", "association": "int", "operation": "int", "get_message_id": "int",
        "message_id": "int",
        "affected_sop_class_uid": "str", "sop_class_name": "str", "affected_sop_instance_uid": "str",
        "priority": "int", "context_id": "int", "request_frame": "int", "request_time": "float",
        "response_frame": "int", "status": "int", "status_hex": "str", "status_category": "str",
        "status_meaning": "str", "dataset_bytes": "int", "latency_s": "float", "ambiguous": "bool",
        "candidate_get_message_ids": "str", "service": "str", "link": "str",
        "move_originator_ae": "str", "move_originator_message_id": "int",
    },
    "statuses": {
        "capture": "str", "service": "str", "status": "int", "status_hex": "str", "category": "str",
        "meaning": "str", "responses": "int", "operations": "int",
    },
    "offending_elements": {
        "capture": "str", "association": "int", "message_id": "int", "frame": "int", "status": "int",
        "status_hex": "str", "tag": "str", "keyword": "str", "error_comment": "str", "service": "str",
    },
    "messages": {
        "capture": "str", "association": "int", "frame": "int", "time": "float", "sender": "str",
        "context_id": "int", "command": "str", "command_field": "int", "message_id": "int",
        "message_id_being_responded_to": "int", "affected_sop_class_uid": "str",
        "affected_sop_instance_uid": "str", "priority": "int", "data_set_type": "int", "status": "int",
        "remaining": "int", "completed": "int", "failed": "int", "warning": "int",
        "dataset_bytes": "int", "data_frame": "int", "elements": "str",
    },
    "violations": {
        "capture": "str", "rule": "str", "severity": "str", "title": "str", "section": "str",
        "association": "int", "message_id": "int", "frame": "int", "time": "float", "peer": "str",
        "peer_side": "str", "peer_role": "str", "detail": "str",
    },
    "peers": {
        "peer": "str", "ae_title": "str", "address": "str", "implementation_class_uid": "str",
        "implementation_version": "str", "roles": "str", "captures": "int", "associations": "int",
        "operations": "int", "errors": "int", "warnings": "int", "rules_broken": "str",
        "not_judged": "str", "verdict": "str",
    },
    "problems": {
        "capture": "str", "frame": "int", "time": "float", "association": "int", "code": "str",
        "detail": "str",
    },
    "captures": {
        "capture": "str", "frames": "int", "bytes": "int", "tcp_frames": "int", "skipped_frames": "int",
        "connections": "int", "dicom_connections": "int", "first_time": "float", "last_time": "float",
        "error": "str",
    },
}

TABLES = tuple(COLUMNS)
PENDING = (0xFF00, 0xFF01)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)


def uid_name(uid: str | None) -> str | None:
    if not uid:
        return None
    name = UID(uid, validation_mode=pydicom_config.IGNORE).name
    return None if name == uid else name


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _tags(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, int)]
    return []


def _elapsed(time: float | None, start: float | None) -> float | None:
    if time is None or start is None:
        return None
    return round(time - start, 6)


# -- row builders -------------------------------------------------------------


def _associations(analysis: Analysis) -> Iterator[dict]:
    for record in analysis.association_records:
        rq, ac = record.request, record.accept
        window = ac.async_window if ac and ac.async_window else (rq.async_window if rq else None)
        yield {
            "capture": record.capture, "association": record.association,
            "client": record.client, "server": record.server,
            "calling_ae": rq.calling_ae if rq else None, "called_ae": rq.called_ae if rq else None,
            "requestor_implementation_class_uid": rq.implementation_class_uid if rq else None,
            "requestor_implementation_version": rq.implementation_version_name if rq else None,
            "acceptor_implementation_class_uid": ac.implementation_class_uid if ac else None,
            "acceptor_implementation_version": ac.implementation_version_name if ac else None,
            "requestor_max_pdu": rq.max_length if rq else None,
            "acceptor_max_pdu": ac.max_length if ac else None,
            "outcome": record.outcome,
            "start_time": record.start_time, "end_time": record.end_time,
            "first_frame": record.first_frame, "last_frame": record.last_frame,
            "application_context": rq.application_context if rq else None,
            "contexts_proposed": len(rq.contexts) if rq else None,
            "contexts_accepted": sum(1 for c in ac.contexts if c.result == 0) if ac else None,
            "async_window": f"{window[0]}/{window[1]}" if window else None,
            "user_identity": (USER_IDENTITY_TYPES.get(rq.user_identity_type, str(rq.user_identity_type))
                              if rq and rq.user_identity_type is not None else None),
            "reject": record.reject.text if record.reject else None,
            "abort": (f"{record.abort.text} (from the {record.abort_sender or 'unknown side'})"
                      if record.abort else None),
            "abort_frame": record.abort_frame,
            "release_requested": record.release_requested, "mid_stream": record.mid_stream,
            "pdus": record.pdus, "messages": record.messages,
        }


def _contexts(analysis: Analysis) -> Iterator[dict]:
    for record in analysis.association_records:
        rq, ac = record.request, record.accept
        if rq is None:
            continue
        rq_roles = {r.sop_class_uid: r for r in rq.roles}
        ac_roles = {r.sop_class_uid: r for r in ac.roles} if ac else {}
        for context in rq.contexts:
            answer = ac.context(context.id) if ac else None
            accepted_ts = answer.transfer_syntaxes[0] if answer and answer.transfer_syntaxes else None
            if answer is not None and answer.result != 0:
                accepted_ts = None
            rq_role = rq_roles.get(context.abstract_syntax or "")
            ac_role = ac_roles.get(context.abstract_syntax or "")
            yield {
                "capture": record.capture, "association": record.association,
                "context_id": context.id, "abstract_syntax": context.abstract_syntax,
                "abstract_syntax_name": uid_name(context.abstract_syntax),
                "proposed_transfer_syntaxes": "\\".join(context.transfer_syntaxes),
                "result": answer.result if answer else None,
                "result_text": answer.result_text if answer else None,
                "transfer_syntax": accepted_ts, "transfer_syntax_name": uid_name(accepted_ts),
                "requestor_scu_role": rq_role.scu_role if rq_role else None,
                "requestor_scp_role": rq_role.scp_role if rq_role else None,
                "acceptor_scu_role": ac_role.scu_role if ac_role else None,
                "acceptor_scp_role": ac_role.scp_role if ac_role else None,
                **_roles_taken(record, context.abstract_syntax),
            }


def _roles_taken(record, abstract_syntax: str | None) -> dict:
    """What each side may be for that class as negotiated: "SCU", "SCP", "SCU and SCP",
    "neither", "undefined" (catalog 6.8), or None when the A-ASSOCIATE-AC is not captured."""
    roles = record.roles(abstract_syntax or "")
    if roles is None or isinstance(roles, str):
        return {"requestor_may": roles, "acceptor_may": roles}
    requestor_scu, requestor_scp = roles
    return {"requestor_may": _ROLE_NAMES[requestor_scu, requestor_scp],
            "acceptor_may": _ROLE_NAMES[requestor_scp, requestor_scu]}


_ROLE_NAMES = {(True, True): "SCU and SCP", (True, False): "SCU", (False, True): "SCP",
               (False, False): "neither"}


def identifier_summary(request: C_GET | None) -> tuple[str | None, str | None]:
    """(Query/Retrieve Level, the identifier as ``keyword=value; ...``) as the operations table
    shows them."""
    if request is None or isinstance(request, C_ECHO):
        return None, None
    dataset = request.identifier_dataset
    if dataset is None:
        return None, None
    parts = []
    for element in dataset:
        if element.VR == "SQ":
            parts.append(f"{element.keyword or element.tag}=<sequence of {len(element.value)}>")
            continue
        value = element.value
        # A value pydicom could not convert (UN, a wrong length) is given as its raw hex.
        parts.append(f"{element.keyword or element.tag}={_str(value) if isinstance(value, bytes) else value}")
    level = dataset.get("QueryRetrieveLevel")
    return (str(level) if level is not None else None), "; ".join(parts)


def _sub_counts(operation: Operation) -> dict[str, int]:
    """Outcomes of the sub-operations linked to it; those that may be another C-GET's as well
    (ambiguous) are counted apart, since they are linked to none (tables agree: each C-STORE
    row names at most one C-GET)."""
    counts = {"linked": 0, "completed": 0, "warning": 0, "failed": 0, "unanswered": 0, "ambiguous": 0}
    for sub in operation.sub_operations:
        if sub.ambiguous:
            counts["ambiguous"] += 1
            continue
        counts["linked"] += 1
        status = sub.response.Status if sub.response is not None else None
        if not isinstance(status, int):
            counts["unanswered"] += 1
            continue
        category = status_category(status)
        if category == "Success":
            counts["completed"] += 1
        elif category == "Warning":
            counts["warning"] += 1
        else:
            counts["failed"] += 1
    return counts


def _linking(operation: Operation) -> dict:
    """How its responses and sub-operations were linked: "unambiguous", "ambiguous" (another
    C-GET of the same invoker was outstanding), or "misnumbered" (responses naming another
    Message ID were taken as its own), with the reason."""
    detail = None
    if operation.misnumbered:
        named = sorted({_str(r.MessageIDBeingRespondedTo) or "absent" for r in operation.misnumbered})
        linking = "misnumbered"
        detail = (f"{len(operation.misnumbered)} response(s) named Message ID {', '.join(named)}; "
                  f"taken as this C-GET's, the only one outstanding")
    elif operation.unmatched_among:
        linking = "ambiguous"
        named = (f"Message ID {operation.message_id}" if operation.message_id >= 0
                 else "the Message ID its responses name (absent or unreadable)")
        detail = (f"no C-GET-RQ had {named}; its responses may answer C-GET "
                  f"{', '.join(str(m) for m in operation.unmatched_among)}, outstanding at the time")
    else:
        linking = "ambiguous" if operation.overlapped else "unambiguous"
        if operation.overlapped:
            detail = "another C-GET of the same invoker was outstanding: sub-operations may be either's"
    return {"linking": linking, "linking_detail": detail,
            "misnumbered_responses": len(operation.misnumbered)}


def _finding_counts(analysis: Analysis) -> dict[tuple, dict[str, int]]:
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: {"error": 0, "warning": 0, "info": 0})
    for finding in analysis.findings:
        counts[(finding.capture, finding.association, finding.message_id)][finding.severity] += 1
    return counts


def incomplete_reason(record: Any) -> str:
    """Why a C-GET of this association has no final response: what ended the association
    (an A-ABORT, a release, a closed connection) or the capture's end."""
    if record is None:
        return "capture ended"
    if record.abort is not None:
        return "aborted" if record.abort_frame is None else f"aborted (A-ABORT in frame {record.abort_frame})"
    if record.released or record.release_requested:
        return "released"
    if record.closed_by is not None:
        return "connection closed"
    return "capture ended"
def standalone_stores(analysis: Analysis) -> list[tuple[int, SubOperation]]:
    """The C-STOREs outside any retrieve, each with its number among its capture's operations
    (after the C-GET, C-MOVE, C-FIND and C-ECHO ones): the operations table's rows for them.
    A C-STORE no C-GET could own on an association that carries C-GETs is not one: it is a
    stray of theirs (the GET-SUB rules say what is wrong with it), as before C-MOVE came."""
    numbers: dict[str, int] = {}
    with_gets = set()
    for operation in analysis.operation_records:
        numbers[operation.capture] = max(numbers.get(operation.capture, 0), operation.number)
        if operation.service == "C-GET":
            with_gets.add((operation.capture, operation.association))
    out = []
    for sub in analysis.unlinked_stores:
        primitive = sub.request or sub.response
        if (primitive.capture, primitive.association) in with_gets:
            continue
        number = numbers[primitive.capture] = numbers.get(primitive.capture, 0) + 1
        out.append((number, sub))
    return out


def _store_operation(number: int, sub: SubOperation, finding_counts: dict) -> dict:
    request, response = sub.request, sub.response
    primitive = request or response
    row = _sub_row(primitive.capture, primitive.association, sub)
    status = row["status"]
    message_id = row["message_id"]
    found = finding_counts.get((primitive.capture, primitive.association, message_id), {})
    return {
        "capture": primitive.capture, "association": primitive.association, "operation": number,
        "service": "C-STORE", "message_id": message_id,
        "affected_sop_class_uid": row["affected_sop_class_uid"], "sop_class_name": row["sop_class_name"],
        "priority": row["priority"], "request_frame": row["request_frame"],
        "request_time": row["request_time"], "final_status": status, "status_hex": row["status_hex"],
        "status_category": row["status_category"], "status_meaning": row["status_meaning"],
        "pending_responses": 0, "sub_operations": 0, "sub_operations_completed": 0,
        "sub_operations_warning": 0, "sub_operations_failed": 0, "sub_operations_unanswered": 0,
        "sub_operations_ambiguous": 0, "linking": "unambiguous", "misnumbered_responses": 0,
        "cancel_requested": False, "complete": response is not None and status is not None,
        "final_frame": row["response_frame"], "final_time": response.time if response else None,
        "duration_s": row["latency_s"],
        "error_comment": _str(response.ErrorComment) if response else None,
        "offending_element": (" ".join(tag_text(t) for t in _tags(response.OffendingElement)) or None)
        if response else None,
        "invoker": primitive.sender if request else ("requestor" if response.sender == "acceptor"
                                                     else "acceptor"),
        "performer": response.sender if response else ("acceptor" if request.sender == "requestor"
                                                       else "requestor"),
        "errors": found.get("error", 0), "warnings": found.get("warning", 0),
    }


def _retrieve_columns(operation: Operation, retrieves: dict[int, Any]) -> dict:
    """The columns only C-MOVE and C-FIND rows fill."""
    if operation.service == "C-FIND":
        return {"matches": sum(1 for r in operation.responses if r.Status in PENDING)}
    if operation.service != "C-MOVE":
        return {}
    request = operation.request
    retrieve = retrieves.get(id(operation))
    destination = request.MoveDestination if request is not None else None
    return {"move_destination": _str(destination),
            "sub_operation_associations": " ".join(str(a) for _, a in retrieve.associations) or None
            if retrieve else None,
            "link": retrieve.link if retrieve else None}


class _EchoView:
    """A C-ECHO primitive read with the Q/R parameters it does not have, as absent."""

    def __init__(self, primitive: C_ECHO) -> None:
        self._primitive = primitive

    def __getattr__(self, name: str) -> Any:
        return getattr(self._primitive, name, None)


def _operations(analysis: Analysis) -> Iterator[dict]:
    finding_counts = _finding_counts(analysis)
    records = {(r.capture, r.association): r for r in analysis.association_records}
    retrieves = {id(r.move): r for r in getattr(analysis, "retrieves", ()) if r.move is not None}
    for operation in analysis.operation_records:
        found = finding_counts.get((operation.capture, operation.association, operation.message_id), {})
        request, final = operation.request, operation.final
        last = final or (operation.responses[-1] if operation.responses else None)
        sop_class = request.AffectedSOPClassUID if request else (last.AffectedSOPClassUID if last else None)
        level, identifier = identifier_summary(request)
        status = _int(final.Status) if final else None
        counts = _sub_counts(operation)
        start = request.time if request else (operation.responses[0].time if operation.responses else None)
        failed_list = None
        if operation.service == "C-ECHO":
            final = _EchoView(final) if final is not None else None
            request = _EchoView(request) if request is not None else None
        elif final is not None and operation.service != "C-FIND" and final.identifier_dataset is not None:
            uids = final.identifier_dataset.get("FailedSOPInstanceUIDList")
            if uids is not None:
                values = [uids] if isinstance(uids, str) else list(uids)
                failed_list = sum(1 for uid in values if uid)
        source = final or last
        service = operation.service
        yield {
            "capture": operation.capture, "association": operation.association,
            "operation": operation.number, "service": service, "message_id": _message_id(operation),
            "affected_sop_class_uid": _str(sop_class), "sop_class_name": uid_name(_str(sop_class)),
            "priority": _int(request.Priority) if request else None,
            "query_retrieve_level": level, "identifier": identifier,
            "request_frame": request.frame if request else None,
            "request_time": request.time if request else None,
            "final_status": status, "status_hex": status_hex(status) if status is not None else None,
            # Never null: a filter on it meets every operation (one without a final response
            # is Incomplete, and its meaning says what ended it).
            "status_category": status_category(status) if status is not None else "Incomplete",
            "status_meaning": status_meaning(service, status) if status is not None else
            "no final response: " + incomplete_reason(records.get((operation.capture,
                                                                   operation.association))),
            # The final response's counters: a C-GET without one has no final counters (the
            # last Pending response's are its last progress row).
            "remaining": _int(final.NumberOfRemainingSuboperations) if final else None,
            "completed": _int(final.NumberOfCompletedSuboperations) if final else None,
            "failed": _int(final.NumberOfFailedSuboperations) if final else None,
            "warning": _int(final.NumberOfWarningSuboperations) if final else None,
            "pending_responses": len(operation.pending_responses),
            "sub_operations": counts["linked"],
            "sub_operations_completed": counts["completed"],
            "sub_operations_warning": counts["warning"],
            "sub_operations_failed": counts["failed"],
            "sub_operations_unanswered": counts["unanswered"],
            "sub_operations_ambiguous": counts["ambiguous"],
            **_linking(operation),
            **_retrieve_columns(operation, retrieves),
            "cancel_requested": bool(operation.cancels),
            "cancel_frame": operation.cancels[0].frame if operation.cancels else None,
            "complete": final is not None,
            "final_frame": final.frame if final else None,
            "final_time": final.time if final else None,
            "duration_s": _elapsed(final.time if final else None, start),
            "error_comment": _str(source.ErrorComment) if source else None,
            "offending_element": (" ".join(tag_text(t) for t in _tags(source.OffendingElement)) or None)
            if source else None,
            "failed_sop_instances": failed_list,
            "invoker": operation.invoker, "performer": "acceptor" if operation.invoker == "requestor"
            else "requestor",
            "errors": found.get("error", 0), "warnings": found.get("warning", 0),
        }
    for number, sub in standalone_stores(analysis):
        yield _store_operation(number, sub, finding_counts)


def _progress(analysis: Analysis) -> Iterator[dict]:
    for operation in analysis.operation_records:
        start = operation.request.time if operation.request else None
        if start is None and operation.responses:
            start = operation.responses[0].time
        for response in operation.responses:
            status = _int(response.Status)
            yield {
                "capture": operation.capture, "association": operation.association,
                "operation": operation.number, "service": operation.service,
                "message_id": _message_id(operation),
                "frame": response.frame, "time": response.time,
                "elapsed_s": _elapsed(response.time, start), "status": status,
                "status_hex": status_hex(status) if status is not None else None,
                "status_category": status_category(status) if status is not None else None,
                "remaining": _int(getattr(response, "NumberOfRemainingSuboperations", None)),
                "completed": _int(getattr(response, "NumberOfCompletedSuboperations", None)),
                "failed": _int(getattr(response, "NumberOfFailedSuboperations", None)),
                "warning": _int(getattr(response, "NumberOfWarningSuboperations", None)),
                # None for a response without a Status: neither Pending nor final.
                "final": None if status is None else status not in PENDING,
            }
    for number, sub in standalone_stores(analysis):
        response = sub.response
        if response is None:
            continue
        status = _int(response.Status)
        start = sub.request.time if sub.request else response.time
        yield {"capture": response.capture, "association": response.association, "operation": number,
               "service": "C-STORE", "message_id": _int(response.MessageIDBeingRespondedTo),
               "frame": response.frame, "time": response.time, "elapsed_s": _elapsed(response.time, start),
               "status": status, "status_hex": status_hex(status) if status is not None else None,
               "status_category": status_category(status) if status is not None else None,
               "final": None if status is None else status not in PENDING}


def _message_id(operation: Operation) -> int | None:
    """Its Message ID, None where its request's was absent or unreadable (kept as -1 inside)."""
    return operation.message_id if operation.message_id >= 0 else None


def _sub_row(operation_capture: str, association: int, sub: SubOperation,
             operation: Operation | None = None) -> dict:
    request, response = sub.request, sub.response
    status = _int(response.Status) if response else None
    sop_class = _str(request.AffectedSOPClassUID) if request else (
        _str(response.AffectedSOPClassUID) if response else None)
    return {
        "capture": operation_capture, "association": association,
        "operation": operation.number if operation is not None and not sub.ambiguous else None,
        "get_message_id": sub.get_message_id if sub.get_message_id is None or sub.get_message_id >= 0
        else None,
        "message_id": _int(request.MessageID) if request else (
            _int(response.MessageIDBeingRespondedTo) if response else None),
        "affected_sop_class_uid": sop_class, "sop_class_name": uid_name(sop_class),
        "affected_sop_instance_uid": _str(request.AffectedSOPInstanceUID) if request else (
            _str(response.AffectedSOPInstanceUID) if response else None),
        "priority": _int(request.Priority) if request else None,
        "context_id": request.context_id if request else None,
        "request_frame": request.frame if request else None,
        "request_time": request.time if request else None,
        "response_frame": response.frame if response else None,
        "status": status, "status_hex": status_hex(status) if status is not None else None,
        "status_category": status_category(status) if status is not None else (
            "Incomplete" if response is None else None),
        "status_meaning": status_meaning("C-STORE", status) if status is not None else (
            "no response" if response is None else None),
        "dataset_bytes": request.data_set_length if request else None,
        "latency_s": _elapsed(response.time if response else None, request.time if request else None),
        "ambiguous": sub.ambiguous,
        "candidate_get_message_ids": " ".join(str(c) for c in sub.candidates) or None,
        "service": operation.service if operation is not None else None, "link": sub.link,
        "move_originator_ae": _str(request.MoveOriginatorApplicationEntityTitle) if request else None,
        "move_originator_message_id": _int(request.MoveOriginatorMessageID) if request else None,
    }


def _sub_operations(analysis: Analysis) -> Iterator[dict]:
    seen: set[int] = set()
    for operation in analysis.operation_records:
        for sub in operation.sub_operations:
            if id(sub) in seen:  # an ambiguous one hangs on several C-GETs: one row
                continue
            seen.add(id(sub))
            if sub.link is None:
                yield _sub_row(operation.capture, operation.association, sub, operation)
                continue
            # A C-MOVE's, on another association (perhaps of another capture set: then the
            # row names no operation, whose numbers are per capture set).
            store = sub.request
            row = _sub_row(store.capture, store.association, sub, operation)
            if store.capture != operation.capture:
                row["operation"] = None
            yield row
    for retrieve in getattr(analysis, "retrieves", ()):
        if retrieve.move is None:  # sub-operations of a C-MOVE that is not in the capture
            for sub in retrieve.sub_operations:
                store = sub.request
                yield _sub_row(store.capture, store.association, sub)


def _statuses(analysis: Analysis) -> Iterator[dict]:
    # (capture, service, status) -> [responses, set of C-GETs concerned]
    counts: dict[tuple[str, str, int], list] = defaultdict(lambda: [0, set()])

    def count(capture: str, service: str, status: Any, operation: object) -> None:
        status = _int(status)
        if status is None or status == 0x0000 or status in PENDING:
            return
        entry = counts[(capture, service, status)]
        entry[0] += 1
        if operation is not None:
            entry[1].add(id(operation))

    for operation in analysis.operation_records:
        for response in operation.responses:
            count(operation.capture, operation.service, response.Status, operation)
        for sub in operation.sub_operations:
            if sub.response is not None:
                count(operation.capture, "C-STORE", sub.response.Status, operation)
    for sub in analysis.unlinked_stores:
        if sub.response is not None:
            count(sub.response.capture, "C-STORE", sub.response.Status, None)
    for retrieve in getattr(analysis, "retrieves", ()):
        if retrieve.move is None:
            for sub in retrieve.sub_operations:
                if sub.response is not None:
                    count(sub.response.capture, "C-STORE", sub.response.Status, None)
    for (capture, service, status), (responses, operations) in sorted(counts.items()):
        yield {
            "capture": capture, "service": service, "status": status, "status_hex": status_hex(status),
            "category": status_category(status), "meaning": status_meaning(service, status),
            "responses": responses, "operations": len(operations),
        }


_WITH_STATUS = (C_GET, C_MOVE, C_FIND, C_ECHO)


def _offending_elements(analysis: Analysis) -> Iterator[dict]:
    for message in analysis.primitives:
        if not isinstance(message, _WITH_STATUS) or not message.is_response:
            continue
        tags = _tags(getattr(message, "OffendingElement", None))
        comment = _str(message.ErrorComment)
        if not tags and comment is None:
            continue
        status = _int(message.Status)
        base = {
            "capture": message.capture, "association": message.association,
            "message_id": _int(message.MessageIDBeingRespondedTo), "frame": message.frame,
            "status": status, "status_hex": status_hex(status) if status is not None else None,
            "error_comment": comment, "service": message.msg_type,
        }
        for tag in tags or [None]:
            yield {**base, "tag": tag_text(tag) if tag is not None else None,
                   "keyword": (keyword_for_tag(tag) or None) if tag is not None else None}


_MESSAGE_KEYS = {
    "message_id": "MessageID", "message_id_being_responded_to": "MessageIDBeingRespondedTo",
    "affected_sop_class_uid": "AffectedSOPClassUID", "affected_sop_instance_uid": "AffectedSOPInstanceUID",
    "priority": "Priority", "data_set_type": "CommandDataSetType", "status": "Status",
    "remaining": "NumberOfRemainingSuboperations", "completed": "NumberOfCompletedSuboperations",
    "failed": "NumberOfFailedSuboperations", "warning": "NumberOfWarningSuboperations",
}


def command_counts(analysis: Analysis) -> Counter:
    """DIMSE messages per command name ("C-ECHO-RQ", ...), every service, without building the
    messages table."""
    counts: Counter = Counter()
    for message in analysis.primitives:
        field_ = _int(message.wire.get("CommandField"))
        counts[COMMAND_NAMES.get(field_, f"0x{field_:04X}") if field_ is not None else "unknown"] += 1
    for message in analysis.other_messages:
        field_ = message.command_field
        counts[COMMAND_NAMES.get(field_, f"0x{field_:04X}") if isinstance(field_, int) else "unknown"] += 1
    return counts


_MESSAGE_COLUMNS = ("capture", "association", "frame", "time", "sender", "context_id", "command",
                    "command_field", *_MESSAGE_KEYS, "dataset_bytes", "data_frame", "elements")


def _messages(analysis: Analysis) -> Iterator[dict]:
    order: dict[str, int] = {}
    for summary in analysis.capture_summaries:  # messages carry their capture set's name
        order.setdefault(summary.capture_set or summary.capture, len(order))
    items = []
    for message in analysis.primitives:
        items.append((order.get(message.capture, 0), message.frame, message.wire, message.elements,
                      message, message.data_set_length))
    for message in analysis.other_messages:
        wire = {e.keyword or e.tag_str: e.value for e in reversed(message.command.elements)}
        items.append((order.get(message.capture, 0), message.frame, wire, message.command.keywords,
                      message, message.data_set_length))
    items.sort(key=lambda item: (item[0], item[1]))
    converters = tuple((keyword, _int if COLUMNS["messages"][column] == "int" else _str)
                       for column, keyword in _MESSAGE_KEYS.items())
    joined: dict[int, tuple[tuple[str, ...], str]] = {}  # keyword tuples are shared per shape
    for _, frame, wire, elements, message, length in items:
        command_field = _int(wire.get("CommandField"))
        kept = joined.get(id(elements))
        if kept is None or kept[0] is not elements:
            kept = joined[id(elements)] = (elements, " ".join(elements))
        values = [message.capture, message.association, frame, message.time, message.sender,
                  message.context_id,
                  COMMAND_NAMES.get(command_field, None) if command_field is not None else None,
                  command_field]
        values += [convert(wire.get(keyword)) for keyword, convert in converters]
        # where its data set ended, if it had one
        values += (length, message.data_frame, kept[1])
        yield dict(zip(_MESSAGE_COLUMNS, values, strict=True))


def _violations(analysis: Analysis) -> Iterator[dict]:
    labels = peer_labels(analysis)
    for f in analysis.findings:
        peer = labels.get((f.capture, f.association, f.peer_side), f.peer)
        yield {"capture": f.capture, "rule": f.rule, "severity": f.severity, "title": f.title,
               "section": f.section, "association": f.association, "message_id": f.message_id,
               "frame": f.frame, "time": f.time, "peer": peer, "peer_side": f.peer_side,
               "peer_role": f.peer_role, "detail": f.detail}


_ROLE_OF_SENDER = {("C-GET", True): "C-GET SCU", ("C-GET", False): "C-GET SCP",
                   ("C-CANCEL", True): "C-GET SCU",
                   ("C-STORE", True): "Storage SCU", ("C-STORE", False): "Storage SCP",
                   ("C-MOVE", True): "C-MOVE SCU", ("C-MOVE", False): "C-MOVE SCP",
                   ("C-FIND", True): "C-FIND SCU", ("C-FIND", False): "C-FIND SCP",
                   ("C-ECHO", True): "Verification SCU", ("C-ECHO", False): "Verification SCP"}


def peer_key(record, side: str) -> tuple:
    """Who a side of an association is: AE title, address, implementation UID and version.

    A requestor's port changes with every connection, so only its host is kept;
    an acceptor is known by host and listening port.
    """
    rq = record.request
    params = rq if side == "requestor" else record.accept
    if side == "requestor":
        ae = rq.calling_ae if rq else None
        address = record.client.rsplit(":", 1)[0]
    else:
        ae = rq.called_ae if rq else None
        address = record.server
    return (ae, address, params.implementation_class_uid if params else None,
            params.implementation_version_name if params else None)


def peer_label(ae: str | None, address: str) -> str:
    """The one name of a peer in every table and plot: ``AE @ address`` (the acceptor's address
    with its listening port, the requestor's host alone, as :func:`peer_key` groups them)."""
    return f"{ae if ae is not None else '?'} @ {address}"


def peer_labels(analysis: Analysis) -> dict[tuple[str, int, str], str]:
    """``(capture, association, side) -> peer label``, the ``peer`` column of the peers table."""
    labels = {}
    for record in analysis.association_records:
        for side in ("requestor", "acceptor"):
            ae, address, _uid, _version = peer_key(record, side)
            labels[(record.capture, record.association, side)] = peer_label(ae, address)
    return labels


def _peers(analysis: Analysis) -> Iterator[dict]:
    peers: dict[tuple, dict] = {}
    sides: dict[tuple[str, int, str], tuple] = {}
    for record in analysis.association_records:
        for side in ("requestor", "acceptor"):
            key = peer_key(record, side)
            sides[(record.capture, record.association, side)] = key
            peer = peers.setdefault(key, {"roles": set(), "captures": set(), "associations": set(),
                                          "operations": set(), "errors": 0, "warnings": 0, "rules": set(),
                                          "exercised": False, "unjudged": set()})
            peer["roles"].add(f"association {side}")
            peer["captures"].add(record.capture)
            peer["associations"].add((record.capture, record.association))
            answered = record.accept is not None or record.reject is not None
            if side == "requestor" and record.request is not None and answered:
                peer["exercised"] = True  # an RQ nobody answered exercised nothing
            if side == "acceptor" and (record.accept is not None or record.reject is not None):
                peer["exercised"] = True
    for message in analysis.primitives:
        key = sides.get((message.capture, message.association, message.sender))
        if key is None:
            continue
        peer = peers[key]
        peer["exercised"] = True
        role = _ROLE_OF_SENDER.get((message.msg_type, bool(message.is_request)))
        if role:
            peer["roles"].add(role)
    for operation in analysis.operation_records:
        for side in ("requestor", "acceptor"):
            key = sides.get((operation.capture, operation.association, side))
            if key is not None:
                peers[key]["operations"].add((operation.capture, operation.association, operation.message_id))
    for finding in analysis.findings:
        key = sides.get((finding.capture, finding.association, finding.peer_side))
        if key is None:
            continue
        peer = peers[key]
        if finding.severity == "error":
            peer["errors"] += 1
            peer["rules"].add(finding.rule)
        elif finding.severity == "warning":
            peer["warnings"] += 1
            peer["rules"].add(finding.rule)
    for finding in analysis.unjudged:
        key = sides.get((finding.capture, finding.association, finding.peer_side))
        if key is not None and finding.severity == "error":
            peers[key]["unjudged"].add(finding.rule)
    for (ae, address, uid, version), peer in peers.items():
        if peer["errors"]:
            verdict = "non-conformant"
        elif peer["unjudged"]:
            # Nothing judged was wrong, but rules that could have accused it were not judged
            # after capture loss (CAPTURE-UNJUDGED problems): not "conformant" either.
            verdict = "not judged"
        elif peer["exercised"]:
            verdict = "conformant"
        else:
            verdict = "not exercised"
        yield {"peer": peer_label(ae, address), "ae_title": ae, "address": address,
               "implementation_class_uid": uid,
               "implementation_version": version, "roles": ", ".join(sorted(peer["roles"])),
               "captures": len(peer["captures"]), "associations": len(peer["associations"]),
               "operations": len(peer["operations"]), "errors": peer["errors"], "warnings": peer["warnings"],
               "rules_broken": " ".join(sorted(peer["rules"])) or None,
               "not_judged": " ".join(sorted(peer["unjudged"])) or None, "verdict": verdict}


def _problems(analysis: Analysis) -> Iterator[dict]:
    for problem in analysis.problem_records:
        yield {"capture": problem.capture, "frame": problem.frame, "time": problem.time,
               "association": problem.association, "code": problem.code, "detail": problem.detail}


def _captures(analysis: Analysis) -> Iterator[dict]:
    for summary in analysis.capture_summaries:
        yield {"capture": summary.capture, "frames": summary.frames, "bytes": summary.bytes,
               "tcp_frames": summary.tcp_frames, "skipped_frames": sum(summary.skipped_frames.values()),
               "connections": summary.connections, "dicom_connections": summary.dicom_connections,
               "first_time": summary.first_time, "last_time": summary.last_time, "error": summary.error,
               "capture_set": summary.capture_set, "frame_offset": summary.frame_offset}


# Every table with a capture column says which capture set (rotated files of one capture are
# one set) the row is from; its frames are numbered in the file its capture column names.
for _columns in COLUMNS.values():
    if "capture" in _columns:
        _columns["capture_set"] = "str"
#: Frames of the set's files before this one: a row's frame f counts as frame_offset + f of its set.
COLUMNS["captures"]["frame_offset"] = "int"
#: Every epoch time has an ISO 8601 UTC twin, ``X_utc`` for ``X``, to match with a PACS's logs.
_TIME_COLUMNS = {name: tuple(c for c, kind in columns.items()
                             if kind == "float" and (c == "time" or c.endswith("_time")))
                 for name, columns in COLUMNS.items()}
for _name, _times in _TIME_COLUMNS.items():
    for _time in _times:
        COLUMNS[_name][f"{_time}_utc"] = "str"


def utc_text(epoch: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC to the microsecond: ``2026-12-03T07:21:24.123456Z``."""
    if epoch is None:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    except (OverflowError, OSError, ValueError):  # a capture's clock far outside what dates hold
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


_FRAME_COLUMNS = {name: tuple(c for c in columns if c == "frame" or c.endswith("_frame"))
                  for name, columns in COLUMNS.items()}

_BUILDERS: dict[str, Callable[[Analysis], Iterator[dict]]] = {
    "associations": _associations, "contexts": _contexts, "operations": _operations,
    "progress": _progress, "sub_operations": _sub_operations, "statuses": _statuses,
    "offending_elements": _offending_elements, "messages": _messages, "violations": _violations,
    "peers": _peers, "problems": _problems,
    "captures": _captures,
}


#: Builders whose rows have every column, in display order (the largest tables): taken as
#: they come (tests/test_table_columns.py checks the claim).
#: Tables whose builders give their columns already in display order (every row still gets
#: its capture set placed and its text made safe in iter_rows).
EXACT_ROWS = frozenset({"messages", "sub_operations"})


#: Columns a reader is shown only when a table holds rows of other services than C-GET (C-MOVE,
#: C-FIND, C-ECHO, C-STORE outside a retrieve), after the table's usual ones: a C-GET capture
#: reads as it did before C-MOVE came.
SERVICE_COLUMNS: dict[str, tuple[str, ...]] = {
    "operations": ("service", "move_destination", "sub_operation_associations", "link", "matches"),
    "progress": ("service",),
    "sub_operations": ("service", "link", "move_originator_ae", "move_originator_message_id"),
    "offending_elements": ("service",),
}


def shown_columns(name: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> tuple[str, ...]:
    """``columns`` for showing table ``name``'s ``rows``, with its SERVICE_COLUMNS after them when
    some row is of another service than C-GET."""
    extra = SERVICE_COLUMNS.get(name, ())
    if extra and any(row.get("service") not in (None, "C-GET") for row in rows):
        return columns + tuple(c for c in extra if c not in columns)
    return columns


def iter_rows(name: str, analysis: Analysis) -> Iterator[dict[str, Any]]:
    """One table's rows one at a time, columns in display order. Bytes of the capture that
    were not valid text are given in hex (see :mod:`trace_analyzer.safe_text`)."""
    columns = COLUMNS[name]
    texts = [column for column, kind in columns.items() if kind == "str"]
    frames = _FRAME_COLUMNS[name]
    times = _TIME_COLUMNS[name]
    cell_chars = getattr(analysis, "limits", DEFAULT_LIMITS).cell_chars
    for row in _BUILDERS[name](analysis):
        row = {column: row.get(column) for column in columns}
        for column in times:
            row[f"{column}_utc"] = utc_text(row[column])
        if "capture_set" in row:
            analysis.place(row, frames)  # which capture set, file and frame in it
        yield clean_row(row, texts, cell_chars)


def rows(name: str, analysis: Analysis) -> list[dict[str, Any]]:
    """One table as a list of dicts, columns in display order."""
    return list(iter_rows(name, analysis))


_DTYPES = {"int": "Int64", "float": "Float64", "str": "string", "bool": "boolean"}


def build(name: str, analysis: Analysis) -> pandas.DataFrame:
    """One table as a DataFrame with nullable dtypes (absent stays <NA>)."""
    import pandas

    columns = COLUMNS[name]
    frame = pandas.DataFrame(rows(name, analysis), columns=list(columns))
    return frame.astype({column: _DTYPES[kind] for column, kind in columns.items()})
