"""GET-SUB rules: the C-STORE sub-operations of a C-GET (catalog 5.6; facts 1.8, 3.1, 3.7).

Sub-operations are C-STOREs the C-GET SCP sends back on the same association
with roles reversed. The correlator links them to their C-GET by direction and
time; the command-set checks (GET-SUB-002, 007-012, 016) hold for any C-STORE,
the others only for C-STOREs linked to a C-GET.

The pipeline announces a C-STORE-RQ only once its data set is complete, and
keeps none of that data set. Two checks need more: whether a response came
while the data set was still arriving (GET-SUB-011) and the SOP Class/Instance
UIDs at the head of the data set (GET-SUB-012). A small per-direction tracker
fed from the P-DATA-TF PDVs gives both: it decodes each command set (a few
hundred bytes) and keeps at most the first few kilobytes of a C-STORE data set.
"""

from __future__ import annotations

import struct

from ..commandset import C_STORE_RQ
from ..status import SUCCESS, WARNING, status_category
from .engine import Event, Reporter, not_checkable, rule
from .get_role import WITHOUT_BULK_DATA_GET

not_checkable(
    "GET-SUB-013",
    "needs every top-level element (and Waveform Data inside the Waveform Sequence) of each C-STORE "
    "data set; the pipeline only counts those bytes (dimse.py keeps no bulk data), and walking every "
    "image, with undefined-length sequences and encapsulated pixel data, is beyond a per-message check",
)

_HOLES = "GET-SUB-010"  # scratch key: a capture hole was seen on this association
_UNMATCHED = "GET-SUB-010/unmatched"  # C-STORE-RSPs answering no request, judged at the end
_INCOMPLETE = "GET-SUB-011/incomplete"  # (sender, Message ID) of C-STORE-RQs whose data set never ended
_EARLY = "GET-SUB-011/early"  # (sender, Message ID) of C-STORE-RQs answered before their data set ended
_MAX_REMEMBERED = 256

_RQ_REQUIRED = (("AffectedSOPClassUID", "(0000,0002)"), ("MessageID", "(0000,0110)"),
                ("Priority", "(0000,0700)"), ("AffectedSOPInstanceUID", "(0000,1000)"))
_NO_DATA_SET = 0x0101
_PRIORITY = {0: "MEDIUM", 1: "HIGH", 2: "LOW"}


def _other(side: str | None) -> str:
    return "acceptor" if side == "requestor" else "requestor"


def _hex(value: object) -> str:
    return f"0x{value:04X}" if isinstance(value, int) else repr(value)


def _priority(value: object) -> str:
    return f"{value} ({_PRIORITY[value]})" if value in _PRIORITY else repr(value)


def _present(wire: dict, keyword: str) -> bool:
    value = wire.get(keyword)
    return value is not None and value != ""


# -- helpers over the correlation state ------------------------------------------


def _operation(event: Event, invoker: str, message_id: int | None):
    correlation = event.view.correlation
    if correlation is None or message_id is None:
        return None
    key = (invoker, message_id)
    return correlation.outstanding.get(key) or correlation.latest.get(key)


def _hole_seen(event: Event) -> bool:
    return bool(event.view.scratch.get(_HOLES))


@rule("GET-SUB-006", "problem")
@rule("GET-SUB-010", "problem")
@rule("GET-SUB-011", "problem")
@rule("GET-SUB-015", "problem")
def _note_capture_holes(report: Reporter, event: Event) -> None:
    # After a hole a request or response may simply be missing from the capture.
    if event.problem is not None and event.problem.code in ("CAPTURE-HOLE", "CAPTURE-TRUNCATED"):
        event.view.scratch[_HOLES] = True


# -- C-STORE-RQ ------------------------------------------------------------------


