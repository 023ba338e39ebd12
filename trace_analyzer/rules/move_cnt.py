"""MOVE-CNT rules: the sub-operation counters of C-MOVE responses (PS3.7 9.1.4.1; PS3.4 C.4.2).

Between two responses of one C-MOVE (on its association, ``c_move_rsp``), and at the end against
the C-STORE sub-operations seen on the other association(s): the latter only once linking.py
has linked them (``retrieve_rule``), and only when that link can be trusted: the C-MOVE-RQ and
its final response were captured, at least one sub-operation association was, no C-STORE is
ambiguous between C-MOVEs, and no bytes of those associations were lost.
"""

from __future__ import annotations

from ..status import FAILURE, SUCCESS, WARNING, status_category
from .engine import Event, Reporter, RetrieveContext, RetrieveReporter, retrieve_rule, rule

_REMAINING, _COMPLETED = "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations"
_FAILED, _WARNING = "NumberOfFailedSuboperations", "NumberOfWarningSuboperations"


def _value(response, keyword: str) -> int | None:
    value = response.wire.get(keyword)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _previous(event: Event):
    operation = event.operation
    if operation is None or len(operation.responses) < 2 or operation.responses[-1] is not event.primitive:
        return None
    return operation.responses[-2]


@rule("MOVE-CNT-001", "c_move_rsp")
def remaining_never_rises(report: Reporter, event: Event) -> None:
    before = _previous(event)
    if before is None:
        return
    old, new = _value(before, _REMAINING), _value(event.primitive, _REMAINING)
    if old is not None and new is not None and new > old:
        report(f"Remaining rose from {old} (frame {before.frame}) to {new}")


@rule("MOVE-CNT-002", "c_move_rsp")
def done_counters_never_fall(report: Reporter, event: Event) -> None:
    before = _previous(event)
    if before is None:
        return
    for keyword, name in ((_COMPLETED, "Completed"), (_FAILED, "Failed"), (_WARNING, "Warning")):
        old, new = _value(before, keyword), _value(event.primitive, keyword)
        if old is not None and new is not None and new < old:
            report(f"{name} fell from {old} (frame {before.frame}) to {new}")


def _outcomes(retrieve, context: RetrieveContext) -> dict[str, int] | None:
    """Sub-operation outcomes seen on the destination association(s), when they can be trusted."""
    move = retrieve.move
    if move is None or move.request is None or move.final is None or not retrieve.associations \
            or retrieve.ambiguous:
        return None
    if any(key in context.lossy for key in retrieve.associations) \
            or (move.capture, move.association) in context.lossy:
        return None
    counts = {SUCCESS: 0, WARNING: 0, FAILURE: 0}
    for sub in retrieve.sub_operations:
        status = sub.response.Status if sub.response is not None else None
        if isinstance(status, int):
            category = status_category(status)
            counts[category if category in counts else FAILURE] += 1
    return counts


def _against_stores(report: RetrieveReporter, retrieve, context: RetrieveContext, keyword: str,
                    category: str, name: str, answered: str, at_least: bool = False) -> None:
    """Report when the final counter ``keyword`` differs from (or, ``at_least``, is below) the
    linked C-STOREs answered with ``category``."""
    counts = _outcomes(retrieve, context)
    if counts is None:
        return
    said, seen = _value(retrieve.move.final, keyword), counts[category]
    if at_least:
        wrong = seen and (said is None or said < seen)
    else:
        wrong = said is not None and said != seen
    if wrong:
        report(f"final C-MOVE-RSP says {name} {said}, but {seen} sub-operation C-STORE(s) on association(s) "
               f"{_named(retrieve)} {answered}", retrieve.move.final, "C-MOVE SCP")


@retrieve_rule("MOVE-CNT-003")
def completed_matches_stores(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    _against_stores(report, retrieve, context, _COMPLETED, SUCCESS, "Completed", "were answered 0x0000")


@retrieve_rule("MOVE-CNT-004")
def failed_covers_stores(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    _against_stores(report, retrieve, context, _FAILED, FAILURE, "Failed", "failed", at_least=True)


@retrieve_rule("MOVE-CNT-005")
def warning_matches_stores(report: RetrieveReporter, retrieve, context: RetrieveContext) -> None:
    _against_stores(report, retrieve, context, _WARNING, WARNING, "Warning", "were answered with a Warning")


def _named(retrieve) -> str:
    return ", ".join(str(association) for _, association in retrieve.associations)
