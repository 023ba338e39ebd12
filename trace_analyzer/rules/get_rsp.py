"""GET-RSP rules: C-GET-RSP command fields, statuses and status-related fields (catalog 5.4).

Facts used: the response layout (catalog 1.4, PS3.7 Table 9.3-7), the status
classes and C-GET codes (2.1-2.4), Pending and final responses (3.5, 3.8) and
the documented deviations of pynetdicom and DCMTK (6). Every check reads the
response it is called for and, where needed, its operation (the C-GET-RQ and
the earlier responses); nothing scans the capture.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pydicom.datadict import dictionary_is_retired, tag_for_keyword

from ..primitives import C_GET
from ..status import (
    CANCEL,
    FAILURE,
    GENERAL_STATUS,
    PENDING,
    SUCCESS,
    UNKNOWN,
    WARNING,
    status_category,
    status_hex,
    status_meaning,
)
from .engine import Event, Reporter, rule

_COUNTERS = ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
             "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")
_COUNTER_TAGS = dict(zip(_COUNTERS, ("(0000,1020)", "(0000,1021)", "(0000,1022)", "(0000,1023)"),
                         strict=True))
_REMAINING, _COMPLETED, _FAILED, _WARNING = _COUNTERS

COMPOSITE_INSTANCE_ROOT_GET = "1.2.840.10008.5.1.4.1.2.4.3"
WITHOUT_BULK_DATA_GET = "1.2.840.10008.5.1.4.1.2.5.3"
#: Their status tables (PS3.4 Y.4-2, Z.4-1) list (0000,1020) for final statuses.
_LISTS_REMAINING = (COMPOSITE_INSTANCE_ROOT_GET, WITHOUT_BULK_DATA_GET)

NO_DATA_SET = 0x0101
FAILED_UID_LIST = 0x00080058
SPECIFIC_CHARACTER_SET = 0x00080005

#: General Annex C codes PS3.7 9.1.3.1.6 lists for C-GET.
_GENERAL_FOR_C_GET = frozenset({0x0000, 0xFE00, 0x0122, 0x0124, 0x0210, 0x0211, 0x0212})
_REFUSED_A = frozenset({0xA701, 0xA702, 0xA900})
_COMPOSITE_A = frozenset(range(0xAA00, 0xAA05))

#: Command elements Table 9.3-7 (with Annex C) defines for a C-GET-RSP.
_RSP_TAGS = frozenset({0x0000, 0x0002, 0x0100, 0x0110, 0x0120, 0x0800, 0x0900, 0x0901, 0x0902, 0x0903,
                       0x1020, 0x1021, 0x1022, 0x1023})
_TAG_NAMES = {"OffendingElement": "(0000,0901)", "ErrorComment": "(0000,0902)", "ErrorID": "(0000,0903)"}

# Bound on remembered unmatched responses per association (checks keep little state).
_MAX_REMEMBERED = 256


# -- helpers ------------------------------------------------------------------


def _status(response: C_GET) -> int | None:
    value = response.wire.get("Status")
    return value if isinstance(value, int) else None


def _counter(response: C_GET, keyword: str) -> int | None:
    value = response.wire.get(keyword)
    return value if isinstance(value, int) else None


def _is_final(status: int | None) -> bool:
    return status is not None and status_category(status) not in (PENDING, UNKNOWN)


def _describe(status: int) -> str:
    return f"{status_hex(status)} ({status_meaning('C-GET', status)})"


def _has_data_set(response: C_GET) -> bool:
    data_set_type = response.wire.get("CommandDataSetType")
    declared = isinstance(data_set_type, int) and data_set_type != NO_DATA_SET
    return declared or response.Identifier is not None


def _sop_class(event: Event) -> str | None:
    operation = event.operation
    if operation is not None and operation.request is not None and operation.request.AffectedSOPClassUID:
        return str(operation.request.AffectedSOPClassUID)
    response = event.primitive
    return event.view.abstract_syntax(response.context_id) if response.context_id is not None else None


def _wire_tag(name: str) -> int | None:
    if name.startswith("("):
        try:
            group, element = name.strip("()").split(",")
            return (int(group, 16) << 16) | int(element, 16)
        except ValueError:
            return None
    return tag_for_keyword(name)


def _failed_uids(response: C_GET) -> tuple[bool, int]:
    """(identifier has (0008,0058), number of UIDs in it)."""
    dataset = response.identifier_dataset
    if dataset is None or FAILED_UID_LIST not in dataset:
        return False, 0
    value = dataset[FAILED_UID_LIST].value
    if value is None or value == "":
        return True, 0
    if isinstance(value, str):
        return True, len([uid for uid in value.split("\\") if uid.strip("\x00 ")])
    return True, len([uid for uid in value if str(uid).strip("\x00 ")])


# -- presence and matching ------------------------------------------------------


@rule("GET-RSP-001", "c_get_rsp")
def mandatory_fields(report: Reporter, event: Event) -> None:
    wire = event.primitive.wire
    tags = {"MessageIDBeingRespondedTo": "(0000,0120)", "CommandDataSetType": "(0000,0800)",
            "Status": "(0000,0900)"}
    missing = [tag for keyword, tag in tags.items() if keyword not in wire]
    if missing:
        report(f"C-GET-RSP lacks {', '.join(missing)}; Table 9.3-7 makes (0000,0120), (0000,0800) "
               "and (0000,0900) mandatory")


class _EarlyResponses:
    """Responses whose C-GET-RQ had not been seen when they arrived.

    Such a response either answers a request still being received (the
    request's message completes later and is the next one its sender
    finishes) or answers nothing. Counting the messages each side completes
    tells the two apart without looking at the capture again.
    """

    __slots__ = ("completed", "waiting")

    def __init__(self) -> None:
        self.completed = {"requestor": 0, "acceptor": 0}
        #: (invoker, Message ID) -> [(response, invoker's completed count when it came), ...]
        self.waiting: OrderedDict[tuple[str, int], list[tuple[C_GET, int]]] = OrderedDict()

    @classmethod
    def of(cls, event: Event, rule_id: str) -> _EarlyResponses:
        state = event.view.scratch.get(rule_id)
        if state is None:
            state = event.view.scratch[rule_id] = cls()
        return state

    def remember(self, key: tuple[str, int], response: C_GET) -> None:
        entries = self.waiting.setdefault(key, [])
        if len(entries) < _MAX_REMEMBERED:
            entries.append((response, self.completed.get(key[0], 0)))
        while len(self.waiting) > _MAX_REMEMBERED:
            self.waiting.popitem(last=False)

    def request_arrived(self, request: C_GET, mid_stream: bool) -> tuple[list[C_GET], list[C_GET]]:
        """(responses sent while this request was in transit, responses that matched nothing)."""
        entries = self.waiting.pop((request.sender, request.MessageID), [])
        now = self.completed.get(request.sender, 0)
        early, stray = [], []
        for response, seen in entries:
            # In transit: the request is the next message its sender completed after the
            # response. Mid-stream, the response may also close a C-GET begun before the
            # capture, so only a request whose command set was already complete counts.
            in_transit = seen + 1 == now and (not mid_stream or (request.frame or 0) < (response.frame or 0))
            (early if in_transit else stray).append(response)
        return early, stray


def _count_message(event: Event, state: _EarlyResponses) -> None:
    if event.sender in state.completed:
        state.completed[event.sender] += 1


def _invoker_key(response: C_GET) -> tuple[str, int] | None:
    message_id = response.wire.get("MessageIDBeingRespondedTo")
    if not isinstance(message_id, int) or response.sender not in ("requestor", "acceptor"):
        return None
    return ("acceptor" if response.sender == "requestor" else "requestor", message_id)


def _report_unmatched(report: Reporter, response: C_GET, later: str = "") -> None:
    report(f"C-GET-RSP answers Message ID {response.wire.get('MessageIDBeingRespondedTo')} but no C-GET-RQ "
           f"with that Message ID was outstanding from the peer{later}; (0000,0120) must name an "
           "outstanding request", primitive=response, sender=response.sender, role="C-GET SCP")


@rule("GET-RSP-002", "message", "c_get_rsp", "c_get_rq", "association_end")
def responds_to_outstanding_request(report: Reporter, event: Event) -> None:
    state = _EarlyResponses.of(event, "GET-RSP-002")
    if event.name == "message":
        _count_message(event, state)
        return
    if event.view.mid_stream:
        return  # the request may precede the capture
    if event.name == "c_get_rsp":
        operation = event.operation
        key = _invoker_key(event.primitive)
        if key is None:
            return  # no usable (0000,0120): GET-RSP-001 / CMD rules say so
        if operation is None:
            _report_unmatched(report, event.primitive)
        elif operation.misnumbered and operation.misnumbered[-1] is event.primitive:
            request = operation.request
            report(f"C-GET-RSP answers Message ID {key[1]}, but no C-GET-RQ with that Message ID was "
                   f"outstanding from the peer; the only one outstanding, Message ID {operation.message_id} "
                   f"on PC {request.context_id} (frame {request.frame}), is taken as the one it answers. "
                   "(0000,0120) must name an outstanding request", primitive=event.primitive,
                   sender=event.primitive.sender, role="C-GET SCP", message_id=operation.message_id)
        elif operation.request is None and operation.responses and operation.responses[0] is event.primitive:
            # Decide later: the request may still be in transit (GET-RSP-017's case).
            state.remember(key, event.primitive)
        return
    if event.name == "c_get_rq":
        request = event.primitive
        if not isinstance(request.MessageID, int):
            return
        _, stray = state.request_arrived(request, False)
        for response in stray:
            _report_unmatched(report, response, " (a request with that ID came only later)")
        return
    for entries in state.waiting.values():  # association_end
        for response, _ in entries:
            _report_unmatched(report, response)
    state.waiting.clear()


@rule("GET-RSP-003", "c_get_rsp")
def same_sop_class_as_request(report: Reporter, event: Event) -> None:
    response, operation = event.primitive, event.operation
    if operation is None or operation.request is None:
        return
    answered = response.wire.get("AffectedSOPClassUID")
    asked = operation.request.wire.get("AffectedSOPClassUID")
    if isinstance(answered, str) and answered and isinstance(asked, str) and answered != asked:
        report(f"C-GET-RSP (0000,0002) is {answered} but the C-GET-RQ named {asked}; "
               "when present it must equal the request's value")


@rule("GET-RSP-004", "c_get_rsp")
def nothing_after_final(report: Reporter, event: Event) -> None:
    response, operation = event.primitive, event.operation
    if operation is None or not operation.late_responses or operation.late_responses[-1] is not response:
        return
    final = operation.final
    before = next((r for r in operation.responses if r is not response and _is_final(_status(r))), final)
    status = _status(response)
    shown = status_hex(status) if status is not None else "with no status"
    earlier = f"{status_hex(_status(before))} at frame {before.frame}" if before is not None else "a final"
    report(f"C-GET-RSP {shown} follows the final response {earlier}; "
           "exactly one final response ends a C-GET and nothing may follow it")


# -- status codes -----------------------------------------------------------------


@rule("GET-RSP-005", "c_get_rsp")
def status_in_annex_c(report: Reporter, event: Event) -> None:
    status = _status(event.primitive)
    if status is None:
        return
    undefined_general = (status >> 8) in (0x01, 0x02) and status not in GENERAL_STATUS
    if status_category(status) == UNKNOWN or undefined_general:
        report(f"C-GET-RSP status {status_hex(status)} is not a code PS3.7 Annex C defines; "
               "a status must be Success, Warning, Failure, Cancel or Pending as Annex C lists them")


@rule("GET-RSP-006", "c_get_rsp")
def status_defined_for_c_get(report: Reporter, event: Event) -> None:
    status = _status(event.primitive)
    if status is None or status_category(status) == UNKNOWN:
        return
    high = status >> 12
    composite = _sop_class(event) == COMPOSITE_INSTANCE_ROOT_GET
    if status == 0xFF01:
        why = "FF01 is a C-FIND Pending code; C-GET's only Pending status is FF00"
    elif high == 0xB and status != 0xB000:
        why = "B000 is C-GET's only Warning code"
    elif high == 0xA and status not in _REFUSED_A and not (composite and status in _COMPOSITE_A):
        allowed = "A701, A702, A900" + (" and AA00-AA04" if composite else "")
        why = f"C-GET defines {allowed} in the Axxx range" + (
            "" if composite else "; AA00-AA04 belong to Composite Instance Root GET")
    elif status in GENERAL_STATUS and status not in _GENERAL_FOR_C_GET:
        why = "PS3.7 9.1.3.1.6 lists only 0122, 0124, 0210, 0211 and 0212 among the general codes"
    else:
        return
    report(f"C-GET-RSP status {_describe(status)} is a valid class but not defined for C-GET: {why}")


# -- counters and data sets ---------------------------------------------------------


@rule("GET-RSP-007", "c_get_rsp")
def pending_carries_every_counter(report: Reporter, event: Event) -> None:
    response = event.primitive
    if response.wire.get("Status") not in (0xFF00, 0xFF01):
        return
    missing = [_COUNTER_TAGS[k] for k in _COUNTERS if k not in response.wire]
    if missing:
        report(f"Pending response (0x{response.wire['Status']:04X}) lacks {', '.join(missing)}; "
               "a Pending C-GET-RSP must carry all four sub-operation counters")


@rule("GET-RSP-008", "c_get_rsp")
def no_remaining_in_final(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if status is None or status_category(status) not in (SUCCESS, WARNING, FAILURE):
        return
    if _REMAINING not in response.wire:
        return
    sop_class = _sop_class(event)
    lowered = sop_class in _LISTS_REMAINING
    note = f" (a warning for {sop_class}, whose status table lists (0000,1020))" if lowered else ""
    report(f"Final {_describe(status)} carries (0000,1020) = {response.wire[_REMAINING]!r}; "
           f"PS3.4 C.4.3.1.5 allows Number of Remaining Sub-operations only in Pending and Cancel "
           f"responses{note}", severity="warning" if lowered else None)


@rule("GET-RSP-009", "c_get_rsp")
def final_reports_completed_and_failed(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if status not in (0x0000, 0xB000, 0xA702):
        return
    missing = [_COUNTER_TAGS[k] for k in (_COMPLETED, _FAILED) if k not in response.wire]
    if missing:
        report(f"Final {status_hex(status)} lacks {', '.join(missing)}; the final response shall indicate "
               "the completed and failed sub-operations (PS3.4 C.4.3.2.1)")


@rule("GET-RSP-010", "c_get_rsp")
def no_data_set_with_pending_or_success(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if status is None or status_category(status) not in (PENDING, SUCCESS) or not _has_data_set(response):
        return
    report(f"{status_category(status)} response {status_hex(status)} has a data set "
           f"((0000,0800) = {status_hex(response.wire.get('CommandDataSetType'))}, "
           f"{response.data_set_length or 0} bytes); Pending and Success C-GET-RSPs carry no Identifier")


@rule("GET-RSP-011", "c_get_rsp")
def failed_list_when_failures(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    failed = _counter(response, _FAILED)
    if status is None or status_category(status) not in (WARNING, FAILURE, CANCEL) or not failed:
        return
    present, _ = _failed_uids(response)
    if present:
        return
    where = "no Identifier" if not _has_data_set(response) else "an Identifier without (0008,0058)"
    report(f"Final {status_hex(status)} reports (0000,1022) = {failed} but has {where}; the Failed SOP "
           "Instance UID List should name the failed sub-operations (PS3.4 C.4.3.1.3.2)")


@rule("GET-RSP-012", "c_get_rsp")
def failed_list_matches_counter(report: Reporter, event: Event) -> None:
    response = event.primitive
    failed = _counter(response, _FAILED)
    if failed is None:
        return
    present, count = _failed_uids(response)
    if present and count != failed:
        report(f"(0008,0058) lists {count} SOP Instance UID(s) but (0000,1022) = {failed}; "
               "the Failed SOP Instance UID List should have one UID per failed sub-operation")


@rule("GET-RSP-013", "c_get_rsp")
def identifier_holds_only_failed_list(report: Reporter, event: Event) -> None:
    dataset = event.primitive.identifier_dataset
    if dataset is None:
        return
    tags = [int(tag) for tag in dataset.keys()]
    charset = SPECIFIC_CHARACTER_SET in tags
    others = [f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in tags if t not in (FAILED_UID_LIST,
                                                                              SPECIFIC_CHARACTER_SET)]
    if not charset and not others:
        return
    parts = []
    if charset:
        parts.append("(0008,0005) Specific Character Set, which it must not contain")
    if others:
        shown = ", ".join(others[:8]) + (" ..." if len(others) > 8 else "")
        parts.append(f"{shown} besides (0008,0058)")
    report(f"C-GET-RSP Identifier contains {'; and '.join(parts)}; a response Identifier holds only the "
           "Failed SOP Instance UID List (PS3.4 C.4.3.1.3.2)", severity=None if charset else "warning")


# -- final status against the counters ------------------------------------------------


@rule("GET-RSP-014", "c_get_rsp")
def success_without_failures(report: Reporter, event: Event) -> None:
    response = event.primitive
    if _status(response) != 0x0000:
        return
    failed, warned = _counter(response, _FAILED), _counter(response, _WARNING)
    if failed or warned:
        report(f"Success 0x0000 reports Failed = {failed or 0} and Warning = {warned or 0}; Success means "
               "every sub-operation completed without failure or warning (use B000 or a Failure status)")


@rule("GET-RSP-015", "c_get_rsp")
def warning_matches_counters(report: Reporter, event: Event) -> None:
    response = event.primitive
    if _status(response) != 0xB000:
        return
    completed = _counter(response, _COMPLETED)
    failed, warned = _counter(response, _FAILED), _counter(response, _WARNING)
    if failed is None or warned is None:
        return  # GET-RSP-009 reports missing counters
    if failed == 0 and warned == 0:
        report(f"Warning 0xB000 reports Failed = 0 and Warning = 0 (Completed = {completed}); with no failed "
               "or warning sub-operation the final status should be Success 0x0000")
    elif completed == 0 and warned == 0 and failed > 0:
        report(f"Warning 0xB000 reports Completed = 0, Warning = 0 and Failed = {failed}; when every "
               "sub-operation failed the final status should be Failure or Refused (e.g. A702)")


@rule("GET-RSP-016", "c_get_rsp")
def failure_only_when_all_failed(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if status is None or status_category(status) != FAILURE:
        return
    completed, warned = _counter(response, _COMPLETED), _counter(response, _WARNING)
    if completed or warned:
        report(f"Final {_describe(status)} reports Completed = {completed or 0} and Warning = {warned or 0}; "
               "Failure/Refused is for a C-GET whose sub-operations all failed, otherwise the status is "
               "Warning B000 (PS3.4 C.4.3.3.1)")


@rule("GET-RSP-017", "message", "c_get_rsp", "c_get_rq")
def no_success_before_full_request(report: Reporter, event: Event) -> None:
    state = _EarlyResponses.of(event, "GET-RSP-017")
    if event.name == "message":
        _count_message(event, state)
        return
    if event.name == "c_get_rsp":
        operation, response = event.operation, event.primitive
        status = _status(response)
        key = _invoker_key(response)
        if (operation is not None and operation.request is None and key is not None and status is not None
                and status_category(status) in (SUCCESS, WARNING, PENDING)):
            state.remember(key, response)
        return
    request = event.primitive
    if not isinstance(request.MessageID, int):
        return
    early, _ = state.request_arrived(request, event.view.mid_stream)
    for response in early:
        status = _status(response)
        report(f"{status_category(status)} response {status_hex(status)} at frame {response.frame} was sent "
               f"before the C-GET-RQ was fully received (complete at frame {request.frame}); only a "
               "Failure or Refused response may precede the whole request (PS3.7 9.1.3.2)",
               primitive=response, sender=response.sender, role="C-GET SCP")


# -- status-related fields -------------------------------------------------------------


def _unlisted_status_fields(status: int, wire: dict[str, Any]) -> list[str]:
    category = status_category(status)
    present = [k for k in ("OffendingElement", "ErrorComment", "ErrorID") if k in wire]
    if category in (PENDING, SUCCESS, CANCEL):
        return present  # C.1.1, C.2.1, C.3.1: Status only
    if status in (0xA701, 0xA702, 0x0122, 0x0124) or 0xAA00 <= status <= 0xAA03:
        return [k for k in present if k == "OffendingElement"]
    if status in (0x0210, 0x0211, 0x0212):
        return [k for k in present if k != "ErrorID"]  # no related fields; Error ID is GET-RSP-020's
    return []


@rule("GET-RSP-018", "c_get_rsp")
def status_fields_fit_status(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if status is None:
        return
    unlisted = _unlisted_status_fields(status, response.wire)
    if unlisted:
        report(f"{_describe(status)} carries {', '.join(_TAG_NAMES[k] for k in unlisted)}, which PS3.7 "
               "Annex C / Table C.4-3 do not list as related fields of that status")


@rule("GET-RSP-019", "c_get_rsp")
def error_comment_is_lo(report: Reporter, event: Event) -> None:
    comment = event.primitive.wire.get("ErrorComment")
    if not isinstance(comment, str):
        return
    faults = []
    if len(comment) > 64:
        faults.append(f"is {len(comment)} characters long (LO allows 64)")
    bad = sorted({c for c in comment if not " " <= c <= "~"})
    if bad:
        shown = "".join(bad[:5]).encode("unicode_escape").decode()
        faults.append(f"has characters outside the default repertoire ({shown})")
    if faults:
        report(f"(0000,0902) Error Comment {' and '.join(faults)}; it must be an LO value "
               "in the Default Character Repertoire")


@rule("GET-RSP-020", "c_get_rsp")
def error_id_only_for_processing_failure(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = _status(response)
    if "ErrorID" in response.wire and status != 0x0110:
        shown = status_hex(status) if status is not None else "no status"
        report(f"C-GET-RSP with {shown} carries (0000,0903) Error ID = {response.wire['ErrorID']!r}; "
               "Annex C defines Error ID only for Processing Failure 0x0110")


@rule("GET-RSP-021", "c_get_rsp")
def no_message_id_in_response(report: Reporter, event: Event) -> None:
    wire = event.primitive.wire
    if "MessageID" in wire:
        report(f"C-GET-RSP carries (0000,0110) Message ID = {wire['MessageID']!r}; a Message ID in a "
               "response is retired usage and a receiver must give it no meaning")


@rule("GET-RSP-022", "c_get_rsp")
def same_context_as_request(report: Reporter, event: Event) -> None:
    response, operation = event.primitive, event.operation
    if operation is None or operation.request is None:
        return
    asked = operation.request.context_id
    if response.context_id is not None and asked is not None and response.context_id != asked:
        report(f"C-GET-RSP on presentation context {response.context_id} but its C-GET-RQ used context "
               f"{asked}; by convention a response travels on its request's context")


#: Keyword sequences (primitive.elements, shared per shape) in which GET-RSP-023 found nothing.
_ONLY_RESPONSE_ELEMENTS: set[tuple[str, ...]] = set()


@rule("GET-RSP-023", "c_get_rsp")
def only_response_elements(report: Reporter, event: Event) -> None:
    elements = event.primitive.elements
    if elements in _ONLY_RESPONSE_ELEMENTS:
        return  # the verdict depends only on the names on the wire
    extra = []
    for name in elements:
        tag = _wire_tag(name)
        if tag is None or tag >> 16 != 0 or tag in _RSP_TAGS:
            continue  # elements outside group 0000 are CMD-003's
        try:
            if dictionary_is_retired(tag):
                continue  # retired command elements are CMD-006's
        except KeyError:
            pass  # a group 0000 tag no dictionary knows: not defined for the response either
        extra.append(name if name.startswith("(") else f"{name} (0000,{tag & 0xFFFF:04X})")
    if extra:
        report(f"C-GET-RSP carries {', '.join(dict.fromkeys(extra))}, which Table 9.3-7 does not define "
               "for a C-GET response")
    elif len(_ONLY_RESPONSE_ELEMENTS) < 1024:
        _ONLY_RESPONSE_ELEMENTS.add(elements)