@rule("GET-SUB-001", "c_store_rq")
def sender_has_storage_scu_role(report: Reporter, event: Event) -> None:
    request = event.primitive
    view = event.view
    abstract = view.abstract_syntax(request.context_id)
    if abstract is None or view.may_act(request.sender, "SCU", abstract) is not False:
        return  # context unknown (UL-026's business), no negotiation captured, or undefined (GET-ROLE-004)
    proposed, answered = view.roles(abstract)
    if request.sender == "acceptor":
        need = (f"the requestor must propose SCP-role = 1 and the acceptor accept it "
                f"(RQ role item {proposed or 'absent'}, AC role item {answered or 'absent'})")
    else:
        need = (f"the requestor is Storage SCU only with SCU-role = 1 accepted or no role item "
                f"(RQ role item {proposed}, AC role item {answered})")
    report(f"C-STORE-RQ (Message ID {request.wire.get('MessageID')}) on PC {request.context_id} "
           f"({abstract}) comes from the {request.sender}, which lacks the Storage SCU role there; {need}")


@rule("GET-SUB-002", "c_store_rq")
def sop_class_matches_context(report: Reporter, event: Event) -> None:
    request = event.primitive
    abstract = event.view.abstract_syntax(request.context_id)
    sop_class = request.wire.get("AffectedSOPClassUID")
    if abstract and sop_class and sop_class != abstract:
        report(f"C-STORE-RQ Affected SOP Class UID {sop_class} differs from the abstract syntax "
               f"{abstract} of PC {request.context_id} that carries it")


@rule("GET-SUB-003", "c_store_rq")
def priority_of_the_get(report: Reporter, event: Event) -> None:
    request = event.primitive
    sub = event.sub
    if sub is None or sub.get_message_id is None:
        return
    operation = _operation(event, _other(request.sender), sub.get_message_id)
    if operation is None or operation.request is None:
        return
    wanted = operation.request.wire.get("Priority")
    sent = request.wire.get("Priority")
    if isinstance(wanted, int) and isinstance(sent, int) and wanted != sent:
        report(f"Sub-operation C-STORE-RQ (Message ID {request.wire.get('MessageID')}) has Priority "
               f"{_priority(sent)} but its C-GET-RQ (Message ID {sub.get_message_id}, frame "
               f"{operation.request.frame}) has {_priority(wanted)}; every sub-operation must use "
               "the C-GET priority")


@rule("GET-SUB-004", "c_store_rq")
def no_move_originator(report: Reporter, event: Event) -> None:
    request = event.primitive
    if event.sub is None or not event.sub.candidates:
        return
    fields = [tag for keyword, tag in (("MoveOriginatorApplicationEntityTitle", "(0000,1030)"),
                                       ("MoveOriginatorMessageID", "(0000,1031)"))
              if keyword in request.wire]
    if fields:
        report(f"Sub-operation C-STORE-RQ (Message ID {request.wire.get('MessageID')}) of C-GET "
               f"{event.sub.candidates[0]} carries {' and '.join(fields)}, which identify a C-MOVE "
               "originator and have no defined use in a C-GET sub-operation")


@rule("GET-SUB-005", "c_store_rq")
def no_store_after_final(report: Reporter, event: Event) -> None:
    request = event.primitive
    correlation = event.view.correlation
    if correlation is None or event.sub is None or event.sub.candidates:
        return
    invoker = _other(request.sender)
    finished = [op for (side, _), op in correlation.latest.items()
                if side == invoker and op.final is not None]
    if not finished:
        return  # this side never performed a C-GET here: a plain C-STORE
    last = max(finished, key=lambda op: op.final.frame or 0)
    report(f"C-STORE-RQ (Message ID {request.wire.get('MessageID')}) sent after the final C-GET-RSP "
           f"(status {_hex(last.final.Status)}, frame {last.final.frame}) of C-GET {last.message_id}, "
           "with no C-GET outstanding; sub-operations must end before the final response",
           message_id=last.message_id)


@rule("GET-SUB-006", "c_store_rq")
def within_sub_operation_window(report: Reporter, event: Event) -> None:
    request = event.primitive
    correlation = event.view.correlation
    if correlation is None or event.sub is None or not event.sub.candidates or _hole_seen(event):
        return
    window = event.view.async_window[1]
    if window == 0:
        return  # unlimited
    waiting = sorted(mid for (side, mid) in correlation.stores
                     if side == request.sender and not _answered_early(event, side, mid))
    if len(waiting) + 1 > window:
        shown = ", ".join(str(m) for m in waiting[:8]) + (", ..." if len(waiting) > 8 else "")
        report(f"C-STORE-RQ (Message ID {request.wire.get('MessageID')}) sent while {len(waiting)} "
               f"earlier C-STORE-RQ(s) (Message ID {shown}) still await a response; the sub-operation "
               f"window allows {window} outstanding")


