"""GET-RSP rules: C-GET-RSP command fields, statuses and status-related fields (catalog 5.4)."""

from __future__ import annotations

from .engine import Event, Reporter, rule

_COUNTERS = ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
             "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")
_COUNTER_TAGS = dict(zip(_COUNTERS, ("(0000,1020)", "(0000,1021)", "(0000,1022)", "(0000,1023)"),
                         strict=True))


@rule("GET-RSP-007", "c_get_rsp")
def pending_carries_every_counter(report: Reporter, event: Event) -> None:
    response = event.primitive
    if response.wire.get("Status") not in (0xFF00, 0xFF01):
        return
    missing = [_COUNTER_TAGS[k] for k in _COUNTERS if k not in response.wire]
    if missing:
        report(f"Pending response (0x{response.wire['Status']:04X}) lacks {', '.join(missing)}; "
               "a Pending C-GET-RSP must carry all four sub-operation counters")
