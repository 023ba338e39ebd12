"""GET-CAN rules: C-CANCEL-RQ of a C-GET and the Cancel (FE00) response (catalog 5.7; facts 1.5, 3.9).

A C-CANCEL-RQ names the C-GET it stops by (0000,0120), gets no response of
its own, and may come only from the C-GET's invoker; the SCP answers with the
C-GET's final response, normally FE00 carrying the sub-operation counts.
"""

from __future__ import annotations

from .engine import Event, Reporter, rule

_CANCEL = 0xFE00
_NO_DATA_SET = 0x0101
#: PS3.7 Table 9.3-8: everything a C-CANCEL-RQ may carry.
_CANCEL_FIELDS = ("CommandGroupLength", "CommandField", "MessageIDBeingRespondedTo", "CommandDataSetType")
_FINAL_COUNTERS = (("NumberOfCompletedSuboperations", "(0000,1021)"),
                   ("NumberOfFailedSuboperations", "(0000,1022)"),
                   ("NumberOfWarningSuboperations", "(0000,1023)"))


def _other(side: str | None) -> str:
    return "acceptor" if side == "requestor" else "requestor"


def _responded_to(cancel) -> object:
    return cancel.wire.get("MessageIDBeingRespondedTo")


def _performer_owns(event: Event) -> bool:
    """The cancel names a C-GET that its sender performs (GET-CAN-004's case)."""
    correlation = event.view.correlation
    if correlation is None or event.operation is not None:
        return False
    key = (_other(event.primitive.sender), _responded_to(event.primitive))
    return key in correlation.outstanding or key in correlation.latest


@rule("GET-CAN-001", "c_cancel")
def cancel_fields(report: Reporter, event: Event) -> None:
    cancel = event.primitive
    faults = []
    if cancel.wire.get("MessageIDBeingRespondedTo") is None:
        faults.append("lacks (0000,0120)")
    data_set_type = cancel.wire.get("CommandDataSetType")
    if data_set_type is None:
        faults.append("lacks (0000,0800)")
    elif data_set_type != _NO_DATA_SET:
        shown = f"0x{data_set_type:04X}" if isinstance(data_set_type, int) else repr(data_set_type)
        faults.append(f"has (0000,0800) = {shown}")
    if cancel.data_set_length:
        faults.append(f"is followed by a {cancel.data_set_length}-byte data set")
    if faults:
        report(f"C-CANCEL-RQ {', '.join(faults)}; it must carry (0000,0120) and (0000,0800) = 0x0101 "
               "with no data set")


@rule("GET-CAN-002", "c_cancel")
def cancel_has_only_its_fields(report: Reporter, event: Event) -> None:
    cancel = event.primitive
    extra = [keyword for keyword in cancel.elements if keyword not in _CANCEL_FIELDS]
    if extra:
        report(f"C-CANCEL-RQ carries {', '.join(extra)}, which Table 9.3-8 does not define for it "
               "(only (0000,0000), (0000,0100), (0000,0120) and (0000,0800))")


@rule("GET-CAN-003", "c_cancel")
def cancel_names_a_get(report: Reporter, event: Event) -> None:
    cancel = event.primitive
    responded_to = _responded_to(cancel)
    if not isinstance(responded_to, int) or _performer_owns(event):
        return
    operation = event.operation
    if operation is None:
        if event.view.mid_stream:
            return  # the C-GET may predate the capture
        report(f"C-CANCEL-RQ (0000,0120) = {responded_to} matches no C-GET-RQ from the {cancel.sender}")
    elif operation.final is not None and operation.final.frame is not None \
            and cancel.frame is not None and operation.final.frame < cancel.frame:
        # Catalog: info rather than warning when the C-GET has just finished (a harmless race).
        status = operation.final.Status  # raw bytes when its length did not fit US
        shown = f"0x{status:04X}" if isinstance(status, int) else f"a {len(status)}-byte status"
        report(f"C-CANCEL-RQ for C-GET {responded_to} sent after its final response "
               f"({shown}, frame {operation.final.frame}); it has no effect "
               "(a harmless race, so info only)", severity="info")


@rule("GET-CAN-004", "c_cancel")
def only_the_invoker_cancels(report: Reporter, event: Event) -> None:
    if _performer_owns(event):
        cancel = event.primitive
        report(f"C-CANCEL-RQ for C-GET {_responded_to(cancel)} comes from the {cancel.sender}, which "
               f"performs that C-GET (the {_other(cancel.sender)} invoked it); only the invoker may cancel",
               role="C-GET SCP")


@rule("GET-CAN-005", "c_get_rsp")
def cancel_status_needs_cancel(report: Reporter, event: Event) -> None:
    response = event.primitive
    operation = event.operation
    if response.wire.get("Status") != _CANCEL or operation is None or operation.cancels:
        return
    if operation.request is None and event.view.mid_stream:
        return  # the cancel may have come before the capture began
    report(f"C-GET-RSP with status Cancel (0xFE00) for C-GET {operation.message_id}, but no "
           "C-CANCEL-RQ for that Message ID came before it")


@rule("GET-CAN-006", "c_get_rsp")
def cancel_status_counts(report: Reporter, event: Event) -> None:
    response = event.primitive
    if response.wire.get("Status") != _CANCEL:
        return
    missing = [tag for keyword, tag in _FINAL_COUNTERS if keyword not in response.wire]
    if missing:
        report(f"Cancel response (0xFE00) lacks {', '.join(missing)}; PS3.4 C.4.3.3.1 says the "
               "Canceled response shall carry the Completed, Failed and Warning counts (C.4.3.1.6-8 say may)")


@rule("GET-CAN-007", "c_store_rq")
def stores_stop_after_cancel(report: Reporter, event: Event) -> None:
    request = event.primitive
    sub = event.sub
    correlation = event.view.correlation
    if sub is None or sub.get_message_id is None or correlation is None or request.frame is None:
        return
    operation = correlation.outstanding.get((_other(request.sender), sub.get_message_id))
    if operation is None or not operation.cancels or operation.cancels[0].frame is None:
        return
    window = event.view.async_window[1]
    if window == 0:
        return
    cancelled_at = operation.cancels[0].frame
    started = sum(1 for s in operation.sub_operations
                  if s.request is not None and s.request.frame is not None and s.request.frame > cancelled_at)
    if started == window + 1:  # report once per C-GET, at the first store beyond the window
        report(f"C-STORE-RQ (Message ID {request.wire.get('MessageID')}) is sub-operation number {started} "
               f"started after the C-CANCEL-RQ (frame {cancelled_at}) for C-GET {operation.message_id}, "
               f"with no final response yet; at most {window} may start before the SCP stops",
               role="C-GET SCP")


@rule("GET-CAN-008", "c_cancel")
def cancel_on_get_context(report: Reporter, event: Event) -> None:
    cancel = event.primitive
    operation = event.operation
    if operation is None or operation.request is None:
        return
    if cancel.context_id != operation.request.context_id:
        report(f"C-CANCEL-RQ for C-GET {operation.message_id} sent on PC {cancel.context_id}, but the "
               f"C-GET-RQ used PC {operation.request.context_id} (DCMTK rejects a cancel on another context)")


@rule("GET-CAN-009", "c_cancel")
def one_cancel_per_get(report: Reporter, event: Event) -> None:
    operation = event.operation
    if operation is None or len(operation.cancels) < 2:
        return
    first = operation.cancels[0]
    report(f"C-CANCEL-RQ number {len(operation.cancels)} for C-GET {operation.message_id}; the first "
           f"was at frame {first.frame}")