@rule("GET-SUB-007", "c_store_rq")
def request_fields(report: Reporter, event: Event) -> None:
    request = event.primitive
    wire = request.wire
    faults = [f"lacks {tag}" for keyword, tag in _RQ_REQUIRED if not _present(wire, keyword)]
    data_set_type = wire.get("CommandDataSetType")
    if data_set_type is None:
        faults.append("lacks (0000,0800)")
    elif data_set_type == _NO_DATA_SET:
        faults.append("has (0000,0800) = 0x0101 (no data set)")
    elif not request.data_set_length and not _hole_seen(event):
        faults.append("is followed by no data set")  # unless the capture lost it
    if faults:
        report(f"C-STORE-RQ (Message ID {wire.get('MessageID')}) {', '.join(faults)}; a C-STORE-RQ "
               "needs (0000,0002), (0000,0110), (0000,0700), (0000,1000) and a data set")


@rule("GET-SUB-012", "message")
def data_set_matches_command(report: Reporter, event: Event) -> None:
    message = event.message
    if message.command_field != C_STORE_RQ:
        return
    head = message.data_set_head or (message.data_set or b"")[:8192]
    if not head:
        return
    command = message.command
    message_id = command.get("MessageID")
    found = _head_uids(head, message.transfer_syntax or event.view.transfer_syntax(message.context_id))
    if found is None:
        return
    mismatches = []
    for tag, keyword, label in ((0x00080016, "AffectedSOPClassUID", "(0008,0016)/(0000,0002)"),
                                (0x00080018, "AffectedSOPInstanceUID", "(0008,0018)/(0000,1000)")):
        in_data, in_command = found.get(tag), command.get(keyword)
        if in_data and in_command and in_data != in_command:
            mismatches.append(f"{label} {in_data} vs {in_command}")
    if mismatches:
        report(f"C-STORE-RQ (Message ID {message_id}) data set disagrees with its command set: "
               f"{'; '.join(mismatches)}; the data set's SOP Class/Instance UIDs should equal the command's")


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _head_uids(data: bytes, transfer_syntax: str | None) -> dict[int, str] | None:
    """(0008,0016) and (0008,0018) from the head of a data set; None if not reachable."""
    if not transfer_syntax or transfer_syntax.endswith(".99"):  # unknown or deflated
        return None
    implicit = transfer_syntax == "1.2.840.10008.1.2"
    order = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"
    found: dict[int, str] = {}
    offset, size = 0, len(data)
    while offset + 8 <= size:
        group, element = struct.unpack_from(order + "HH", data, offset)
        tag = (group << 16) | element
        if tag > 0x00080018:
            return found
        if implicit:
            length = struct.unpack_from(order + "I", data, offset + 4)[0]
            offset += 8
        else:
            vr = data[offset + 4:offset + 6]
            if vr in _LONG_VRS:
                if offset + 12 > size:
                    return None
                length = struct.unpack_from(order + "I", data, offset + 8)[0]
                offset += 12
            else:
                length = struct.unpack_from(order + "H", data, offset + 6)[0]
                offset += 8
        if length == 0xFFFFFFFF or offset + length > size:
            return None  # an undefined-length sequence this early, or past the kept head
        if tag in (0x00080016, 0x00080018):
            found[tag] = data[offset:offset + length].decode("ascii", "replace").rstrip("\x00 ")
            if tag == 0x00080018:
                return found
        offset += length
    return None


@rule("GET-SUB-011", "message")
def _note_unfinished_data_sets(report: Reporter, event: Event) -> None:
    message = event.message
    if message.command_field != C_STORE_RQ or not message.data_set_expected or message.data_set_complete:
        return
    message_id = message.command.get("MessageID")
    remembered = event.view.memory(_INCOMPLETE, dict)
    if isinstance(message_id, int) and len(remembered) < _MAX_REMEMBERED:
        remembered[(message.sender, message_id)] = message.frame


