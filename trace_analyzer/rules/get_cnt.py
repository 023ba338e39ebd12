"""GET-CNT rules: the sub-operation counters of C-GET responses (catalog 5.5).

Facts used: the counter definitions and invariants (catalog 3.6) and how
sub-operations are linked to their C-GET (3.7). Counters are compared between
successive responses, against the first Pending's total, and at the end
against the C-STORE sub-operations the correlator linked. The end-of-operation
comparisons run only when that link is trustworthy: the C-GET-RQ is in the
capture, no other C-GET of the same invoker overlapped, no sub-operation is
ambiguous, and no bytes of the association were lost since the C-GET began.
"""

from __future__ import annotations

from collections import OrderedDict

from ..operations import Operation, SubOperation
from ..primitives import C_GET
from ..status import CANCEL, FAILURE, SUCCESS, WARNING, status_category, status_hex
from .engine import Event, Reporter, rule

_REMAINING = "NumberOfRemainingSuboperations"
_COMPLETED = "NumberOfCompletedSuboperations"
_FAILED = "NumberOfFailedSuboperations"
_WARNING = "NumberOfWarningSuboperations"
_COUNTERS = (_REMAINING, _COMPLETED, _FAILED, _WARNING)
_NAMES = {_REMAINING: "Remaining", _COMPLETED: "Completed", _FAILED: "Failed", _WARNING: "Warning"}

#: Lower-layer problems after which linked sub-operations may be missing from the record.
_LOSSES = frozenset({"CAPTURE-HOLE", "CAPTURE-TRUNCATED", "CAPTURE-INCOMPLETE", "UL-033"})
_MAX_REMEMBERED = 1024


# -- helpers ------------------------------------------------------------------


def _counter(response: C_GET, keyword: str) -> int | None:
    value = response.wire.get(keyword)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _counters(response: C_GET) -> tuple[int | None, int | None, int | None, int | None]:
    """(Remaining, Completed, Failed, Warning) as _counter reads them. Each response is read
    by several checks and again as the previous one of the next: the last few are kept."""
    kept = _RECENT_COUNTERS.get(id(response))
    if kept is not None and kept[0] is response:
        return kept[1]
    wire = response.wire
    values = []
    for keyword in _COUNTERS:
        value = wire.get(keyword)
        values.append(value if isinstance(value, int) and not isinstance(value, bool) else None)
    counters = (values[0], values[1], values[2], values[3])
    if len(_RECENT_COUNTERS) >= 64:
        _RECENT_COUNTERS.clear()
    # The response is kept with its values: an id is only trusted for the object it names.
    _RECENT_COUNTERS[id(response)] = (response, counters)
    return counters


_RECENT_COUNTERS: dict[int, tuple[C_GET, tuple]] = {}


def _status(response: C_GET) -> int | None:
    value = response.wire.get("Status")
    return value if isinstance(value, int) else None


def _previous(operation: Operation | None, response: C_GET) -> C_GET | None:
    """The response of the same C-GET just before ``response`` (None for the first)."""
    if operation is None or len(operation.responses) < 2 or operation.responses[-1] is not response:
        return None
    return operation.responses[-2]


def _total(response: C_GET) -> int | None:
    """Remaining + Completed + Failed + Warning, with Remaining read as 0 where the status
    says nothing remains (a final Success or Warning must not carry it)."""
    values = list(_counters(response))
    if values[0] is None:
        status = _status(response)
        if status is None or status_category(status) not in (SUCCESS, WARNING):
            return None
        values[0] = 0
    if any(v is None for v in values):
        return None
    return sum(values)  # type: ignore[arg-type]


def _first_pending_total(operation: Operation) -> tuple[C_GET, int] | None:
    for response in operation.responses:
        if response.Status in (0xFF00, 0xFF01):
            values = [_counter(response, k) for k in _COUNTERS]
            if any(v is None for v in values):
                return None
            return response, sum(values)  # type: ignore[arg-type]
    return None


def _sub_op_window(event: Event, performer: str | None) -> int:
    """How many sub-operations may be in flight (PS3.7 D.3.3.3; 0 = unlimited)."""
    invoked, performed = event.view.async_window
    return performed if performer == "acceptor" else invoked


def _linked_operation(event: Event) -> Operation | None:
    """The one C-GET an unambiguously linked C-STORE-RQ belongs to."""
    sub: SubOperation | None = event.sub
    correlation = event.view.correlation
    if sub is None or sub.get_message_id is None or sub.ambiguous or correlation is None:
        return None
    invoker = "acceptor" if event.sender == "requestor" else "requestor"
    operation = correlation.outstanding.get((invoker, sub.get_message_id))
    return None if operation is None or operation.overlapped else operation


def _remember_loss(event: Event, rule_id: str) -> None:
    if event.problem is not None and event.problem.code in _LOSSES:
        event.view.scratch[rule_id] = event.problem.frame


def _linking_trustworthy(event: Event, rule_id: str) -> bool:
    operation: Operation | None = event.operation
    if operation is None or operation.request is None or operation.overlapped:
        return False
    loss = event.view.scratch.get(rule_id)
    if loss is not None and loss >= operation.first_frame:
        return False
    return not any(sub.ambiguous for sub in operation.sub_operations)


def _tally(operation: Operation) -> dict[str, int]:
    """Linked C-STORE-RSPs by status class; "open" counts sub-ops not (yet) classed."""
    tally = {SUCCESS: 0, WARNING: 0, FAILURE: 0, "open": 0}
    for sub in operation.sub_operations:
        status = sub.response.Status if sub.response is not None else None
        category = status_category(status) if isinstance(status, int) else None
        if category == SUCCESS:
            tally[SUCCESS] += 1
        elif category in (WARNING, FAILURE):
            tally[category] += 1
        else:
            tally["open"] += 1  # no response before the final one, or an odd status
    return tally


def _open_note(open_count: int) -> str:
    return f" ({open_count} linked sub-operation(s) had no classified response yet)" if open_count else ""


# -- between responses ----------------------------------------------------------


@rule("GET-CNT-001", "c_get_rsp")
def remaining_never_rises(report: Reporter, event: Event) -> None:
    response = event.primitive
    previous = _previous(event.operation, response)
    if previous is None:
        return
    before, now = _counters(previous)[0], _counters(response)[0]
    if before is not None and now is not None and now > before:
        report(f"Remaining rose from {before} (frame {previous.frame}) to {now}; the number of "
               "sub-operations still to be invoked can only fall during a C-GET")


@rule("GET-CNT-002", "c_get_rsp")
def done_counters_never_fall(report: Reporter, event: Event) -> None:
    response = event.primitive
    previous = _previous(event.operation, response)
    if previous is None:
        return
    fell = []
    earlier, later = _counters(previous), _counters(response)
    for index, keyword in ((1, _COMPLETED), (2, _FAILED), (3, _WARNING)):
        before, now = earlier[index], later[index]
        if before is not None and now is not None and now < before:
            fell.append(f"{_NAMES[keyword]} {before} -> {now}")
    if fell:
        report(f"{', '.join(fell)} since the response at frame {previous.frame}; counts of finished "
               "sub-operations can only grow during a C-GET")


def _went_backwards(earlier: C_GET, later: C_GET) -> bool:
    """Remaining rose or a finished count fell: GET-CNT-001/002 report that step."""
    before, now = _counters(earlier), _counters(later)
    if before[0] is not None and now[0] is not None and now[0] > before[0]:
        return True
    for index in (1, 2, 3):
        if before[index] is not None and now[index] is not None and now[index] < before[index]:
            return True
    return False


@rule("GET-CNT-003", "c_get_rsp")
def total_stays_put(report: Reporter, event: Event) -> None:
    response, operation = event.primitive, event.operation
    previous = _previous(operation, response)
    if previous is None or _went_backwards(previous, response):
        return
    if len(operation.responses) >= 3 and _went_backwards(operation.responses[-3], previous):
        return  # this step only corrects a counter GET-CNT-001/002 already reported
    before, now = _total(previous), _total(response)
    window = _sub_op_window(event, response.sender)
    if before is None or now is None or window == 0:
        return
    if abs(now - before) > window:
        report(f"Remaining+Completed+Failed+Warning went from {before} (frame {previous.frame}) to {now}; "
               f"with a sub-operation window of {window} the total may move by at most {window}")


# -- C-STORE sub-operations against the counters --------------------------------------