# -- C-STORE-RSP -----------------------------------------------------------------


@rule("GET-SUB-008", "c_store_rsp")
def response_fields(report: Reporter, event: Event) -> None:
    response = event.primitive
    wire = response.wire
    faults = [f"lacks {tag}" for keyword, tag in (("MessageIDBeingRespondedTo", "(0000,0120)"),
                                                  ("Status", "(0000,0900)"))
              if wire.get(keyword) is None]
    data_set_type = wire.get("CommandDataSetType")
    if data_set_type is None:
        faults.append("lacks (0000,0800)")
    elif data_set_type != _NO_DATA_SET:
        faults.append(f"has (0000,0800) = {_hex(data_set_type)}")
    if response.data_set_length:
        faults.append(f"is followed by a {response.data_set_length}-byte data set")
    if faults:
        report(f"C-STORE-RSP (to Message ID {wire.get('MessageIDBeingRespondedTo')}) {', '.join(faults)}; "
               "a C-STORE-RSP needs (0000,0120) and (0000,0900), with (0000,0800) = 0x0101 and no data set")


@rule("GET-SUB-009", "c_store_rsp")
def response_echoes_request(report: Reporter, event: Event) -> None:
    response = event.primitive
    if event.sub is None or event.sub.request is None:
        return
    request = event.sub.request
    differences = []
    for keyword, tag in (("AffectedSOPClassUID", "(0000,0002)"), ("AffectedSOPInstanceUID", "(0000,1000)")):
        answered, asked = response.wire.get(keyword), request.wire.get(keyword)
        if answered and asked and answered != asked:
            differences.append(f"{tag} {answered} (request: {asked})")
    if differences:
        report(f"C-STORE-RSP to Message ID {response.wire.get('MessageIDBeingRespondedTo')} has "
               f"{'; '.join(differences)}; when present these must equal the C-STORE-RQ values")


def _still_arriving(event: Event) -> tuple[int, int] | None:
    """The peer's C-STORE-RQ this response answers, if its data set is still arriving:
    (its Message ID, the frame of its command set)."""
    pending = event.view.message_in_progress(_other(event.primitive.sender))
    if pending is None or pending.command_field != C_STORE_RQ:
        return None
    message_id = pending.command.get("MessageID")
    if message_id != event.primitive.wire.get("MessageIDBeingRespondedTo"):
        return None
    return message_id, pending.frame


@rule("GET-SUB-006", "c_store_rsp")
@rule("GET-SUB-015", "c_store_rsp")
def _note_early_answers(report: Reporter, event: Event) -> None:
    # A response that overtakes its request's data set (an early Failure is legal) leaves
    # the request awaiting a response forever in the correlation: remember it.
    arriving = _still_arriving(event)
    if arriving is not None:
        early = event.view.memory(_EARLY, set)
        if len(early) < _MAX_REMEMBERED:
            early.add((_other(event.primitive.sender), arriving[0]))


def _answered_early(event: Event, sender: str | None, message_id: object) -> bool:
    return (sender, message_id) in event.view.scratch.get(_EARLY, ())


@rule("GET-SUB-010", "c_store_rsp")
def response_matches_request(report: Reporter, event: Event) -> None:
    response = event.primitive
    responded_to = response.wire.get("MessageIDBeingRespondedTo")
    if event.sub is not None or not isinstance(responded_to, int):
        return
    if event.view.mid_stream or _still_arriving(event) is not None:
        return  # the request may predate the capture; or it is GET-SUB-011's case
    # A request lost in a capture hole is only known lost when the stream resumes,
    # which may be after this response: judge at the end of the association.
    waiting = event.view.memory(_UNMATCHED, list)
    if len(waiting) < _MAX_REMEMBERED:
        waiting.append(response)


@rule("GET-SUB-010", "association_end")
def unmatched_responses(report: Reporter, event: Event) -> None:
    waiting = event.view.scratch.pop(_UNMATCHED, None)
    if not waiting or _hole_seen(event):
        return
    for response in waiting:
        report(f"C-STORE-RSP (0000,0120) = {response.wire.get('MessageIDBeingRespondedTo')} matches no "
               f"C-STORE-RQ awaiting a response from the {_other(response.sender)}", primitive=response)


@rule("GET-SUB-011", "c_store_rsp")
def response_after_data_set(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = response.wire.get("Status")
    category = status_category(status)
    if category not in (SUCCESS, WARNING):
        return  # a Failure may come early (PS3.7 9.1.1.2)
    responded_to = response.wire.get("MessageIDBeingRespondedTo")
    arriving = _still_arriving(event)
    if arriving is not None:
        report(f"C-STORE-RSP {category} ({_hex(status)}) to Message ID {responded_to} sent while the "
               f"C-STORE-RQ data set (command at frame {arriving[1]}) was still arriving; only a "
               "Failure may precede the whole data set")
        return
    incomplete = event.view.scratch.get(_INCOMPLETE)
    if incomplete:
        frame = incomplete.pop((_other(response.sender), responded_to), None)
        if frame is not None:
            report(f"C-STORE-RSP {category} ({_hex(status)}) to Message ID {responded_to} answers a "
                   f"C-STORE-RQ (frame {frame}) whose data set never ended; only a Failure may be "
                   "sent for an incomplete data set")


@rule("GET-SUB-014", "c_store_rsp")
def bulk_data_not_required(report: Reporter, event: Event) -> None:
    response = event.primitive
    status = response.wire.get("Status")
    if event.sub is None or event.sub.get_message_id is None or not isinstance(status, int):
        return
    if not (0xA900 <= status <= 0xA9FF or status == 0xB007):
        return
    operation = _operation(event, response.sender, event.sub.get_message_id)
    if operation is None:
        return
    first = operation.request or (operation.responses[0] if operation.responses else None)
    sop_class = first.wire.get("AffectedSOPClassUID") if first is not None else None
    if sop_class is None and operation.request is not None:
        sop_class = event.view.abstract_syntax(operation.request.context_id)
    if sop_class == WITHOUT_BULK_DATA_GET:
        report(f"C-STORE-RSP {_hex(status)} to a sub-operation of Without Bulk Data C-GET "
               f"{operation.message_id}; the Storage SCP must not answer A9xx or B007 because pixel, "
               "overlay, curve, audio, waveform or encapsulated document data were left out")


@rule("GET-SUB-016", "c_store_rsp")
def response_on_request_context(report: Reporter, event: Event) -> None:
    response = event.primitive
    if event.sub is None or event.sub.request is None:
        return
    asked_on = event.sub.request.context_id
    if response.context_id == asked_on:
        return
    hint = ""
    if response.context_id == 1 and response.wire.get("Status") == 0x0122:
        hint = " (pynetdicom's C-GET SCU sends its 0x0122 refusal on PC 1 whatever the request used)"
    report(f"C-STORE-RSP to Message ID {response.wire.get('MessageIDBeingRespondedTo')} sent on PC "
           f"{response.context_id}, but its C-STORE-RQ used PC {asked_on}{hint}")


# -- final C-GET-RSP -------------------------------------------------------------


@rule("GET-SUB-015", "operation_final")
def no_open_sub_operation_at_final(report: Reporter, event: Event) -> None:
    operation = event.operation
    if operation is None or _hole_seen(event):
        return
    open_ids = [sub.request.wire.get("MessageID") for sub in operation.sub_operations
                if sub.request is not None and sub.response is None and not sub.ambiguous
                and not _answered_early(event, sub.request.sender, sub.request.wire.get("MessageID"))]
    if open_ids:
        shown = ", ".join(str(m) for m in open_ids[:8]) + (", ..." if len(open_ids) > 8 else "")
        report(f"Final C-GET-RSP ({_hex(event.primitive.Status)}) sent while {len(open_ids)} linked "
               f"C-STORE-RQ(s) (Message ID {shown}) still had no C-STORE-RSP; sub-operations should be "
               "answered before the final response")