@rule("GET-CNT-007", "c_store_rq")
def no_more_sub_ops_than_announced(report: Reporter, event: Event) -> None:
    operation = _linked_operation(event)
    if operation is None:
        return
    first = _first_pending_total(operation)
    window = _sub_op_window(event, event.sender)
    if first is None or window == 0:
        return
    pending, total = first
    # Sub-ops in flight when that Pending was sent are in no counter.
    limit = total + window - 1
    linked = len(operation.sub_operations)
    if linked <= limit:
        return
    reported: OrderedDict = event.view.memory("GET-CNT-007", OrderedDict)
    key = (operation.invoker, operation.message_id, operation.first_frame)
    if key in reported:
        return  # one finding per C-GET: the first C-STORE-RQ over the total
    reported[key] = True
    if len(reported) > _MAX_REMEMBERED:
        reported.popitem(last=False)
    report(f"C-STORE-RQ is sub-operation {linked} of C-GET {operation.message_id}, but the first Pending "
           f"(frame {pending.frame}) implied {total} in all (Remaining + Completed + Failed + Warning)",
           message_id=operation.message_id)


@rule("GET-CNT-008", "c_store_rq")
def no_sub_op_after_remaining_zero(report: Reporter, event: Event) -> None:
    operation = _linked_operation(event)
    if operation is None:
        return
    latest = next((r for r in reversed(operation.responses) if r.Status in (0xFF00, 0xFF01)), None)
    if latest is not None and _counter(latest, _REMAINING) == 0:
        report(f"C-STORE-RQ started after the Pending at frame {latest.frame} reported Remaining = 0 for "
               f"C-GET {operation.message_id}; no sub-operation was left to invoke",
               message_id=operation.message_id)


# -- final response against the linked sub-operations -----------------------------------


@rule("GET-CNT-004", "operation_final", "problem")
def completed_matches_successes(report: Reporter, event: Event) -> None:
    if event.name == "problem":
        _remember_loss(event, "GET-CNT-004")
        return
    final = event.primitive
    completed = _counter(final, _COMPLETED)
    if completed is None or not _linking_trustworthy(event, "GET-CNT-004"):
        return
    tally = _tally(event.operation)
    if not tally[SUCCESS] <= completed <= tally[SUCCESS] + tally["open"]:
        report(f"Final {status_hex(_status(final))} reports Completed = {completed} but {tally[SUCCESS]} "
               f"linked C-STORE-RSP(s) had status 0x0000{_open_note(tally['open'])}; Completed counts the "
               "sub-operations that succeeded")


@rule("GET-CNT-005", "operation_final", "problem")
def warning_matches_warnings(report: Reporter, event: Event) -> None:
    if event.name == "problem":
        _remember_loss(event, "GET-CNT-005")
        return
    final = event.primitive
    warned = _counter(final, _WARNING)
    if warned is None or not _linking_trustworthy(event, "GET-CNT-005"):
        return
    tally = _tally(event.operation)
    if not tally[WARNING] <= warned <= tally[WARNING] + tally["open"]:
        report(f"Final {status_hex(_status(final))} reports Warning = {warned} but {tally[WARNING]} linked "
               f"C-STORE-RSP(s) had a Warning status{_open_note(tally['open'])}; Warning counts the "
               "sub-operations that ended with a warning")


@rule("GET-CNT-006", "operation_final", "problem")
def failed_covers_failures(report: Reporter, event: Event) -> None:
    if event.name == "problem":
        _remember_loss(event, "GET-CNT-006")
        return
    final = event.primitive
    failed = _counter(final, _FAILED)
    if failed is None or not _linking_trustworthy(event, "GET-CNT-006"):
        return
    tally = _tally(event.operation)
    if failed < tally[FAILURE]:
        report(f"Final {status_hex(_status(final))} reports Failed = {failed} but {tally[FAILURE]} linked "
               "C-STORE-RSP(s) had a Failure status; Failed counts at least every sub-operation that failed")


@rule("GET-CNT-009", "operation_final")
def cancel_accounts_for_total(report: Reporter, event: Event) -> None:
    final, operation = event.primitive, event.operation
    status = _status(final)
    if operation is None or status is None or status_category(status) != CANCEL:
        return
    now = [_counter(final, k) for k in _COUNTERS]
    first = _first_pending_total(operation)
    if now[0] is None or any(v is None for v in now) or first is None:
        return
    pending, total = first
    cancelled = sum(now)  # type: ignore[arg-type]
    # A sub-operation still in flight at the cancel is in no counter.
    in_flight = sum(1 for sub in operation.sub_operations if sub.response is None)
    if not total - in_flight <= cancelled <= total:
        shown = "+".join(str(v) for v in now)
        report(f"Cancel 0xFE00 counts {shown} = {cancelled} (Remaining+Completed+Failed+Warning) but the "
               f"first Pending (frame {pending.frame}) implied {total} sub-operations; with Remaining the "
               "counters should still add up to that total")
